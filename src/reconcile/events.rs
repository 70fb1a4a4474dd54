//! The pure reading of both sides of `eks-audit reconcile`: what the forwarder should have
//! written for each CloudWatch event (decided by the core, as the Lambda decides it), and what
//! each object line says it holds, flat, OCSF or quarantine, read from gzip bodies as they
//! stream.
//!
//! Events are identified by fixed-size hashes, never by strings ([`Key`]): an event the
//! forwarder keeps by its `auditID` and `stage` (one request's stages share the `auditID`), or
//! by its CloudWatch event id when it has no `auditID`; a quarantined event by its CloudWatch
//! event id.

use std::borrow::Cow;
use std::io::Write;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use eks_audit_core::schema::time::event_time;
use eks_audit_core::{AuditEvent, EventContext, EventFate, ProcessOptions, process_event};

use super::ledger::Ledger;
use super::window::from_millis;
use crate::fingerprint::key_of;

/// A 128-bit hash standing for one event on either side of the comparison.
pub type Key = u128;

/// The key of a kept event: its `auditID` and `stage`, or, without an `auditID`, its CloudWatch
/// event id; `None` when it has neither. Empty strings count as absent.
pub fn event_key(
    audit_id: Option<&str>,
    stage: Option<&str>,
    event_id: Option<&str>,
) -> Option<Key> {
    fn present(text: Option<&str>) -> Option<&str> {
        text.filter(|t| !t.is_empty())
    }
    match (present(audit_id), present(event_id)) {
        (Some(audit_id), _) => Some(key_of(&[
            b"audit",
            audit_id.as_bytes(),
            present(stage).unwrap_or_default().as_bytes(),
        ])),
        (None, Some(event_id)) => Some(key_of(&[b"event", event_id.as_bytes()])),
        (None, None) => None,
    }
}

/// The key of a quarantined event: its CloudWatch event id.
pub fn quarantine_key(event_id: &str) -> Key {
    key_of(&[b"quarantine", event_id.as_bytes()])
}

/// One CloudWatch log event as `FilterLogEvents` returns it.
#[derive(Debug, Clone, Copy)]
pub struct LogEvent<'a> {
    /// The log group.
    pub log_group: &'a str,
    /// The log stream.
    pub log_stream: &'a str,
    /// The CloudWatch event id.
    pub event_id: &'a str,
    /// The CloudWatch timestamp, epoch milliseconds.
    pub timestamp: i64,
    /// The message: the audit event's text.
    pub message: &'a str,
}

/// What the forwarder does with one CloudWatch event, as far as the comparison goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Delivered as one line in an event object of the hour of `time` (its audit time).
    Delivered {
        /// The event's time, as the forwarder keys it (contract §6.1).
        time: OffsetDateTime,
        /// The event's key.
        key: Key,
    },
    /// Quarantined in the quarantine object of the hour of `time` (its CloudWatch timestamp).
    Quarantined {
        /// The CloudWatch timestamp.
        time: OffsetDateTime,
        /// The key of its CloudWatch event id.
        key: Key,
    },
    /// Dropped by the stage or URI filter: nothing is written.
    Dropped,
    /// Kept, but without any valid time to place it in an hour (not even a CloudWatch
    /// timestamp); not counted.
    Timeless,
}

/// What the forwarder does with `event` under `options`, decided by the core exactly as the
/// Lambda decides it (limits, strict JSON, parsing, stage and URI filter, redaction, OCSF's
/// required attributes). `scratch` receives the normalized line, which is not kept.
pub fn expected(
    event: &LogEvent<'_>,
    cluster: &str,
    options: &ProcessOptions,
    scratch: &mut Vec<u8>,
) -> Expected {
    scratch.clear();
    let context = EventContext {
        account: None,
        region: None,
        cluster: Some(cluster),
        log_group: Some(event.log_group),
        log_stream: Some(event.log_stream),
        event_id: Some(event.event_id),
        cloudwatch_timestamp: Some(event.timestamp),
    };
    match process_event(event.message, &context, options, scratch) {
        EventFate::Kept { .. } => {
            // Kept means it parses; parsed again here for the fields the key is made of.
            let Ok(audit) = AuditEvent::parse(event.message) else {
                return Expected::Timeless;
            };
            let Some(time) = event_time(&audit, Some(event.timestamp)) else {
                return Expected::Timeless;
            };
            match event_key(
                audit.audit_id.non_empty(),
                audit.stage.non_empty(),
                Some(event.event_id),
            ) {
                Some(key) => Expected::Delivered { time, key },
                None => Expected::Timeless,
            }
        }
        EventFate::Dropped(_) => Expected::Dropped,
        // A salvaged event's flagged line is not counted (see `Found::Salvaged`); its
        // original text is quarantined like any other.
        EventFate::Quarantined(_) | EventFate::Salvaged { .. } => {
            match from_millis(event.timestamp) {
                Some(time) => Expected::Quarantined {
                    time,
                    key: quarantine_key(event.event_id),
                },
                None => Expected::Timeless,
            }
        }
    }
}

/// What one object line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A flat or OCSF event line: its time as the forwarder keyed it, and its key (`None` when
    /// the line names neither an audit id nor a CloudWatch event id).
    Event {
        /// `TimeGenerated` (flat), or `start_time`, else `time` (OCSF).
        time: Option<OffsetDateTime>,
        /// The event's key.
        key: Option<Key>,
    },
    /// A quarantine line: its CloudWatch timestamp and the key of its CloudWatch id.
    Quarantined {
        /// `timestamp`.
        time: Option<OffsetDateTime>,
        /// The key of `id`.
        key: Option<Key>,
    },
    /// The flagged line of a truncated event (flat `Truncated`, OCSF `unmapped.truncated`):
    /// the event is accounted by its quarantine line, which holds its original text (§6.2).
    Salvaged,
    /// Not a JSON object of a known shape.
    Unreadable,
}

/// The fields of both event schemas that identify and place an event. Flat (contract §4):
/// `TimeGenerated`, `AuditId`, `Stage`, `EventId`. OCSF (contract §5): `class_uid`, `time`,
/// `start_time` (`requestReceivedTimestamp`), `metadata.uid` (the `auditID`), `message` (the
/// stage). Every other field is skipped unread.
#[derive(Deserialize)]
struct EventLine<'a> {
    #[serde(rename = "TimeGenerated", borrow, default)]
    time_generated: Option<Cow<'a, str>>,
    #[serde(rename = "AuditId", borrow, default)]
    audit_id: Option<Cow<'a, str>>,
    #[serde(rename = "Stage", borrow, default)]
    stage: Option<Cow<'a, str>>,
    #[serde(rename = "EventId", borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(default)]
    class_uid: Option<i64>,
    #[serde(default)]
    time: Option<i64>,
    #[serde(default)]
    start_time: Option<i64>,
    #[serde(borrow, default)]
    metadata: Option<OcsfMetadata<'a>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(rename = "Truncated", default)]
    truncated: bool,
    #[serde(borrow, default)]
    unmapped: Option<OcsfUnmapped<'a>>,
}

/// The OCSF `unmapped` member, for its `truncated` flag.
#[derive(Deserialize)]
struct OcsfUnmapped<'a> {
    #[serde(borrow, default)]
    truncated: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OcsfMetadata<'a> {
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
}

/// The fields of a quarantine line (contract §6.2) that identify and place it.
#[derive(Deserialize)]
struct QuarantineLine<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<i64>,
}

/// What `line` (without its `\n`) of an event object holds, flat or OCSF, told apart per line
/// (OCSF lines have a `class_uid`), so objects written under either format, or both, are read.
pub fn event_line(line: &[u8]) -> Found {
    if line.first() != Some(&b'{') {
        return Found::Unreadable;
    }
    let Ok(parsed) = serde_json::from_slice::<EventLine<'_>>(line) else {
        return Found::Unreadable;
    };
    let ocsf_truncated = parsed
        .unmapped
        .as_ref()
        .and_then(|u| u.truncated.as_deref())
        == Some("true");
    if parsed.truncated || ocsf_truncated {
        return Found::Salvaged;
    }
    if parsed.class_uid.is_some() {
        let time = parsed.start_time.or(parsed.time).and_then(from_millis);
        let uid = parsed.metadata.and_then(|m| m.uid);
        let key = event_key(uid.as_deref(), parsed.message.as_deref(), None);
        Found::Event { time, key }
    } else {
        let time = parsed
            .time_generated
            .and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok());
        let key = event_key(
            parsed.audit_id.as_deref(),
            parsed.stage.as_deref(),
            parsed.event_id.as_deref(),
        );
        Found::Event { time, key }
    }
}

/// What `line` (without its `\n`) of a quarantine object holds.
pub fn quarantine_line(line: &[u8]) -> Found {
    if line.first() != Some(&b'{') {
        return Found::Unreadable;
    }
    match serde_json::from_slice::<QuarantineLine<'_>>(line) {
        Ok(parsed) => Found::Quarantined {
            time: parsed.timestamp.and_then(from_millis),
            key: parsed
                .id
                .as_deref()
                .filter(|id| !id.is_empty())
                .map(quarantine_key),
        },
        Err(_) => Found::Unreadable,
    }
}

/// The longest line read from an object: an event line holds one audit event of at most
/// `EKS_AUDIT_MAX_EVENT_BYTES` (1 MiB by default) with its columns; anything longer is counted
/// unreadable rather than buffered without bound.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// The lines of one object, fed its (gzip) body chunk by chunk: each complete line is
/// classified and counted in the ledger at once, so memory holds one chunk and one line, not
/// the object.
pub struct ObjectLines<'l> {
    decoder: flate2::write::MultiGzDecoder<LineSink<'l>>,
}

struct LineSink<'l> {
    ledger: &'l mut Ledger,
    quarantine: bool,
    partial: Vec<u8>,
    /// The current line is over [`MAX_LINE_BYTES`]: skip to its end.
    overlong: bool,
}

impl<'l> ObjectLines<'l> {
    /// Lines of a quarantine object when `quarantine`, else of an event object.
    pub fn new(ledger: &'l mut Ledger, quarantine: bool) -> ObjectLines<'l> {
        ObjectLines {
            decoder: flate2::write::MultiGzDecoder::new(LineSink {
                ledger,
                quarantine,
                partial: Vec::new(),
                overlong: false,
            }),
        }
    }

    /// The next chunk of the body. An error means the body is not gzip or is corrupt.
    pub fn feed(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.decoder.write_all(chunk)
    }

    /// The end of the body: checks the gzip trailer and counts a last line without `\n`.
    pub fn finish(self) -> std::io::Result<()> {
        let mut sink = self.decoder.finish()?;
        if !sink.partial.is_empty() || sink.overlong {
            sink.line_end();
        }
        Ok(())
    }
}

impl LineSink<'_> {
    fn line_end(&mut self) {
        let found = if self.overlong {
            Found::Unreadable
        } else if self.quarantine {
            quarantine_line(&self.partial)
        } else {
            event_line(&self.partial)
        };
        self.ledger.found(found);
        self.partial.clear();
        self.overlong = false;
    }
}

impl Write for LineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(at) = memchr_newline(rest) {
            self.push(&rest[..at]);
            self.line_end();
            rest = &rest[at + 1..];
        }
        self.push(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LineSink<'_> {
    fn push(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE_BYTES {
            self.overlong = true;
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use eks_audit_core::{Filter, Format, StageFilter};

    use super::*;
    use crate::reconcile::ledger::Ledger;
    use crate::reconcile::window::Window;

    fn window() -> Window {
        Window::new(
            datetime!(2024-05-21 09:00 UTC),
            datetime!(2024-05-21 10:30 UTC),
        )
        .unwrap()
    }

    fn audit(audit_id: &str, stage: &str, time: &str, uri: &str) -> String {
        json!({"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":audit_id,"stage":stage,
               "requestURI":uri,"verb":"get","user":{"username":"u"},"sourceIPs":["10.0.0.1"],
               "requestReceivedTimestamp":time,"stageTimestamp":time})
        .to_string()
    }

    fn log_event<'a>(id: &'a str, timestamp: i64, message: &'a str) -> LogEvent<'a> {
        LogEvent {
            log_group: "/aws/eks/prod/cluster",
            log_stream: "kube-apiserver-audit-1",
            event_id: id,
            timestamp,
            message,
        }
    }

    // 1716285600000 ms is 2024-05-21T10:00:00Z.
    const TEN: i64 = 1_716_285_600_000;

    #[test]
    fn the_forwarder_s_decision_is_the_core_s() {
        let options = ProcessOptions::default();
        let mut scratch = Vec::new();
        let kept = audit("a", "ResponseComplete", "2024-05-21T09:59:59.5Z", "/api");
        let received = audit("a", "RequestReceived", "2024-05-21T09:59:59.5Z", "/api");
        let health = audit(
            "b",
            "ResponseComplete",
            "2024-05-21T09:59:59.5Z",
            "/healthz",
        );
        let expect = |message: &str| {
            expected(
                &log_event("7", TEN, message),
                "prod",
                &options,
                &mut Vec::new(),
            )
        };
        assert_eq!(
            expect(&kept),
            Expected::Delivered {
                // The audit time, not the CloudWatch timestamp: the hour before.
                time: datetime!(2024-05-21 09:59:59.5 UTC),
                key: event_key(Some("a"), Some("ResponseComplete"), None).unwrap(),
            }
        );
        assert_eq!(expect(&received), Expected::Dropped, "stage filter");
        assert_eq!(expect(&health), Expected::Dropped, "URI filter");
        assert_eq!(
            expect("E0521 not json"),
            Expected::Quarantined {
                time: datetime!(2024-05-21 10:00 UTC),
                key: quarantine_key("7"),
            }
        );
        // OCSF quarantines what it cannot map (no sourceIPs here), and the stage filter follows
        // the settings.
        let ocsf = ProcessOptions {
            format: Format::Ocsf,
            filter: Filter {
                stages: StageFilter::All,
                exclude_uris: Vec::new(),
            },
            ..ProcessOptions::default()
        };
        let unmappable =
            json!({"kind":"Event","auditID":"c","stage":"ResponseComplete","verb":"get",
            "user":{"username":"u"},"requestReceivedTimestamp":"2024-05-21T10:00:00Z"})
            .to_string();
        assert!(matches!(
            expected(
                &log_event("8", TEN, &unmappable),
                "prod",
                &ocsf,
                &mut scratch
            ),
            Expected::Quarantined { .. }
        ));
        assert!(matches!(
            expected(&log_event("9", TEN, &received), "prod", &ocsf, &mut scratch),
            Expected::Delivered { .. }
        ));
    }

    #[test]
    fn flat_ocsf_and_quarantine_lines_name_the_same_keys_as_cloudwatch() {
        let options = |format| ProcessOptions {
            format,
            ..ProcessOptions::default()
        };
        let message = audit(
            "a-1",
            "ResponseComplete",
            "2024-05-21T10:30:00.000001Z",
            "/api",
        );
        for format in Format::ALL {
            let event = log_event("42", TEN, &message);
            let mut line = Vec::new();
            let context = EventContext {
                event_id: Some("42"),
                cloudwatch_timestamp: Some(TEN),
                ..EventContext::default()
            };
            assert!(matches!(
                process_event(&message, &context, &options(format), &mut line),
                EventFate::Kept { .. }
            ));
            let Expected::Delivered { time, key } =
                expected(&event, "prod", &options(format), &mut Vec::new())
            else {
                panic!("{format:?}: kept")
            };
            let found = event_line(line.strip_suffix(b"\n").unwrap());
            // OCSF times are whole milliseconds; the hour is what matters.
            let Found::Event {
                time: Some(line_time),
                key: Some(line_key),
            } = found
            else {
                panic!("{format:?}: {found:?}")
            };
            assert_eq!(line_key, key, "{format:?}");
            assert_eq!(
                line_time.replace_nanosecond(0).unwrap(),
                time.replace_nanosecond(0).unwrap(),
                "{format:?}"
            );
        }
        let quarantine = br#"{"reason":"r","owner":"1","logGroup":"g","logStream":"s","id":"42","timestamp":1716285600000,"message":"x"}"#;
        assert_eq!(
            quarantine_line(quarantine),
            Found::Quarantined {
                time: Some(datetime!(2024-05-21 10:00 UTC)),
                key: Some(quarantine_key("42")),
            }
        );
        assert_eq!(event_line(b"not json"), Found::Unreadable);
        assert_eq!(event_line(b"[1]"), Found::Unreadable);
        assert_eq!(quarantine_line(b"{\"id\":1}"), Found::Unreadable);
    }

    #[test]
    fn an_ocsf_line_is_placed_by_its_request_time_as_the_forwarder_keys_it() {
        // A watch received at 09:50 and completed at 10:05: the forwarder keys it by 09:50
        // (TimeGenerated's rule); OCSF's `time` is 10:05 and `start_time` 09:50.
        let line = br#"{"class_uid":6003,"time":1716285900000,"start_time":1716285000000,"message":"ResponseComplete","metadata":{"uid":"w"}}"#;
        assert_eq!(
            event_line(line),
            Found::Event {
                time: Some(datetime!(2024-05-21 09:50 UTC)),
                key: event_key(Some("w"), Some("ResponseComplete"), None),
            }
        );
    }

    #[test]
    fn keys_tell_stages_and_kinds_apart() {
        let a = event_key(Some("a"), Some("ResponseComplete"), Some("1"));
        assert_eq!(a, event_key(Some("a"), Some("ResponseComplete"), Some("2")));
        assert_ne!(a, event_key(Some("a"), Some("ResponseStarted"), Some("1")));
        assert_eq!(
            event_key(Some(""), None, Some("1")),
            event_key(None, None, Some("1"))
        );
        assert_ne!(
            event_key(None, None, Some("1")).unwrap(),
            quarantine_key("1")
        );
        assert_eq!(event_key(Some(""), Some("x"), None), None);
        // Length prefixes: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(key_of(&[b"ab", b"c"]), key_of(&[b"a", b"bc"]));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn objects_are_read_line_by_line_across_chunks_and_gzip_members() {
        let line = |key: &str| {
            format!(
                "{{\"TimeGenerated\":\"2024-05-21T09:30:00.000000Z\",\"AuditId\":\"{key}\",\"Stage\":\"ResponseComplete\",\"EventId\":\"1\"}}\n"
            )
        };
        // Two gzip members, as Firehose may concatenate, fed one byte at a time.
        let mut body = gzip(format!("{}{}", line("a"), line("b")).as_bytes());
        body.extend(gzip(line("a").trim_end().as_bytes()));
        let mut ledger = Ledger::new(window());
        for id in ["a", "b"] {
            ledger.expect(Expected::Delivered {
                time: datetime!(2024-05-21 09:30 UTC),
                key: event_key(Some(id), Some("ResponseComplete"), None).unwrap(),
            });
        }
        let mut lines = ObjectLines::new(&mut ledger, false);
        for byte in &body {
            lines.feed(std::slice::from_ref(byte)).unwrap();
        }
        lines.finish().unwrap();
        let (rows, unreadable) = ledger.finish();
        assert_eq!(
            (rows[0].delivered, rows[0].duplicated, unreadable),
            (3, 1, 0)
        );

        let mut ledger = Ledger::new(window());
        let mut lines = ObjectLines::new(&mut ledger, false);
        assert!(
            lines.feed(b"not gzip at all").is_err() || lines.finish().is_err(),
            "not gzip"
        );
    }
}
