use super::*;

#[test]
fn colour_follows_the_choice_the_terminal_and_no_color() {
    let set = Some(std::ffi::OsStr::new("1"));
    let empty = Some(std::ffi::OsStr::new(""));
    assert!(wants_color(ColorChoice::Auto, true, None));
    assert!(
        wants_color(ColorChoice::Auto, true, empty),
        "an empty NO_COLOR is unset"
    );
    assert!(!wants_color(ColorChoice::Auto, true, set));
    assert!(!wants_color(ColorChoice::Auto, false, None), "a pipe gets none");
    assert!(
        wants_color(ColorChoice::Always, false, set),
        "an explicit flag wins"
    );
    assert!(!wants_color(ColorChoice::Never, true, None));
}

#[test]
fn statuses_take_their_colours_and_plain_text_takes_none() {
    let on = Style::fixed(80, true);
    assert_eq!(on.state("succeeded", "ok"), "\x1b[32mok\x1b[0m");
    for bad in [
        "failed",
        "error",
        "oom_killed",
        "timed_out",
        "disk_exceeded",
        "budget_exceeded",
    ] {
        assert!(on.state(bad, bad).starts_with("\x1b[31m"), "{bad}");
    }
    for warn in ["cancelled", "skipped"] {
        assert!(on.state(warn, warn).starts_with("\x1b[33m"), "{warn}");
    }
    assert_eq!(on.state("running", "running"), "running");
    assert_eq!(Style::plain().state("failed", "failed"), "failed");
    assert_eq!(
        width_of(&on.state("failed", "failed")),
        6,
        "escapes take no columns"
    );
}

#[test]
fn truncation_ends_in_an_ellipsis_and_keeps_short_text() {
    assert_eq!(truncate("alpha-task-with-a-long-id", 10), "alpha-tas…");
    assert_eq!(width_of(&truncate("alpha-task-with-a-long-id", 10)), 10);
    assert_eq!(truncate("short", 10), "short");
    assert_eq!(fit("short", 8), "short   ");
    assert_eq!(fit("a-longer-one", 8), "a-longe…");
    // Wide characters count two columns.
    assert!(width_of(&truncate("日本語のタスク", 7)) <= 7);
}

#[test]
fn wrapping_breaks_at_spaces_indents_and_cuts_only_long_words() {
    let lines = wrap("beta: exited with code 3 after a long and winding road", 20, 4);
    assert!(lines.iter().all(|l| width_of(l) <= 20), "{lines:?}");
    assert_eq!(lines[0], "beta: exited with");
    assert!(lines[1..].iter().all(|l| l.starts_with("    ")), "{lines:?}");
    assert_eq!(
        lines.join(" ").split_whitespace().collect::<Vec<_>>().join(" "),
        "beta: exited with code 3 after a long and winding road"
    );
    let path = "/tmp/a/very/long/path/that/cannot/break/at/a/space/report.json";
    let lines = wrap(&format!("report: {path}"), 24, 2);
    assert!(lines.iter().all(|l| width_of(l) <= 24), "{lines:?}");
    let back: String = lines.iter().map(|l| l.trim_start()).collect::<Vec<_>>().join("");
    assert_eq!(back, format!("report:{path}"), "nothing of the path is lost");
    assert_eq!(wrap("fits", 20, 2), vec!["fits"]);
}

fn col(natural: usize, min: usize, drop: Option<u8>) -> Column {
    Column { natural, min, drop }
}

#[test]
fn columns_that_fit_keep_their_widths() {
    let cols = [col(10, 4, None), col(9, 9, Some(1))];
    assert_eq!(fit_columns(&cols, 80, 3, 1), vec![Some(10), Some(9)]);
}

#[test]
fn narrowing_comes_first_then_dropping_in_order() {
    // id (narrowable to 12, never dropped), status, cpu (dropped first), cost (second).
    let cols = [
        col(40, 12, None),
        col(9, 9, None),
        col(13, 13, Some(0)),
        col(8, 8, Some(1)),
    ];
    let total = |w: &[Option<usize>]| w.iter().flatten().map(|w| w + 3).sum::<usize>() + 1;
    // 80 columns: the id narrows, nothing is dropped.
    let w = fit_columns(&cols, 60, 3, 1);
    assert_eq!(w, vec![Some(17), Some(9), Some(13), Some(8)]);
    assert_eq!(total(&w), 60);
    // Narrower: the id is at its floor, so cpu goes (and the id widens again into the room).
    let w = fit_columns(&cols, 45, 3, 1);
    assert_eq!(w[2], None, "{w:?}");
    assert_eq!(w[3], Some(8));
    assert!(total(&w) <= 45 && w[0] >= Some(12), "{w:?}");
    // Narrower still: cost goes too.
    let w = fit_columns(&cols, 32, 3, 1);
    assert_eq!((w[2], w[3]), (None, None), "{w:?}");
    assert!(total(&w) <= 32, "{w:?}");
}

#[test]
fn with_nothing_left_to_drop_narrowable_columns_go_to_two() {
    let cols = [col(40, 12, None), col(9, 9, None), col(13, 13, Some(0))];
    let w = fit_columns(&cols, 20, 3, 1);
    assert_eq!(w, vec![Some(4), Some(9), None]);
    // Past that, what is left is returned as it is: the caller wraps.
    let w = fit_columns(&cols, 5, 3, 1);
    assert_eq!(w, vec![Some(2), Some(9), None]);
}
