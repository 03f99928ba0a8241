//! Reading `usage` from the model API's answers as they pass: server-sent events (one
//! `data:` JSON per event; `message_start` carries the input side, `message_delta` the output
//! count so far) or one JSON body. Bounded: a line longer than `LINE_LIMIT` is skipped.

use serde::{Deserialize, Serialize};

/// What one model request used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

const LINE_LIMIT: usize = 1 << 20;

#[derive(Deserialize, Default)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    fn into(self, u: &mut Usage) {
        let set = |to: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *to = v;
            }
        };
        set(&mut u.input_tokens, self.input_tokens);
        set(&mut u.output_tokens, self.output_tokens);
        set(
            &mut u.cache_creation_input_tokens,
            self.cache_creation_input_tokens,
        );
        set(&mut u.cache_read_input_tokens, self.cache_read_input_tokens);
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: Message,
    },
    MessageDelta {
        usage: Option<WireUsage>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Message {
    usage: Option<WireUsage>,
}

/// Follows one answer's bytes.
#[derive(Default)]
pub struct UsageReader {
    stream: bool,
    line: Vec<u8>,
    body: Vec<u8>,
    overlong: bool,
    pub usage: Usage,
}

impl UsageReader {
    /// `content_type` of the answer: `text/event-stream` is read event by event.
    pub fn new(content_type: &str) -> Self {
        Self {
            stream: content_type.starts_with("text/event-stream"),
            ..Default::default()
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if !self.stream {
            if self.body.len() + bytes.len() <= LINE_LIMIT * 16 {
                self.body.extend_from_slice(bytes);
            }
            return;
        }
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.take(&rest[..i]);
            rest = &rest[i + 1..];
        }
        self.take_partial(rest);
    }

    fn take_partial(&mut self, bytes: &[u8]) {
        if self.line.len() + bytes.len() > LINE_LIMIT {
            self.overlong = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn take(&mut self, end: &[u8]) {
        self.take_partial(end);
        let line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.overlong) {
            return;
        }
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        match serde_json::from_slice::<StreamEvent>(data.trim_ascii()) {
            Ok(StreamEvent::MessageStart { message }) => {
                message.usage.unwrap_or_default().into(&mut self.usage)
            }
            Ok(StreamEvent::MessageDelta { usage: Some(u) }) => u.into(&mut self.usage),
            _ => {}
        }
    }

    /// The usage once the answer has ended.
    pub fn finish(mut self) -> Usage {
        if self.stream {
            let rest = std::mem::take(&mut self.line);
            self.take(&rest);
        } else {
            #[derive(Deserialize)]
            struct Body {
                usage: Option<WireUsage>,
            }
            if let Ok(Body { usage: Some(u) }) = serde_json::from_slice(&self.body) {
                u.into(&mut self.usage);
            }
        }
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_split_anywhere_gives_the_same_usage() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":120,\"cache_read_input_tokens\":7,\"output_tokens\":1}}}\n\n\
                   event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
                   event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":42}}\n\n\
                   event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let want = Usage {
            input_tokens: 120,
            output_tokens: 42,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 7,
        };
        for cut in 0..sse.len() {
            let mut r = UsageReader::new("text/event-stream; charset=utf-8");
            r.push(&sse.as_bytes()[..cut]);
            r.push(&sse.as_bytes()[cut..]);
            assert_eq!(r.finish(), want, "cut at {cut}");
        }
    }

    #[test]
    fn a_json_answer_carries_its_usage_in_the_body() {
        let mut r = UsageReader::new("application/json");
        r.push(br#"{"id":"m","usage":{"input_tokens":5,"output_tokens":9}}"#);
        let u = r.finish();
        assert_eq!((u.input_tokens, u.output_tokens), (5, 9));
        let mut r = UsageReader::new("application/json");
        r.push(b"not json");
        assert_eq!(r.finish(), Usage::default());
    }
}
