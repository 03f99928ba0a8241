use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use tempfile::TempDir;

use super::*;
use crate::exit::{HasExitCode, INVALID_INPUT};

const GIB: i64 = 1024 * 1024 * 1024;
const MIB: i64 = 1024 * 1024;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

fn load_with(inputs: &[PathBuf], flags: &Flags) -> Result<Plan, PlanError> {
    load(inputs, flags, &Defaults::default())
}

fn ok(inputs: &[PathBuf]) -> Plan {
    load_with(inputs, &Flags::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The error's text; also checks that every plan error means "invalid input".
fn err_with(inputs: &[PathBuf], flags: &Flags) -> String {
    let e = load_with(inputs, flags).expect_err("expected an error");
    assert_eq!(e.exit_code(), INVALID_INPUT);
    e.to_string()
}

fn err(inputs: &[PathBuf]) -> String {
    err_with(inputs, &Flags::default())
}

/// A task file in a fresh directory, and the error loading it gives.
fn toml_err(text: &str) -> String {
    let dir = TempDir::new().unwrap();
    let tasks = write(dir.path(), "tasks.toml", text);
    err(&[tasks])
}

fn assert_has(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

fn ids(plan: &Plan) -> Vec<&str> {
    plan.tasks.iter().map(|t| t.id.as_str()).collect()
}

// ---- happy paths ----

#[test]
fn a_prompt_file_is_one_task_with_built_in_defaults() {
    let dir = TempDir::new().unwrap();
    let p = write(dir.path(), "add-login.md", "Add a login page.\n");
    let plan = ok(std::slice::from_ref(&p));
    assert_eq!(plan.tasks.len(), 1);
    let t = &plan.tasks[0];
    assert_eq!(t.id, "add-login");
    assert_eq!(t.prompt, "Add a login page.\n");
    assert_eq!(t.source, p);
    assert_eq!(
        t.limits,
        Limits {
            nano_cpus: 2_000_000_000,
            memory_bytes: 4 * GIB,
            pids: 1024
        }
    );
    assert_eq!(t.timeout, Duration::from_secs(45 * 60));
    assert!(t.depends_on.is_empty() && t.env.is_empty());
    assert_eq!(plan.get("add-login"), Some(t));
    assert_eq!(plan.get("nope"), None);
}

#[test]
fn a_task_file_with_inline_and_relative_prompts() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "sub/prompts/b.md", "from a file");
    let tasks = write(
        dir.path(),
        "sub/tasks.toml",
        r#"
[[task]]
id = "a"
prompt_text = "inline text"

[[task]]
id = "b"
prompt = "prompts/b.md"
env = { FEATURE_FLAG = "on" }
"#,
    );
    let plan = ok(std::slice::from_ref(&tasks));
    assert_eq!(ids(&plan), ["a", "b"]);
    assert_eq!(plan.tasks[0].prompt, "inline text");
    assert_eq!(plan.tasks[1].prompt, "from a file");
    assert_eq!(plan.tasks[1].source, tasks, "source is the task file");
    assert_eq!(plan.tasks[1].env["FEATURE_FLAG"], "on");
}

#[test]
fn precedence_built_in_then_defaults_then_flags_then_task_keys() {
    let dir = TempDir::new().unwrap();
    let tasks = write(
        dir.path(),
        "tasks.toml",
        r#"
[defaults]
cpus = 3
memory = "1g"
timeout = "1h"

[[task]]
id = "plain"
prompt_text = "x"

[[task]]
id = "own"
prompt_text = "x"
cpus = "0.5"
memory = 6291456
pids = 7
timeout = "5m"
"#,
    );
    let direct = write(dir.path(), "direct.md", "y");
    let flags = Flags {
        memory: Some("2g".into()),
        timeout: Some("10m".into()),
        ..Flags::default()
    };
    let builtin = Defaults {
        pids: 99,
        ..Defaults::default()
    };
    let plan = load(&[tasks, direct], &flags, &builtin).unwrap();

    let plain = plan.get("plain").unwrap();
    assert_eq!(plain.limits.nano_cpus, 3_000_000_000, "[defaults] beats built-in");
    assert_eq!(plain.limits.memory_bytes, 2 * GIB, "flag beats [defaults]");
    assert_eq!(plain.limits.pids, 99, "built-in when nobody says");
    assert_eq!(plain.timeout, Duration::from_secs(600), "flag beats [defaults]");

    let own = plan.get("own").unwrap();
    assert_eq!(
        own.limits,
        Limits {
            nano_cpus: 500_000_000,
            memory_bytes: 6 * MIB,
            pids: 7
        },
        "task keys beat everything"
    );
    assert_eq!(own.timeout, Duration::from_secs(300));

    // A prompt file has no [defaults]: built-in < flags.
    let direct = plan.get("direct").unwrap();
    assert_eq!(direct.limits.nano_cpus, 2_000_000_000);
    assert_eq!(direct.limits.memory_bytes, 2 * GIB);
    assert_eq!(direct.timeout, Duration::from_secs(600));
}

#[test]
fn defaults_of_one_file_do_not_leak_into_another() {
    let dir = TempDir::new().unwrap();
    let a = write(
        dir.path(),
        "a.toml",
        "[defaults]\npids = 5\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n",
    );
    let b = write(
        dir.path(),
        "b.toml",
        "[[task]]\nid = \"b\"\nprompt_text = \"x\"\n",
    );
    let plan = ok(&[a, b]);
    assert_eq!(plan.get("a").unwrap().limits.pids, 5);
    assert_eq!(plan.get("b").unwrap().limits.pids, 1024);
}

#[test]
fn tasks_come_after_their_dependencies_across_files() {
    let dir = TempDir::new().unwrap();
    let t = write(
        dir.path(),
        "tasks.toml",
        r#"
[[task]]
id = "api"
prompt_text = "x"
depends_on = ["setup-db", "setup-db"]

[[task]]
id = "docs"
prompt_text = "x"

[[task]]
id = "ui"
prompt_text = "x"
depends_on = ["api"]
"#,
    );
    let setup = write(dir.path(), "setup-db.md", "create the schema");
    let plan = ok(&[t, setup]);
    assert_eq!(ids(&plan), ["docs", "setup-db", "api", "ui"]);
    assert_eq!(
        plan.get("api").unwrap().depends_on,
        ["setup-db"],
        "repeats dropped"
    );
}

#[test]
fn env_from_defaults_is_merged_under_the_tasks_own() {
    let dir = TempDir::new().unwrap();
    let t = write(
        dir.path(),
        "tasks.toml",
        r#"
[defaults]
env = { A = "default", B = "default" }

[[task]]
id = "t"
prompt_text = "x"
env = { B = "task", _C1 = "" }
"#,
    );
    let plan = ok(&[t]);
    let env = &plan.tasks[0].env;
    assert_eq!(env.len(), 3);
    assert_eq!(
        (env["A"].as_str(), env["B"].as_str(), env["_C1"].as_str()),
        ("default", "task", "")
    );
}

// ---- input paths ----

#[test]
fn input_path_errors() {
    assert_has(&err(&[]), &["no tasks given"]);

    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nope.toml");
    assert_has(
        &err(std::slice::from_ref(&missing)),
        &["nope.toml", "no such file"],
    );

    let txt = write(dir.path(), "task.txt", "hi");
    assert_has(
        &err(&[txt]),
        &["task.txt", "unsupported file type `.txt`", ".md", ".toml"],
    );

    let bare = write(dir.path(), "README", "hi");
    assert_has(&err(&[bare]), &["README", "no extension"]);

    assert_has(&err(&[dir.path().to_path_buf()]), &["is a directory"]);
}

#[test]
fn a_task_file_without_tasks_is_an_error() {
    let text = toml_err("[defaults]\ncpus = 1\n");
    assert_has(&text, &["tasks.toml", "no [[task]]", "[[task]]\n  id ="]);
    assert_has(&toml_err(""), &["tasks.toml", "no tasks"]);
}

// ---- TOML structure ----

#[test]
fn malformed_toml_names_line_and_column() {
    let text = toml_err("[[task]]\nid = \"a\"\nprompt_text = \"x\n");
    assert_has(&text, &["tasks.toml:3:", "TOML syntax"]);
}

#[test]
fn unknown_keys_name_the_line() {
    let text = toml_err("[[task]]\nid = \"a\"\nprompt_text = \"x\"\ncpu = 2\n");
    assert_has(&text, &["tasks.toml:4:1", "unknown field `cpu`", "spelling"]);
    let text = toml_err("[defaults]\nid = \"a\"\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n");
    assert_has(&text, &["tasks.toml:2:", "unknown field `id`"]);
    let text = toml_err("[task]\nid = \"a\"\nprompt_text = \"x\"\n");
    assert_has(&text, &["tasks.toml:1:", "[[task]]"]);
    let text = toml_err("[[task]]\nid = 7\nprompt_text = \"x\"\n");
    assert_has(&text, &["tasks.toml:2:", "invalid type"]);
}

#[test]
fn command_like_keys_get_the_governance_message() {
    for key in ["command", "cmd", "entrypoint", "args", "agent"] {
        // In a task, even after another unknown key (which serde would report first).
        let text = toml_err(&format!(
            "[[task]]\nid = \"a\"\nprompt_text = \"x\"\nbogus = 1\n{key} = [\"sh\"]\n"
        ));
        assert_has(
            &text,
            &[
                "tasks.toml:5",
                &format!("`{key}`"),
                "WorkflowManager",
                "claude --agent workflow-manager",
                "Remove the key and put what the task should do in its prompt",
            ],
        );
        assert!(!text.contains("unknown field"), "{text}");

        let text = toml_err(&format!(
            "[defaults]\n{key} = \"x\"\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n"
        ));
        assert_has(&text, &["tasks.toml:2", "WorkflowManager"]);
    }
    let text = toml_err("command = \"sh\"\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n");
    assert_has(&text, &["tasks.toml:1", "cannot set `command`"]);
}

// ---- ids ----

#[test]
fn invalid_ids_say_the_rule() {
    let long = "a".repeat(64);
    for bad in ["Foo", "a/b", "..", "", "-a", "_a", "a.b", "a b", long.as_str()] {
        let text = toml_err(&format!("\n[[task]]\nid = \"{bad}\"\nprompt_text = \"x\"\n"));
        assert_has(
            &text,
            &["tasks.toml:3", "not a valid task id", "[a-z0-9][a-z0-9_-]{0,62}"],
        );
    }
}

#[test]
fn a_missing_id_names_the_task_header() {
    let text =
        toml_err("[[task]]\nid = \"a\"\nprompt_text = \"x\"\n\n[[task]]\nprompt = \"p/Add Login.md\"\n");
    assert_has(&text, &["tasks.toml:5", "no `id`", "id = \"add-login\""]);
}

#[test]
fn a_prompt_file_stem_must_be_a_valid_id() {
    let dir = TempDir::new().unwrap();
    let p = write(dir.path(), "Add Login.md", "do it");
    let text = err(&[p]);
    assert_has(
        &text,
        &[
            "Add Login.md",
            "not a valid task id",
            "rename the file",
            "add-login.md",
            "task file",
            "id =",
        ],
    );
}

#[test]
fn duplicate_ids_name_both_places() {
    let dir = TempDir::new().unwrap();
    let a = write(dir.path(), "a.md", "x");
    let t = write(
        dir.path(),
        "tasks.toml",
        "[[task]]\nid = \"b\"\nprompt_text = \"x\"\n\n[[task]]\nid = \"a\"\nprompt_text = \"y\"\n",
    );
    let text = err(&[a, t]);
    assert_has(
        &text,
        &["duplicate task id `a`", "a.md and again at", "tasks.toml:6"],
    );

    let text =
        toml_err("[[task]]\nid = \"x\"\nprompt_text = \"1\"\n[[task]]\nid = \"x\"\nprompt_text = \"2\"\n");
    assert_has(&text, &["tasks.toml:2", "tasks.toml:5"]);
}

// ---- prompts ----

#[test]
fn missing_prompt_file_names_the_resolved_path() {
    let dir = TempDir::new().unwrap();
    let t = write(
        dir.path(),
        "sub/tasks.toml",
        "[[task]]\nid = \"a\"\nprompt = \"prompts/a.md\"\n",
    );
    let text = err(&[t]);
    let resolved = dir.path().join("sub/prompts/a.md");
    assert_has(
        &text,
        &[
            "tasks.toml:3",
            &resolved.display().to_string(),
            "does not exist",
            "relative to the task file",
        ],
    );
}

#[test]
fn empty_prompts_are_errors() {
    let dir = TempDir::new().unwrap();
    let md = write(dir.path(), "blank.md", "  \n\t\n");
    assert_has(&err(&[md]), &["blank.md", "empty"]);

    write(dir.path(), "p/empty.md", "\n");
    let t = write(
        dir.path(),
        "tasks.toml",
        "[[task]]\nid = \"a\"\nprompt = \"p/empty.md\"\n",
    );
    assert_has(&err(&[t]), &["tasks.toml:3", "empty.md", "empty"]);

    let text = toml_err("[[task]]\nid = \"a\"\nprompt_text = \"   \"\n");
    assert_has(&text, &["tasks.toml:3", "prompt of task `a` is empty"]);

    let text = toml_err("[[task]]\nid = \"a\"\nprompt = \"\"\n");
    assert_has(&text, &["tasks.toml:3", "empty `prompt` path"]);
}

#[test]
fn exactly_one_of_prompt_and_prompt_text() {
    let text = toml_err("[[task]]\nid = \"a\"\nprompt = \"a.md\"\nprompt_text = \"x\"\n");
    assert_has(&text, &["tasks.toml:4", "both `prompt` and `prompt_text`"]);
    let text = toml_err("\n[[task]]\nid = \"a\"\n");
    assert_has(
        &text,
        &["tasks.toml:2", "task `a` has no prompt", "prompt_text ="],
    );
}

// ---- dependencies ----

#[test]
fn unknown_dependencies_name_task_id_and_known_ids() {
    let text = toml_err(
        "[[task]]\nid = \"a\"\nprompt_text = \"x\"\n[[task]]\nid = \"b\"\nprompt_text = \"x\"\ndepends_on = [\"a\",\n  \"setup\"]\n",
    );
    assert_has(
        &text,
        &["tasks.toml:8", "task `b` depends on `setup`", "known ids: a, b"],
    );
}

#[test]
fn cycles_and_self_dependencies_are_named() {
    let text = toml_err("[[task]]\nid = \"a\"\nprompt_text = \"x\"\ndepends_on = [\"a\"]\n");
    assert_has(&text, &["tasks.toml:4", "a -> a"]);

    let text = toml_err(
        r#"[[task]]
id = "a"
prompt_text = "x"
depends_on = ["b"]
[[task]]
id = "b"
prompt_text = "x"
depends_on = ["c"]
[[task]]
id = "c"
prompt_text = "x"
depends_on = ["a"]
"#,
    );
    assert_has(&text, &["tasks.toml:12", "dependency cycle: a -> b -> c -> a"]);
}

// ---- values ----

#[test]
fn bad_resource_values_name_line_and_key() {
    let cases: &[(&str, &str)] = &[
        ("cpus = 0", "greater than zero"),
        ("cpus = -1.5", "greater than zero"),
        ("cpus = nan", "finite"),
        ("cpus = \"lots\"", "not a number"),
        ("memory = \"5m\"", "minimum"),
        ("memory = 100", "6 MiB"),
        ("memory = 0", "greater than zero"),
        ("memory = \"-1g\"", "positive"),
        ("memory = \"4 gigs\"", "not a memory size"),
        ("pids = 0", "greater than zero"),
        ("pids = -1", "greater than zero"),
        ("pids = \"many\"", "whole number"),
        ("timeout = \"0s\"", "greater than zero"),
        ("timeout = \"soon\"", "not a duration"),
        ("timeout = 90", "no unit"),
    ];
    for (line, want) in cases {
        let key = line.split(' ').next().unwrap();
        let text = toml_err(&format!("[[task]]\nid = \"a\"\nprompt_text = \"x\"\n{line}\n"));
        assert_has(&text, &["tasks.toml:4", &format!("invalid `{key}`"), want]);
        let text = toml_err(&format!(
            "[defaults]\n{line}\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n"
        ));
        assert_has(&text, &["tasks.toml:2", &format!("invalid `{key}`"), want]);
    }
}

#[test]
fn bad_flags_name_the_flag() {
    let dir = TempDir::new().unwrap();
    let p = write(dir.path(), "a.md", "x");
    let cases = [
        (
            Flags {
                cpus: Some("0".into()),
                ..Flags::default()
            },
            "--cpus \"0\"",
        ),
        (
            Flags {
                memory: Some("5m".into()),
                ..Flags::default()
            },
            "--memory \"5m\": ",
        ),
        (
            Flags {
                pids: Some("x".into()),
                ..Flags::default()
            },
            "--pids-limit \"x\"",
        ),
        (
            Flags {
                timeout: Some("0m".into()),
                ..Flags::default()
            },
            "--timeout \"0m\"",
        ),
    ];
    for (flags, want) in cases {
        assert_has(&err_with(std::slice::from_ref(&p), &flags), &[want]);
    }
}

#[test]
fn env_names_and_values_are_checked() {
    let text = toml_err("[[task]]\nid = \"a\"\nprompt_text = \"x\"\nenv = { \"1BAD\" = \"x\" }\n");
    assert_has(
        &text,
        &["tasks.toml:4", "`env` name `1BAD`", "[A-Za-z_][A-Za-z0-9_]*"],
    );
    for reserved in [
        "SANDPEN_TASK",
        "ORCHESTRATOR_TASK_ID",
        "ORCHESTRATOR_WORKTREE",
        "IS_SANDBOX",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
    ] {
        let text = toml_err(&format!(
            "[defaults]\nenv = {{ {reserved} = \"x\" }}\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n"
        ));
        assert_has(&text, &["tasks.toml:2", reserved, "set by sandpen itself"]);
    }
    let text = toml_err("[[task]]\nid = \"a\"\nprompt_text = \"x\"\n[task.env]\nDEBUG = 1\n");
    assert_has(&text, &["tasks.toml:5", "DEBUG = \"1\""]);
}

#[test]
fn all_problems_are_reported_together() {
    let dir = TempDir::new().unwrap();
    let t = write(
        dir.path(),
        "tasks.toml",
        "[[task]]\nid = \"Bad\"\nprompt_text = \"x\"\n[[task]]\nid = \"b\"\nprompt_text = \"x\"\nmemory = \"1m\"\n",
    );
    let missing = dir.path().join("gone.md");
    let flags = Flags {
        cpus: Some("x".into()),
        ..Flags::default()
    };
    let text = err_with(&[t, missing], &flags);
    assert_has(
        &text,
        &["4 problems", "--cpus", "tasks.toml:2", "tasks.toml:7", "gone.md"],
    );
}

// ---- engine check ----

#[test]
fn check_cpus_against_the_engine() {
    let dir = TempDir::new().unwrap();
    let t = write(
        dir.path(),
        "tasks.toml",
        "[[task]]\nid = \"big\"\nprompt_text = \"x\"\ncpus = 8.5\n[[task]]\nid = \"small\"\nprompt_text = \"x\"\ncpus = 1\n",
    );
    let plan = ok(&[t]);
    assert!(plan.check_cpus(9).is_ok());
    assert!(plan.check_cpus(0).is_ok(), "unknown engine size checks nothing");
    let e = plan.check_cpus(4).unwrap_err();
    assert_eq!(e.exit_code(), INVALID_INPUT);
    assert_has(
        &e.to_string(),
        &["tasks.toml", "task `big`", "8.5 CPUs", "only 4", "`cpus`"],
    );
    assert!(!e.to_string().contains("small"));
}

// ---- ids ----

#[test]
fn id_examples() {
    for good in ["a", "0", "add-login", "a_b-c", &"a".repeat(63)] {
        assert!(is_valid_id(good), "{good}");
    }
    for bad in ["", "A", "-a", "_a", "a/b", "..", "a.b", "é", &"a".repeat(64)] {
        assert!(!is_valid_id(bad), "{bad}");
    }
}

proptest! {
    #[test]
    fn every_id_matching_the_rule_is_accepted(id in "[a-z0-9][a-z0-9_-]{0,62}") {
        prop_assert!(is_valid_id(&id));
    }

    #[test]
    fn ids_with_a_slash_or_dotdot_are_rejected(
        before in "[a-z0-9_./-]{0,30}",
        bad in prop_oneof![Just("/"), Just("..")],
        after in "[a-z0-9_./-]{0,30}",
    ) {
        let id = format!("{before}{bad}{after}");
        prop_assert!(!is_valid_id(&id));
    }
}
