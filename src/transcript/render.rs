//! Entries as text: a label, then the content; multi-line content indented under it, so a
//! transcript reads top to bottom and greps by label.

use super::Entry;

const INDENT: &str = "    ";

/// One entry as lines of text, ending in a newline.
pub fn render(entry: &Entry) -> String {
    match entry {
        Entry::Prompt(text) => block("prompt:", text, false),
        Entry::User { text, sub } => block("user:", text, *sub),
        Entry::Session { model, version, cwd } => {
            let mut parts = Vec::new();
            if !model.is_empty() {
                parts.push(format!("model {model}"));
            }
            if !version.is_empty() {
                parts.push(format!("Claude Code {version}"));
            }
            if !cwd.is_empty() {
                parts.push(format!("in {cwd}"));
            }
            format!("session: {}\n", parts.join(", "))
        }
        Entry::Text { text, sub } => block("agent:", text, *sub),
        Entry::ToolCall { name, input, sub } => inline(&format!("tool {name}:"), input, *sub),
        Entry::ToolResult {
            tool,
            text,
            is_error,
            sub,
        } => {
            let what = if *is_error { "error" } else { "result" };
            let label = match tool {
                Some(t) => format!("  {t} {what}:"),
                None => format!("  {what}:"),
            };
            inline(&label, text, *sub)
        }
        Entry::ApiRetry {
            attempt,
            max_retries,
            delay_ms,
            error,
        } => {
            let of = if *max_retries > 0 {
                format!("{attempt}/{max_retries}")
            } else {
                attempt.to_string()
            };
            let why = if error.is_empty() { "" } else { ": " };
            format!(
                "api retry {of} after {:.1}s{why}{error}\n",
                *delay_ms as f64 / 1000.0
            )
        }
        Entry::Result {
            subtype,
            is_error,
            turns,
            cost_usd,
            duration_ms,
            text,
        } => {
            let outcome = match (subtype.as_str(), is_error) {
                ("", false) => "done".to_string(),
                ("", true) => "error".to_string(),
                ("success", true) => "success, but an error".to_string(),
                (s, _) => s.to_string(),
            };
            let plural = if *turns == 1 { "" } else { "s" };
            let mut head = format!("result: {outcome}, {turns} turn{plural}");
            if let Some(c) = cost_usd {
                head.push_str(&format!(", ${c:.4}"));
            }
            head.push_str(&format!(", {:.1}s", *duration_ms as f64 / 1000.0));
            block(&head, text.as_deref().unwrap_or_default(), false)
        }
        Entry::Output(text) => format!("| {text}\n"),
        Entry::Partial(text) => format!("(an incomplete line) {text}\n"),
        Entry::Cut(bytes) => format!("(the line goes on for {bytes} more bytes, not shown)\n"),
    }
}

/// `label` on a line of its own, the text indented below it.
fn block(label: &str, text: &str, sub: bool) -> String {
    let mut out = format!("{}{label}\n", prefix(sub));
    for line in text.lines() {
        out.push_str(&format!("{}{INDENT}{line}\n", prefix(sub)));
    }
    out
}

/// `label` and the text's first line together; further lines indented below.
fn inline(label: &str, text: &str, sub: bool) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let sep = if first.is_empty() { "" } else { " " };
    let mut out = format!("{}{label}{sep}{first}\n", prefix(sub));
    for line in lines {
        out.push_str(&format!("{}{INDENT}{line}\n", prefix(sub)));
    }
    out
}

/// Subagents' lines are marked, so the main session stays readable around them.
fn prefix(sub: bool) -> &'static str {
    if sub { "  [subagent] " } else { "" }
}
