//! The last lines of a task's log, read from its end in bounded memory (`lines::last_lines`):
//! for `logs --tail`, and the few lines that say why a task failed (its report entry's
//! `stderr_tail`, which every reporter shows). A task's output reaches the user's terminal,
//! so the failure lines have their control characters escaped.

use std::collections::VecDeque;
use std::path::Path;

use super::lines;

/// How many lines of a failed task's stderr the reports show, as nextest shows a failing
/// test's output: enough for the error, not the whole log.
pub const FAILURE_LINES: usize = 5;
/// The widest a failure line is shown (characters), past which it is cut with `…`.
pub const FAILURE_WIDTH: usize = 200;
/// The first window read from a log's end; grown until it holds the lines asked for.
const WINDOW: u64 = 64 * 1024;
/// The most of a log's end read for its failure lines: at every task's end, so one pass over
/// little, whatever the log holds (a log without a newline there gives none).
const FAILURE_WINDOW: u64 = 256 * 1024;

/// The last `FAILURE_LINES` non-blank lines of the task's stderr, or of its output when its
/// stderr has none; empty when neither exists (a path may be empty: no such log).
pub fn failure_tail(stderr_log: &str, log: &str) -> Vec<String> {
    [stderr_log, log]
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| last_lines_within(Path::new(p), FAILURE_LINES, true, FAILURE_WINDOW))
        .find(|lines| !lines.is_empty())
        .unwrap_or_default()
        .into_iter()
        .map(|l| shown(&l, FAILURE_WIDTH))
        .collect()
}

/// The file's last `n` lines (raw bytes, each at most `lines::MAX_LINE`), skipping blank ones
/// if asked; an unreadable file has none. Reads back as far as it takes, in bounded memory.
pub fn last_lines(path: &Path, n: usize, skip_blank: bool) -> Vec<Vec<u8>> {
    last_lines_within(path, n, skip_blank, u64::MAX)
}

/// `last_lines`, reading no more than the last `most` bytes.
fn last_lines_within(path: &Path, n: usize, skip_blank: bool, most: u64) -> Vec<Vec<u8>> {
    let mut window = WINDOW.min(most);
    loop {
        let mut ring: VecDeque<Vec<u8>> = VecDeque::with_capacity(n.min(1024));
        let whole = lines::last_lines(path, window, |line, _cut| {
            if n > 0 && !(skip_blank && line.trim_ascii().is_empty()) {
                if ring.len() == n {
                    ring.pop_front();
                }
                ring.push_back(line.to_vec());
            }
            false
        });
        match whole {
            Ok(true) => return ring.into(),
            Ok(false) if ring.len() >= n || window >= most => return ring.into(),
            Ok(false) => window = window.saturating_mul(4).min(most),
            Err(_) => return Vec::new(),
        }
    }
}

/// A line as text for a terminal or a report: control characters escaped, at most `width`
/// characters (then `…`).
pub fn shown(line: &[u8], width: usize) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::new();
    for (i, c) in text.trim_end_matches('\r').chars().enumerate() {
        if i == width {
            out.push('…');
            break;
        }
        match c {
            '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_gives_its_last_lines_from_a_window_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.stderr.log");
        let body: String = (0..100_000).map(|i| format!("line {i}\n\n")).collect();
        std::fs::write(&path, body).unwrap();
        let got: Vec<String> = last_lines(&path, 3, true)
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        assert_eq!(got, ["line 99997", "line 99998", "line 99999"]);
        assert_eq!(last_lines(&path, 2, false).len(), 2);
        let many = last_lines(&path, 50_000, false);
        assert_eq!(many.len(), 50_000, "the window grows until it holds them");
        assert!(last_lines(&dir.path().join("none"), 3, true).is_empty());
        // Failure lines look no further back than their window.
        let far = dir.path().join("far.log");
        let mut text = "early\n".to_string();
        text.push_str(&"x".repeat(2 * FAILURE_WINDOW as usize));
        std::fs::write(&far, text).unwrap();
        assert!(last_lines_within(&far, 5, true, FAILURE_WINDOW).is_empty());
        assert_eq!(
            last_lines(&far, 2, true).len(),
            2,
            "logs --tail reads back further"
        );
    }

    #[test]
    fn failure_lines_fall_back_to_the_output_and_are_safe_to_print() {
        let dir = tempfile::tempdir().unwrap();
        let (err, out) = (dir.path().join("e.log"), dir.path().join("o.log"));
        std::fs::write(&err, "\n  \n").unwrap();
        std::fs::write(&out, format!("a\n\x1b[2Jb\tc\n{}\n", "x".repeat(500))).unwrap();
        let (err_s, out_s) = (err.display().to_string(), out.display().to_string());
        let tail = failure_tail(&err_s, &out_s);
        assert_eq!(tail[..2], ["a", "\\u{1b}[2Jb c"], "stderr blank: the output");
        assert_eq!(tail[2].chars().count(), FAILURE_WIDTH + 1);
        assert!(tail[2].ends_with('…'));
        std::fs::write(&err, "error: could not find module frobnicate\n").unwrap();
        assert_eq!(
            failure_tail(&err_s, &out_s),
            ["error: could not find module frobnicate"]
        );
    }
}
