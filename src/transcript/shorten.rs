//! Shortening what a transcript shows: a tool's input as the one argument that says what it
//! does, a result as its first lines.

use serde_json::Value;

/// At most `max` characters; a cut string ends in '…'.
pub fn chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let keep: String = s.chars().take(max.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

/// At most `max_lines` lines and `max_chars` characters, saying how much was left out.
pub fn lines(s: &str, max_lines: usize, max_chars: usize) -> String {
    let all: Vec<&str> = s.trim_end().lines().collect();
    let mut kept = all.iter().take(max_lines).copied().collect::<Vec<_>>().join("\n");
    let cut_chars = kept.chars().count() > max_chars;
    if cut_chars {
        kept = chars(&kept, max_chars);
    }
    let more = all.len().saturating_sub(max_lines);
    if more > 0 {
        let plural = if more == 1 { "" } else { "s" };
        kept.push_str(&format!("\n… ({more} more line{plural})"));
    }
    kept
}

/// What a tool call does, in its own terms: the command of Bash, the file of Read, Write and
/// Edit, the pattern of Grep and Glob; other tools as their input's compact JSON.
pub fn tool_input(name: &str, input: Option<&Value>) -> String {
    let Some(input) = input else {
        return String::new();
    };
    let field = |k: &str| input.get(k).and_then(Value::as_str).map(str::to_string);
    let main = match name {
        "Bash" => field("command"),
        "Read" | "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => {
            field("file_path").or(field("notebook_path"))
        }
        "Grep" | "Glob" => field("pattern").map(|p| match field("path") {
            Some(path) => format!("{p}  (in {path})"),
            None => p,
        }),
        "Task" | "Agent" => field("description").or(field("prompt")),
        "WebFetch" => field("url"),
        "WebSearch" => field("query"),
        "TodoWrite" => {
            let n = input.get("todos").and_then(Value::as_array).map_or(0, Vec::len);
            Some(format!("{n} todo(s)"))
        }
        _ => None,
    };
    match main {
        Some(s) => s,
        None if input.as_object().is_some_and(|o| o.is_empty()) => String::new(),
        None => input.to_string(),
    }
}

/// A tool result's content: a string, or text blocks joined; other blocks by their type.
pub fn result_text(content: Option<&Value>) -> String {
    let text = match content {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                Some(other) => format!("[{other}]"),
                None => b.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
    };
    if text.trim().is_empty() {
        "(no output)".into()
    } else {
        text
    }
}
