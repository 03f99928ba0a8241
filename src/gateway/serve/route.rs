//! Which model API calls a task may make through the gateway: the one rule, [`admit`]. The
//! gateway swaps the run's real credential in upstream, so every call it passes is made with
//! the user's key; it passes only what the agent needs (a message, a token count) and answers
//! the CLI's reachability probe itself. Everything else (batches, files, the admin API, other
//! methods, paths that a server might read as another host or directory) is refused here.

use hyper::Method;

/// A call the gateway makes for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCall {
    /// `POST /v1/messages`: a model request, metered and held to the task's budget.
    Messages,
    /// `POST /v1/messages/count_tokens`: free upstream, passed unmetered.
    CountTokens,
    /// `HEAD /api/hello` (the CLI's first request): answered by the gateway, never sent on.
    Hello,
}

impl ApiCall {
    /// The path upstream, below the upstream base URL's own path.
    pub fn path(self) -> &'static str {
        match self {
            Self::Messages => "/v1/messages",
            Self::CountTokens => "/v1/messages/count_tokens",
            Self::Hello => "/api/hello",
        }
    }
}

/// Why a call is refused, for the 403 answer and the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The characters a query may hold: what `?beta=true` needs, and nothing that a server could
/// read as more path (`/`, `\`, `%`-escapes, `#`).
fn plain_query(q: &str) -> bool {
    q.len() <= 256
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'&' | b'_' | b'-' | b'.'))
}

/// The rule: `target` is the request's target as the task sent it (origin form: path and
/// query). Paths match exactly, byte for byte: no decoding, no normalising, so `..`, `//host`,
/// `%2F` or a trailing slash are simply other paths, and refused.
pub fn admit(method: &Method, target: &str) -> Result<ApiCall, Refusal> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let call = [ApiCall::Messages, ApiCall::CountTokens, ApiCall::Hello]
        .into_iter()
        .find(|c| c.path() == path)
        .ok_or_else(|| {
            Refusal(format!(
                "{method} {} is not a model API call this gateway passes (only POST \
                 /v1/messages and POST /v1/messages/count_tokens)",
                shown(target)
            ))
        })?;
    let method_ok = match call {
        ApiCall::Messages | ApiCall::CountTokens => method == Method::POST,
        ApiCall::Hello => method == Method::HEAD || method == Method::GET,
    };
    if !method_ok {
        return Err(Refusal(format!(
            "{method} {path}: only {} is passed",
            if call == ApiCall::Hello { "HEAD" } else { "POST" }
        )));
    }
    if let Some(q) = query
        && !plain_query(q)
    {
        return Err(Refusal(format!(
            "{method} {path}: the query {:?} is not plain name=value pairs",
            shown(q)
        )));
    }
    Ok(call)
}

/// A task-controlled string as it may appear in an answer or the audit: short, printable.
pub fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(120)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 120 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_messages_and_token_counts_pass_and_the_probe_is_answered_here() {
        use ApiCall::*;
        let ok: [(&str, &str, ApiCall); 6] = [
            ("POST", "/v1/messages", Messages),
            ("POST", "/v1/messages?beta=true", Messages),
            ("POST", "/v1/messages/count_tokens", CountTokens),
            ("POST", "/v1/messages/count_tokens?beta=true", CountTokens),
            ("HEAD", "/api/hello", Hello),
            ("GET", "/api/hello", Hello),
        ];
        for (m, t, want) in ok {
            assert_eq!(admit(&m.parse().unwrap(), t), Ok(want), "{m} {t}");
        }
        let refused = [
            ("POST", "/v1/messages/batches"),
            ("GET", "/v1/messages/batches/msgbatch_1/results"),
            ("GET", "/v1/files"),
            ("POST", "/v1/files"),
            ("DELETE", "/v1/files/file_1"),
            ("POST", "/v1/organizations/api_keys"),
            ("GET", "/v1/organizations/usage_report/messages"),
            ("GET", "/v1/models"),
            ("PUT", "/v1/messages"),
            ("PATCH", "/v1/messages"),
            ("DELETE", "/v1/messages"),
            ("GET", "/v1/messages"),
            ("OPTIONS", "/v1/messages"),
            ("POST", "//evil.example/x"),
            ("POST", "//evil.example/v1/messages"),
            ("POST", "/v1/messages/"),
            ("POST", "/v1//messages"),
            ("POST", "/v1/messages/../files"),
            ("POST", "/v1/messages/./count_tokens"),
            ("POST", "/v1/%6dessages"),
            ("POST", "/v1/messages%2F..%2Ffiles"),
            ("POST", "/v1/messages;x"),
            ("POST", "/V1/MESSAGES"),
            ("POST", "/api/hello"),
            ("POST", "/v1/messages?x=%2F"),
            ("POST", "/v1/messages?x=/../files"),
            ("POST", "/v1/messages?#"),
            ("POST", ""),
            ("POST", "*"),
        ];
        for (m, t) in refused {
            let r = admit(&m.parse().unwrap(), t);
            assert!(r.is_err(), "{m} {t}: {r:?}");
        }
    }

    #[test]
    fn a_refusal_names_the_call_and_what_passes() {
        let Refusal(why) = admit(&Method::GET, "/v1/files").unwrap_err();
        assert!(
            why.contains("GET /v1/files") && why.contains("POST /v1/messages"),
            "{why}"
        );
        let Refusal(why) = admit(&Method::PUT, "/v1/messages").unwrap_err();
        assert!(why.contains("only POST"), "{why}");
        let Refusal(why) = admit(&Method::GET, &format!("/{}\n", "a".repeat(500))).unwrap_err();
        assert!(why.len() < 300 && !why.contains('\n'), "{why}");
    }

    proptest! {
        /// Whatever the method and target, what passes is one of the three exact paths.
        #[test]
        fn nothing_else_passes(method in "[A-Z]{3,7}", target in "[ -~]{0,40}") {
            let Ok(m) = method.parse::<Method>() else { return Ok(()) };
            if let Ok(call) = admit(&m, &target) {
                let path = target.split('?').next().unwrap();
                prop_assert_eq!(path, call.path());
                let q = target.split_once('?').map_or("", |(_, q)| q);
                prop_assert!(!q.contains(['/', '%', '\\', '#']));
            }
        }
    }
}
