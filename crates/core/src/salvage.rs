//! What an audit event cut by CloudWatch Logs still says.
//!
//! CloudWatch Logs cuts an event over its size limit and appends `[Truncated...]` ([`MARKER`]),
//! so its JSON breaks. What comes before the cut is intact, and kube-apiserver writes the fields
//! that say who did what first: `kind`, `apiVersion`, `level`, `auditID`, `stage`, `requestURI`,
//! `verb`, `user`, `impersonatedUser`, `sourceIPs`, `userAgent`, `objectRef`, `responseStatus`,
//! then the bodies that make an event large, then the times and `annotations`.
//!
//! [`read`] finds the top-level members that are complete before the cut and rebuilds a JSON
//! object of them ([`Salvage::json`]): `{`, the members as written, `}`. A member cut anywhere
//! (in its key, in a string, in an escape, in a number, inside a nested object or list) is left
//! out whole, never guessed at. The reader only finds where members end: the rebuilt text then
//! meets the same strict checks and parser as any event, which judge what the members hold.
//!
//! One pass over the bytes, with a depth counter for nested values instead of recursion, and
//! indexing that cannot go out of bounds: linear time and constant stack on any input.

use std::borrow::Cow;
use std::ops::Range;

/// What CloudWatch Logs appends to an event it cut at its size limit.
pub const MARKER: &str = "[Truncated...]";

/// Top-level keys whose values redaction replaces (contract §9).
const BODIES: [&str; 2] = ["requestObject", "responseObject"];

/// The text before CloudWatch's [`MARKER`], when `text` ends with it (trailing whitespace
/// aside); `None` for an event that was not cut.
pub fn cut_text(text: &str) -> Option<&str> {
    text.trim_end().strip_suffix(MARKER)
}

/// The complete top-level members of the text before a cut.
#[derive(Debug, Clone)]
pub struct Salvage<'t> {
    /// The text before the cut.
    cut: &'t str,
    /// Every member complete before the cut, in order, as places in `cut`.
    members: Vec<Member>,
    /// The member the cut fell in, when its key is complete.
    partial: Option<Partial>,
    /// Whether the object's closing brace comes before the cut: then nothing was lost.
    closed: bool,
    /// `{`, the complete members, `}`.
    json: String,
}

/// A complete `"key": value` member: the key with its quotes, and the value.
#[derive(Debug, Clone)]
struct Member {
    key: Range<usize>,
    value: Range<usize>,
}

/// A member cut after its key: the key with its quotes, and where its value starts when the
/// colon came before the cut.
#[derive(Debug, Clone)]
struct Partial {
    key: Range<usize>,
    value_start: Option<usize>,
}

/// How far a scan got: to the end of a complete value, to the cut, or to text that cannot be
/// JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Complete(usize),
    Cut,
    Invalid,
}

/// Reads the top-level members of `cut`, the text of a JSON object cut anywhere. `None` when it
/// is not the start of an object: it does not begin with `{` (whitespace aside), or something
/// other than a member, a comma or the closing brace stands between its members.
pub fn read(cut: &str) -> Option<Salvage<'_>> {
    let bytes = cut.as_bytes();
    let mut salvage = Salvage {
        cut,
        members: Vec::new(),
        partial: None,
        closed: false,
        json: String::new(),
    };
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_whitespace(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        salvage.closed = true;
    }
    while !salvage.closed {
        match bytes.get(at) {
            None => break,
            Some(b'"') => {}
            Some(_) => return None,
        }
        let key = match string_end(bytes, at) {
            Scan::Complete(end) => at..end,
            Scan::Cut => break,
            Scan::Invalid => return None,
        };
        at = skip_whitespace(bytes, key.end);
        match bytes.get(at) {
            None => {
                salvage.partial = Some(Partial {
                    key,
                    value_start: None,
                });
                break;
            }
            Some(b':') => {}
            Some(_) => return None,
        }
        let value_start = skip_whitespace(bytes, at + 1);
        match value_end(bytes, value_start) {
            Scan::Complete(end) => {
                salvage.members.push(Member {
                    key,
                    value: value_start..end,
                });
                at = end;
            }
            Scan::Cut => {
                salvage.partial = Some(Partial {
                    key,
                    value_start: Some(value_start),
                });
                break;
            }
            Scan::Invalid => return None,
        }
        at = skip_whitespace(bytes, at);
        match bytes.get(at) {
            None => break,
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => salvage.closed = true,
            Some(_) => return None,
        }
    }
    salvage.json = salvage.rebuild();
    Some(salvage)
}

impl<'t> Salvage<'t> {
    /// `{`, every complete member as written, `}`: a JSON object when the members are valid
    /// JSON, which the parser that reads it decides.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The text before the cut.
    pub fn cut(&self) -> &'t str {
        self.cut
    }

    /// Whether the text says all there is about the top-level field `key`: a complete member
    /// of that name comes before the cut, or the whole object does. Absent from
    /// [`json`](Self::json) and not known means the cut may have taken it.
    pub fn knows(&self, key: &str) -> bool {
        self.closed || self.members.iter().any(|m| self.key_name(&m.key) == key)
    }

    /// Whether a request or response body starts before the cut, complete or not.
    pub fn holds_body(&self) -> bool {
        self.members.iter().any(|m| self.is_body(&m.key))
            || self.partial.as_ref().is_some_and(|p| self.is_body(&p.key))
    }

    /// The text before the cut with the value of every top-level `requestObject` and
    /// `responseObject` replaced by `marker`, the cut one included: from where its value starts
    /// to the cut. `null` bodies stay, as with whole events (contract §9).
    pub fn with_bodies_replaced(&self, marker: &str) -> String {
        let cut = self.cut;
        let mut out = String::with_capacity(cut.len());
        let mut copied = 0;
        for member in &self.members {
            if self.is_body(&member.key) && &cut[member.value.clone()] != "null" {
                out.push_str(&cut[copied..member.value.start]);
                out.push_str(marker);
                copied = member.value.end;
            }
        }
        if let Some(Partial {
            key,
            value_start: Some(start),
        }) = &self.partial
            && self.is_body(key)
        {
            out.push_str(&cut[copied..*start]);
            out.push_str(marker);
            copied = cut.len();
        }
        out.push_str(&cut[copied..]);
        out
    }

    fn rebuild(&self) -> String {
        let length: usize = self
            .members
            .iter()
            .map(|m| m.value.end - m.key.start + 1)
            .sum();
        let mut json = String::with_capacity(length + 2);
        json.push('{');
        for (i, member) in self.members.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&self.cut[member.key.start..member.value.end]);
        }
        json.push('}');
        json
    }

    /// A key's name, escapes decoded (`"request\u004fbject"` is `requestObject`); empty when
    /// its escapes are invalid, which no field the forwarder reads is named.
    fn key_name(&self, key: &Range<usize>) -> Cow<'t, str> {
        let quoted = &self.cut[key.clone()];
        let inner = &quoted[1..quoted.len() - 1];
        if !inner.contains('\\') {
            return Cow::Borrowed(inner);
        }
        serde_json::from_str::<String>(quoted)
            .map(Cow::Owned)
            .unwrap_or_default()
    }

    fn is_body(&self, key: &Range<usize>) -> bool {
        BODIES.contains(&&*self.key_name(key))
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// Where the value starting at `at` ends.
fn value_end(bytes: &[u8], at: usize) -> Scan {
    match bytes.get(at) {
        None => Scan::Cut,
        Some(b'"') => string_end(bytes, at),
        Some(b'{' | b'[') => nested_end(bytes, at),
        Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => token_end(bytes, at),
        Some(_) => Scan::Invalid,
    }
}

/// From the opening quote at `at` to just past the closing one. An escape's backslash takes
/// the next byte with it, so `\"` does not close the string; the rest of an escape (`\u00e9`)
/// is plain bytes. A multi-byte UTF-8 character never holds a quote or backslash byte.
fn string_end(bytes: &[u8], at: usize) -> Scan {
    let mut at = at + 1;
    loop {
        match bytes.get(at) {
            None => return Scan::Cut,
            Some(b'"') => return Scan::Complete(at + 1),
            Some(b'\\') => at += 2,
            Some(_) => at += 1,
        }
    }
}

/// From the `{` or `[` at `at` to just past the bracket that closes it, counting depth rather
/// than recursing, and skipping strings, whose brackets do not count.
fn nested_end(bytes: &[u8], mut at: usize) -> Scan {
    let mut depth = 0usize;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => match string_end(bytes, at) {
                Scan::Complete(end) => {
                    at = end;
                    continue;
                }
                other => return other,
            },
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Scan::Complete(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    Scan::Cut
}

/// A number or `true`, `false`, `null`. A token that runs into the cut may have gone on
/// (`12` of `1234`, `fal` of `false`): it is cut, unless it is a whole literal, which nothing
/// extends.
fn token_end(bytes: &[u8], at: usize) -> Scan {
    let end = at
        + bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            .count();
    if end < bytes.len() || matches!(&bytes[at..], b"true" | b"false" | b"null") {
        Scan::Complete(end)
    } else {
        Scan::Cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(cut: &str) -> Option<String> {
        read(cut).map(|s| s.json().to_owned())
    }

    #[test]
    fn only_members_complete_before_the_cut_are_kept() {
        let cases = [
            (r#"{"a":"x","b":"y"#, r#"{"a":"x"}"#),
            (r#"{"a":"x","b":"y""#, r#"{"a":"x","b":"y"}"#),
            (r#"{"a":"x","b""#, r#"{"a":"x"}"#),
            (r#"{"a":"x","b"#, r#"{"a":"x"}"#),
            (r#"{"a":"x","#, r#"{"a":"x"}"#),
            (r#"{"a":"x"   "#, r#"{"a":"x"}"#),
            (
                r#"{"a":"x","b":{"c":["d","e"],"f":{}}"#,
                r#"{"a":"x","b":{"c":["d","e"],"f":{}}}"#,
            ),
            (r#"{"a":"x","b":{"c":["d","e"],"f":{}"#, r#"{"a":"x"}"#),
            (r#"{"a":"x","b":["}]"#, r#"{"a":"x"}"#),
            (r#"{"a":"x","b":["}]"]"#, r#"{"a":"x","b":["}]"]}"#),
            (r#"{"a":"x"}"#, r#"{"a":"x"}"#),
            ("{", "{}"),
            ("{}", "{}"),
            ("  {\n  \"a\" : \"x\" ,\n  \"b\"", "{\"a\" : \"x\"}"),
        ];
        for (cut, expected) in cases {
            assert_eq!(json_of(cut).as_deref(), Some(expected), "{cut}");
        }
    }

    #[test]
    fn a_cut_inside_an_escape_or_after_a_backslash_leaves_the_string_open() {
        for cut in [
            r#"{"a":"x","b":"say \"#,
            r#"{"a":"x","b":"say \""#,
            r#"{"a":"x","b":"caf\u00"#,
            r#"{"a":"x","b":"caf\u00e9"#,
            r#"{"a":"x","b":"back\\"#,
        ] {
            assert_eq!(json_of(cut).as_deref(), Some(r#"{"a":"x"}"#), "{cut}");
        }
        assert_eq!(
            json_of(r#"{"a":"x","b":"say \"hi\"","c"#).as_deref(),
            Some(r#"{"a":"x","b":"say \"hi\""}"#)
        );
        assert_eq!(
            json_of(r#"{"a":"back\\","b"#).as_deref(),
            Some(r#"{"a":"back\\"}"#),
            "an escaped backslash, then the closing quote"
        );
        assert_eq!(
            json_of("{\"a\":\"x\",\"b\":\"caf\u{e9} na\u{ef}ve").as_deref(),
            Some(r#"{"a":"x"}"#)
        );
    }

    #[test]
    fn numbers_that_run_into_the_cut_may_have_gone_on_and_literals_may_not() {
        assert_eq!(json_of(r#"{"a":12"#).as_deref(), Some("{}"));
        assert_eq!(json_of(r#"{"a":12,"#).as_deref(), Some(r#"{"a":12}"#));
        assert_eq!(
            json_of(r#"{"a":-1.5e3 "#).as_deref(),
            Some(r#"{"a":-1.5e3}"#)
        );
        assert_eq!(json_of(r#"{"a":fal"#).as_deref(), Some("{}"));
        for literal in ["true", "false", "null"] {
            let cut = format!(r#"{{"a":{literal}"#);
            assert_eq!(
                json_of(&cut),
                Some(format!(r#"{{"a":{literal}}}"#)),
                "{literal}"
            );
        }
    }

    #[test]
    fn text_that_is_not_the_start_of_an_object_gives_nothing() {
        for cut in [
            "",
            "   ",
            "[1,2",
            "not json",
            r#""a":"x""#,
            r#"{"a" "x""#,
            r#"{"a":"x" "b":"y""#,
            r#"{"a":"x",,"#,
            r#"{"a":"x",}"#,
            r#"{a:"x""#,
            r#"{"a":}"#,
        ] {
            assert!(read(cut).is_none(), "{cut}");
        }
    }

    #[test]
    fn the_rebuilt_text_is_for_the_parser_to_judge() {
        // Extents only: a malformed value is found whole, and the parser refuses it.
        let salvage = read(r#"{"a":[1},"b":tru,"c"#).expect("the shape of members");
        assert_eq!(salvage.json(), r#"{"a":[1},"b":tru}"#);
        assert!(serde_json::from_str::<serde_json::Value>(salvage.json()).is_err());
    }

    #[test]
    fn known_fields_are_the_complete_ones_or_all_once_the_object_closed() {
        let salvage =
            read(r#"{"stage":"ResponseComplete","request\u0055RI":"/api","verb":"g"#).unwrap();
        assert!(salvage.knows("stage") && salvage.knows("requestURI"));
        assert!(!salvage.knows("verb"), "cut");
        assert!(!salvage.knows("user"), "may come after the cut");
        let whole = read(r#"{"stage":"ResponseComplete"} trailing"#).unwrap();
        assert!(whole.knows("user"), "the object closed: no user");
    }

    #[test]
    fn bodies_are_replaced_whole_or_from_their_start_to_the_cut() {
        let marker = r#"{"redacted":"x"}"#;
        let cut = r#"{"verb":"create", "requestObject" : {"data":"s3cr3t"},"responseObject":null,"request\u004fbject":"also","responseObject":{"data":"par"#;
        let salvage = read(cut).unwrap();
        assert!(salvage.holds_body());
        assert_eq!(
            salvage.with_bodies_replaced(marker),
            r#"{"verb":"create", "requestObject" : {"redacted":"x"},"responseObject":null,"request\u004fbject":{"redacted":"x"},"responseObject":{"redacted":"x"}"#
        );
        let cut_in_key = read(r#"{"verb":"create","requestObj"#).unwrap();
        assert!(!cut_in_key.holds_body(), "no byte of a body came");
        let no_value_yet = read(r#"{"verb":"create","requestObject""#).unwrap();
        assert!(no_value_yet.holds_body());
        assert_eq!(
            no_value_yet.with_bodies_replaced(marker),
            r#"{"verb":"create","requestObject""#,
            "no value to replace"
        );
        assert!(!read(r#"{"verb":"get"}"#).unwrap().holds_body());
    }

    #[test]
    fn unbounded_nesting_is_counted_not_recursed() {
        let deep = format!(r#"{{"a":"x","b":{}"#, "[".repeat(1_000_000));
        assert_eq!(json_of(&deep).as_deref(), Some(r#"{"a":"x"}"#));
        let closed = format!(
            r#"{{"a":"x","b":{}{},"c"#,
            "[".repeat(1_000_000),
            "]".repeat(1_000_000)
        );
        assert_eq!(read(&closed).unwrap().members.len(), 2);
    }

    #[test]
    fn the_marker_is_found_at_the_end_only() {
        assert_eq!(cut_text(r#"{"a":"x[Truncated...]"#), Some(r#"{"a":"x"#));
        assert_eq!(cut_text("{\"a\":[Truncated...]\n"), Some("{\"a\":"));
        assert_eq!(cut_text(r#"{"a":"[Truncated...]"}"#), None);
    }
}
