//! The host files a task feeds are bounded: its logs are capped (`--log-limit`: head, marker,
//! tail, the dropped bytes counted in the report), and `sandpen logs` and `sandpen ps` read a
//! log of any size in bounded memory. Real engine, probe image (the task's prompt is a shell
//! script).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

const MIB: u64 = 1 << 20;
/// What the task prints to stdout before its last line, and to stderr.
const STDOUT_BYTES: u64 = 300_000_000;
const STDERR_BYTES: u64 = 40_000_000;
const LAST_OUT: &str = "the-last-line-the-task-printed";
const LAST_ERR: &str = "the-last-line-on-stderr";
/// What `sandpen logs` and `ps` may hold at their peak, whatever the log holds.
const RSS_BOUND_KIB: u64 = 50 * 1024;

/// A log capped at 16 MiB split around its marker line: head, marker, tail, and the count
/// the marker states. The head is the first half of the cap, exactly.
fn split_at_marker(log: &[u8]) -> (&[u8], String, &[u8], u64) {
    let head = (8 * MIB) as usize;
    let start = b"[sandpen: ";
    let at = log
        .windows(start.len())
        .position(|w| w == start)
        .expect("a capped log has a marker");
    // On a line of its own: a newline of its own before it when the head ended mid-line.
    let own_newline = !log[..head].ends_with(b"\n");
    assert_eq!(at, head + usize::from(own_newline), "the marker follows the head");
    let end = at
        + log[at..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("the marker ends its line");
    let marker = String::from_utf8(log[at..end].to_vec()).unwrap();
    let dropped: u64 = marker["[sandpen: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {marker:?}"));
    (&log[..head], marker, &log[end + 1..], dropped)
}

#[test]
fn a_task_printing_hundreds_of_megabytes_keeps_a_capped_log_and_succeeds() {
    let repo = make_repo();
    let script = format!(
        "yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmn | head -c {STDOUT_BYTES}\n\
         echo {LAST_OUT}\n\
         yes e | head -c {STDERR_BYTES} >&2\n\
         echo {LAST_ERR} >&2\n"
    );
    let toml = format!("[[task]]\nid = \"loud\"\ntimeout = \"5m\"\nprompt_text = '''{script}'''\n");
    let run = run_tasks(repo.path(), &toml, &["--log-limit", "16m"]);
    let report = run.report();
    let t = task(&report, "loud");
    eprintln!(
        "a task of {STDOUT_BYTES} bytes on stdout: {:?} in all",
        run.elapsed
    );
    assert_eq!(t["status"], "succeeded", "{}", run.dump());

    let log = std::fs::read(field(t, "log")).unwrap();
    let (head, marker, tail, dropped) = split_at_marker(&log);
    assert_eq!(
        marker,
        format!(
            "[sandpen: {dropped} bytes of output dropped here: the log is capped at 16 MiB (--log-limit)]"
        )
    );
    assert_eq!(tail.len() as u64, 8 * MIB, "the last half of the cap");
    // The head: the probe's init line, then the task's first bytes.
    let init_end = head.iter().position(|&b| b == b'\n').unwrap();
    let init: serde_json::Value = serde_json::from_slice(&head[..init_end]).unwrap();
    assert_eq!(init["subtype"], "init");
    assert!(head[init_end + 1..].starts_with(b"0123456789abcdefghijklmnopqrstuvwxyz"));
    // The tail: the task's last line, then the probe's result line.
    let last = format!("{LAST_OUT}\n");
    let last_at = tail
        .windows(last.len())
        .rposition(|w| w == last.as_bytes())
        .expect("the tail holds the task's last line");
    let after_last = &tail[last_at + last.len()..];
    let result: serde_json::Value = serde_json::from_slice(after_last.trim_ascii()).unwrap();
    assert_eq!(result["type"], "result");
    // Everything printed is either kept or counted, and the report says the same.
    let printed = (init_end as u64 + 1) + STDOUT_BYTES + last.len() as u64 + after_last.len() as u64;
    let kept = (head.len() + tail.len()) as u64;
    assert_eq!(dropped, printed - kept);
    assert_eq!(t["log_dropped_bytes"].as_u64(), Some(dropped), "{t:#}");

    let err = std::fs::read(field(t, "stderr_log")).unwrap();
    let (head, _, tail, dropped) = split_at_marker(&err);
    assert!(head.starts_with(b"e\ne\n") && tail.ends_with(format!("{LAST_ERR}\n").as_bytes()));
    let printed = STDERR_BYTES + LAST_ERR.len() as u64 + 1;
    assert_eq!(dropped, printed - (head.len() + tail.len()) as u64);
    assert_eq!(t["stderr_dropped_bytes"].as_u64(), Some(dropped), "{t:#}");
    // The spill files that held the tails are gone.
    let dir = Path::new(field(t, "log")).parent().unwrap();
    let spill: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tail."))
        .collect();
    assert!(spill.is_empty(), "{spill:?}");
}

/// `sandpen ARGS --repo REPO` under `/usr/bin/time -v`, stdout thrown away: its exit code,
/// stderr, and peak resident set size (KiB).
fn peak_rss(repo: &Path, args: &[&str]) -> (Option<i32>, String, u64) {
    let probe = sandpen();
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v")
        .arg(probe.get_program())
        .args(args)
        .arg("--repo")
        .arg(repo);
    for (k, v) in probe.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.stdout(Stdio::null()).output().expect("running /usr/bin/time");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let kib = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {err}"));
    (out.status.code(), err, kib)
}

/// Replaces `path` by a sparse file of 2 GiB of zeros: no newline anywhere.
fn two_gib_without_a_newline(path: &PathBuf) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(2 << 30).unwrap();
}

#[test]
fn logs_and_ps_read_a_two_gib_log_without_a_newline_in_bounded_memory() {
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        "[[task]]\nid = \"t\"\nprompt_text = \"echo hi\"\n",
        &[],
    );
    let report = run.report();
    let t = task(&report, "t");
    assert_eq!(t["status"], "succeeded", "{}", run.dump());
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let (log, err_log) = (
        PathBuf::from(field(t, "log")),
        PathBuf::from(field(t, "stderr_log")),
    );
    two_gib_without_a_newline(&log);
    two_gib_without_a_newline(&err_log);

    for args in [
        &["logs", "t"][..],
        &["logs", "t", "--raw"],
        &["logs", "t", "--stderr"],
        &["logs", "-f", "t"],
    ] {
        let (code, err, kib) = peak_rss(repo.path(), args);
        eprintln!("sandpen {}: peak RSS {kib} KiB", args.join(" "));
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(kib < RSS_BOUND_KIB, "sandpen {args:?} peaked at {kib} KiB");
    }
    // The transcript shows the start of the line and says the rest was not read.
    let shown = output(sandpen().args(["logs", "t", "--repo"]).arg(repo.path()));
    let text = stdout(&shown);
    let cut = (2u64 << 30) - (8 << 20);
    assert!(
        text.contains(&format!("(the line goes on for {cut} more bytes, not shown)")),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );

    // `ps RUN` reads a task's log while the run has no report entry for it (its sandpen died
    // early): with the report gone, it reads the end of the 2 GiB log, where the result is.
    let result = "\n{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":7}\n";
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, result.as_bytes()).unwrap();
    std::fs::remove_file(runs_dir(repo.path()).join(&run_id).join("report.json")).unwrap();
    let (code, err, kib) = peak_rss(repo.path(), &["ps", &run_id, "--json"]);
    eprintln!("sandpen ps {run_id}: peak RSS {kib} KiB");
    assert_eq!(code, Some(0), "{err}");
    assert!(kib < RSS_BOUND_KIB, "sandpen ps peaked at {kib} KiB");
    let view = output(
        sandpen()
            .args(["ps", &run_id, "--json", "--repo"])
            .arg(repo.path()),
    );
    let view: serde_json::Value = serde_json::from_slice(&view.stdout).unwrap();
    assert_eq!(view["tasks"][0]["turns"], 7, "{view:#}");
}
