//! The library's modules import one another without circles: at every level, the files (and
//! subdirectories) of one module and the top-level modules form a graph with no cycle.
//!
//! Reads src/ from `lib.rs` down through its `mod` declarations, collects every path a file
//! names (`use` trees, `crate::`/`super::`/`self::` paths in code and in macro bodies), and
//! draws an edge from a file's module to the sibling module the path enters. Test-only code
//! (`#[cfg(test)]`) is left out: a test may look anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

type ModPath = Vec<String>;

/// One use of another module: which file, and the path as written.
#[derive(Clone)]
struct Witness {
    file: PathBuf,
    path: String,
}

struct Crate {
    /// Every module that has a file or an inline body.
    modules: BTreeSet<ModPath>,
    /// (from module, to path) with where it was seen.
    refs: Vec<(ModPath, ModPath, Witness)>,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && matches!(&a.meta, syn::Meta::List(l) if l.tokens.to_string() == "test")
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        Fn(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        Type(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Collects one file's paths; `stack` is the module the visitor is in (inline modules pushed).
struct FileVisitor {
    stack: ModPath,
    /// Modules declared without a body: (module, attributes were `#[cfg(test)]`).
    children: Vec<(ModPath, bool)>,
    found: Vec<(ModPath, Vec<String>)>,
}

impl FileVisitor {
    /// A bare first segment may name a child module in scope (2018 paths): `resolve` decides.
    fn note(&mut self, segments: Vec<String>) {
        if !segments.is_empty() {
            self.found.push((self.stack.clone(), segments));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) if n.ident == "self" => self.note(prefix.clone()),
            syn::UseTree::Name(n) => self.note(with(prefix, n.ident.to_string())),
            syn::UseTree::Rename(r) => self.note(with(prefix, r.ident.to_string())),
            syn::UseTree::Glob(_) => self.note(prefix.clone()),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }

    /// `crate::a::b`, `super::x` and `self::x` inside a macro's tokens (`matches!`, `select!`).
    fn tokens(&mut self, tokens: TokenStream) {
        let list: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < list.len() {
            if let TokenTree::Group(g) = &list[i] {
                self.tokens(g.stream());
            }
            let starts =
                matches!(&list[i], TokenTree::Ident(id) if id == "crate" || id == "super" || id == "self");
            if starts {
                let mut segs = vec![list[i].to_string()];
                let mut j = i + 1;
                while is_colon(list.get(j))
                    && is_colon(list.get(j + 1))
                    && matches!(list.get(j + 2), Some(TokenTree::Ident(_)))
                {
                    segs.push(list[j + 2].to_string());
                    j += 3;
                }
                if segs.len() > 1 {
                    self.note(segs);
                }
                i = j;
            } else {
                i += 1;
            }
        }
    }
}

fn is_colon(t: Option<&TokenTree>) -> bool {
    matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == ':')
}

fn with(prefix: &[String], last: String) -> Vec<String> {
    let mut v = prefix.to_vec();
    v.push(last);
    v
}

impl<'ast> Visit<'ast> for FileVisitor {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_cfg_test(item_attrs(item)) {
            if let syn::Item::Mod(m) = item
                && m.content.is_none()
            {
                self.children.push((with(&self.stack, m.ident.to_string()), true));
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.stack.push(m.ident.to_string());
        match &m.content {
            None => self.children.push((self.stack.clone(), false)),
            Some((_, items)) => items.iter().for_each(|i| self.visit_item(i)),
        }
        self.stack.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_none() {
            self.use_tree(&mut Vec::new(), &u.tree);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            self.note(p.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// Reads the library from `lib.rs` down through `mod` declarations.
fn read_crate() -> Crate {
    let mut modules = BTreeSet::from([ModPath::new()]);
    let mut found = Vec::new();
    let mut queue = vec![(ModPath::new(), src().join("lib.rs"))];
    while let Some((module, file)) = queue.pop() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let mut v = FileVisitor {
            stack: module.clone(),
            children: Vec::new(),
            found: Vec::new(),
        };
        v.visit_file(&ast);
        for (child, test_only) in v.children {
            modules.insert(child.clone());
            if test_only {
                continue;
            }
            let dir = src().join(child[..child.len() - 1].join("/"));
            let name = child.last().unwrap();
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(name).join("mod.rs");
            let path = if flat.exists() { flat } else { nested };
            assert!(path.exists(), "module {child:?} has no file");
            queue.push((child, path));
        }
        for (inner, segs) in v.found {
            let rel = file.strip_prefix(src()).unwrap().to_path_buf();
            found.push((inner, segs, rel));
        }
    }
    let mut refs = Vec::new();
    for (from, segs, file) in found {
        if let Some(to) = resolve(&from, &segs, &modules) {
            let path = segs.join("::");
            refs.push((from, to, Witness { file, path }));
        }
    }
    Crate { modules, refs }
}

/// The absolute module path a path names, or None for an outside crate or a local name.
fn resolve(from: &ModPath, segs: &[String], modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let mut base = from.clone();
    let mut rest = segs;
    match segs[0].as_str() {
        "crate" => {
            base.clear();
            rest = &segs[1..];
        }
        "self" => rest = &segs[1..],
        "super" => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        first if modules.contains(&with(from, first.to_string())) => {}
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// One level's graph: within `parent`, child -> child, each edge with its first witness.
type Level = BTreeMap<ModPath, BTreeMap<String, BTreeMap<String, Witness>>>;

fn levels(krate: &Crate) -> Level {
    let mut graph = Level::new();
    for (from, to, witness) in &krate.refs {
        let k = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if k >= from.len() || k >= to.len() || !krate.modules.contains(&to[..=k]) {
            continue; // within one module, into a parent, or to an item of the common parent
        }
        let parent = from[..k].to_vec();
        graph
            .entry(parent)
            .or_default()
            .entry(from[k].clone())
            .or_default()
            .entry(to[k].clone())
            .or_insert_with(|| witness.clone());
    }
    graph
}

/// A cycle through `start` if there is one: the nodes in order.
fn cycle_from(start: &str, edges: &BTreeMap<String, BTreeMap<String, Witness>>) -> Option<Vec<String>> {
    // Breadth-first from start's successors back to start: the shortest cycle through it.
    let mut prev: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(node) = queue.pop_front() {
        for next in edges.get(&node).into_iter().flat_map(|m| m.keys()) {
            if next == start {
                let mut path = vec![node.clone()];
                while let Some(p) = prev.get(path.last().unwrap()) {
                    path.push(p.clone());
                }
                path.reverse();
                return Some(path);
            }
            if !prev.contains_key(next) && next != start {
                prev.insert(next.clone(), node.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}

fn cycles(graph: &Level) -> Vec<String> {
    let mut out = Vec::new();
    for (parent, edges) in graph {
        let mut seen: BTreeSet<Vec<String>> = BTreeSet::new();
        for start in edges.keys() {
            let Some(cycle) = cycle_from(start, edges) else {
                continue;
            };
            let mut key = cycle.clone();
            key.sort();
            if !seen.insert(key) {
                continue;
            }
            let within = if parent.is_empty() {
                "crate".to_string()
            } else {
                parent.join("::")
            };
            let steps: Vec<String> = (0..cycle.len())
                .map(|i| {
                    let (a, b) = (&cycle[i], &cycle[(i + 1) % cycle.len()]);
                    let w = &edges[a][b];
                    format!("  {a} -> {b}   ({}: {})", w.file.display(), w.path)
                })
                .collect();
            out.push(format!("in {within}:\n{}", steps.join("\n")));
        }
    }
    out
}

#[test]
fn src_has_no_import_circles() {
    let krate = read_crate();
    // The reader itself must see the crate: a broken walk would pass vacuously.
    assert!(
        krate.modules.len() > 100,
        "only {} modules found",
        krate.modules.len()
    );
    assert!(
        krate.refs.len() > 500,
        "only {} references found",
        krate.refs.len()
    );
    let found = cycles(&levels(&krate));
    assert!(
        found.is_empty(),
        "{} import circle(s) in src/ (break each with a leaf module or by moving the item \
         to the module that owns it):\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn the_check_finds_a_planted_circle() {
    let mut krate = read_crate();
    let w = Witness {
        file: PathBuf::from("planted.rs"),
        path: "planted".into(),
    };
    let exit = vec!["exit".to_string()];
    let owner = vec!["owner".to_string()];
    krate.refs.push((exit.clone(), owner.clone(), w.clone()));
    krate.refs.push((owner, exit, w));
    let found = cycles(&levels(&krate));
    assert!(
        found
            .iter()
            .any(|c| c.contains("exit -> owner") && c.contains("owner -> exit"))
    );
}
