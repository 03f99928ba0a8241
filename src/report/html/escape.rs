//! Every string from a report is untrusted (task ids, messages, paths, branch names): it
//! reaches the page only through these.

/// Text and attribute values: `&`, `<`, `>`, `"` and `'` as entities, so a value is safe in
/// element content and in quoted attributes alike.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters have no business in a page; NUL is not even valid HTML.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn markup_and_quotes_become_entities() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("a\u{0}b\nc"), "a\u{fffd}b\nc");
        assert_eq!(esc("plain-id_1 ünï"), "plain-id_1 ünï");
    }

    /// Ways markup has been smuggled past filters (after OWASP's filter evasion list): none
    /// leaves a character that opens a tag, ends an attribute or starts an entity of its own.
    const CORPUS: &[&str] = &[
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "\"><svg onload=alert(1)>",
        "'><iframe src=javascript:alert(1)>",
        "<scr<script>ipt>alert(1)</script>",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&#60;script&#62;",
        "&#x3C;img src=x&#x3E;",
        "javascript:alert(1)",
        "<a href=\"javascript&colon;alert(1)\">x</a>",
        "<!--<script>-->",
        "<![CDATA[<script>]]>",
        "</textarea><script>alert(1)</script>",
        "</pre><script>alert(1)</script>",
        "<style>*{background:url(javascript:alert(1))}</style>",
        "\u{0}<script>",
        "<\u{0}script>",
        "\u{2028}<script>\u{2029}",
        "\u{feff}<svg/onload=alert(1)>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "` onmouseover=alert(1) `",
    ];

    /// The entities `esc` writes, and what each stands for.
    const ENTITIES: [(&str, char); 5] = [
        ("&amp;", '&'),
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&quot;", '"'),
        ("&#39;", '\''),
    ];

    /// `esc`'s output read back: None when it holds a markup character or an `&` that does
    /// not start one of its entities.
    fn read_back(escaped: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = escaped;
        while let Some(c) = rest.chars().next() {
            if matches!(c, '<' | '>' | '"' | '\'') {
                return None;
            }
            if c == '&' {
                let (entity, ch) = ENTITIES.iter().find(|(e, _)| rest.starts_with(e))?;
                out.push(*ch);
                rest = &rest[entity.len()..];
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        Some(out)
    }

    /// What `esc` keeps of a string: all but control characters (tabs and newlines kept).
    fn kept(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                c if c.is_control() && !matches!(c, '\n' | '\t') => '\u{fffd}',
                c => c,
            })
            .collect()
    }

    #[test]
    fn the_corpus_comes_out_as_text() {
        for s in CORPUS {
            let escaped = esc(s);
            assert_eq!(
                read_back(&escaped).as_deref(),
                Some(kept(s).as_str()),
                "{s:?} -> {escaped:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_comes_out_as_text(s in "\\PC*|[<>&\"'\u{0}-\u{1f};#a-z]*") {
            let escaped = esc(&s);
            proptest::prop_assert_eq!(read_back(&escaped), Some(kept(&s)));
        }
    }
}
