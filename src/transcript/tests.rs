//! The transcript of lines the real CLI printed (the same samples as the stream-json parser's
//! tests), of the probe's log, and of odd, cut and unknown lines.
use super::*;

const INIT: &str = r#"{"type":"system","subtype":"init","cwd":"/workspace","session_id":"5f1c-77","tools":["Task","Bash","Glob","Read","Edit","Write"],"mcp_servers":[],"model":"claude-sonnet-4-5-20250929","permissionMode":"bypassPermissions","slash_commands":["compact"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.331","output_style":"default","agents":["general-purpose","workflow-manager"],"skills":[],"plugins":[],"uuid":"0d9e"}"#;
const ASSISTANT_TEXT: &str = r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01A","type":"message","role":"assistant","content":[{"type":"text","text":"\n\nI'll look at the tests first."}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":4,"cache_creation_input_tokens":2300,"cache_read_input_tokens":11000,"output_tokens":1,"service_tier":"standard"}},"parent_tool_use_id":null,"session_id":"5f1c-77","uuid":"a1"}"#;
const ASSISTANT_TOOL: &str = r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01A","type":"message","role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"cargo test","description":"Run tests"}}],"stop_reason":null,"usage":{"input_tokens":4,"output_tokens":1}},"parent_tool_use_id":null,"session_id":"5f1c-77","uuid":"a2"}"#;
const TOOL_RESULT: &str = r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"test result: ok","is_error":false}]},"parent_tool_use_id":null,"session_id":"5f1c-77","uuid":"u1","tool_use_result":{"stdout":"test result: ok","stderr":"","interrupted":false}}"#;
const RETRY: &str = r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":1137.5,"error_status":529,"error":{"type":"overloaded_error","message":"Overloaded"},"session_id":"5f1c-77","uuid":"r1"}"#;
const RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":1234,"duration_api_ms":1000,"num_turns":3,"result":"All tests pass.","session_id":"5f1c-77","total_cost_usd":0.0024,"usage":{"input_tokens":300,"cache_creation_input_tokens":5,"cache_read_input_tokens":7,"output_tokens":60,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"},"modelUsage":{},"permission_denials":[],"terminal_reason":"completed","uuid":"z"}"#;

fn session() -> String {
    [INIT, RETRY, ASSISTANT_TEXT, ASSISTANT_TOOL, TOOL_RESULT, RESULT].join("\n") + "\n"
}

#[test]
fn a_real_session_reads_top_to_bottom() {
    let text = render_log(Some("Fix the failing test.\n"), session().as_bytes());
    let want = "\
prompt:
    Fix the failing test.
session: model claude-sonnet-4-5-20250929, Claude Code 2.1.331, in /workspace
api retry 2/10 after 1.1s: {\"message\":\"Overloaded\",\"type\":\"overloaded_error\"}
agent:
    I'll look at the tests first.
tool Bash: cargo test
  Bash result: test result: ok
result: success, 3 turns, $0.0024, 1.2s
    All tests pass.
";
    assert_eq!(text, want);
}

/// Lines of a session the real CLI (2.1.331) printed in `sandpen demo`, against sandpen's
/// scripted model: the init line, two tool calls with their results, the last text, the result.
const DEMO_SESSION: &str = include_str!("fixtures/cli-2.1.331-demo-session.jsonl");

#[test]
fn a_session_of_the_real_cli_in_the_demo() {
    let prompt = "count_words in textkit/words.py miscounts text. Fix it.";
    let text = render_log(Some(prompt), DEMO_SESSION.as_bytes());
    let mut t = Transcript::new();
    DEMO_SESSION.lines().for_each(|l| drop(t.push(l.as_bytes())));
    assert!(t.ended());
    assert_eq!(t.skipped, 0);
    for want in [
        "prompt:\n    count_words in textkit/words.py miscounts text. Fix it.\n",
        "session: model claude-opus-5-5, Claude Code 2.1.331, in /workspace\n",
        "tool Bash: set -e; d=.github/workflow-states/$SANDPEN_TASK_ID",
        "  Bash result: .\n    ..\n    .git\n",
        "    … (5 more lines)\n",
        "  Bash result: test_simple (test_words.WordsTest.test_simple) ... ok\n",
        "agent:\n    Done: fix-count. All 11 phases completed and committed.\n",
        "result: success, 12 turns, $0.0980, 6.0s\n",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    // The result repeats the last text: shown once.
    assert_eq!(text.matches("Done: fix-count.").count(), 1, "{text}");
    assert!(
        text.ends_with("result: success, 12 turns, $0.0980, 6.0s\n"),
        "{text}"
    );
}

#[test]
fn the_result_line_ends_the_session() {
    let mut t = Transcript::new();
    for line in [INIT, ASSISTANT_TEXT, TOOL_RESULT] {
        t.push(line.as_bytes());
        assert!(!t.ended());
    }
    let entries = t.push(RESULT.as_bytes());
    assert!(t.ended());
    assert!(matches!(
        &entries[..],
        [Entry::Result { turns: 3, is_error: false, cost_usd: Some(c), .. }] if (*c - 0.0024).abs() < 1e-9
    ));
}

#[test]
fn without_a_prompt_file_the_first_user_message_is_the_prompt() {
    let first = r#"{"type":"user","message":{"role":"user","content":"Add a README."}}"#;
    let later =
        r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"And a licence."}]}}"#;
    let log = format!("{first}\n{INIT}\n{later}\n");
    let text = render_log(None, log.as_bytes());
    assert!(text.starts_with("prompt:\n    Add a README.\n"), "{text}");
    assert!(text.contains("user:\n    And a licence.\n"), "{text}");
    // With the prompt file, the stream's user message is a user message.
    let text = render_log(Some("From the file"), log.as_bytes());
    assert!(
        text.starts_with("prompt:\n    From the file\nuser:\n    Add a README.\n"),
        "{text}"
    );
}

#[test]
fn the_probes_log_shows_its_output() {
    // What the probe image writes: its init line, the script's output, a blank line, a result.
    let log = concat!(
        r#"{"type":"system","subtype":"init","cwd":"/workspace","session_id":"probe-7","model":"probe","tools":["Bash"],"agents":["workflow-manager"],"claude_code_version":"0.0.0-probe","permissionMode":"bypassPermissions","apiKeySource":"none"}"#,
        "\nhello from the script\n\n",
        r#"{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":1,"duration_ms":2100,"total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0},"result":"probe script exited with code 3","session_id":"probe-7"}"#,
        "\n"
    );
    let text = render_log(None, log.as_bytes());
    assert_eq!(
        text,
        "session: model probe, Claude Code 0.0.0-probe, in /workspace\n\
         | hello from the script\n\
         result: error_during_execution, 1 turn, $0.0000, 2.1s\n    probe script exited with code 3\n"
    );
}

#[test]
fn tool_inputs_and_results_are_shortened() {
    let long_cmd = (1..=20)
        .map(|i| format!("echo {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    let call = serde_json::json!({"type":"assistant","message":{"content":[
        {"type":"tool_use","id":"t1","name":"Bash","input":{"command":long_cmd}},
        {"type":"tool_use","id":"t2","name":"Read","input":{"file_path":"/workspace/src/lib.rs","limit":20}},
        {"type":"tool_use","id":"t3","name":"Grep","input":{"pattern":"fn main","path":"src"}},
        {"type":"tool_use","id":"t4","name":"mcp__x__y","input":{"a":1}},
        {"type":"thinking","thinking":"hidden"}
    ]}});
    let output = "x".repeat(5000);
    let result = serde_json::json!({"type":"user","message":{"content":[
        {"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":output}]},
        {"type":"tool_result","tool_use_id":"t2","content":"boom","is_error":true},
        {"type":"tool_result","tool_use_id":"unknown","content":[{"type":"image"}]},
        {"type":"tool_result","tool_use_id":"t3","content":""}
    ]}});
    let log = format!("{call}\n{result}\n");
    let text = render_log(None, log.as_bytes());
    assert!(text.contains("tool Bash: echo 1\n    echo 2\n"), "{text}");
    assert!(text.contains("    … (14 more lines)\n"), "{text}");
    assert!(!text.contains("echo 7"), "{text}");
    assert!(text.contains("tool Read: /workspace/src/lib.rs\n"), "{text}");
    assert!(text.contains("tool Grep: fn main  (in src)\n"), "{text}");
    assert!(text.contains("tool mcp__x__y: {\"a\":1}\n"), "{text}");
    assert!(!text.contains("hidden"), "{text}");
    let bash = text.lines().find(|l| l.starts_with("  Bash result: ")).unwrap();
    assert_eq!(
        bash.chars().count(),
        "  Bash result: ".len() + RESULT_CHARS,
        "{bash}"
    );
    assert!(bash.ends_with('…'));
    assert!(text.contains("  Read error: boom\n"), "{text}");
    assert!(text.contains("  result: [image]\n"), "{text}");
    assert!(text.contains("  Grep result: (no output)\n"), "{text}");
}

#[test]
fn subagent_lines_are_marked() {
    let line = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"sub work"}]},"parent_tool_use_id":"toolu_9"}"#;
    assert_eq!(
        render_log(None, line.as_bytes()),
        "  [subagent] agent:\n  [subagent]     sub work\n"
    );
}

#[test]
fn unknown_partial_and_garbled_lines_never_stop_it() {
    let cut = &ASSISTANT_TEXT[..60];
    let log = format!(
        "{INIT}\n{{\"type\":\"stream_event\",\"event\":{{}}}}\n{{\"type\":\"system\",\"subtype\":\"compact_boundary\"}}\n[1,2]\n\u{0}\u{1}\n{cut}\n{RESULT}\n{cut}"
    );
    let mut t = Transcript::new();
    let mut entries = Vec::new();
    for line in log.as_bytes().split(|&b| b == b'\n') {
        entries.extend(t.push(line));
    }
    assert_eq!(t.skipped, 2, "the stream event and the compact boundary");
    let partials = entries.iter().filter(|e| matches!(e, Entry::Partial(_))).count();
    assert_eq!(partials, 2, "{entries:?}");
    assert!(
        entries
            .iter()
            .any(|e| matches!(e, Entry::Output(o) if o == "[1,2]"))
    );
    assert!(t.ended());
    // Invalid UTF-8 and odd field types.
    let odd = [
        &b"{\"type\":\"assistant\",\"message\":{\"content\":\"\xff\"}}"[..],
        br#"{"type":"assistant","message":{"content":[{"type":"tool_use"}]}}"#,
        br#"{"type":"user","message":{"content":[{"type":"tool_result","content":{"x":1}}]}}"#,
        br#"{"type":"result","num_turns":"2","total_cost_usd":"x"}"#,
        b"\xff\xfe",
    ];
    let text: String = odd.iter().flat_map(|l| t.push(l)).map(|e| render(&e)).collect();
    assert!(text.contains("tool ?:"), "{text}");
    assert!(text.contains("  result: {\"x\":1}"), "{text}");
    assert!(text.contains("result: done, 2 turns, 0.0s"), "{text}");
}

#[test]
fn long_plain_output_lines_are_cut() {
    let line = "y".repeat(10_000);
    let text = render_log(None, line.as_bytes());
    assert_eq!(text.chars().count(), "| ".len() + OUTPUT_CHARS + 1);
}

#[test]
fn shorten_helpers() {
    assert_eq!(shorten::chars("abcd", 3), "ab…");
    assert_eq!(shorten::chars("日本語", 3), "日本語");
    assert_eq!(shorten::lines("a\nb\nc", 2, 100), "a\nb\n… (1 more line)");
    assert_eq!(shorten::lines("a\nb", 2, 100), "a\nb");
    assert_eq!(
        shorten::tool_input("TodoWrite", Some(&serde_json::json!({"todos":[1,2]}))),
        "2 todo(s)"
    );
    assert_eq!(shorten::tool_input("X", Some(&serde_json::json!({}))), "");
    assert_eq!(shorten::tool_input("X", None), "");
}

proptest::proptest! {
    #[test]
    fn never_panics_on_bytes(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let mut t = Transcript::new();
        for e in t.push(&line) {
            let _ = render(&e);
        }
    }
}
