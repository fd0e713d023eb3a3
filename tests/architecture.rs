//! The structure, checked: no import circle between files, and none between the top-level modules
//! of a crate (so the modules form layers, printed lowest first).
//!
//! The graph is built from the source text, as `/work/notes/import_graph.py` did: an arrow runs
//! from a file to every module file it names in a `use` declaration or a path (`crate::a::b`,
//! `super::x`, `self::x`, or `child::x` for a child module `child`), resolved to the longest
//! prefix that is a module file; `mod x;` declarations are not arrows, and `#[cfg(test)]` modules
//! (inline or in their own file) are left out. A child that names its parent while the parent
//! names it (a `pub use` of the child and a `use super::X` back, say) is a circle.
//!
//! `cargo test --test architecture -- --nocapture` runs the unit tests of the checker and the
//! check of the whole tree, which prints each crate's layers (lowest first).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path inside a crate (`[]` = the crate root).
type Module = Vec<String>;

/// The file-level import graph of one crate.
#[derive(Debug, Default)]
struct Graph {
    /// Every module file.
    modules: BTreeSet<Module>,
    /// Arrows: module -> the modules it names.
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "(crate root)".to_owned()
    } else {
        m.join("/")
    }
}

/// The module a file at `rel` (relative to the crate's `src`, `/`-separated) holds.
fn module_of(rel: &str) -> Module {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Module = stem.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The source without comments and without the contents of string and character literals.
fn strip_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) && !ident_before(b, i) {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            'raw: while j < b.len() {
                if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                    j += 1 + hashes;
                    break 'raw;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if b.get(i + 1) == Some(&b'\\') {
                b.get(i + 3..)
                    .and_then(|r| r.iter().position(|&x| x == b'\''))
                    .map(|p| i + 3 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                // Multi-byte UTF-8 character literal, else a lifetime.
                let rest = &src[i + 1..];
                rest.chars()
                    .next()
                    .filter(|ch| ch.len_utf8() > 1)
                    .and_then(|ch| {
                        (rest[ch.len_utf8()..].starts_with('\'')).then(|| i + 1 + ch.len_utf8())
                    })
            };
            match close {
                Some(j) => {
                    out.push_str("' '");
                    i = j + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Skip whitespace and `#[...]` attributes from byte `i`.
fn skip_attributes(s: &str, mut i: usize) -> usize {
    let b = s.as_bytes();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&b'#') && b.get(i + 1) == Some(&b'[') {
            let mut depth = 0;
            while i < b.len() {
                match b[i] {
                    b'[' => depth += 1,
                    b']' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            return i;
        }
    }
}

/// `[pub[(..)]] mod NAME` at byte `i`: the name and the byte after it.
fn mod_item(s: &str, mut i: usize) -> Option<(String, usize)> {
    let rest = &s[i..];
    if let Some(r) = rest.strip_prefix("pub") {
        let r = r.trim_start();
        i = s.len() - r.len();
        if r.starts_with('(') {
            i += r.find(')')? + 1;
        }
        i = skip_attributes(s, i);
    }
    let r = s[i..].strip_prefix("mod")?;
    if !r.starts_with(char::is_whitespace) {
        return None;
    }
    let r = r.trim_start();
    let start = s.len() - r.len();
    let len = r.find(|c: char| !is_ident(c)).unwrap_or(r.len());
    (len > 0).then(|| (r[..len].to_owned(), start + len))
}

/// The source with its `#[cfg(test)]` modules removed, and the names of the test modules that
/// live in files of their own (`#[cfg(test)] mod tests;`).
fn strip_test_modules(src: &str) -> (String, Vec<String>) {
    let mut s = src.to_owned();
    let mut test_files = Vec::new();
    let mut from = 0;
    while let Some(p) = s[from..].find("#[cfg(test)]").map(|p| p + from) {
        let after = skip_attributes(&s, p + "#[cfg(test)]".len());
        let Some((modname, end)) = mod_item(&s, after) else {
            from = p + 1;
            continue;
        };
        let rest = s[end..].trim_start();
        let open = s.len() - rest.len();
        if rest.starts_with(';') {
            test_files.push(modname);
            s.replace_range(p..=open, " ");
        } else if rest.starts_with('{') {
            let mut depth = 0;
            let mut close = s.len() - 1;
            for (k, c) in s[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = open + k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            s.replace_range(p..=close, " ");
        }
        from = p;
    }
    (s, test_files)
}

/// Expand a `use` tree (`a::{b, c::{d, e}}`, without spaces) into its paths.
fn expand_use(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let prefix = &tree[..open];
    let inner = tree[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&tree[open + 1..]);
    let mut items = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            items.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    items.push(cur);
    items
        .iter()
        .filter(|it| !it.is_empty())
        .flat_map(|it| expand_use(it))
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// Every path a (stripped) source names: the expanded `use` declarations, then every
/// `a::b(::c)*` elsewhere.
fn paths_in(src: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = String::with_capacity(src.len());
    let mut i = 0;
    let b = src.as_bytes();
    while i < b.len() {
        let is_use = src[i..].starts_with("use")
            && !ident_before(b, i)
            && b.get(i + 3).is_some_and(u8::is_ascii_whitespace);
        if is_use && let Some(end) = src[i..].find(';') {
            // The tree without whitespace and without `as NAME` renames.
            let toks: Vec<&str> = src[i + 3..i + end].split_whitespace().collect();
            let mut tree = String::new();
            let mut t = 0;
            while t < toks.len() {
                if toks[t] == "as" && t + 1 < toks.len() {
                    let next = toks[t + 1];
                    let n = next.find(|c: char| !is_ident(c)).unwrap_or(next.len());
                    tree.push_str(&next[n..]);
                    t += 2;
                } else {
                    tree.push_str(toks[t]);
                    t += 1;
                }
            }
            for p in expand_use(&tree) {
                out.push(p.split("::").map(str::to_owned).collect());
            }
            rest.push(' ');
            i += end + 1;
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or(' ');
        rest.push(ch);
        i += ch.len_utf8();
    }
    // Paths outside `use`: maximal runs ident(::ident)+ not preceded by `::` or an identifier.
    let chars: Vec<char> = rest.chars().collect();
    let mut k = 0;
    while k < chars.len() {
        let boundary = k == 0 || !(is_ident(chars[k - 1]) || chars[k - 1] == ':');
        if boundary && is_ident(chars[k]) {
            let mut segs = Vec::new();
            let mut j = k;
            loop {
                let s0 = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                if s0 == j {
                    break;
                }
                segs.push(chars[s0..j].iter().collect::<String>());
                if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 {
                out.push(segs);
            }
            k = j.max(k + 1);
        } else {
            k += 1;
        }
    }
    out
}

/// The longest prefix of `path` that is a module file.
fn resolve(modules: &BTreeSet<Module>, path: &[String]) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|i| path[..i].to_vec())
        .find(|m| modules.contains(m))
}

impl Graph {
    /// The graph of a crate given as (path relative to its `src`, source text) pairs.
    fn from_sources(files: &[(String, String)]) -> Self {
        let has_lib = files.iter().any(|(p, _)| p == "lib.rs");
        let files: Vec<(Module, &str)> = files
            .iter()
            .filter(|(p, _)| p.ends_with(".rs") && !(has_lib && p == "main.rs"))
            .map(|(p, s)| (module_of(p), s.as_str()))
            .collect();
        let mut stripped = Vec::new();
        let mut test_only = BTreeSet::new();
        for (m, src) in &files {
            let (s, tests) = strip_test_modules(&strip_comments_and_strings(src));
            for t in tests {
                let mut child = m.clone();
                child.push(t);
                test_only.insert(child);
            }
            stripped.push((m.clone(), s));
        }
        // A test-only file and everything below it is left out.
        let keep = |m: &Module| !test_only.iter().any(|t| m.starts_with(t));
        let modules: BTreeSet<Module> = stripped
            .iter()
            .map(|(m, _)| m.clone())
            .filter(|m| keep(m))
            .collect();
        let mut g = Graph {
            modules: modules.clone(),
            edges: BTreeMap::new(),
        };
        for (m, src) in stripped.iter().filter(|(m, _)| keep(m)) {
            let mut targets = BTreeSet::new();
            for path in paths_in(src) {
                let Some(first) = path.first() else { continue };
                let (base, segs): (Module, &[String]) = match first.as_str() {
                    "crate" => (Vec::new(), &path[1..]),
                    "self" => (m.clone(), &path[1..]),
                    "super" => {
                        let n = path.iter().take_while(|s| *s == "super").count();
                        (m[..m.len().saturating_sub(n)].to_vec(), &path[n..])
                    }
                    child => {
                        let mut c = m.clone();
                        c.push(child.to_owned());
                        if modules.contains(&c) {
                            (m.clone(), &path[..])
                        } else {
                            continue;
                        }
                    }
                };
                let mut full = base;
                full.extend(segs.iter().cloned());
                if let Some(t) = resolve(&modules, &full)
                    && t != *m
                {
                    targets.insert(t);
                }
            }
            g.edges.insert(m.clone(), targets);
        }
        g
    }

    /// The crate whose `src` is `dir`.
    fn from_dir(dir: &Path) -> Self {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d)
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
            for e in entries {
                let p = e.expect("a directory entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let rel = p
                        .strip_prefix(dir)
                        .expect("under the crate")
                        .to_string_lossy()
                        .replace('\\', "/");
                    let src = std::fs::read_to_string(&p)
                        .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
                    files.push((rel, src));
                }
            }
        }
        Self::from_sources(&files)
    }

    /// The circles: strongly connected sets of more than one node, each with its arrows.
    fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<(Module, Module)>> {
        let nodes: BTreeSet<&Module> = edges
            .keys()
            .chain(edges.values().flat_map(|v| v.iter()))
            .collect();
        // Reachability by DFS (the graphs are small): a and b share a circle when each reaches
        // the other.
        let reach = |from: &Module| -> BTreeSet<Module> {
            let mut seen = BTreeSet::new();
            let mut stack = vec![from.clone()];
            while let Some(n) = stack.pop() {
                for t in edges.get(&n).into_iter().flatten() {
                    if seen.insert(t.clone()) {
                        stack.push(t.clone());
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&Module, BTreeSet<Module>> =
            nodes.iter().map(|n| (*n, reach(n))).collect();
        let mut done = BTreeSet::new();
        let mut out = Vec::new();
        for n in &nodes {
            if done.contains(*n) || !reaches[n].contains(*n) {
                continue;
            }
            let comp: BTreeSet<Module> = reaches[n]
                .iter()
                .filter(|m| reaches.get(m).is_some_and(|r| r.contains(*n)))
                .cloned()
                .collect();
            let arrows: Vec<(Module, Module)> = comp
                .iter()
                .flat_map(|a| {
                    edges
                        .get(a)
                        .into_iter()
                        .flatten()
                        .filter(|b| comp.contains(*b))
                        .map(move |b| (a.clone(), b.clone()))
                })
                .collect();
            done.extend(comp);
            if !arrows.is_empty() {
                out.push(arrows);
            }
        }
        out
    }

    /// Arrows between top-level modules (the crate root left out).
    fn top_level(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut top: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (a, bs) in &self.edges {
            let Some(ta) = a.first() else { continue };
            top.entry(vec![ta.clone()]).or_default();
            for b in bs {
                if let Some(tb) = b.first()
                    && tb != ta
                {
                    top.entry(vec![ta.clone()])
                        .or_default()
                        .insert(vec![tb.clone()]);
                }
            }
        }
        top
    }

    /// The top-level modules in layers, lowest first (each uses only layers before it); `None`
    /// when there is a circle.
    fn layers(&self) -> Option<Vec<Vec<String>>> {
        let top = self.top_level();
        let mut placed: BTreeSet<Module> = BTreeSet::new();
        let mut layers = Vec::new();
        while placed.len() < top.len() {
            let layer: Vec<Module> = top
                .iter()
                .filter(|(m, deps)| !placed.contains(*m) && deps.iter().all(|d| placed.contains(d)))
                .map(|(m, _)| m.clone())
                .collect();
            if layer.is_empty() {
                return None;
            }
            layers.push(layer.iter().map(name).collect());
            placed.extend(layer);
        }
        Some(layers)
    }

    /// Everything wrong with the structure, one line each (empty: none).
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in Self::circles(&self.edges) {
            let arrows: Vec<String> = c
                .iter()
                .map(|(a, b)| format!("{} -> {}", name(a), name(b)))
                .collect();
            out.push(format!("circle between files: {}", arrows.join(", ")));
        }
        for c in Self::circles(&self.top_level()) {
            let arrows: Vec<String> = c
                .iter()
                .map(|(a, b)| format!("{} -> {}", name(a), name(b)))
                .collect();
            out.push(format!(
                "circle between top-level modules: {}",
                arrows.join(", ")
            ));
        }
        out
    }
}

/// A crate from (path, source) pairs.
fn tree(files: &[(&str, &str)]) -> Graph {
    let owned: Vec<(String, String)> = files
        .iter()
        .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
        .collect();
    Graph::from_sources(&owned)
}

fn m(s: &str) -> Module {
    s.split('/').map(str::to_owned).collect()
}

#[test]
fn a_parent_and_a_child_naming_each_other_are_a_circle() {
    let g = tree(&[
        ("lib.rs", "pub mod a;\n"),
        (
            "a/mod.rs",
            "mod b;\npub use b::Thing;\npub struct Shared;\n",
        ),
        ("a/b.rs", "use super::Shared;\npub struct Thing(Shared);\n"),
    ]);
    let p = g.problems();
    assert_eq!(
        p,
        vec!["circle between files: a -> a/b, a/b -> a".to_owned()]
    );
}

#[test]
fn the_same_tree_without_the_arrow_back_is_clean() {
    let g = tree(&[
        ("lib.rs", "pub mod a;\npub mod shared;\n"),
        ("shared.rs", "pub struct Shared;\n"),
        ("a/mod.rs", "mod b;\npub use b::Thing;\n"),
        (
            "a/b.rs",
            "use crate::shared::Shared;\npub struct Thing(Shared);\n",
        ),
    ]);
    assert!(g.problems().is_empty(), "{:?}", g.problems());
    assert_eq!(
        g.layers(),
        Some(vec![vec!["shared".to_owned()], vec!["a".to_owned()]])
    );
}

#[test]
fn test_modules_comments_and_strings_are_not_arrows() {
    let g = tree(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a.rs",
            "use crate::b::X;\n// crate::b::nothing\npub fn f() -> X { X }\n",
        ),
        (
            "b.rs",
            "pub struct X;\nconst S: &str = \"crate::a::f\"; /* crate::a::f */\n\
             #[allow(clippy::unwrap_used)]\n#[cfg(test)]\n#[allow(dead_code)]\nmod tests {\n    use crate::a::f;\n    fn g() { f(); }\n}\n\
             #[cfg(test)]\nmod more;\n",
        ),
        ("b/more.rs", "use crate::a::f;\n"),
    ]);
    assert!(g.problems().is_empty(), "{:?}", g.problems());
    assert_eq!(g.edges[&m("a")], BTreeSet::from([m("b")]));
    assert_eq!(g.edges[&m("b")], BTreeSet::new());
    assert!(!g.modules.contains(&m("b/more")));
}

#[test]
fn paths_outside_use_and_child_modules_are_arrows() {
    let g = tree(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a/mod.rs",
            "mod c;\npub fn f() { c::g(); crate::b::h(); }\n",
        ),
        ("a/c.rs", "pub fn g() {}\n"),
        ("b.rs", "pub fn h() { let _ = super::a::f; }\n"),
    ]);
    assert_eq!(g.edges[&m("a")], BTreeSet::from([m("a/c"), m("b")]));
    assert_eq!(g.edges[&m("b")], BTreeSet::from([m("a")]));
    let p = g.problems();
    assert_eq!(
        p,
        vec![
            "circle between files: a -> b, b -> a".to_owned(),
            "circle between top-level modules: a -> b, b -> a".to_owned()
        ]
    );
    assert_eq!(g.layers(), None);
}

#[test]
fn a_circle_through_three_files_and_nested_use_trees() {
    let g = tree(&[
        ("lib.rs", "pub mod x;\n"),
        ("x/mod.rs", "mod p;\nmod q;\nmod r;\n"),
        ("x/p.rs", "use super::{q::{self, Q}, r as _};\n"),
        ("x/q.rs", "use crate::x::r::R;\npub struct Q;\n"),
        ("x/r.rs", "pub struct R;\nfn f() { let _ = super::p::P; }\n"),
    ]);
    let p = g.problems();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("x/p -> x/q") && p[0].contains("x/q -> x/r") && p[0].contains("x/r -> x/p"),
        "{p:?}"
    );
    // Between top-level modules there is only `x`: no circle there.
    assert_eq!(g.layers(), Some(vec![vec!["x".to_owned()]]));
}

#[test]
fn the_tree_has_no_import_circle_and_its_modules_form_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for dir in [
        "crates/frizzview-core/src",
        "src",
        "crates/frizzview-py/src",
        "crates/frizzview-bench/src",
    ] {
        let g = Graph::from_dir(&root.join(dir));
        assert!(g.modules.len() > 1, "{dir}: no module files found");
        match g.layers() {
            Some(layers) => {
                println!("{dir}: layers, lowest first:");
                for (i, l) in layers.iter().enumerate() {
                    println!("  {i}: {}", l.join(", "));
                }
            }
            None => println!("{dir}: the top-level modules do not form layers"),
        }
        all.extend(g.problems().into_iter().map(|p| format!("{dir}: {p}")));
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}
