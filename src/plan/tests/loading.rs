//! Valid inputs: what a plan holds, precedence of settings, order.

use std::time::Duration;

use tempfile::TempDir;

use super::*;

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
    let plan = load(&[tasks, direct], &flags, &builtin, &PromptPolicy::default()).unwrap();

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

#[test]
fn a_memory_request_is_layered_like_a_limit_and_never_above_it_unsaid() {
    let dir = TempDir::new().unwrap();
    let tasks = write(
        dir.path(),
        "t.toml",
        r#"
[defaults]
memory_request = "1g"

[[task]]
id = "from-defaults"
prompt_text = "x"

[[task]]
id = "own"
memory_request = "300m"
prompt_text = "x"
"#,
    );
    let small = write(dir.path(), "small.md", "y");
    let plan = load_with(
        &[tasks.clone(), small.clone()],
        &Flags {
            memory: Some("256m".into()),
            ..Flags::default()
        },
    );
    // [defaults] says 1g to tasks whose limit the flag made 256m: refused, each named.
    let e = plan.unwrap_err().to_string();
    assert_has(
        &e,
        &[
            "task `from-defaults` reserves 1.00 GiB",
            "may use only 256.00 MiB",
            "fix:",
        ],
    );
    assert!(e.contains("task `own` reserves 300.00 MiB"), "{e}");
    assert!(!e.contains("small"), "unsaid, the default follows the limit: {e}");

    let plan = ok(&[tasks, small]);
    let of = |id: &str| plan.get(id).unwrap().memory_request_bytes;
    assert_eq!(of("from-defaults"), GIB);
    assert_eq!(of("own"), 300 * MIB);
    assert_eq!(of("small"), 512 * MIB, "the built-in default");

    let mut plan = plan;
    plan.fit_default_memory(400 * MIB);
    assert_eq!(plan.get("small").unwrap().limits.memory_bytes, 400 * MIB);
    assert_eq!(
        plan.get("small").unwrap().memory_request_bytes,
        400 * MIB,
        "a lowered limit lowers the reservation with it"
    );
}

#[test]
fn a_runtime_is_layered_like_the_limits_and_checked_as_a_name() {
    let dir = TempDir::new().unwrap();
    let tasks = write(
        dir.path(),
        "tasks.toml",
        "[defaults]\nruntime = \"kata\"\n[[task]]\nid = \"plain\"\nprompt_text = \"x\"\n\
         [[task]]\nid = \"own\"\nprompt_text = \"x\"\nruntime = \"runc\"\n",
    );
    let other = write(
        dir.path(),
        "other.toml",
        "[[task]]\nid = \"other\"\nprompt_text = \"x\"\n",
    );
    let direct = write(dir.path(), "direct.md", "y");
    let inputs = [tasks, other, direct];
    let none = ok(&inputs);
    assert_eq!(
        none.get("plain").unwrap().runtime.as_deref(),
        Some("kata"),
        "[defaults]"
    );
    assert_eq!(
        none.get("own").unwrap().runtime.as_deref(),
        Some("runc"),
        "the task's own"
    );
    assert_eq!(none.get("other").unwrap().runtime, None, "the engine's default");
    assert_eq!(none.get("direct").unwrap().runtime, None);

    let flags = Flags {
        runtime: Some("runsc".into()),
        ..Flags::default()
    };
    let plan = load_with(&inputs, &flags).unwrap();
    assert_eq!(
        plan.get("plain").unwrap().runtime.as_deref(),
        Some("runsc"),
        "flag beats [defaults]"
    );
    assert_eq!(
        plan.get("own").unwrap().runtime.as_deref(),
        Some("runc"),
        "task beats flag"
    );
    assert_eq!(plan.get("other").unwrap().runtime.as_deref(), Some("runsc"));
    assert_eq!(plan.get("direct").unwrap().runtime.as_deref(), Some("runsc"));

    let bad = Flags {
        runtime: Some("run sc;".into()),
        ..Flags::default()
    };
    assert_has(
        &err_with(&inputs[1..2], &bad),
        &["--runtime", "run sc;", "sandpen doctor"],
    );
    let text = toml_err("[[task]]\nid = \"a\"\nprompt_text = \"x\"\nruntime = 3\n");
    assert_has(&text, &["`runtime` = 3", "\"runsc\""]);
}
