//! An [`AuditEvent`] read by hand from text the single-pass scan ([`crate::single_pass`]) has
//! already validated, from the members it found, instead of by serde_json over a second copy
//! of the event: the tokenizer was a sixth of the handler's instructions (issue 15).
//!
//! It reads what `AuditEvent`'s `Deserialize` reads: lenient types (a value of another type
//! is absent), strings borrowed unless escaped, duplicate fields refused. Where it is not sure
//! to answer alike (a key written with escapes, a field given twice), it answers `None` and the
//! reference parser decides and explains. The golden comparison (`src/golden.rs`) and the
//! `single_pass` fuzz target hold both to the same events.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

use crate::audit::{
    Annotations, AuditEvent, DECISION, Integer, JsonText, Lenient, ObjectReference, REASON, Status,
    Text, Texts, UserExtra, UserInfo,
};
use crate::envelope::unescape::unescape;
use crate::single_pass::{string, string_escapes, ws};

/// Annotations whose keys are checked for duplicates one by one; past these, by a set.
const FEW_ANNOTATIONS: usize = 16;

/// One member of a JSON object: its key's text between the quotes, and its value's text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    pub key: Span,
    pub value: Span,
}

/// Where a piece of JSON text is, and whether it is or holds a string written with escapes, as
/// the walk that found it saw: no second search for a backslash.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span {
    pub range: Range<usize>,
    pub escaped: bool,
}

/// The event whose top-level members the scan found in `text`, when sure to read it as serde
/// would; its `kind` is not checked yet.
pub(crate) fn read<'t>(text: &'t str, members: &[Member]) -> Option<AuditEvent<'t>> {
    let r = Reader { text };
    let mut event = AuditEvent::default();
    let mut seen = 0;
    for Member { key, value } in members.iter().cloned() {
        match r.key(key)? {
            "kind" => event.kind = r.once(&mut seen, 0)?.text(value)?,
            "apiVersion" => event.api_version = r.once(&mut seen, 1)?.text(value)?,
            "level" => event.level = r.once(&mut seen, 2)?.text(value)?,
            "auditID" => event.audit_id = r.once(&mut seen, 3)?.text(value)?,
            "stage" => event.stage = r.once(&mut seen, 4)?.text(value)?,
            "requestURI" => event.request_uri = r.once(&mut seen, 5)?.text(value)?,
            "verb" => event.verb = r.once(&mut seen, 6)?.text(value)?,
            "user" => event.user = r.once(&mut seen, 7)?.object(value, Reader::user)?,
            "impersonatedUser" => {
                event.impersonated_user = r.once(&mut seen, 8)?.object(value, Reader::user)?;
            }
            "sourceIPs" => event.source_ips = r.once(&mut seen, 9)?.texts(value)?,
            "userAgent" => event.user_agent = r.once(&mut seen, 10)?.text(value)?,
            "objectRef" => {
                event.object_ref = r.once(&mut seen, 11)?.object(value, Reader::object_ref)?;
            }
            "responseStatus" => {
                event.response_status = r.once(&mut seen, 12)?.object(value, Reader::status)?;
            }
            "requestReceivedTimestamp" => {
                event.request_received_timestamp = r.once(&mut seen, 13)?.text(value)?;
            }
            "stageTimestamp" => event.stage_timestamp = r.once(&mut seen, 14)?.text(value)?,
            "timestamp" => event.timestamp = r.once(&mut seen, 15)?.text(value)?,
            "annotations" => {
                event.annotations = r.once(&mut seen, 16)?.object(value, Reader::annotations)?;
            }
            "requestObject" => event.request_object = r.once(&mut seen, 17)?.body(value),
            "responseObject" => event.response_object = r.once(&mut seen, 18)?.body(value),
            _ => {}
        }
    }
    Some(event)
}

/// Reads values out of validated JSON text by their ranges.
#[derive(Clone, Copy)]
struct Reader<'t> {
    text: &'t str,
}

impl<'t> Reader<'t> {
    fn first_byte(self, value: &Span) -> u8 {
        self.text.as_bytes()[value.range.start]
    }

    /// The reader again, the first time field `bit` is seen; `None` the second time, since
    /// serde refuses a duplicate field and the reference path must say so.
    fn once(self, seen: &mut u32, bit: u32) -> Option<Self> {
        let mask = 1 << bit;
        (*seen & mask == 0).then(|| {
            *seen |= mask;
            self
        })
    }

    /// A key; `None` when written with escapes, which serde would match after unescaping.
    fn key(self, key: Span) -> Option<&'t str> {
        (!key.escaped).then(|| &self.text[key.range])
    }

    /// A string value's text, borrowed when it holds no escape. Escapes are common enough
    /// (every authorization reason quotes its binding) that they are not left to serde_json.
    fn string(self, value: Span) -> Option<Cow<'t, str>> {
        let Range { start, end } = value.range;
        if !value.escaped {
            return Some(Cow::Borrowed(&self.text[start + 1..end - 1]));
        }
        let mut unescaped = Vec::with_capacity(end - start);
        unescape(&self.text.as_bytes()[start + 1..end], &mut unescaped)?;
        String::from_utf8(unescaped).ok().map(Cow::Owned)
    }

    fn text(self, value: Span) -> Option<Text<'t>> {
        if self.first_byte(&value) != b'"' {
            return Some(Text(None));
        }
        Some(Text(Some(self.string(value)?)))
    }

    fn texts(self, value: Span) -> Option<Texts<'t>> {
        let mut texts = Texts::default();
        if self.first_byte(&value) != b'[' {
            return Some(texts);
        }
        for item in Walk::new(self.text, value.range.start) {
            let item = item?.value;
            if self.first_byte(&item) == b'"' {
                texts.0.push(self.string(item)?);
            }
        }
        Some(texts)
    }

    /// An integer as serde_json reads one: the plain digits by hand, any other number by
    /// serde_json itself (a sign, a fraction, an exponent, `-0`, beyond `i64`).
    fn integer(self, value: Span) -> Option<Integer> {
        let digits = &self.text[value.range];
        if digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Integer(digits.parse().ok()));
        }
        serde_json::from_str(digits).ok()
    }

    fn body(self, value: Span) -> Option<JsonText<'t>> {
        let value = &self.text[value.range];
        // As serde reads an `Option`: a `null` body is no body.
        (value != "null").then(|| JsonText::validated(value))
    }

    /// An object read by `read`; absent when the value is not an object.
    fn object<T>(self, value: Span, read: fn(Self, Span) -> Option<T>) -> Option<Lenient<T>> {
        if self.first_byte(&value) != b'{' {
            return Some(Lenient(None));
        }
        Some(Lenient(Some(read(self, value)?)))
    }

    fn members(self, object: Span) -> Walk<'t> {
        Walk::new(self.text, object.range.start)
    }

    fn user(self, object: Span) -> Option<UserInfo<'t>> {
        let mut user = UserInfo::default();
        let mut seen = 0;
        for member in self.members(object) {
            let Member { key, value } = member?;
            match self.key(key)? {
                "username" => user.username = self.once(&mut seen, 0)?.text(value)?,
                "uid" => user.uid = self.once(&mut seen, 1)?.text(value)?,
                "groups" => user.groups = self.once(&mut seen, 2)?.texts(value)?,
                "extra" => user.extra = self.once(&mut seen, 3)?.object(value, Self::extra)?,
                _ => {}
            }
        }
        Some(user)
    }

    fn extra(self, object: Span) -> Option<UserExtra<'t>> {
        let mut extra = UserExtra::default();
        let mut seen = 0;
        for member in self.members(object) {
            let Member { key, value } = member?;
            match self.key(key)? {
                "arn" => extra.arn = self.once(&mut seen, 0)?.texts(value)?,
                "canonicalArn" => extra.canonical_arn = self.once(&mut seen, 1)?.texts(value)?,
                "sessionName" => extra.session_name = self.once(&mut seen, 2)?.texts(value)?,
                "accessKeyId" => extra.access_key_id = self.once(&mut seen, 3)?.texts(value)?,
                "principalId" => extra.principal_id = self.once(&mut seen, 4)?.texts(value)?,
                _ => {}
            }
        }
        Some(extra)
    }

    fn object_ref(self, object: Span) -> Option<ObjectReference<'t>> {
        let mut object_ref = ObjectReference::default();
        let mut seen = 0;
        for member in self.members(object) {
            let Member { key, value } = member?;
            let slot = match self.key(key)? {
                "resource" => (&mut object_ref.resource, 0),
                "namespace" => (&mut object_ref.namespace, 1),
                "name" => (&mut object_ref.name, 2),
                "uid" => (&mut object_ref.uid, 3),
                "apiGroup" => (&mut object_ref.api_group, 4),
                "apiVersion" => (&mut object_ref.api_version, 5),
                "resourceVersion" => (&mut object_ref.resource_version, 6),
                "subresource" => (&mut object_ref.subresource, 7),
                _ => continue,
            };
            *slot.0 = self.once(&mut seen, slot.1)?.text(value)?;
        }
        Some(object_ref)
    }

    fn status(self, object: Span) -> Option<Status<'t>> {
        let mut status = Status::default();
        let mut seen = 0;
        for member in self.members(object) {
            let Member { key, value } = member?;
            match self.key(key)? {
                "code" => status.code = self.once(&mut seen, 0)?.integer(value)?,
                "reason" => status.reason = self.once(&mut seen, 1)?.text(value)?,
                "message" => status.message = self.once(&mut seen, 2)?.text(value)?,
                "status" => status.status = self.once(&mut seen, 3)?.text(value)?,
                _ => {}
            }
        }
        Some(status)
    }

    fn annotations(self, object: Span) -> Option<Annotations<'t>> {
        let mut annotations = Annotations::default();
        // The keys seen: a few are compared one by one, more go to a set, as an event may
        // carry any number of annotations.
        let mut few: Vec<&str> = Vec::new();
        let mut many: HashSet<&str> = HashSet::new();
        for member in self.members(object) {
            let Member { key, value } = member?;
            let key = self.key(key)?;
            if few.len() < FEW_ANNOTATIONS {
                if few.contains(&key) {
                    return None;
                }
                few.push(key);
            } else if few.contains(&key) || !many.insert(key) {
                return None;
            }
            let value = self.text(value)?;
            match key {
                DECISION => annotations.decision = value.clone(),
                REASON => annotations.reason = value.clone(),
                _ => {}
            }
            if let Some(value) = value.0 {
                annotations.entries.push((Cow::Borrowed(key), value));
            }
        }
        Some(annotations)
    }
}

/// The members of an object, or the items of an array (their `key` empty), of validated JSON
/// text, in order. An item is `None` only if the text was not valid after all.
struct Walk<'t> {
    bytes: &'t [u8],
    at: usize,
    is_object: bool,
    done: bool,
}

impl<'t> Walk<'t> {
    /// The members or items of the object or array opening at `open`.
    fn new(text: &'t str, open: usize) -> Walk<'t> {
        let bytes = text.as_bytes();
        Walk {
            bytes,
            at: open + 1,
            is_object: bytes[open] == b'{',
            done: false,
        }
    }

    fn next_member(&mut self) -> Option<Option<Member>> {
        let b = self.bytes;
        let mut at = ws(b, self.at);
        if *b.get(at)? == b',' {
            at = ws(b, at + 1);
        }
        if matches!(b.get(at)?, b'}' | b']') {
            return Some(None);
        }
        let mut key = Span {
            range: at..at,
            escaped: false,
        };
        if self.is_object {
            let (end, escaped) = string_escapes(b, at + 1)?;
            key = Span {
                range: at + 1..end - 1,
                escaped,
            };
            at = ws(b, end);
            if *b.get(at)? != b':' {
                return None;
            }
            at = ws(b, at + 1);
        }
        let (end, escaped) = skip_value(b, at)?;
        self.at = end;
        Some(Some(Member {
            key,
            value: Span {
                range: at..end,
                escaped,
            },
        }))
    }
}

impl Iterator for Walk<'_> {
    type Item = Option<Member>;

    fn next(&mut self) -> Option<Option<Member>> {
        if self.done {
            return None;
        }
        match self.next_member() {
            Some(Some(member)) => Some(Some(member)),
            Some(None) => {
                self.done = true;
                None
            }
            None => {
                self.done = true;
                Some(None)
            }
        }
    }
}

/// Past the value at `at` of validated JSON text, and for a string whether it holds escapes.
fn skip_value(b: &[u8], at: usize) -> Option<(usize, bool)> {
    match *b.get(at)? {
        b'"' => string_escapes(b, at + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = at;
            loop {
                match *b.get(at)? {
                    b'"' => {
                        at = string(b, at + 1)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some((at + 1, false));
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let len = b[at..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(b.len() - at);
            Some((at + len, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::single_pass::scan;

    /// The hand reader and serde on the same text: the same event, or the reader unsure.
    fn read_alike(text: &str) -> Option<String> {
        let mut members = Vec::new();
        scan(text, 100, &mut members).expect("valid JSON the scan accepts");
        let by_hand = read(text, &members)?;
        let by_serde = serde_json::from_str::<AuditEvent<'_>>(text);
        let by_serde = by_serde.expect("serde reads what the hand reader reads");
        let (by_hand, by_serde) = (format!("{by_hand:?}"), format!("{by_serde:?}"));
        assert_eq!(by_hand, by_serde, "{text}");
        Some(by_hand)
    }

    #[test]
    fn every_field_reads_as_serde_reads_it() {
        let text = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse",
            "auditID":"a-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/caf\u00e9\/pods",
            "verb":"create","user":{"username":"alice","uid":"u","groups":["g1",2,"g\"3",null],
            "extra":{"arn":["arn:aws:sts::1:assumed-role/r/s"],"canonicalArn":["c"],"sessionName":["s"],
            "accessKeyId":["AKIA"],"principalId":["AROA:s"],"other":[1]},"more":{"x":[]}},
            "impersonatedUser":{"username":"bob"},"sourceIPs":["10.0.0.1","::1"],"userAgent":"kubectl",
            "objectRef":{"resource":"pods","namespace":"default","name":"p","uid":"x","apiGroup":"",
            "apiVersion":"v1","resourceVersion":"7","subresource":"exec"},
            "responseStatus":{"metadata":{},"code":201,"reason":"r","message":"m","status":"Success"},
            "requestObject":{"a":[1,{"b":"}"}]},"responseObject":null,
            "requestReceivedTimestamp":"2024-05-21T10:00:00.000000Z",
            "stageTimestamp":"2024-05-21T10:00:00.100000Z","timestamp":"t",
            "annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"rbac",
            "n":1,"e":"\u00e9"}, "unknown": [{"deep":[[[]]]}], "unknown2": -1.5e3 }"#;
        let read = read_alike(text).expect("sure of a usual event");
        assert!(read.contains("café/pods"), "{read}");
    }

    #[test]
    fn escaped_strings_read_alike_short_and_across_blocks() {
        let long = r#"RBAC: allowed by ClusterRoleBinding \"system:basic-user\" of ClusterRole \"system:basic-user\" to Group \"system:authenticated\""#;
        let text = format!(
            r#"{{"userAgent":"a\"b\\c\/d\n\t\u00e9\ud83d\ude00 end","sourceIPs":["\u0031\u0030.0.0.1"],
            "annotations":{{"authorization.k8s.io/reason":"{long}","r2":"{long}{long}"}}}}"#
        );
        let read = read_alike(&text).expect("sure");
        assert!(read.contains("a\\\"b"), "{read}");
    }

    #[test]
    fn values_of_other_types_read_as_absent_alike() {
        for text in [
            r#"{"kind":0,"verb":["get"],"user":"alice","sourceIPs":"10.0.0.1"}"#,
            r#"{"user":[{"username":"a"}],"objectRef":true,"responseStatus":null}"#,
            r#"{"user":{"username":{"a":1},"groups":{"a":"b"},"extra":[]}}"#,
            r#"{"user":{"extra":{"arn":"not a list","principalId":[{"a":1},"p"]}}}"#,
            r#"{"annotations":[],"impersonatedUser":{}}"#,
            r#"{"annotations":{"a":null,"b":{"c":"d"},"c":[]}}"#,
            r#"{"requestObject":"s","responseObject":[null]}"#,
        ] {
            read_alike(text).expect("sure");
        }
    }

    #[test]
    fn codes_read_as_serde_json_reads_integers() {
        for code in [
            "0",
            "200",
            "-5",
            "-0",
            "200.0",
            "2e2",
            "999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            r#""403""#,
            "true",
            "null",
            "[200]",
            "{}",
        ] {
            let text = format!(r#"{{"responseStatus":{{"code":{code}}}}}"#);
            read_alike(&text).expect("sure");
        }
    }

    #[test]
    fn escaped_keys_and_duplicates_are_left_to_the_reference() {
        for text in [
            r#"{"ver\u0062":"get"}"#,
            r#"{"verb":"get","verb":"list"}"#,
            r#"{"requestObject":{},"requestObject":{}}"#,
            r#"{"user":{"username":"a","username":"b"}}"#,
            r#"{"user":{"extra":{"arn":[],"arn":[]}}}"#,
            r#"{"objectRef":{"name":"a","name":"b"}}"#,
            r#"{"responseStatus":{"code":1,"code":2}}"#,
            r#"{"annotations":{"a":"1","a":"2"}}"#,
            r#"{"annotations":{"a":null,"a":"2"}}"#,
            r#"{"annotations":{"\u0061":"1"}}"#,
            r#"{"user":{"user\u006eame":"a"}}"#,
        ] {
            let mut members = Vec::new();
            scan(text, 100, &mut members).expect("valid JSON");
            assert!(read(text, &members).is_none(), "{text}");
        }
        let many: Vec<String> = (0..40).map(|i| format!(r#""k{i}":"v""#)).collect();
        let annotations = |keys: &[String]| format!(r#"{{"annotations":{{{}}}}}"#, keys.join(","));
        read_alike(&annotations(&many)).expect("sure of 40 distinct annotations");
        for (first, again) in [(3, 30), (20, 30), (3, 10)] {
            let mut keys = many.clone();
            keys[again] = keys[first].clone();
            let text = annotations(&keys);
            let mut members = Vec::new();
            scan(&text, 100, &mut members).expect("valid JSON");
            assert!(read(&text, &members).is_none(), "k{first} twice");
        }
        // Unknown fields may repeat, as serde ignores them.
        read_alike(r#"{"x":1,"x":2,"user":{"y":1,"y":2}}"#).expect("sure");
    }
}
