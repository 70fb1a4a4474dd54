//! One validating pass over an audit event's text in place of two (issue 15): it checks what
//! [`strict_json::check`] checks and what serde_json's skip of `requestObject` and
//! `responseObject` checks, and finds those two bodies (most of an event's bytes), so that
//! serde_json then parses only the rest of the event.
//!
//! The scanner answers only when it is sure: for text that is valid JSON, one object, within
//! the depth limit, with paired surrogate escapes and numbers that fit a float. Anything else,
//! and any error of the parse that follows, goes through the reference path
//! ([`strict_json::check`] then [`AuditEvent::parse`] on the whole text), so refusals and
//! their reasons stay exactly as they were. The golden comparison (`src/golden.rs`) checks
//! both paths against each other.

use std::ops::Range;

use crate::audit::{AuditEvent, JsonText};
use crate::strict_json::{self, hex4};
use crate::string_stops::first_string_stop;

/// The event of `text`, or why it is quarantined: the same answer as [`strict_json::check`]
/// then [`AuditEvent::parse`]. The bodies are validated by the scan, parsed as `null` from
/// `stripped` (a copy of the text without them) and handed over as their text, which only a
/// detection rule that looks into them reads. When the scan is unsure, or the parse of the
/// rest fails, the whole text goes through the reference path.
pub(crate) fn parse_event<'t>(
    text: &'t str,
    max_depth: usize,
    stripped: &'t mut String,
) -> Result<AuditEvent<'t>, String> {
    #[cfg(any(test, feature = "oracle"))]
    let reference = crate::oracle::on();
    #[cfg(not(any(test, feature = "oracle")))]
    let reference = false;
    if !reference && let Some(bodies) = scan(text, max_depth) {
        stripped.clear();
        let mut copied = 0;
        for body in bodies.in_text_order().into_iter().flatten() {
            stripped.push_str(&text[copied..body.start]);
            stripped.push_str("null");
            copied = body.end;
        }
        stripped.push_str(&text[copied..]);
        let stripped: &'t str = stripped;
        if let Ok(mut event) = AuditEvent::parse(stripped) {
            // As serde reads an `Option`: a `null` body is no body.
            let body = |range: Option<Range<usize>>| {
                let value = &text[range?];
                (value != "null").then(|| JsonText::validated(value))
            };
            event.request_object = body(bodies.request);
            event.response_object = body(bodies.response);
            return Ok(event);
        }
    }
    strict_json::check(text, max_depth).map_err(|rejection| rejection.to_string())?;
    AuditEvent::parse(text).map_err(|e| e.to_string())
}

/// Where the top-level `requestObject` and `responseObject` values are in an event's text.
#[derive(Debug, Default, PartialEq)]
struct Bodies {
    request: Option<Range<usize>>,
    response: Option<Range<usize>>,
}

impl Bodies {
    fn in_text_order(&self) -> [Option<Range<usize>>; 2] {
        let (request, response) = (self.request.clone(), self.response.clone());
        match (&request, &response) {
            (Some(r), Some(s)) if s.start < r.start => [response, request],
            _ => [request, response],
        }
    }
}

/// Deepest nesting the scan vouches for: serde_json stops at 128 levels, and the event object
/// is one of them.
const SCAN_DEPTH: usize = 100;

/// The top-level `requestObject` and `responseObject` values of `text`, in text order, when
/// `text` is one valid JSON object that [`strict_json::check`] accepts within `max_depth`;
/// `None` when unsure. A body key written with escapes, or given twice, is unsure too.
fn scan(text: &str, max_depth: usize) -> Option<Bodies> {
    let b = text.as_bytes();
    let limit = max_depth.min(SCAN_DEPTH);
    let mut bodies: [Option<Range<usize>>; 2] = [None, None];
    // Bit d is set when level d is an object.
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    // The body whose value is being read, with its start.
    let mut body: Option<(usize, usize)> = None;
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
                        at = key(b, at, depth, &mut body, &bodies)?;
                    }
                    continue;
                }
                at += 1;
                depth -= 1;
            }
            b'"' => at = string(b, at + 1)?,
            b'-' | b'0'..=b'9' => at = number(text, at)?,
            b't' => at = literal(b, at, b"true")?,
            b'f' => at = literal(b, at, b"false")?,
            b'n' => at = literal(b, at, b"null")?,
            _ => return None,
        }
        // A value ended at `at`: close what it ends, up to the next value.
        loop {
            if depth == 1
                && let Some((which, start)) = body.take()
            {
                bodies[which] = Some(start..at);
            }
            if depth == 0 {
                at = ws(b, at);
                if at != b.len() {
                    return None;
                }
                let [request, response] = bodies;
                return Some(Bodies { request, response });
            }
            at = ws(b, at);
            let object = objects >> depth & 1 == 1;
            match *b.get(at)? {
                b',' => {
                    at = ws(b, at + 1);
                    if object {
                        at = key(b, at, depth, &mut body, &bodies)?;
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

fn ws(b: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(at) {
        at += 1;
    }
    at
}

/// A key at `at` and its colon; past the colon. At the top level, notes a body key.
fn key(
    b: &[u8],
    at: usize,
    depth: usize,
    body: &mut Option<(usize, usize)>,
    bodies: &[Option<Range<usize>>; 2],
) -> Option<usize> {
    if *b.get(at)? != b'"' {
        return None;
    }
    let end = string(b, at + 1)?;
    let after = ws(b, end);
    if *b.get(after)? != b':' {
        return None;
    }
    if depth == 1 {
        let name = &b[at + 1..end - 1];
        if name.contains(&b'\\') {
            return None;
        }
        let which = match name {
            b"requestObject" => Some(0),
            b"responseObject" => Some(1),
            _ => None,
        };
        if let Some(which) = which {
            if bodies[which].is_some() {
                return None;
            }
            *body = Some((which, ws(b, after + 1)));
        }
    }
    Some(after + 1)
}

/// From just inside an opening quote to just past the closing one: no control characters,
/// only JSON's escapes, surrogate escapes in pairs.
fn string(b: &[u8], mut at: usize) -> Option<usize> {
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
            b'"' => return Some(at + 1),
            b'\\' => {}
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

    #[test]
    fn the_scan_finds_the_bodies_of_valid_events_only() {
        let text = r#" {"a":[1,-2.5e3,true,null,{"b":"\u00e9\ud83d\ude00"}],"responseObject":{"x":[]} , "requestObject" : "s"} "#;
        let bodies = scan(text, 100).unwrap();
        assert_eq!(&text[bodies.request.clone().unwrap()], r#""s""#);
        assert_eq!(&text[bodies.response.clone().unwrap()], r#"{"x":[]}"#);
        let [first, second] = bodies.in_text_order();
        assert!(first.unwrap().start < second.unwrap().start);
        assert_eq!(scan(r#"{}"#, 100), Some(Bodies::default()));
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
            r#"{"requestObject":1,"requestObject":2}"#,
            r#"{"request\u004fbject":1}"#,
            r#"[1]"#,
            r#"{"a":tru}"#,
            r#"{"a":[[[]]]}"#,
        ] {
            assert_eq!(scan(bad, 3), None, "{bad}");
        }
        assert!(scan(r#"{"a":[[]]}"#, 3).is_some());
    }
}
