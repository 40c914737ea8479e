#!/usr/bin/env python3
"""Fails when the modules of a crate depend on each other in a cycle.

    scripts/check-module-cycles.py [SRC_DIR ...]     (default: every crate's src/ in the workspace)

The rule, applied at every level of the module tree: the child modules of one module (each
with everything below it) must depend on each other without a cycle. A module's own file
(`mod.rs`, `lib.rs`) is the hub its children are reached through, so a child using its parent's
items, or a parent using its children, is not an edge; but an item the parent re-exports from
one child (`pub use scan::Progress`) counts as that child. At the top level this is the layering
of the crate (api above the operations, the operations above the stores, ...); inside a folder,
the files that work together (`materialize/scan.rs` and `materialize/write.rs`).

Dependencies are read from paths in the code: `use crate::a::b`, `super::x`, `self::y` and
qualified paths such as `crate::a::f()`, brace groups included. Test code is left out: files
named `tests.rs`, modules declared under `#[cfg(test)]`, and inline `#[cfg(test)] mod ... { }`.
Standard library only; run by scripts/test.sh.
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """Removes comments, string and char literals, and inline `#[cfg(test)] mod x { ... }` blocks."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            j = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if j < 0 else j + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", text[i:]).group(0))
        else:
            out.append(c)
            i += 1
    code = "".join(out)
    # Inline test modules: drop from the attribute to the matching closing brace.
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*\{", code)
        if not m:
            return code
        depth, j = 0, m.end() - 1
        while j < len(code):
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
            if depth == 0:
                break
        code = code[: m.start()] + code[j:]


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of names from the crate root
        self.file = file
        self.children = {}
        self.reexports = {}  # item name -> child module name
        self.code = ""


def load(src):
    root = Module((), src / "lib.rs" if (src / "lib.rs").exists() else src / "main.rs")
    todo = [root]
    while todo:
        m = todo.pop()
        text = m.file.read_text()
        # Child modules, unless declared for tests only.
        for decl in re.finditer(r"((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text):
            attrs, name = decl.group(1), decl.group(2)
            if "cfg(test)" in attrs.replace(" ", "") or name == "tests":
                continue
            base = m.file.parent if m.file.name in ("lib.rs", "main.rs", "mod.rs") else m.file.with_suffix("")
            f = base / (name + ".rs")
            if not f.exists():
                f = base / name / "mod.rs"
            child = Module(m.path + (name,), f)
            m.children[name] = child
            todo.append(child)
        m.code = strip(text)
    # Re-exports from children: `pub use [self::]child::{A, B as C}`.
    for m in walk(root):
        for r in re.finditer(r"pub(?:\([^)]*\))?\s+use\s+(?:self::)?(" + IDENT + r")::([^;]+);", m.code):
            child, rest = r.group(1), r.group(2).strip()
            if child not in m.children:
                continue
            items = rest[1:-1].split(",") if rest.startswith("{") else [rest]
            for item in items:
                item = item.strip()
                if item and item != "*":
                    name = item.split(" as ")[-1].split("::")[-1].strip()
                    m.reexports[name] = child
    return root


def walk(m):
    yield m
    for c in m.children.values():
        yield from walk(c)


def paths(code):
    """Every path starting at crate, super or self, brace groups expanded, as lists of segments."""
    found = []

    def expand(prefix, text):
        # text starts right after `prefix::`
        m = re.match(r"\s*\{", text)
        if m:
            depth, j, start, parts = 0, m.end() - 1, m.end(), []
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        parts.append(text[start:j])
                        break
                elif text[j] == "," and depth == 1:
                    parts.append(text[start:j])
                    start = j + 1
                j += 1
            for p in parts:
                p = p.strip()
                if p:
                    expand_item(prefix, p)
            return
        m = re.match(r"\s*((?:" + IDENT + r"\s*::\s*)*)(" + IDENT + r"|\*)?(\s*::\s*\{)?", text)
        segs = [s.strip() for s in m.group(1).split("::") if s.strip()]
        if m.group(3):
            expand(prefix + segs, text[m.end() - 1 :])
            return
        if m.group(2) and m.group(2) != "*":
            segs.append(m.group(2))
        found.append(prefix + segs)

    def expand_item(prefix, item):
        item = re.sub(r"\s+as\s+" + IDENT + r"\s*$", "", item)
        if item == "self":
            found.append(prefix)
            return
        expand(prefix, item)

    for m in re.finditer(r"(?<![A-Za-z0-9_:])((?:crate|self|super)(?:\s*::\s*super)*)\s*::", code):
        head = [s.strip() for s in m.group(1).split("::")]
        expand(head, code[m.end() :])
    return found


def resolve(root, here, segs):
    """The deepest module a path from module `here` names."""
    if segs[0] == "crate":
        m, rest = root, segs[1:]
    else:
        path = list(here.path)
        rest = list(segs)
        while rest and rest[0] in ("self", "super"):
            if rest.pop(0) == "super":
                path.pop()
        m = root
        for name in path:
            m = m.children[name]
    for s in rest:
        if s in m.children:
            m = m.children[s]
        elif s in m.reexports:
            m = m.children[m.reexports[s]]
        else:
            break
    return m


def main():
    dirs = [Path(a) for a in sys.argv[1:]] or sorted(p.parent for p in Path(".").glob("**/Cargo.toml") if (p.parent / "src").is_dir() and "target" not in p.parts)
    dirs = [d / "src" if (d / "src").is_dir() else d for d in dirs]
    failed = False
    for src in dirs:
        root = load(src)
        # level (a module's path) -> {child: set of children it depends on}
        graphs = {}
        for m in walk(root):
            for segs in paths(m.code):
                t = resolve(root, m, segs)
                a, b = m.path, t.path
                k = 0
                while k < min(len(a), len(b)) and a[k] == b[k]:
                    k += 1
                if k == len(a) or k == len(b):
                    continue  # the same module, an ancestor (the hub) or a descendant
                level = a[:k]
                graphs.setdefault(level, {}).setdefault(a[k], set()).add(b[k])
        for level, graph in sorted(graphs.items()):
            for cycle in cycles(graph):
                failed = True
                where = "::".join(("crate",) + level)
                print(f"{src}: module cycle in {where}: {' -> '.join(cycle)}")
    if failed:
        print("Dependencies between modules must run one way (see docs/architecture.md).")
        sys.exit(1)
    print("no module cycles in " + ", ".join(str(d) for d in dirs))


def cycles(graph):
    """One cycle per strongly connected component of more than one node (or a self-loop)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(path_through(graph, sorted(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def path_through(graph, comp):
    """A cycle inside one strongly connected component, for the message."""
    members, start = set(comp), comp[0]
    prev, todo = {start: None}, [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                route = [v]
                while prev[route[-1]] is not None:
                    route.append(prev[route[-1]])
                return list(reversed(route)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                todo.append(w)
    return comp


if __name__ == "__main__":
    main()
