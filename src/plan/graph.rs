//! The dependency graph between tasks: unknown ids, cycles, and a stable topological order.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::PlanError;

/// One `depends_on` entry and where it was written (`file:line`), for error messages.
#[derive(Debug, Clone)]
pub(super) struct Dep {
    pub id: String,
    pub at: String,
}

/// A task as the graph sees it: its id and its (deduplicated) dependencies.
pub(super) struct Node<'a> {
    pub id: &'a str,
    pub deps: &'a [Dep],
}

/// How many ids an unknown-dependency message lists before "and N more".
const KNOWN_SHOWN: usize = 20;

/// Every dependency on an id that is not in the run (all of them, not just the first).
pub(super) fn unknown_dependencies(nodes: &[Node]) -> Vec<PlanError> {
    let known: HashSet<&str> = nodes.iter().map(|n| n.id).collect();
    // Made once, and short: with thousands of tasks, listing them all in every message
    // made the error itself quadratic.
    let mut shown: Vec<&str> = nodes.iter().take(KNOWN_SHOWN).map(|n| n.id).collect();
    let more = format!("and {} more", nodes.len().saturating_sub(KNOWN_SHOWN));
    if nodes.len() > KNOWN_SHOWN {
        shown.push(&more);
    }
    let shown = shown.join(", ");
    let mut errors = Vec::new();
    for node in nodes {
        for dep in node.deps {
            if !known.contains(dep.id.as_str()) {
                errors.push(PlanError::UnknownDependency {
                    at: dep.at.clone(),
                    task: node.id.to_string(),
                    dependency: dep.id.clone(),
                    known: shown.clone(),
                });
            }
        }
    }
    errors
}

/// The first cycle found (searching in input order), self-dependencies included.
/// Assumes every dependency is known.
pub(super) fn find_cycle(nodes: &[Node]) -> Option<PlanError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let mut marks = vec![Mark::New; nodes.len()];

    // Iterative DFS (a long chain of tasks must not overflow the stack).
    // Each frame: (node, next dependency to visit).
    for root in 0..nodes.len() {
        if marks[root] != Mark::New {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::OnPath;
        while let Some(frame) = path.last_mut() {
            let node = frame.0;
            let Some(dep) = nodes[node].deps.get(frame.1) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            frame.1 += 1;
            let Some(&target) = index.get(dep.id.as_str()) else {
                continue;
            };
            match marks[target] {
                Mark::Done => {}
                Mark::New => {
                    marks[target] = Mark::OnPath;
                    path.push((target, 0));
                }
                Mark::OnPath => {
                    let start = path.iter().position(|&(n, _)| n == target)?;
                    let mut ids: Vec<&str> = path[start..].iter().map(|&(n, _)| nodes[n].id).collect();
                    ids.push(nodes[target].id);
                    return Some(PlanError::Cycle {
                        at: dep.at.clone(),
                        cycle: ids.join(" -> "),
                    });
                }
            }
        }
    }
    None
}

/// Indices of `nodes` so that every task comes after its dependencies, and otherwise in
/// input order (Kahn's algorithm, always taking the earliest ready task).
/// Assumes the graph is acyclic and every dependency is known.
pub(super) fn topological_order(nodes: &[Node]) -> Vec<usize> {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let mut waiting_on: Vec<usize> = nodes.iter().map(|n| n.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for dep in node.deps {
            dependents[index[dep.id.as_str()]].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..nodes.len()).filter(|&i| waiting_on[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 {
                ready.insert(d);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(ids: &[&str]) -> Vec<Dep> {
        ids.iter()
            .map(|id| Dep {
                id: id.to_string(),
                at: format!("t.toml:{id}"),
            })
            .collect()
    }

    fn with_nodes<R>(spec: &[(&str, &[&str])], f: impl FnOnce(&[Node]) -> R) -> R {
        let all: Vec<Vec<Dep>> = spec.iter().map(|(_, d)| deps(d)).collect();
        let nodes: Vec<Node> = spec
            .iter()
            .zip(&all)
            .map(|((id, _), d)| Node { id, deps: d })
            .collect();
        f(&nodes)
    }

    fn order(spec: &[(&str, &[&str])]) -> Vec<String> {
        with_nodes(spec, |nodes| {
            topological_order(nodes)
                .into_iter()
                .map(|i| nodes[i].id.to_string())
                .collect()
        })
    }

    #[test]
    fn order_is_input_order_unless_a_dependency_forces_otherwise() {
        assert_eq!(order(&[("a", &[]), ("b", &[]), ("c", &[])]), ["a", "b", "c"]);
        assert_eq!(
            order(&[("a", &["c"]), ("b", &[]), ("c", &[]), ("d", &["a"])]),
            ["b", "c", "a", "d"]
        );
        assert_eq!(
            order(&[("z", &["y", "x"]), ("y", &["x"]), ("x", &[])]),
            ["x", "y", "z"]
        );
    }

    #[test]
    fn cycles_are_named() {
        let err = with_nodes(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])], find_cycle);
        let text = err.unwrap().to_string();
        assert!(text.contains("a -> b -> c -> a"), "{text}");
        assert!(text.starts_with("t.toml:a:"), "{text}");

        let err = with_nodes(&[("x", &[]), ("a", &["a"])], find_cycle);
        assert!(err.unwrap().to_string().contains("a -> a"));

        // A cycle reached through a task that is not part of it names only the cycle.
        let err = with_nodes(&[("s", &["a"]), ("a", &["b"]), ("b", &["a"])], find_cycle);
        assert!(err.unwrap().to_string().contains(": a -> b -> a"));

        assert!(with_nodes(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])], find_cycle).is_none());
    }

    #[test]
    fn long_chains_do_not_overflow() {
        let ids: Vec<String> = (0..100_000).map(|i| format!("t{i}")).collect();
        let all: Vec<Vec<Dep>> = (0..ids.len())
            .map(|i| if i == 0 { vec![] } else { deps(&[&ids[i - 1]]) })
            .collect();
        let nodes: Vec<Node> = ids.iter().zip(&all).map(|(id, d)| Node { id, deps: d }).collect();
        assert!(find_cycle(&nodes).is_none());
        assert_eq!(topological_order(&nodes).len(), ids.len());
    }

    #[test]
    fn unknown_dependencies_list_known_ids() {
        let errors = with_nodes(&[("a", &["nope"]), ("b", &["a", "gone"])], unknown_dependencies);
        assert_eq!(errors.len(), 2);
        let text = errors[0].to_string();
        assert!(text.contains("`a` depends on `nope`"), "{text}");
        assert!(text.contains("known ids: a, b"), "{text}");

        let ids: Vec<String> = (0..30).map(|i| format!("t{i}")).collect();
        let spec: Vec<(&str, &[&str])> = ids
            .iter()
            .map(|id| (id.as_str(), if id == "t0" { &["ghost"][..] } else { &[][..] }))
            .collect();
        let text = with_nodes(&spec, unknown_dependencies)[0].to_string();
        assert!(text.contains("known ids: t0, t1, "), "{text}");
        assert!(text.contains(", t19, and 10 more)"), "{text}");
        assert!(!text.contains("t20"), "{text}");
    }
}
