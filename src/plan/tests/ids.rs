//! Task ids: the rule, missing ids, prompt file names, duplicates.

use proptest::prelude::*;
use tempfile::TempDir;

use super::*;

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
