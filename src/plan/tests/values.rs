//! Dependencies, resource values, flags, env, and reporting every problem at once.

use tempfile::TempDir;

use super::*;

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
        ("disk = \"0\"", "greater than zero"),
        ("disk = \"lots\"", "not a size"),
        ("disk = -5", "expected a size"),
        ("log_limit = \"0\"", "greater than zero"),
        ("log_limit = \"lots\"", "not a size"),
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
fn the_disk_limit_comes_from_task_defaults_flag_or_built_in() {
    let dir = TempDir::new().unwrap();
    let tasks = write(
        dir.path(),
        "tasks.toml",
        "[defaults]\ndisk = \"2g\"\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n\
         [[task]]\nid = \"b\"\nprompt_text = \"x\"\ndisk = \"500m\"\n",
    );
    let plan = ok(std::slice::from_ref(&tasks));
    assert_eq!(plan.get("a").unwrap().disk_bytes, Some(2 * GIB as u64));
    assert_eq!(plan.get("b").unwrap().disk_bytes, Some(500 * MIB as u64));
    let flags = Flags {
        disk: Some("3g".into()),
        ..Flags::default()
    };
    let plan = load_with(&[tasks], &flags).unwrap();
    assert_eq!(
        plan.get("a").unwrap().disk_bytes,
        Some(3 * GIB as u64),
        "the flag wins over [defaults]"
    );
    assert_eq!(
        plan.get("b").unwrap().disk_bytes,
        Some(500 * MIB as u64),
        "the task's own key wins"
    );
    let p = write(dir.path(), "c.md", "x");
    assert_eq!(
        ok(&[p]).tasks[0].disk_bytes,
        Some(10 * GIB as u64),
        "built-in 10 GiB"
    );
}

#[test]
fn the_log_limit_comes_from_task_defaults_flag_or_built_in() {
    let dir = TempDir::new().unwrap();
    let tasks = write(
        dir.path(),
        "tasks.toml",
        "[defaults]\nlog_limit = \"64m\"\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n\
         [[task]]\nid = \"b\"\nprompt_text = \"x\"\nlog_limit = 4096\n",
    );
    let plan = ok(std::slice::from_ref(&tasks));
    assert_eq!(plan.get("a").unwrap().log_limit_bytes, 64 * MIB as u64);
    assert_eq!(plan.get("b").unwrap().log_limit_bytes, 4096);
    let flags = Flags {
        log_limit: Some("16m".into()),
        ..Flags::default()
    };
    let plan = load_with(&[tasks], &flags).unwrap();
    assert_eq!(
        plan.get("a").unwrap().log_limit_bytes,
        16 * MIB as u64,
        "the flag wins"
    );
    assert_eq!(
        plan.get("b").unwrap().log_limit_bytes,
        4096,
        "the task's own key wins"
    );
    let p = write(dir.path(), "c.md", "x");
    assert_eq!(ok(&[p]).tasks[0].log_limit_bytes, GIB as u64, "built-in 1 GiB");
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
        (
            Flags {
                log_limit: Some("big".into()),
                ..Flags::default()
            },
            "--log-limit \"big\"",
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

#[test]
fn check_memory_against_the_engine() {
    let dir = TempDir::new().unwrap();
    let mut toml = "[[task]]\nid = \"big\"\nprompt_text = \"x\"\nmemory = \"32g\"\n[[task]]\nid = \"small\"\nprompt_text = \"x\"\nmemory = \"1g\"\n".to_string();
    for i in 0..7 {
        toml.push_str(&format!(
            "[[task]]\nid = \"many{i}\"\nprompt_text = \"x\"\nmemory = \"16g\"\n"
        ));
    }
    let t = write(dir.path(), "tasks.toml", &toml);
    let plan = ok(&[t]);
    assert!(
        plan.check_memory(32 << 30).is_ok(),
        "a limit of all the engine has fits"
    );
    assert!(plan.check_memory(0).is_ok(), "unknown engine size checks nothing");
    let e = plan.check_memory(8 << 30).unwrap_err();
    assert_eq!(e.exit_code(), INVALID_INPUT);
    let text = e.to_string();
    assert_has(
        &text,
        &[
            "2 problems",
            "tasks.toml: task `big` has a memory limit of 32.00 GiB but the Docker engine has only 8.00 GiB",
            "lower `memory`",
            "--memory",
            "the default is 4.00 GiB",
            // One message for the tasks of one file and one limit, naming a few.
            "7 tasks (`many0`, `many1`, `many2`, `many3`, `many4` and 2 more) have a memory limit of 16.00 GiB",
        ],
    );
    assert!(!text.contains("small"), "{text}");
}

#[test]
fn the_default_memory_limit_fits_a_small_engine_and_a_given_one_does_not_move() {
    let dir = TempDir::new().unwrap();
    let toml = "[[task]]\nid = \"default\"\nprompt_text = \"x\"\n[[task]]\nid = \"given\"\nprompt_text = \"x\"\nmemory = \"3g\"\n";
    let t = write(dir.path(), "tasks.toml", toml);
    let mut plan = ok(&[t]);
    assert_eq!(plan.fit_default_memory(8 << 30), 0, "4 GiB fits in 8");
    assert_eq!(
        plan.fit_default_memory(0),
        0,
        "an unknown engine size changes nothing"
    );
    assert_eq!(plan.fit_default_memory(2 << 30), 1);
    assert_eq!(plan.get("default").unwrap().limits.memory_bytes, 2 << 30);
    assert_eq!(plan.get("given").unwrap().limits.memory_bytes, 3 << 30);
    assert!(
        plan.check_memory(2 << 30)
            .unwrap_err()
            .to_string()
            .contains("`given`")
    );
}

#[test]
fn the_salvage_bounds_come_from_task_defaults_flag_or_built_in() {
    let dir = TempDir::new().unwrap();
    let tasks = write(
        dir.path(),
        "tasks.toml",
        "[defaults]\nsalvage_max_file = \"1m\"\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n\
         [[task]]\nid = \"b\"\nprompt_text = \"x\"\nsalvage_max_total = \"2m\"\n",
    );
    let plan = ok(std::slice::from_ref(&tasks));
    let (a, b) = (plan.get("a").unwrap().salvage, plan.get("b").unwrap().salvage);
    assert_eq!((a.file_bytes, a.total_bytes), (MIB as u64, 100 * MIB as u64));
    assert_eq!((b.file_bytes, b.total_bytes), (MIB as u64, 2 * MIB as u64));
    let flags = Flags {
        salvage_max_total: Some("5m".into()),
        ..Flags::default()
    };
    let plan = load_with(&[tasks], &flags).unwrap();
    assert_eq!(
        plan.get("a").unwrap().salvage.total_bytes,
        5 * MIB as u64,
        "the flag wins"
    );
    assert_eq!(
        plan.get("b").unwrap().salvage.total_bytes,
        2 * MIB as u64,
        "the task's own key wins"
    );
    let p = write(dir.path(), "c.md", "x");
    assert_eq!(
        ok(&[p]).tasks[0].salvage.file_bytes,
        10 * MIB as u64,
        "built-in 10 MiB"
    );
}
