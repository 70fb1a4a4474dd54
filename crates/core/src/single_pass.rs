//! One validating pass over an audit event's text in place of three (issue 15): it checks what
//! [`strict_json::check`] checks and what serde_json's parse checks, and finds the event
//! object's members, from which [`audit_reader`] reads the fields the schemas use. The bodies,
//! `requestObject` and `responseObject` (most of an event's bytes), are crossed once.
//!
//! The scanner answers only when it is sure: for text that is valid JSON, one object, within
//! the depth limit, with paired surrogate escapes and numbers that fit a float. Anything else,
//! and anything the reader is unsure of, goes through the reference path
//! ([`strict_json::check`] then [`AuditEvent::parse`] on the whole text), so refusals and
//! their reasons stay exactly as they were. The golden comparison (`src/golden.rs`) checks
//! both paths against each other.

use crate::audit::AuditEvent;
use crate::audit_reader::{self, Member, Span};
use crate::strict_json::{self, hex4};
use crate::string_stops::first_string_stop;

/// The event of `text`, or why it is quarantined: the same answer as [`strict_json::check`]
/// then [`AuditEvent::parse`]. The scan validates the text and finds the event's members; the
/// event is read from them ([`audit_reader`]), its bodies handed over as their text, which only
/// a detection rule that looks into them reads. When the scan or the reader is unsure, the
/// whole text goes through the reference path.
pub(crate) fn parse_event(text: &str, max_depth: usize) -> Result<AuditEvent<'_>, String> {
    #[cfg(any(test, feature = "oracle"))]
    let reference = crate::oracle::on();
    #[cfg(not(any(test, feature = "oracle")))]
    let reference = false;
    if !reference {
        let mut members = Vec::with_capacity(32);
        if scan(text, max_depth, &mut members).is_some()
            && let Some(event) = audit_reader::read(text, &members)
        {
            return event.of_kind_event().map_err(|e| e.to_string());
        }
    }
    strict_json::check(text, max_depth).map_err(|rejection| rejection.to_string())?;
    AuditEvent::parse(text).map_err(|e| e.to_string())
}

/// Deepest nesting the scan vouches for: serde_json stops at 128 levels, and the event object
/// is one of them.
const SCAN_DEPTH: usize = 100;

/// The members of the object `text`, pushed onto `members` in text order, when `text` is one
/// valid JSON object that [`strict_json::check`] accepts within `max_depth`; `None` when unsure.
pub(crate) fn scan(text: &str, max_depth: usize, members: &mut Vec<Member>) -> Option<()> {
    let b = text.as_bytes();
    let limit = max_depth.min(SCAN_DEPTH);
    // Bit d is set when level d is an object.
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    // The top-level member whose value is being read: its key, its value's start.
    let mut member: Option<(Span, usize)> = None;
    // Whether the last string value read holds escapes.
    let mut escaped = false;
    let mut at = ws(b, 0);
    if b.get(at) != Some(&b'{') {
        return None;
    }
    loop {
        // A value starts at `at`.
        at = ws(b, at);
        match *b.get(at)? {
            open @ (b'{' | b'[') => {
                depth += 1;
                if depth > limit {
                    return None;
                }
                let object = open == b'{';
                if object {
                    objects |= 1 << depth;
                } else {
                    objects &= !(1 << depth);
                }
                at = ws(b, at + 1);
                let close = if object { b'}' } else { b']' };
                if *b.get(at)? != close {
                    if object {
                        at = key(b, at, depth, &mut member)?;
                    }
                    continue;
                }
                at += 1;
                depth -= 1;
            }
            b'"' => (at, escaped) = string_escapes(b, at + 1)?,
            b'-' | b'0'..=b'9' => at = number(text, at)?,
            b't' => at = literal(b, at, b"true")?,
            b'f' => at = literal(b, at, b"false")?,
            b'n' => at = literal(b, at, b"null")?,
            _ => return None,
        }
        // A value ended at `at`: close what it ends, up to the next value.
        loop {
            if depth == 1
                && let Some((key, start)) = member.take()
            {
                // Only a string value ends right after its quote.
                let escaped = escaped && b[at - 1] == b'"';
                members.push(Member {
                    key,
                    value: Span {
                        range: start..at,
                        escaped,
                    },
                });
            }
            if depth == 0 {
                at = ws(b, at);
                if at != b.len() {
                    return None;
                }
                return Some(());
            }
            at = ws(b, at);
            let object = objects >> depth & 1 == 1;
            match *b.get(at)? {
                b',' => {
                    at = ws(b, at + 1);
                    if object {
                        at = key(b, at, depth, &mut member)?;
                    }
                    break;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            at += 1;
            depth -= 1;
        }
    }
}

#[inline]
pub(crate) fn ws(b: &[u8], at: usize) -> usize {
    // Audit events are compact JSON: the usual answer is `at`, told by one comparison.
    match b.get(at) {
        Some(&c) if c > b' ' => at,
        _ => ws_run(b, at),
    }
}

fn ws_run(b: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(at) {
        at += 1;
    }
    at
}

/// A key at `at` and its colon; past the colon. At the top level, notes the member begun.
fn key(b: &[u8], at: usize, depth: usize, member: &mut Option<(Span, usize)>) -> Option<usize> {
    if *b.get(at)? != b'"' {
        return None;
    }
    let (end, escaped) = string_escapes(b, at + 1)?;
    let after = ws(b, end);
    if *b.get(after)? != b':' {
        return None;
    }
    if depth == 1 {
        let key = Span {
            range: at + 1..end - 1,
            escaped,
        };
        *member = Some((key, ws(b, after + 1)));
    }
    Some(after + 1)
}

/// From just inside an opening quote to just past the closing one: no control characters,
/// only JSON's escapes, surrogate escapes in pairs.
#[inline]
pub(crate) fn string(b: &[u8], at: usize) -> Option<usize> {
    string_escapes(b, at).map(|(end, _)| end)
}

/// [`string`], and whether the string holds escapes.
pub(crate) fn string_escapes(b: &[u8], mut at: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        // Sixteen bytes at a time to the next quote, backslash or control character: most
        // strings are short, where a call to memchr costs more than it saves.
        while let Some(block) = b.get(at..at + 16) {
            if let Some(stop) = first_string_stop(block.try_into().ok()?) {
                at += stop;
                break;
            }
            at += 16;
        }
        while let Some(&c) = b.get(at) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                break;
            }
            at += 1;
        }
        match *b.get(at)? {
            b'"' => return Some((at + 1, escaped)),
            b'\\' => escaped = true,
            _ => return None,
        }
        match *b.get(at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 2,
            b'u' => {
                let unit = hex4(b, at + 2)?;
                at += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        if b.get(at..at + 2)? != b"\\u" {
                            return None;
                        }
                        if !(0xDC00..=0xDFFF).contains(&hex4(b, at + 2)?) {
                            return None;
                        }
                        at += 6;
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => {}
                }
            }
            _ => return None,
        }
    }
}

/// A JSON number at `at` that fits a float; past it.
fn number(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let digits = |mut at: usize| {
        let from = at;
        while let Some(b'0'..=b'9') = b.get(at) {
            at += 1;
        }
        (at > from).then_some(at)
    };
    let mut at = start;
    if b[at] == b'-' {
        at += 1;
    }
    let int_end = digits(at)?;
    if b[at] == b'0' && int_end > at + 1 {
        return None;
    }
    at = int_end;
    let mut plain = true;
    if b.get(at) == Some(&b'.') {
        at = digits(at + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(at) {
        plain = false;
        at += 1;
        if let Some(b'+' | b'-') = b.get(at) {
            at += 1;
        }
        at = digits(at)?;
    }
    // A number glued to more number bytes is not one token for the strict check.
    if let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = b.get(at) {
        return None;
    }
    if (!plain || at - start > 308) && strict_json::check(&text[start..at], 1).is_err() {
        return None;
    }
    Some(at)
}

fn literal(b: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    (b.get(at..at + word.len())? == word).then_some(at + word.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(text: &str, max_depth: usize) -> Option<Vec<(&str, &str)>> {
        let mut members = Vec::new();
        scan(text, max_depth, &mut members)?;
        let text_of = |m: &Member| (&text[m.key.range.clone()], &text[m.value.range.clone()]);
        Some(members.iter().map(text_of).collect())
    }

    #[test]
    fn the_scan_finds_the_members_of_valid_events_only() {
        let text = r#" {"a":[1,-2.5e3,true,null,{"b":"\u00e9\ud83d\ude00"}],"responseObject":{"x":[]} , "requestObject" : "s", "n\"":-0 } "#;
        assert_eq!(
            scanned(text, 100).unwrap(),
            [
                ("a", r#"[1,-2.5e3,true,null,{"b":"\u00e9\ud83d\ude00"}]"#),
                ("responseObject", r#"{"x":[]}"#),
                ("requestObject", r#""s""#),
                (r#"n\""#, "-0"),
            ]
        );
        assert_eq!(scanned(r#"{}"#, 100), Some(Vec::new()));
        // Members twice, or keys with escapes, are the reader's to judge.
        assert!(scanned(r#"{"requestObject":1,"requestObject":2}"#, 100).is_some());
        for bad in [
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e400}"#,
            r#"{"a":-}"#,
            r#"{"a":"\ud83d"}"#,
            r#"{"a":"\q"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":[1,]}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1} x"#,
            r#"{"a":1}}"#,
            r#"[1]"#,
            r#"{"a":tru}"#,
            r#"{"a":[[[]]]}"#,
        ] {
            assert_eq!(scanned(bad, 3), None, "{bad}");
        }
        assert!(scanned(r#"{"a":[[]]}"#, 3).is_some());
    }
}
