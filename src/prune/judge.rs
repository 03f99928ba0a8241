//! Whether a task's checkout holds nothing the user's repository lacks. Pure: the task's report
//! entry, the run's base and the refs of the user's repository decide. Nothing here reads the
//! checkout (a task-controlled tree): what came back is what the collection recorded.

use std::collections::{HashMap, HashSet};

use crate::runner::TaskResult;

/// The refs of the user's repository: full ref name to the object it names, and the commits
/// known to be on some branch (a result merged, then its branch deleted).
#[derive(Debug, Default, Clone)]
pub struct Refs(HashMap<String, String>, HashSet<String>);

impl Refs {
    /// From `git for-each-ref --format='%(objectname) %(refname)'` lines.
    pub fn parse(listing: &str) -> Self {
        let map = listing
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(oid, name)| (name.to_string(), oid.to_string()))
            .collect();
        Self(map, HashSet::new())
    }

    /// Records that `commit` is on some branch of the repository (its work is safe there
    /// whatever happened to its result branch).
    pub fn mark_on_a_branch(&mut self, commit: &str) {
        self.1.insert(commit.to_string());
    }

    /// Whether `branch` holds `commit` exactly.
    pub fn holds(&self, branch: &str, commit: &str) -> bool {
        self.branch(branch) == Some(commit)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn branch(&self, branch: &str) -> Option<&str> {
        self.get(&format!("refs/heads/{branch}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything the checkout holds is in the user's repository.
    Remove,
    /// Kept, and why (in words).
    Keep(String),
}

/// The verdict on the checkout of the task whose report entry is `entry` (None: the report has
/// none), in a run made from `base`.
pub fn judge(entry: Option<&TaskResult>, base: Option<&str>, refs: &Refs) -> Verdict {
    let Some(t) = entry else {
        return keep("not collected, left for gc: the report has no entry for it");
    };
    if t.left_for_gc {
        return keep("not collected, left for gc (`sandpen gc` brings its work back)");
    }
    let Some(head) = t.head_commit.as_deref() else {
        return keep(if t.branch.is_some() {
            "the report does not record the checkout's HEAD (a run of an older sandpen)"
        } else if t.container_id.is_none() && t.started_at.is_none() {
            "the task failed before a result: nothing came back to compare the checkout with"
        } else {
            "its work was not brought back (see the report's message)"
        });
    };
    let mut why = Vec::new();
    if !t.salvage_left_out.is_empty() {
        why.push(format!(
            "uncommitted paths were left out of the salvage ({})",
            some_of(&t.salvage_left_out)
        ));
    }
    if !t.salvage_left_out_large.is_empty() {
        let paths: Vec<String> = t.salvage_left_out_large.iter().map(|f| f.path.clone()).collect();
        why.push(format!(
            "uncommitted files were left out of the salvage for their size ({})",
            some_of(&paths)
        ));
    }
    for n in &t.nested_repos {
        why.push(match (&n.reason, n.salvaged) {
            (Some(r), false) => format!("nested repository {} was kept as it was ({r})", n.path),
            _ => format!(
                "nested repository {}: its files came back, its own history is only in the checkout",
                n.path
            ),
        });
    }
    if t.branches_not_collected > 0 {
        why.push(format!(
            "{} branches were not collected",
            t.branches_not_collected
        ));
    }
    if !t.tags.is_empty() {
        why.push(format!(
            "tags are listed, not imported: only the checkout has them ({})",
            some_of(&t.tags)
        ));
    }
    match &t.branch {
        Some(b) => why.extend(branch_problem(refs, b, Some(head))),
        // No result branch: HEAD must still be the base, which the repository has.
        None if Some(head) == base => {}
        None => why.push(format!("HEAD ({}) is on no result branch", short(head))),
    }
    for b in &t.branches {
        match &b.tip {
            Some(tip) => why.extend(branch_problem(refs, &b.branch, Some(tip))),
            None => why.push(format!(
                "the report does not record where branch {} was",
                b.branch
            )),
        }
    }
    for r in &t.unreachable_refs {
        if refs.get(r).is_none() {
            why.push(format!("{r} (commits no branch reaches) was deleted"));
        }
    }
    match why.is_empty() {
        true => Verdict::Remove,
        false => Verdict::Keep(why.join("; ")),
    }
}

/// What is wrong with `branch` in the repository, if it does not hold `tip` exactly and `tip`
/// is on no other branch either.
fn branch_problem(refs: &Refs, branch: &str, tip: Option<&str>) -> Option<String> {
    if tip.is_some_and(|t| refs.1.contains(t)) {
        return None;
    }
    match refs.branch(branch) {
        None => Some(format!("branch {branch} was deleted")),
        Some(now) if Some(now) != tip => Some(format!(
            "branch {branch} moved (to {}; the checkout's commit is {})",
            short(now),
            short(tip.unwrap_or("?"))
        )),
        Some(_) => None,
    }
}

fn keep(why: &str) -> Verdict {
    Verdict::Keep(why.to_string())
}

/// The first few names of a list, and how many more.
fn some_of(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut s = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

fn short(oid: &str) -> &str {
    oid.get(..12).unwrap_or(oid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{BranchResult, NestedRepo};
    use crate::engine::spec::Limits;

    const BASE: &str = "1111111111111111111111111111111111111111";
    const HEAD: &str = "2222222222222222222222222222222222222222";
    const OTHER: &str = "3333333333333333333333333333333333333333";

    /// A task that ran and came back on `sandpen/t/r` at HEAD.
    fn collected() -> TaskResult {
        TaskResult {
            container_id: Some("c".into()),
            started_at: Some("2026-01-01T00:00:00Z".into()),
            branch: Some("sandpen/t/r".into()),
            head_commit: Some(HEAD.into()),
            ..TaskResult::new(
                "t",
                "img",
                Limits {
                    nano_cpus: 0,
                    memory_bytes: 0,
                    pids: 0,
                },
            )
        }
    }

    fn refs(lines: &[(&str, &str)]) -> Refs {
        let text: String = lines.iter().map(|(r, o)| format!("{o} {r}\n")).collect();
        Refs::parse(&text)
    }

    fn kept(v: Verdict) -> String {
        match v {
            Verdict::Keep(why) => why,
            Verdict::Remove => panic!("removed"),
        }
    }

    #[test]
    fn a_branch_that_holds_the_checkouts_head_exactly_lets_it_go() {
        let r = refs(&[("refs/heads/sandpen/t/r", HEAD), ("refs/heads/main", BASE)]);
        assert_eq!(judge(Some(&collected()), Some(BASE), &r), Verdict::Remove);
        // HEAD never moved: no branch, nothing the repository lacks.
        let t = TaskResult {
            branch: None,
            head_commit: Some(BASE.into()),
            ..collected()
        };
        assert_eq!(judge(Some(&t), Some(BASE), &r), Verdict::Remove);
        assert!(kept(judge(Some(&t), Some(OTHER), &r)).contains("on no result branch"));
    }

    #[test]
    fn a_result_merged_elsewhere_lets_the_checkout_go_though_its_branch_is_gone() {
        let mut r = refs(&[("refs/heads/main", OTHER)]);
        assert!(kept(judge(Some(&collected()), Some(BASE), &r)).contains("was deleted"));
        r.mark_on_a_branch(HEAD);
        assert_eq!(judge(Some(&collected()), Some(BASE), &r), Verdict::Remove);
    }

    #[test]
    fn a_deleted_or_moved_branch_keeps_the_checkout_and_says_which() {
        let why = kept(judge(Some(&collected()), Some(BASE), &refs(&[])));
        assert_eq!(why, "branch sandpen/t/r was deleted");
        let moved = refs(&[("refs/heads/sandpen/t/r", OTHER)]);
        let why = kept(judge(Some(&collected()), Some(BASE), &moved));
        assert!(
            why.starts_with("branch sandpen/t/r moved (to 333333333333;"),
            "{why}"
        );
        // A tag of that name is not the branch.
        let tag = refs(&[("refs/tags/sandpen/t/r", HEAD)]);
        assert!(kept(judge(Some(&collected()), Some(BASE), &tag)).contains("deleted"));
    }

    #[test]
    fn work_only_the_checkout_holds_keeps_it_with_every_reason() {
        let r = refs(&[("refs/heads/sandpen/t/r", HEAD)]);
        let t = TaskResult {
            salvage_left_out: vec![".env".into(), "a.pem".into(), "b.key".into(), "id_rsa".into()],
            nested_repos: vec![
                NestedRepo {
                    path: "vendor/x".into(),
                    salvaged: false,
                    reason: Some("a submodule".into()),
                },
                NestedRepo {
                    path: "lib".into(),
                    salvaged: true,
                    reason: None,
                },
            ],
            branches_not_collected: 2,
            tags: vec!["v1".into()],
            ..collected()
        };
        let why = kept(judge(Some(&t), Some(BASE), &r));
        for part in [
            "uncommitted paths were left out of the salvage (.env, a.pem, b.key and 1 more)",
            "nested repository vendor/x was kept as it was (a submodule)",
            "nested repository lib: its files came back",
            "2 branches were not collected",
            "only the checkout has them (v1)",
        ] {
            assert!(why.contains(part), "{part:?} in {why}");
        }
    }

    #[test]
    fn the_other_branches_and_kept_commits_must_be_there_too() {
        let feature = "sandpen/t/r+feature";
        let lost = "refs/sandpen/t/r/unreachable-1";
        let t = TaskResult {
            branches: vec![BranchResult {
                task_branch: "feature".into(),
                branch: feature.into(),
                commits: 1,
                tip: Some(OTHER.into()),
            }],
            unreachable_refs: vec![lost.into()],
            ..collected()
        };
        let all = [
            ("refs/heads/sandpen/t/r", HEAD),
            ("refs/heads/sandpen/t/r+feature", OTHER),
            (lost, BASE),
        ];
        assert_eq!(judge(Some(&t), Some(BASE), &refs(&all)), Verdict::Remove);
        let why = kept(judge(Some(&t), Some(BASE), &refs(&all[..2])));
        assert_eq!(why, format!("{lost} (commits no branch reaches) was deleted"));
        let why = kept(judge(Some(&t), Some(BASE), &refs(&[all[0], all[2]])));
        assert_eq!(why, format!("branch {feature} was deleted"));
        // An older report without the branch's commit: nothing to compare with.
        let mut old = t.clone();
        old.branches[0].tip = None;
        assert!(kept(judge(Some(&old), Some(BASE), &refs(&all))).contains("does not record"));
    }

    #[test]
    fn a_task_with_nothing_collected_is_kept_and_named() {
        let r = refs(&[("refs/heads/sandpen/t/r", HEAD)]);
        assert!(kept(judge(None, Some(BASE), &r)).starts_with("not collected, left for gc"));
        let gc = TaskResult {
            left_for_gc: true,
            ..collected()
        };
        assert!(kept(judge(Some(&gc), Some(BASE), &r)).starts_with("not collected, left for gc"));
        let never_ran = TaskResult {
            container_id: None,
            started_at: None,
            branch: None,
            head_commit: None,
            ..collected()
        };
        assert!(kept(judge(Some(&never_ran), Some(BASE), &r)).starts_with("the task failed before a result"));
        let lost = TaskResult {
            branch: None,
            head_commit: None,
            ..collected()
        };
        assert!(kept(judge(Some(&lost), Some(BASE), &r)).contains("not brought back"));
        let older = TaskResult {
            head_commit: None,
            ..collected()
        };
        assert!(kept(judge(Some(&older), Some(BASE), &r)).contains("older sandpen"));
    }
}
