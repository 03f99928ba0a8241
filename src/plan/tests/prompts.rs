//! Prompts: files and inline text, missing or empty.

use tempfile::TempDir;

use super::*;

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
