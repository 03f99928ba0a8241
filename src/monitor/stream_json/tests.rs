//! The parser against lines the real CLI printed, and odd ones.
use super::*;
use proptest::prelude::*;

const INIT: &str = r#"{"type":"system","subtype":"init","cwd":"/workspace","session_id":"5f1c-77","tools":["Task","Bash","Glob","Read","Edit","Write"],"mcp_servers":[],"model":"claude-sonnet-4-5-20250929","permissionMode":"bypassPermissions","slash_commands":["compact"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.331","output_style":"default","agents":["general-purpose","workflow-manager"],"skills":[],"plugins":[],"uuid":"0d9e"}"#;
const ASSISTANT_TEXT: &str = r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01A","type":"message","role":"assistant","content":[{"type":"text","text":"\n\nI'll look at the tests first."}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":4,"cache_creation_input_tokens":2300,"cache_read_input_tokens":11000,"output_tokens":1,"service_tier":"standard"}},"parent_tool_use_id":null,"session_id":"5f1c-77","uuid":"a1"}"#;
const ASSISTANT_TOOL: &str = r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01A","type":"message","role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"cargo test","description":"Run tests"}}],"stop_reason":null,"usage":{"input_tokens":4,"output_tokens":1}},"parent_tool_use_id":null,"session_id":"5f1c-77","uuid":"a2"}"#;
const TOOL_RESULT: &str = r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"test result: ok","is_error":false}]},"parent_tool_use_id":null,"session_id":"5f1c-77","uuid":"u1","tool_use_result":{"stdout":"test result: ok","stderr":"","interrupted":false}}"#;
const RETRY: &str = r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":1137.5,"error_status":529,"error":{"type":"overloaded_error","message":"Overloaded"},"session_id":"5f1c-77","uuid":"r1"}"#;
const RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":1234,"duration_api_ms":1000,"num_turns":3,"result":"All tests pass.","session_id":"5f1c-77","total_cost_usd":0.0024,"usage":{"input_tokens":300,"cache_creation_input_tokens":5,"cache_read_input_tokens":7,"output_tokens":60,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"},"modelUsage":{},"permission_denials":[],"terminal_reason":"completed","uuid":"z"}"#;

fn parse(s: &str) -> Option<AgentEvent> {
    parse_line(s.as_bytes())
}

#[test]
fn parses_init() {
    assert_eq!(
        parse(INIT),
        Some(AgentEvent::Init(AgentInit {
            session_id: "5f1c-77".into(),
            model: "claude-sonnet-4-5-20250929".into(),
            agents: vec!["general-purpose".into(), "workflow-manager".into()],
            claude_code_version: "2.1.331".into(),
            cwd: "/workspace".into(),
            permission_mode: "bypassPermissions".into(),
        }))
    );
}

#[test]
fn parses_assistant_text_and_tools() {
    assert_eq!(
        parse(ASSISTANT_TEXT),
        Some(AgentEvent::Assistant {
            text: Some("I'll look at the tests first.".into()),
            tools: vec![],
            message_id: Some("msg_01A".into()),
        })
    );
    assert_eq!(
        parse(ASSISTANT_TOOL),
        Some(AgentEvent::Assistant {
            text: None,
            tools: vec!["Bash".into()],
            message_id: Some("msg_01A".into()),
        })
    );
    let both = r#"{"type":"assistant","message":{"content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"  "},{"type":"text","text":"a"},{"type":"tool_use","name":"Read","input":{}},{"type":"tool_use","name":"Grep","input":{}}]}}"#;
    assert_eq!(
        parse(both),
        Some(AgentEvent::Assistant {
            text: Some("a".into()),
            tools: vec!["Read".into(), "Grep".into()],
            message_id: None,
        })
    );
}

#[test]
fn truncates_text_char_safely() {
    let long = "é".repeat(500);
    let line = serde_json::json!({"type":"assistant","message":{"content":[{"type":"text","text":long}]}})
        .to_string();
    let Some(AgentEvent::Assistant { text: Some(t), .. }) = parse(&line) else {
        panic!("no text");
    };
    assert_eq!(t.chars().count(), 200);
    assert!(t.ends_with('…'));

    assert_eq!(truncate_chars("abc".into(), 3), "abc");
    assert_eq!(truncate_chars("abcd".into(), 3), "ab…");
    assert_eq!(truncate_chars("日本語です".into(), 4), "日本語…");
    assert_eq!(truncate_chars("".into(), 0), "");
}

#[test]
fn parses_tool_results() {
    assert_eq!(
        parse(TOOL_RESULT),
        Some(AgentEvent::ToolResult { is_error: false })
    );
    let failed = r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"a","content":"ok"},{"type":"tool_result","tool_use_id":"b","content":[{"type":"text","text":"boom"}],"is_error":true}]}}"#;
    assert_eq!(parse(failed), Some(AgentEvent::ToolResult { is_error: true }));
    // A user message that is not a tool result (e.g. a prompt) is not an event.
    assert_eq!(parse(r#"{"type":"user","message":{"content":"hello"}}"#), None);
    assert_eq!(
        parse(r#"{"type":"user","message":{"content":[{"type":"text","text":"x"}]}}"#),
        None
    );
}

#[test]
fn parses_api_retry_with_object_or_string_error() {
    assert_eq!(
        parse(RETRY),
        Some(AgentEvent::ApiRetry {
            attempt: 2,
            max_retries: 10,
            retry_delay_ms: 1138,
            error: r#"{"message":"Overloaded","type":"overloaded_error"}"#.into(),
        })
    );
    assert_eq!(
        parse(
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,"error":"rate_limit"}"#
        ),
        Some(AgentEvent::ApiRetry {
            attempt: 1,
            max_retries: 10,
            retry_delay_ms: 500,
            error: "rate_limit".into(),
        })
    );
    assert_eq!(
        parse(r#"{"type":"system","subtype":"api_retry"}"#),
        Some(AgentEvent::ApiRetry {
            attempt: 0,
            max_retries: 0,
            retry_delay_ms: 0,
            error: String::new(),
        })
    );
}

#[test]
fn parses_result() {
    assert_eq!(
        parse(RESULT),
        Some(AgentEvent::Result(AgentResult {
            subtype: "success".into(),
            is_error: false,
            num_turns: 3,
            duration_ms: 1234,
            cost_usd: Some(0.0024),
            input_tokens: 300,
            output_tokens: 60,
            cache_creation_input_tokens: 5,
            cache_read_input_tokens: 7,
            result: Some("All tests pass.".into()),
            api_error_status: None,
        }))
    );
    let long = "x".repeat(5000);
    let line = serde_json::json!({"type":"result","result":long}).to_string();
    let Some(AgentEvent::Result(r)) = parse(&line) else {
        panic!()
    };
    assert_eq!(r.result.map(|s| s.chars().count()), Some(2000));
}

#[test]
fn result_with_missing_and_odd_fields() {
    let line = r#"{"type":"result","subtype":"error_max_turns","num_turns":null,"total_cost_usd":"0.5","usage":"n/a","duration_ms":-3}"#;
    assert_eq!(
        parse(line),
        Some(AgentEvent::Result(AgentResult {
            subtype: "error_max_turns".into(),
            is_error: true,
            num_turns: 0,
            duration_ms: 0,
            cost_usd: Some(0.5),
            input_tokens: 0,
            output_tokens: 0,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            result: None,
            api_error_status: None,
        }))
    );
    let Some(AgentEvent::Result(r)) = parse(r#"{"type":"result"}"#) else {
        panic!()
    };
    assert_eq!((r.subtype.as_str(), r.is_error, r.cost_usd), ("", false, None));
}

#[test]
fn ignores_everything_else() {
    for line in [
        "",
        "   ",
        "\r",
        "plain text from a hook",
        "[1,2]",
        "{",
        "{}",
        "{\"type\":5}",
        r#"{"type":"system","subtype":"compact_boundary"}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta"}}"#,
        r#"{"type":"result"} trailing"#,
    ] {
        assert_eq!(parse(line), None, "{line:?}");
    }
    assert!(parse_line(&[0xff, b'{', 0xfe]).is_none());
    // Leading whitespace and a trailing '\r' are fine.
    assert!(matches!(
        parse(" {\"type\":\"assistant\"}\r"),
        Some(AgentEvent::Assistant { .. })
    ));
    // A non-object message still counts as an assistant message.
    assert_eq!(
        parse(r#"{"type":"assistant","message":"?"}"#),
        Some(AgentEvent::Assistant {
            text: None,
            tools: vec![],
            message_id: None
        })
    );
}

#[test]
fn progress_through_a_session() {
    let mut p = AgentProgress::default();
    assert_eq!(p.activity(), "starting");
    let mut apply = |line: &str| {
        p.apply(&parse(line).expect(line));
        p.activity()
    };
    assert_eq!(apply(INIT), "running");
    assert_eq!(apply(RETRY), "API retry 2/10");
    assert_eq!(apply(ASSISTANT_TEXT), "turn 1");
    assert_eq!(apply(ASSISTANT_TOOL), "turn 1 · Bash"); // same message id
    assert_eq!(apply(TOOL_RESULT), "turn 1 · Bash");
    let next = ASSISTANT_TEXT.replace("msg_01A", "msg_01B");
    assert_eq!(apply(&next), "turn 2 · Bash");
    assert_eq!(apply(RESULT), "done (3 turns)");
    assert_eq!(p.api_retries, 1);
    assert_eq!(
        p.last_retry_error.as_deref(),
        Some(r#"{"message":"Overloaded","type":"overloaded_error"}"#)
    );
    assert_eq!(
        p.init.as_ref().map(|i| i.model.as_str()),
        Some("claude-sonnet-4-5-20250929")
    );

    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["turns"], 2);
    assert_eq!(json["tool"], "Bash");
    assert_eq!(json["result"]["num_turns"], 3);
    assert_eq!(json["init"]["permission_mode"], "bypassPermissions");
    assert!(json.get("seen_messages").is_none());
}

#[test]
fn assistant_lines_without_id_each_count() {
    let mut p = AgentProgress::default();
    let e = parse(r#"{"type":"assistant","message":{"content":[]}}"#).unwrap();
    p.apply(&e);
    p.apply(&e);
    assert_eq!(p.activity(), "turn 2");
}

#[test]
fn activity_for_failures() {
    let mut p = AgentProgress::default();
    let result = |subtype: &str, is_error: bool, turns: u32| {
        AgentEvent::Result(AgentResult {
            subtype: subtype.into(),
            is_error,
            num_turns: turns,
            duration_ms: 0,
            cost_usd: None,
            input_tokens: 0,
            output_tokens: 0,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            result: None,
            api_error_status: None,
        })
    };
    p.apply(&result("error_max_turns", true, 30));
    assert_eq!(p.activity(), "error_max_turns (30 turns)");
    p.apply(&result("success", true, 1));
    assert_eq!(p.activity(), "failed (1 turn)");
    p.apply(&result("", false, 0));
    assert_eq!(p.activity(), "failed (0 turns)");
}

proptest! {
    #[test]
    fn never_panics_on_bytes(line in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_line(&line);
    }

    #[test]
    fn never_panics_on_json_ish(
        kind in prop_oneof![Just("system"), Just("assistant"), Just("user"), Just("result"), Just("other")],
        subtype in prop_oneof![Just("init"), Just("api_retry"), Just("success")],
        key in prop_oneof![Just("message"), Just("error"), Just("usage"), Just("num_turns"), Just("agents"), Just("attempt"), Just("result")],
        value in prop_oneof![
            Just("null".to_owned()), Just("true".to_owned()), Just("-1".to_owned()), Just("1e400".to_owned()),
            Just("[1,{}]".to_owned()), Just(r#"{"content":[1,"x",{"type":"text","text":7}]}"#.to_owned()),
            "[a-z ]{0,10}".prop_map(|s| format!("{s:?}")),
        ],
    ) {
        let line = format!(r#"{{"type":"{kind}","subtype":"{subtype}","{key}":{value}}}"#);
        let _ = parse_line(line.as_bytes());
    }
}
