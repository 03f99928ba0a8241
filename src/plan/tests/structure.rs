//! Input paths and the TOML's structure: wrong files, syntax, unknown and forbidden keys.

use tempfile::TempDir;

use super::*;

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
fn every_unknown_key_is_named_at_once_with_the_closest_known_one() {
    let text = toml_err(
        "[defaults]\nmemroy = \"1g\"\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\ncpu = 2\n\
         timeout_s = 5\nzzzz = 1\n[[task]]\nid = \"b\"\nprompt_text = \"x\"\ndepend_on = []\n",
    );
    assert_has(
        &text,
        &[
            "tasks.toml:2:1: unknown field `memroy` in [defaults], did you mean `memory`?",
            "tasks.toml:6:1: unknown field `cpu` in [[task]], did you mean `cpus`?",
            "tasks.toml:7:1: unknown field `timeout_s` in [[task]], did you mean `timeout`?",
            "tasks.toml:8:1: unknown field `zzzz` in [[task]]\n",
            "tasks.toml:12:1: unknown field `depend_on` in [[task]], did you mean `depends_on`?",
            "[defaults] takes cpus, memory, memory_request",
        ],
    );
    let top = toml_err("tasks = []\n[[task]]\nid = \"a\"\nprompt_text = \"x\"\n");
    assert_has(
        &top,
        &["tasks.toml:1:1: unknown field `tasks` in the top level, did you mean `task`?"],
    );
}

/// The lists of known keys are the strict parse's fields, exactly: serde names them all when it
/// meets an unknown one.
#[test]
fn the_known_keys_are_the_parsers_fields() {
    let expected = |text: &str| -> Vec<String> {
        let e = toml::from_str::<crate::plan::task_file::RawFile>(text)
            .err()
            .unwrap();
        let msg = e.message().to_string();
        let list = msg.split("expected").nth(1).unwrap_or_else(|| panic!("{msg}"));
        let mut keys: Vec<String> = list.split('`').skip(1).step_by(2).map(String::from).collect();
        keys.sort();
        keys
    };
    let sorted = |k: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let known = &crate::plan::keys::KNOWN;
    assert_eq!(expected("zz = 1\n"), sorted(known.root));
    assert_eq!(expected("[defaults]\nzz = 1\n"), sorted(known.defaults));
    assert_eq!(expected("[[task]]\nzz = 1\n"), sorted(&known.task()));
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
