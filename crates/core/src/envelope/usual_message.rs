//! The usual payload read by hand: one subscription message of the shape CloudWatch Logs writes,
//! its log events' messages unescaped 64 bytes at a time ([`super::unescape`]). Most of a
//! payload's bytes are those messages, escaped audit-event JSON.
//!
//! The reader answers only for what it is sure of: the five fields and `subscriptionFilters`
//! (a list of plain strings), each once; log events of `id` (a string), `timestamp` (an integer)
//! and `message`, each once; within the event budget; nothing after the message but whitespace.
//! Anything else (another field, a number where a string is usual, an escape it does not
//! vouch for, invalid JSON) is `None`, and [`super::parse_messages`] reads the payload with a
//! full parser, which decides and explains. The fuzz target `subscription_decoder` holds the two
//! to the same answer, errors included.

use std::borrow::Cow;
use std::ops::Range;

use super::models::{EventId, LogEvent, SubscriptionMessage};
use super::unescape::unescape;

/// The message of `json` when it is one usual subscription message of at most `max_events` log
/// events; `None` for anything else. Escaped log event messages are unescaped one after another
/// into `unescaped`, reserved once at the payload's size (nothing unescapes longer than it was),
/// and borrowed from there: no buffer grows, and no event is copied a second time.
pub(super) fn read<'a>(
    json: &'a [u8],
    unescaped: &'a mut Vec<u8>,
    max_events: usize,
) -> Option<SubscriptionMessage<'a>> {
    unescaped.clear();
    unescaped.reserve(json.len());
    let mut reader = Reader {
        json,
        at: 0,
        unescaped,
    };
    let message = reader.message(max_events)?;
    reader.whitespace();
    (reader.at == json.len()).then_some(())?;
    // One check of every unescaped byte, which also makes each message's range a `str`.
    let unescaped = simdutf8::basic::from_utf8(unescaped).ok()?;
    let log_events = message.log_events.into_iter().map(|event| {
        Some(LogEvent {
            id: event.id,
            timestamp: event.timestamp,
            message: match event.message {
                Text::Plain(text) => Cow::Borrowed(text),
                Text::Unescaped(range) => Cow::Borrowed(unescaped.get(range)?),
            },
        })
    });
    Some(SubscriptionMessage {
        message_type: message.message_type,
        owner: message.owner,
        log_group: message.log_group,
        log_stream: message.log_stream,
        log_events: log_events.collect::<Option<_>>()?,
    })
}

struct Reader<'a, 'u> {
    json: &'a [u8],
    at: usize,
    /// Where escaped log event messages are unescaped, one after another.
    unescaped: &'u mut Vec<u8>,
}

/// A log event message: borrowed from the payload, or unescaped at this range of the buffer.
enum Text<'a> {
    Plain(&'a str),
    Unescaped(Range<usize>),
}

/// A log event read, its message maybe still in the buffer being filled.
struct Event<'a> {
    id: EventId<'a>,
    timestamp: i64,
    message: Text<'a>,
}

/// A subscription message read, its events' messages maybe still in the buffer being filled.
struct Message<'a> {
    message_type: Cow<'a, str>,
    owner: Cow<'a, str>,
    log_group: Cow<'a, str>,
    log_stream: Cow<'a, str>,
    log_events: Vec<Event<'a>>,
}

impl<'a> Reader<'a, '_> {
    fn message(&mut self, max_events: usize) -> Option<Message<'a>> {
        let (mut message_type, mut owner, mut log_group, mut log_stream, mut log_events) =
            (None, None, None, None, None);
        let mut filters = false;
        self.object(|reader, key| match key {
            b"messageType" => once(&mut message_type, reader.string()?),
            b"owner" => once(&mut owner, reader.string()?),
            b"logGroup" => once(&mut log_group, reader.string()?),
            b"logStream" => once(&mut log_stream, reader.string()?),
            b"logEvents" => once(&mut log_events, reader.log_events(max_events)?),
            b"subscriptionFilters" if !filters => {
                filters = true;
                reader.list(|reader| reader.string().map(drop))
            }
            _ => None,
        })?;
        Some(Message {
            message_type: message_type?,
            owner: owner?,
            log_group: log_group?,
            log_stream: log_stream?,
            log_events: log_events?,
        })
    }

    fn log_events(&mut self, max_events: usize) -> Option<Vec<Event<'a>>> {
        let mut events = Vec::new();
        self.list(|reader| {
            if events.len() == max_events {
                return None;
            }
            events.push(reader.log_event()?);
            Some(())
        })?;
        Some(events)
    }

    fn log_event(&mut self) -> Option<Event<'a>> {
        let (mut id, mut timestamp, mut message) = (None, None, None);
        self.object(|reader, key| match key {
            b"id" => once(&mut id, EventId(reader.string()?)),
            b"timestamp" => once(&mut timestamp, reader.integer()?),
            b"message" => once(&mut message, reader.message_text()?),
            _ => None,
        })?;
        Some(Event {
            id: id?,
            timestamp: timestamp?,
            message: message?,
        })
    }

    /// An object whose keys are plain strings, each value read by `member`.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.expect(b'"')?;
            let key = self.plain_key()?;
            self.expect(b':')?;
            self.whitespace();
            member(self, key)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A list, each item read by `item`.
    fn list(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.whitespace();
            item(self)?;
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A key without escapes, its opening quote read.
    fn plain_key(&mut self) -> Option<&'a [u8]> {
        let rest = self.json.get(self.at..)?;
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        (rest[len] == b'"').then_some(())?;
        self.at += len + 1;
        Some(&rest[..len])
    }

    /// A string value, borrowed unless it holds escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let mut unescaped = Vec::new();
        let text = self.string_into(&mut unescaped)?;
        match text {
            Some(plain) => Some(Cow::Borrowed(plain)),
            None => simdutf8::basic::from_utf8(&unescaped)
                .ok()
                .map(|text| Cow::Owned(text.to_owned())),
        }
    }

    /// A log event message, borrowed unless it holds escapes; then unescaped onto the buffer,
    /// whose UTF-8 [`read`] checks at the end.
    fn message_text(&mut self) -> Option<Text<'a>> {
        let start = self.unescaped.len();
        let mut unescaped = std::mem::take(self.unescaped);
        let text = self.string_into(&mut unescaped);
        *self.unescaped = unescaped;
        Some(match text? {
            Some(plain) => Text::Plain(plain),
            None => Text::Unescaped(start..self.unescaped.len()),
        })
    }

    /// A string value: `Some` of its text when it holds no escape, else `None` with its value's
    /// bytes appended to `out`, their UTF-8 not checked yet.
    fn string_into(&mut self, out: &mut Vec<u8>) -> Option<Option<&'a str>> {
        self.expect(b'"')?;
        let rest = self.json.get(self.at..)?;
        let first = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[..first].iter().any(|&b| b < 0x20) {
            return None;
        }
        if rest[first] == b'"' {
            self.at += first + 1;
            return std::str::from_utf8(&rest[..first]).ok().map(Some);
        }
        out.extend_from_slice(&rest[..first]);
        let read = unescape(&rest[first..], out)?;
        self.at += first + read;
        Some(None)
    }

    /// An integer that fits an `i64`, as JSON writes it: no fraction, exponent or leading zero.
    fn integer(&mut self) -> Option<i64> {
        let rest = self.json.get(self.at..)?;
        let negative = rest.first() == Some(&b'-');
        let digits = &rest[usize::from(negative)..];
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        let after = digits.get(len);
        if len == 0 || (len > 1 && digits[0] == b'0') || matches!(after, Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let text = &rest[..usize::from(negative) + len];
        let value = std::str::from_utf8(text).ok()?.parse().ok()?;
        self.at += text.len();
        Some(value)
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.json.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.whitespace();
        self.json.get(self.at).copied()
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }
}

/// Fills `slot` with the value of a field seen for the first time; `None` for a repeated field.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.is_none().then_some(())?;
    *slot = Some(value);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::parse_messages;
    use crate::oracle::with_reference;

    const EVENT: &str = r#"{\"kind\":\"Event\",\"verb\":\"get\",\"requestURI\":\"/api/v1/namespaces/a\\\\b?x=\\\"y\\\"\",\"annotations\":{\"a\":\"\\u003cb\\u003e\"}}"#;

    fn message(events: &str) -> String {
        format!(
            r#"{{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/eks/prod/cluster","logStream":"kube-apiserver-audit-1","subscriptionFilters":["a","b"],"logEvents":[{events}]}}"#
        )
    }

    fn event(id: &str, message: &str) -> String {
        format!(r#"{{"id":"{id}","timestamp":1700000000000,"message":"{message}"}}"#)
    }

    /// What the full parsers (sonic-rs, then serde_json) read `json` as, for comparison.
    fn reference(json: &[u8], max_events: usize) -> String {
        let mut unescaped = Vec::new();
        format!(
            "{:?}",
            with_reference(|| parse_messages(json, &mut unescaped, max_events))
        )
    }

    #[test]
    fn reads_the_usual_message_as_the_full_parsers_do() {
        let long = format!("{}{EVENT}", "x".repeat(200));
        let usual = [
            message(&[event("1", EVENT), event("2", &long), event("3", "plain text")].join(",")),
            message(""),
            message(&event("4", r#"\n\t\/\u00e9\ud83d\ude00 r\u00e9sum\u00e9 caf\u00e9"#)),
            message(&event("5", "r\u{e9}sum\u{e9} \u{1f600}")),
            format!(" \n{}\r\n", message(&event("6", EVENT)).replace(',', " , ").replace(':', ": ")),
            r#"{"logEvents":[],"logStream":"s","logGroup":"g","owner":"o","messageType":"CONTROL_MESSAGE"}"#.to_owned(),
            message(&event("7", EVENT)).replace(r#""owner":"123456789012""#, r#""owner":"12\u0033""#),
        ];
        for json in usual {
            let mut unescaped = Vec::new();
            let read = read(json.as_bytes(), &mut unescaped, 10);
            assert!(read.is_some(), "{json}");
            assert_eq!(
                format!("{:?}", Ok::<_, ()>(vec![read.unwrap()])),
                reference(json.as_bytes(), 10),
                "{json}"
            );
        }
    }

    #[test]
    fn leaves_anything_else_to_the_full_parsers() {
        let one = message(&event("1", EVENT));
        let unusual = [
            // Shapes the full parsers read, or refuse with a reason.
            one.replace(r#""owner""#, r#""extra":1,"owner""#),
            one.replace(r#""owner":"123456789012","#, ""),
            one.replace(r#""owner""#, r#""logGroup":"again","owner""#),
            one.replace(r#""id":"1""#, r#""id":1"#),
            one.replace("1700000000000", "1700000000000.0"),
            one.replace("1700000000000", "17e11"),
            one.replace("1700000000000", "017"),
            one.replace("1700000000000", "99999999999999999999"),
            one.replace(r#""id":"1","#, r#""id":"1","seq":2,"#),
            format!("{one}{one}"),
            format!("{one} x"),
            message(&[event("1", EVENT), event("2", EVENT)].join(",")),
            // Text that is not JSON, or not a string this reader vouches for.
            one.replace("Event", "Ev\\x"),
            one.replace("Event", "\\ud83d"),
            one.replace("Event", "Ev\u{1}nt"),
            one.replace("Event", "Ev\"nt"),
            one.replace(",\"logEvents\"", ",,\"logEvents\""),
            one.replace("]}", ",]}"),
            one[..one.len() - 1].to_owned(),
        ];
        let mut unescaped = Vec::new();
        for json in unusual {
            assert!(read(json.as_bytes(), &mut unescaped, 1).is_none(), "{json}");
        }
        let mut invalid_utf8 = one.clone().into_bytes();
        let at = one.find("Event").unwrap();
        invalid_utf8[at] = 0xff;
        assert!(read(&invalid_utf8, &mut unescaped, 1).is_none());
        assert!(reference(&invalid_utf8, 1).starts_with("Err"));
    }
}
