//! Aligned text tables for the operator's commands (`get`, `list`, `freshness`): a header row
//! and rows of cells, each column as wide as its widest cell, columns two spaces apart.

/// A table being built: the header, then rows of as many cells.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, every line indented by `indent` spaces and ending in a newline.
    /// Widths count characters, not bytes, so non-ASCII values stay aligned; trailing
    /// blanks are trimmed.
    pub fn render(&self, indent: usize) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = " ".repeat(indent);
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.push_str(&" ".repeat(w - width(cell)));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(["A", "LONGER"]);
        t.row(["wide cell", "x"]);
        t.row(["é", ""]);
        t.row(["only one"]);
        assert_eq!(t.render(0), "A          LONGER\nwide cell  x\né\nonly one\n");
        assert_eq!(t.render(2).lines().next(), Some("  A          LONGER"));
    }
}
