//! A task's output reaches its log files byte for byte: long lines without a newline,
//! interleaved stdout and stderr, and tens of megabytes. Real engine, probe image.

mod common;

use common::*;

/// The generators, in sh (for the task) and in Rust (for the expected bytes).
const LONG_LINE: usize = 100_000;
const LINES: usize = 1_000;
const BULK: usize = 50_000_000;
const BULK_LINE: &str = "0123456789abcdefghij\n";

fn expected_stdout() -> Vec<u8> {
    let mut out = Vec::with_capacity(LONG_LINE + LINES * 9 + BULK);
    // (a) a 100 000-byte line of a repeating alphabet, no newline after it
    out.extend((0..LONG_LINE).map(|i| b'a' + (i % 26) as u8));
    // (b) out<i> lines (their err<i> twins went to stderr)
    for i in 1..=LINES {
        out.extend(format!("out{i}\n").as_bytes());
    }
    // (c) `yes 0123456789abcdefghij | head -c 50000000`
    out.extend(BULK_LINE.as_bytes().iter().cycle().take(BULK));
    out
}

fn expected_stderr() -> Vec<u8> {
    (1..=LINES)
        .flat_map(|i| format!("err{i}\n").into_bytes())
        .collect()
}

/// Where two byte strings first differ, with a little context, for a readable failure.
fn first_difference(got: &[u8], want: &[u8]) -> Option<String> {
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .or_else(|| (got.len() != want.len()).then(|| got.len().min(want.len())))?;
    let show = |b: &[u8]| {
        let end = (at + 40).min(b.len());
        String::from_utf8_lossy(&b[at.saturating_sub(20).min(end)..end]).into_owned()
    };
    Some(format!(
        "lengths {} (got) vs {} (want); first difference at byte {at}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        show(got),
        show(want)
    ))
}

#[test]
fn output_reaches_the_logs_byte_for_byte() {
    let repo = make_repo();
    let script = format!(
        r#"
yes abcdefghijklmnopqrstuvwxyz | tr -d '\n' | head -c {LONG_LINE}
i=1
while [ $i -le {LINES} ]; do
  echo "out$i"
  echo "err$i" >&2
  i=$((i + 1))
done
yes 0123456789abcdefghij | head -c {BULK}
"#
    );
    let toml = format!(
        "[[task]]\nid = \"noisy\"\ntimeout = \"2m\"\nmemory = \"256m\"\nprompt_text = '''{script}'''\n"
    );
    let run = run_tasks(repo.path(), &toml, &[]);
    let report = run.report();
    let t = task(&report, "noisy");
    eprintln!(
        "output: task {} in {}s (exit {}), process {:?}",
        t["status"], t["duration_s"], t["exit_code"], run.elapsed
    );

    // The bytes first: when they are wrong, that is the failure worth seeing.
    let log = std::fs::read(field(t, "log")).expect("reading the stdout log");
    // The probe wraps the script's output: an init line first; last, a newline of its own
    // (the script's output may not end with one) and the result line.
    let init_end = log
        .iter()
        .position(|&b| b == b'\n')
        .expect("the log has an init line");
    let init: serde_json::Value = serde_json::from_slice(&log[..init_end]).expect("the init line is JSON");
    assert_eq!(init["type"], "system");
    assert_eq!(init["subtype"], "init");
    let marker = b"\n{\"type\":\"result\"";
    let result_at = log.windows(marker.len()).rposition(|w| w == marker);
    let payload = &log[init_end + 1..result_at.unwrap_or(log.len())];
    let want = expected_stdout();
    if let Some(diff) = first_difference(payload, &want) {
        panic!(
            "stdout log differs from what the task wrote: {diff}; the log {} the probe's result \
             line",
            if result_at.is_some() { "ends with" } else { "lacks" }
        );
    }
    let result_at = result_at.expect("the log ends with the probe's result line");
    let result: serde_json::Value = serde_json::from_slice(&log[result_at + 1..])
        .expect("the result line is JSON, and the last thing in the log");
    assert_eq!(result["is_error"], false);

    let err = std::fs::read(field(t, "stderr_log")).expect("reading the stderr log");
    if let Some(diff) = first_difference(&err, &expected_stderr()) {
        panic!("stderr log differs from what the task wrote: {diff}");
    }

    assert_eq!(field(t, "status"), "succeeded", "{t:#}");
    assert_eq!(t["exit_code"], 0, "{t:#}");
    assert_eq!(run.code, 0, "{}", run.dump());
}
