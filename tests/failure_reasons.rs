//! Why a task did not succeed, everywhere a run is reported: the summary, JUnit, the HTML
//! page, `ps RUN` and `logs` show its reason and the last lines of its stderr; `logs` says an
//! OOM kill and a timeout as such, and `--tail` shows the last lines. Real engine, probe
//! image.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

const ERROR_LINE: &str = "error: could not find module frobnicate";

fn sandpen_in(repo: &Path, args: &[&str]) -> Output {
    output(sandpen().args(args).arg("--repo").arg(repo))
}

/// The text between the first `open` after `from` in `xml` and the next `close`.
fn element<'a>(xml: &'a str, open: &str, close: &str) -> &'a str {
    let start = xml.find(open).unwrap_or_else(|| panic!("no {open} in:\n{xml}"));
    let rest = &xml[start..];
    &rest[..rest
        .find(close)
        .unwrap_or_else(|| panic!("no {close} in:\n{rest}"))]
}

#[test]
fn a_failed_tasks_stderr_is_in_the_summary_junit_html_ps_and_logs() {
    let repo = make_repo();
    let dir = tempfile::tempdir().unwrap();
    let (junit, html) = (dir.path().join("run.xml"), dir.path().join("run.html"));
    // The prompt does not hold the line it prints: only its output can show it.
    let toml = r#"
[[task]]
id = "bad"
prompt_text = '''
printf '%s\n' '{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"Building."}]}}'
sleep 0.5
m=frob
echo compiling >&2
echo 'warning: unused' >&2
echo "error: could not find module ${m}nicate" >&2
sleep 0.5
printf '%s\n' '{"type":"assistant","message":{"id":"m2","content":[{"type":"text","text":"It failed."}]}}'
exit 1
'''

[[task]]
id = "hog"
memory = "96m"
prompt_text = "head -c 400000000 /dev/zero | tail"

[[task]]
id = "slow"
timeout = "2s"
prompt_text = "sleep 300"
"#;
    let run = run_tasks(
        repo.path(),
        toml,
        &[
            "-j",
            "3",
            "--junit",
            junit.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.dump());
    let report = run.report();
    let run_id = field(&report, "run_id").to_string();
    let bad = task(&report, "bad");
    assert_eq!(field(bad, "status"), "failed", "{bad:#}");
    assert_eq!(
        bad["stderr_tail"],
        serde_json::json!(["compiling", "warning: unused", ERROR_LINE]),
        "stored once in the report entry: {bad:#}"
    );
    assert_eq!(field(task(&report, "hog"), "status"), "oom_killed");
    assert_eq!(field(task(&report, "slow"), "status"), "timed_out");

    // The summary: the reason, the stderr line under it, and where the rest is.
    let all = format!("{}{}", stdout(&run.out), stderr(&run.out));
    assert!(all.contains("  bad: exited with code 1"), "{}", run.dump());
    assert!(all.contains(&format!("    | {ERROR_LINE}\n")), "{}", run.dump());
    assert!(
        all.contains(&format!("sandpen logs {run_id} TASK")),
        "{}",
        run.dump()
    );

    // JUnit: the failure's message and body, and the case's system-err.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let case = element(&xml, r#"<testcase name="bad""#, "</testcase>");
    let failure = element(case, "<failure", "</failure>");
    assert!(
        failure.contains(&format!("stderr: {ERROR_LINE}\"")),
        "in the message: {failure}"
    );
    assert!(
        failure.contains("exited with code 1\ncompiling"),
        "body: {failure}"
    );
    let err = element(case, "<system-err>", "</system-err>");
    assert!(err.contains(ERROR_LINE), "{case}");

    // The HTML page's task table.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains(r#"<pre class="tail">compiling"#),
        "no tail in the page"
    );
    assert!(page.contains(ERROR_LINE));

    // ps RUN.
    let ps = sandpen_in(repo.path(), &["ps", &run_id]);
    assert!(ps.status.success(), "{}", stderr(&ps));
    assert!(
        stdout(&ps).contains(&format!("    | {ERROR_LINE}")),
        "{}",
        stdout(&ps)
    );

    // logs: stderr without --stderr, after the session; --stdout leaves it out.
    let logs = sandpen_in(repo.path(), &["logs", "bad"]);
    assert!(logs.status.success(), "{}", stderr(&logs));
    let text = stdout(&logs);
    // Interleaved where it came, as `docker logs` shows a container's two streams.
    let between = format!(
        "agent:\n    Building.\nstderr:\n    compiling\n    warning: unused\n    {ERROR_LINE}\nagent:\n    It failed.\n"
    );
    assert!(text.contains(&between), "{text}");
    assert!(text.contains(ERROR_LINE), "{text}");
    assert!(
        text.contains("sandpen: task bad failed: exited with code 1"),
        "{text}"
    );
    let only = stdout(&sandpen_in(repo.path(), &["logs", "bad", "--stdout"]));
    assert!(!only.contains(ERROR_LINE) && only.contains("result:"), "{only}");

    // --tail 2 / -n 2: the last two lines.
    let tail = sandpen_in(repo.path(), &["logs", &run_id, "bad", "--stderr", "--tail", "2"]);
    assert!(tail.status.success(), "{}", stderr(&tail));
    assert_eq!(stdout(&tail), format!("warning: unused\n{ERROR_LINE}\n"));
    let tail = stdout(&sandpen_in(repo.path(), &["logs", "bad", "-n", "2"]));
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 3, "two lines and the end line: {tail}");
    assert!(
        lines[0].starts_with("result: ") && lines[2].starts_with("sandpen: task bad failed"),
        "{tail}"
    );

    // An OOM kill and a timeout are said as such, not as the CLI's result line would.
    let hog = stdout(&sandpen_in(repo.path(), &["logs", "hog"]));
    assert!(hog.contains("sandpen: task hog OOM-killed"), "{hog}");
    let slow = stdout(&sandpen_in(repo.path(), &["logs", "slow"]));
    assert!(slow.contains("sandpen: task slow timed out"), "{slow}");

    // --timestamps: refused, with the reason and the fix.
    let ts = sandpen_in(repo.path(), &["logs", "bad", "--timestamps"]);
    assert_eq!(ts.status.code(), Some(2), "{}", stderr(&ts));
    assert!(stderr(&ts).contains("without timestamps") && stderr(&ts).contains("fix:"));
}
