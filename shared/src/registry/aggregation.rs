//! A stream feature view's aggregations (Feast's `Aggregation`): what is computed over which
//! window, the feature each answers as, and the tile size (hop) the stream side keeps them in.
//!
//! A registry written elsewhere may hold an aggregation Larder cannot compute (an unknown
//! function, a hop that does not divide the window). It still loads: the problem is kept on
//! the aggregation ([`Aggregation::plan`]), so only that view's aggregated features fail, with
//! the reason, and everything else is served.

use std::fmt;
use std::time::Duration;

use crate::value::ValueType;

/// What an aggregation computes. Sample statistics for `Std` and `Var` (divisor n - 1), as
/// pandas computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    Std,
    Var,
    CountDistinct,
    Last,
}

impl Function {
    /// Every function, with the names Feast's `Aggregation.function` takes (`avg` is `mean`).
    pub const NAMES: [(&'static str, Function); 10] = [
        ("count", Function::Count),
        ("sum", Function::Sum),
        ("mean", Function::Mean),
        ("avg", Function::Mean),
        ("min", Function::Min),
        ("max", Function::Max),
        ("std", Function::Std),
        ("var", Function::Var),
        ("count_distinct", Function::CountDistinct),
        ("last", Function::Last),
    ];

    pub fn parse(name: &str) -> Option<Function> {
        Function::NAMES.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
    }

    /// The type an output of this function answers in when the view declares none: Int64 for
    /// the counts, Float64 for the rest.
    pub fn default_type(self) -> ValueType {
        match self {
            Function::Count | Function::CountDistinct => ValueType::Int64,
            _ => ValueType::Double,
        }
    }

    /// Whether the function computes over `column` of type `t`, or why not: `count_distinct`
    /// counts any single value, the others compute over numbers (booleans as 0 and 1).
    pub fn check_column(self, column: &str, t: ValueType) -> Result<(), String> {
        let numeric =
            matches!(t, ValueType::Int32 | ValueType::Int64 | ValueType::Float | ValueType::Double | ValueType::Bool);
        let single = numeric
            || matches!(
                t,
                ValueType::String
                    | ValueType::Bytes
                    | ValueType::UnixTimestamp
                    | ValueType::Uuid
                    | ValueType::TimeUuid
                    | ValueType::Json
                    | ValueType::PdfBytes
                    | ValueType::ImageBytes
            );
        match self {
            Function::CountDistinct if !single => Err(format!(
                "column '{column}' is {t}; count_distinct counts single values (not lists, sets, maps or structs)"
            )),
            Function::CountDistinct => Ok(()),
            _ if !numeric => Err(format!(
                "column '{column}' is {t}; aggregations are computed over numeric columns (Int32, Int64, Float32, \
                 Float64, Bool); count_distinct over any single value"
            )),
            _ => Ok(()),
        }
    }
}

/// One aggregation of a stream view, as the registry holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    /// The event column aggregated.
    pub column: String,
    /// The function as written (`avg`, `count_distinct`, ...).
    pub function: String,
    pub window: Duration,
    /// `None`: tumbling (the slide is the window).
    pub slide: Option<Duration>,
    /// The name given, if any (else [`Aggregation::output`] derives one).
    pub name: String,
}

/// How an aggregation is computed: its function and the hop of the tiles it is merged from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregationPlan {
    pub function: Function,
    pub window: Duration,
    pub hop: Duration,
    /// Whether the window slides (answers cover the window ending now) or tumbles (answers
    /// cover the last closed window).
    pub sliding: bool,
}

/// Why an aggregation cannot be computed; names the view and the aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationError(pub String);

impl fmt::Display for AggregationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Aggregation {
    /// The feature this aggregation answers as, by Feast's rule: the given name, else
    /// `{function}_{column}`, with `_{seconds}s` (whole seconds) when the window is longer than 0.
    pub fn output(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let base = format!("{}_{}", self.function, self.column);
        if self.window.is_zero() { base } else { format!("{base}_{}s", self.window.as_secs()) }
    }

    /// How this aggregation of `view` is computed, or why it cannot be. The hop is the slide
    /// interval when given, else `tiling_hop` (a view with `enable_tiling`), else the window
    /// (tumbling); it must divide the window.
    pub fn plan(&self, view: &str, tiling_hop: Option<Duration>) -> Result<AggregationPlan, AggregationError> {
        let here = || format!("stream feature view '{view}', aggregation '{}'", self.output());
        let function = Function::parse(&self.function).ok_or_else(|| {
            let known: Vec<&str> = Function::NAMES.iter().map(|(n, _)| *n).collect();
            AggregationError(format!(
                "{}: unknown function '{}' (Larder computes {})",
                here(),
                self.function,
                known.join(", ")
            ))
        })?;
        if self.window.is_zero() {
            return Err(AggregationError(format!(
                "{}: no time_window; Larder computes windowed aggregations only",
                here()
            )));
        }
        let slide = self.slide.filter(|s| !s.is_zero());
        let hop = slide.or(tiling_hop.filter(|h| !h.is_zero())).unwrap_or(self.window);
        if hop > self.window || !self.window.as_nanos().is_multiple_of(hop.as_nanos()) {
            let what = if slide.is_some() { "slide interval" } else { "tiling hop size" };
            return Err(AggregationError(format!(
                "{}: the {what} ({}) does not divide the time window ({}); windows are merged from whole tiles",
                here(),
                human(hop),
                human(self.window)
            )));
        }
        Ok(AggregationPlan { function, window: self.window, hop, sliding: slide.is_some_and(|s| s < self.window) })
    }
}

/// `90s`, `1.5s`: a duration as a number of seconds.
fn human(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(function: &str, window: u64, slide: Option<u64>, name: &str) -> Aggregation {
        Aggregation {
            column: "trips".into(),
            function: function.into(),
            window: Duration::from_secs(window),
            slide: slide.map(Duration::from_secs),
            name: name.into(),
        }
    }

    #[test]
    fn output_names_follow_feasts_rule() {
        assert_eq!(agg("sum", 3600, None, "").output(), "sum_trips_3600s");
        assert_eq!(agg("avg", 60, Some(10), "").output(), "avg_trips_60s");
        assert_eq!(agg("count", 0, None, "").output(), "count_trips");
        assert_eq!(agg("sum", 3600, None, "trips_1h").output(), "trips_1h");
        // Whole seconds, as Python's int() truncates.
        let mut a = agg("max", 0, None, "");
        a.window = Duration::from_millis(1500);
        assert_eq!(a.output(), "max_trips_1s");
    }

    #[test]
    fn every_function_name_parses_and_avg_is_mean() {
        for (name, f) in Function::NAMES {
            assert_eq!(Function::parse(name), Some(f));
        }
        assert_eq!(Function::parse("avg"), Some(Function::Mean));
        assert_eq!(Function::parse("median"), None);
        assert_eq!(Function::parse("SUM"), None, "names are case-sensitive, as Feast's are");
    }

    #[test]
    fn the_hop_is_the_slide_else_the_tiling_hop_else_the_window() {
        let h = |a: Aggregation, tiling: Option<u64>| {
            a.plan("v", tiling.map(Duration::from_secs)).map(|p| (p.hop.as_secs(), p.sliding))
        };
        assert_eq!(h(agg("sum", 3600, Some(300), ""), Some(60)), Ok((300, true)));
        assert_eq!(h(agg("sum", 3600, None, ""), Some(60)), Ok((60, false)));
        assert_eq!(h(agg("sum", 60, None, ""), None), Ok((60, false)));
        // A slide equal to the window tumbles; a zero slide is no slide.
        assert_eq!(h(agg("sum", 60, Some(60), ""), None), Ok((60, false)));
        assert_eq!(h(agg("sum", 60, Some(0), ""), Some(20)), Ok((20, false)));
    }

    #[test]
    fn what_cannot_be_computed_is_named() {
        let err = |a: Aggregation, tiling: Option<u64>| {
            a.plan("sensor_stats", tiling.map(Duration::from_secs)).unwrap_err().0
        };
        assert_eq!(
            err(agg("median", 60, None, ""), None),
            "stream feature view 'sensor_stats', aggregation 'median_trips_60s': unknown function 'median' \
             (Larder computes count, sum, mean, avg, min, max, std, var, count_distinct, last)"
        );
        assert_eq!(
            err(agg("sum", 3600, Some(700), ""), None),
            "stream feature view 'sensor_stats', aggregation 'sum_trips_3600s': the slide interval (700s) does not \
             divide the time window (3600s); windows are merged from whole tiles"
        );
        assert!(err(agg("sum", 60, None, ""), Some(120)).contains("the tiling hop size (120s) does not divide"));
        assert!(err(agg("sum", 0, None, ""), None).contains("no time_window"));
    }
}
