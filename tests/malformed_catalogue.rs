//! The catalogue of broken and hostile input: one table, each row a named bad input and the
//! outcome a user gets, checked end to end through the handler.
//!
//! The rule behind every row (contract §2, §6): each record ends as kept, dropped for a stated
//! reason, or failed/quarantined with its original bytes. Where the contract does not name a case,
//! the comment on the row says why the outcome is the one an operator would expect.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use common::*;
use eks_audit_core::envelope::models::FirehoseResult::{
    self, Dropped as DroppedRecord, Ok as OkRecord, ProcessingFailed,
};
use eks_audit_core::tally::DropReason;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::Response;
use serde_json::{Value, json};

/// What goes in.
enum Input {
    /// The `data` of the one record of a Firehose event, exactly as sent.
    Record(String),
    /// A whole Lambda event.
    Event(String),
    /// One log event's message in a DATA_MESSAGE of an audit stream, sent directly (`awslogs`).
    Message(String),
}

/// What the user gets.
enum Expect {
    /// Firehose: the record is `Ok` with this many NDJSON lines.
    OkLines(usize),
    /// Firehose: the record is `Dropped`.
    Dropped,
    /// Firehose: `ProcessingFailed` with its original data, counted as a failed record; the
    /// reason the handler logs for it holds the phrase.
    Failed(&'static str),
    /// Firehose: the event is answered with these results, one per record, in order.
    Answered(&'static [FirehoseResult]),
    /// The invocation fails (Firehose retries it); the error holds the phrase.
    InvocationFails(&'static str),
    /// Direct mode: the event is kept, and these columns have these values (JSON text).
    Kept(&'static [(&'static str, &'static str)]),
    /// Direct mode: the event is dropped for this reason.
    DroppedFor(DropReason),
    /// Direct mode: the event is quarantined verbatim; the reason holds the phrase.
    Quarantined(&'static str),
}

struct Case {
    name: &'static str,
    input: Input,
    expect: Expect,
}

/// A real EKS audit event (immersion day: a ResponseComplete `list`), compact.
fn event() -> Value {
    serde_json::from_str(&corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    ))
    .unwrap()
}

/// The event with one change.
fn event_with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut value = event();
    change(value.as_object_mut().unwrap());
    value.to_string()
}

/// A DATA_MESSAGE of an audit stream holding the real event `n` times.
fn message(n: usize) -> Value {
    let text = event().to_string();
    data_message(GROUP, STREAM, &vec![text.as_str(); n])
}

fn gzipped(message: &Value) -> Vec<u8> {
    gzip(message.to_string().as_bytes())
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[rustfmt::skip]
fn catalogue() -> Vec<Case> {
    use Expect::*;
    use Input::{Event, Message, Record};
    let one = gzipped(&message(1));
    vec![
        // ---- Record data (Firehose): what cannot be read fails whole, with its original data.
        // contract §2: undecodable → ProcessingFailed. Base64 of nothing is nothing to decode.
        Case { name: "empty data", input: Record(String::new()), expect: Failed("data is empty") },
        Case { name: "not base64", input: Record("not*base64!".into()), expect: Failed("not valid base64") },
        Case { name: "base64 of garbage bytes", input: Record(b64(&[0x00, 0x9f, 0x13, 0xfe, 0x42, 0x07])),
               expect: Failed("neither gzip nor JSON") },
        Case { name: "truncated gzip", input: Record(b64(&one[..one.len() / 2])),
               expect: Failed("corrupt or truncated") },
        // gzip allows several members in one stream (RFC 1952 §2.2), and a Firehose record may
        // hold several messages: both are valid and both messages' events are kept.
        Case { name: "concatenated gzip members", input: Record(b64(&[gzipped(&message(1)), gzipped(&message(2))].concat())),
               expect: OkLines(3) },
        Case { name: "concatenated plain messages", input: Record(b64(format!("{}\n{}", message(1), message(1)).as_bytes())),
               expect: OkLines(2) },
        // Firehose's Decompression option yields plain JSON; leading whitespace is still JSON.
        Case { name: "plain JSON with leading whitespace", input: Record(b64(format!(" \n\t{}", message(1)).as_bytes())),
               expect: OkLines(1) },
        // CloudWatch only ever sends gzip; zlib or raw deflate means someone else's producer.
        // Guessing formats would hide that, so the record goes to the error prefix as it came.
        Case { name: "zlib instead of gzip", input: Record(b64(&zlib(message(1).to_string().as_bytes()))),
               expect: Failed("neither gzip nor JSON") },
        Case { name: "raw deflate", input: Record(b64(&deflate(message(1).to_string().as_bytes()))),
               expect: Failed("neither gzip nor JSON") },
        // JSON, but not a subscription message (an object): the record fails whole.
        Case { name: "gzip of a JSON array", input: Record(b64(&gzip(b"[1,2,3]"))),
               expect: Failed("not a CloudWatch Logs subscription message") },
        Case { name: "gzip of a JSON string", input: Record(b64(&gzip(b"\"DATA_MESSAGE\""))),
               expect: Failed("not a CloudWatch Logs subscription message") },
        Case { name: "plain JSON that is not an object", input: Record(b64(b"[{\"messageType\":\"DATA_MESSAGE\"}]")),
               expect: Failed("neither gzip nor JSON") },
        Case { name: "logEvents missing", input: Record(b64(&gzip(br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s"}"#))),
               expect: Failed("missing field `logEvents`") },
        Case { name: "logEvents not an array", input: Record(b64(&gzip(br#"{"messageType":"DATA_MESSAGE","logEvents":{"id":"1"}}"#))),
               expect: Failed("not a CloudWatch Logs subscription message") },
        Case { name: "messageType missing", input: Record(b64(&gzip(br#"{"owner":"1","logEvents":[]}"#))),
               expect: Failed("missing field `messageType`") },
        Case { name: "unknown messageType", input: Record(b64(&gzip(br#"{"messageType":"DATA_MESSAGE_V2","logEvents":[]}"#))),
               expect: Failed("unknown messageType") },
        // JSON text must be UTF-8 (RFC 8259 §8.1); a byte that is not cannot be forwarded as
        // JSON, and no single event can be blamed for it: the whole record fails.
        Case { name: "invalid UTF-8 in a message", input: Record(b64(&gzip(&[
                   br#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"caf"#.as_slice(),
                   b"\xe9\"}]}"].concat()))),
               expect: Failed("not a CloudWatch Logs subscription message") },
        // A whole message then something else: part of the record cannot be read, so none of
        // it is half-delivered.
        Case { name: "trailing garbage after a message", input: Record(b64(&gzip(format!("{} trailing", message(1)).as_bytes()))),
               expect: Failed("not a CloudWatch Logs subscription message") },
        // contract §2: CONTROL_MESSAGE → Dropped, whatever events it carries.
        Case { name: "CONTROL_MESSAGE with events", input: Record(b64(&gzipped(&json!({
                   "messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
                   "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE"}, {"id": "2", "timestamp": 2, "message": event().to_string()}]})))),
               expect: Dropped },
        // "All events filtered out" holds vacuously for none.
        Case { name: "DATA_MESSAGE without events", input: Record(b64(&gzipped(&data_message(GROUP, STREAM, &[])))),
               expect: Dropped },
        // contract §3: other control-plane streams are dropped and counted, even when not JSON.
        Case { name: "authenticator stream", input: Record(b64(&gzipped(&data_message(GROUP, "authenticator-0123", &["not json {"])))),
               expect: Dropped },
        // Firehose sends standard, padded base64 on one line. Other spellings mean the record
        // did not come from Firehose as documented: it fails rather than being guessed at.
        Case { name: "base64 with line breaks", input: Record(STANDARD.encode(&one).as_bytes().chunks(76)
                   .map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\n")),
               expect: Failed("not valid base64") },
        Case { name: "URL-safe base64", input: Record(url_safe_with_dash_or_underscore()), expect: Failed("not valid base64") },
        Case { name: "base64 without padding", input: Record(STANDARD_NO_PAD.encode(b"{\"a\":1}")), expect: Failed("not valid base64") },
        // A UTF-8 byte-order mark is not JSON whitespace (RFC 8259 §8.1: MUST NOT add one).
        Case { name: "BOM before a plain JSON payload", input: Record(b64(&[b"\xef\xbb\xbf".as_slice(), message(1).to_string().as_bytes()].concat())),
               expect: Failed("neither gzip nor JSON") },
        // ---- Lambda events.
        Case { name: "Firehose event with zero records", input: Event(firehose_event(&[])), expect: Answered(&[]) },
        // Firehose never repeats an id, but if it did, the contract "each input record comes
        // back once, in order" still holds per record: both are answered, in input order.
        Case { name: "duplicated recordId", input: Event(firehose_event(&[gzip_record(&message(1)), gzip_record(&message(1))]).replace("\"r1\"", "\"r0\"")),
               expect: Answered(&[OkRecord, OkRecord]) },
        // An event that is not a Firehose or awslogs event at all is the caller's mistake, not
        // data: the invocation fails with the reason, and nothing is written.
        Case { name: "record without data", input: Event(r#"{"records":[{"recordId":"r0"}]}"#.into()),
               expect: InvocationFails("missing field `data`") },
        Case { name: "record data not a string", input: Event(r#"{"records":[{"recordId":"r0","data":42}]}"#.into()),
               expect: InvocationFails("not valid JSON of a supported shape") },
        Case { name: "Lambda event not JSON", input: Event("{\"records\": [".into()), expect: InvocationFails("not valid JSON") },
        Case { name: "neither records nor awslogs", input: Event(r#"{"Records":[]}"#.into()), expect: InvocationFails("unsupported event") },
        Case { name: "awslogs data not base64", input: Event(r#"{"awslogs":{"data":"%%%"}}"#.into()), expect: InvocationFails("not valid base64") },
        // ---- Audit events (direct mode): each event is kept, dropped or quarantined alone.
        // contract §6.2: CloudWatch's cut-off lines are quarantined verbatim. This one is cut
        // before its `stage` (the event's keys are sorted), so nothing of it can be filtered or
        // kept: it is only quarantined.
        Case { name: "[Truncated...] line", input: Message(format!("{}[Truncated...]", &event().to_string()[..300])),
               expect: Quarantined("[Truncated...]") },
        // contract §6.2: a cut line whose stage the filter does not keep is dropped like a whole
        // event, with nothing quarantined: the filter would drop the whole event too.
        Case { name: "[Truncated...] line at a stage not kept",
               input: Message({ let text = event_with(|e| { e.insert("stage".into(), json!("ResponseStarted")); });
                                format!("{}[Truncated...]", &text[..text.len() - 4]) }),
               expect: DroppedFor(DropReason::Stage) },
        // contract §3: only the kept stages pass; an event without a stage is in no list.
        Case { name: "stage missing", input: Message(event_with(|e| { e.remove("stage"); })), expect: DroppedFor(DropReason::Stage) },
        // As in CloudWatch filter patterns, `!=` conditions do not exclude a missing field.
        Case { name: "requestURI missing", input: Message(event_with(|e| { e.remove("requestURI"); })),
               expect: Kept(&[("RequestURI", "null"), ("Verb", "\"list\"")]) },
        // A field of the wrong type reads as absent; the event itself is still a real record.
        Case { name: "sourceIPs a string", input: Message(event_with(|e| { e.insert("sourceIPs".into(), json!("10.0.0.1")); })),
               expect: Kept(&[("SourceIPs", "[]")]) },
        Case { name: "responseStatus.code a string", input: Message(event_with(|e| { e.insert("responseStatus".into(), json!({"code": "200"})); })),
               expect: Kept(&[("ResponseCode", "null")]) },
        // Past i64 an integer is no HTTP status: the column is null, RawEvent keeps the digits.
        Case { name: "huge integer response code", input: Message(event().to_string().replace("\"code\":200", "\"code\":123456789012345678901234567890")),
               expect: Kept(&[("ResponseCode", "null")]) },
        // Strict readers (serde_json, Go, Java) refuse numbers past f64::MAX, so the line would
        // poison the output; the API server never writes one.
        Case { name: "number beyond a float", input: Message(event_with(|e| { e.insert("requestObject".into(), json!({"x": 1})); }).replace("{\"x\":1}", "{\"x\":1e400}")),
               expect: Quarantined("beyond the range of a 64-bit float") },
        // Deeper than EKS_AUDIT_MAX_DEPTH (100): quarantined before parsing, never a stack overflow.
        Case { name: "deeply nested requestObject", input: Message(event_with(|e| { e.insert("requestObject".into(), json!("N")); }).replace("\"N\"", &nested(100_000))),
               expect: Quarantined("nested more than 100 levels") },
        // Two values for a field the forwarder reads: two readers could see two different
        // events, so which one to forward cannot be decided.
        Case { name: "duplicate key the forwarder reads", input: Message(event().to_string().replacen('{', "{\"verb\":\"delete\",", 1)),
               expect: Quarantined("duplicate field `verb`") },
        // A duplicate the forwarder does not read changes none of its columns; RawEvent keeps
        // the text as it came (readers take the last value, as serde_json and Python do).
        Case { name: "duplicate key the forwarder does not read", input: Message(event().to_string().replacen('{', "{\"x\":1,\"x\":2,", 1)),
               expect: Kept(&[("Verb", "\"list\"")]) },
        // A raw control character inside a string is not JSON (RFC 8259 §7).
        Case { name: "NUL byte", input: Message(event().to_string().replace("\"list\"", "\"li\u{0}st\"")), expect: Quarantined("control character") },
        Case { name: "escaped NUL", input: Message(event().to_string().replace("\"list\"", "\"li\\u0000st\"")),
               expect: Kept(&[("Verb", "\"li\\u0000st\"")]) },
        // A lone surrogate escape is refused by strict readers; the API server never writes one.
        Case { name: "lone surrogate escape", input: Message(event().to_string().replace("\"list\"", "\"\\ud800\"")),
               expect: Quarantined("unpaired UTF-16 surrogate") },
        // CloudWatch events are at most 1 MiB; bigger is not from CloudWatch (EKS_AUDIT_MAX_EVENT_BYTES).
        Case { name: "6 MB single event", input: Message(event_with(|e| { e.insert("requestObject".into(), json!({"pad": "x".repeat(6_000_000)})); })),
               expect: Quarantined("exceeds the 1048576-byte limit") },
        Case { name: "BOM before an event", input: Message(format!("\u{feff}{}", event())), expect: Quarantined("expected a JSON object") },
        Case { name: "not JSON", input: Message("E0521 15:00:01 writers.go:122] apiserver was unable to write a JSON response".into()),
               expect: Quarantined("expected a JSON object") },
        Case { name: "empty message", input: Message(String::new()), expect: Quarantined("expected a JSON object") },
        Case { name: "JSON array", input: Message(format!("[{}]", event())), expect: Quarantined("expected a JSON object") },
        Case { name: "another kind", input: Message(r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"x"}}"#.into()),
               expect: Quarantined("kind is \"Pod\"") },
        // Pretty-printed JSON is still one event; the output line is made single-line.
        Case { name: "pretty-printed event", input: Message(serde_json::to_string_pretty(&event()).unwrap()),
               expect: Kept(&[("Stage", "\"ResponseComplete\"")]) },
    ]
}

/// URL-safe base64 of a payload whose standard encoding has a `+` or `/`.
fn url_safe_with_dash_or_underscore() -> String {
    let mut payload = message(1).to_string().into_bytes();
    payload.extend_from_slice(b" \xfb\xff");
    let encoded = URL_SAFE.encode(&payload);
    assert!(encoded.contains(['-', '_']));
    encoded
}

#[tokio::test]
async fn every_malformed_input_has_the_outcome_a_user_expects() {
    let cases = catalogue();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(message) = check(case).await {
            failures.push(format!("{}: {message}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// What the handler logs while it runs on this thread, as JSON lines (contract §11: each failed
/// record is logged with its `recordId` and reason).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Logs every event of this thread until the guard is dropped.
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The reasons logged for the failed record `record_id`.
    fn failure_reasons(&self, record_id: &str) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("a JSON log line"))
            .filter(|line| line["fields"]["record_id"] == record_id)
            .filter_map(|line| line["fields"]["reason"].as_str().map(str::to_owned))
            .collect()
    }
}

async fn check(case: &Case) -> Result<(), String> {
    let test = handler(Settings::default());
    let event = match &case.input {
        Input::Record(data) => firehose_event(std::slice::from_ref(data)),
        Input::Event(event) => event.clone(),
        Input::Message(message) => awslogs_event(&data_message(GROUP, STREAM, &[message])),
    };
    let logs = Logs::default();
    let (response, tally) = {
        let _capture = logs.capture();
        match test.handler.invoke(&event).await {
            Ok(invocation) => (Ok(invocation.response), invocation.tally),
            Err(e) => (Err(e), Default::default()),
        }
    };
    match (&case.expect, response) {
        (Expect::InvocationFails(phrase), Err(e)) => contains(&e.to_string(), phrase),
        (Expect::Answered(results), Ok(Response::Firehose(response))) => {
            let got: Vec<FirehoseResult> = response.records.iter().map(|r| r.result).collect();
            let input: Value = serde_json::from_str(&event).unwrap();
            let ids: Vec<&str> = input["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["recordId"].as_str().unwrap())
                .collect();
            let got_ids: Vec<&str> = response
                .records
                .iter()
                .map(|r| r.record_id.as_str())
                .collect();
            same(got.as_slice(), *results).and(same(&got_ids, &ids))
        }
        (
            expect @ (Expect::OkLines(_) | Expect::Dropped | Expect::Failed(_)),
            Ok(Response::Firehose(response)),
        ) => {
            let Input::Record(data) = &case.input else {
                unreachable!("record expectations go with record inputs")
            };
            // One record in, one answer out, with its id (firehose_event names it r0).
            let ids: Vec<&str> = response
                .records
                .iter()
                .map(|r| r.record_id.as_str())
                .collect();
            same(ids.as_slice(), &["r0"])?;
            let record = &response.records[0];
            match expect {
                Expect::OkLines(n) => {
                    same(&record.result, &OkRecord).and(same(&ok_lines(&record.data).len(), n))
                }
                Expect::Dropped => same(&record.result, &DroppedRecord),
                Expect::Failed(phrase) => {
                    same(&record.result, &ProcessingFailed)?;
                    same(&record.data, data)?;
                    same(&tally.failed_records, &1)?;
                    let reasons = logs.failure_reasons("r0");
                    let [reason] = reasons.as_slice() else {
                        return Err(format!("logged reasons for r0: {reasons:?}"));
                    };
                    contains(reason, phrase)
                }
                _ => unreachable!(),
            }
        }
        (
            expect @ (Expect::Kept(_) | Expect::DroppedFor(_) | Expect::Quarantined(_)),
            Ok(Response::Direct(summary)),
        ) => {
            let Input::Message(message) = &case.input else {
                unreachable!("event expectations go with message inputs")
            };
            let tally = &summary.tally;
            let objects = test.objects();
            match expect {
                Expect::Kept(columns) => {
                    same(&(tally.kept, tally.quarantined), &(1, 0))?;
                    let (_, body) = objects
                        .iter()
                        .find(|(k, _)| !k.contains("quarantine"))
                        .ok_or("no object")?;
                    let line: Value =
                        serde_json::from_str(body.trim_end()).map_err(|e| e.to_string())?;
                    same(
                        &line["RawEvent"],
                        &serde_json::from_str::<Value>(message).unwrap(),
                    )?;
                    for (column, value) in *columns {
                        same(
                            &line[column],
                            &serde_json::from_str::<Value>(value).unwrap(),
                        )
                        .map_err(|e| format!("{column}: {e}"))?;
                    }
                    Ok(())
                }
                Expect::DroppedFor(reason) => {
                    let mut expected = eks_audit_core::tally::Dropped::default();
                    expected.add(*reason, 1);
                    same(&tally.dropped, &expected).and(same(&objects.len(), &0))
                }
                Expect::Quarantined(phrase) => {
                    same(&(tally.kept, tally.quarantined), &(0, 1))?;
                    let (_, body) = objects
                        .iter()
                        .find(|(k, _)| k.contains("quarantine"))
                        .ok_or("no quarantine object")?;
                    let line: Value =
                        serde_json::from_str(body.trim_end()).map_err(|e| e.to_string())?;
                    same(&line["message"].as_str(), &Some(message.as_str()))?;
                    contains(line["reason"].as_str().unwrap_or_default(), phrase)
                }
                _ => unreachable!(),
            }
        }
        (_, other) => Err(format!("unexpected response {other:?}")),
    }
}

fn same<T: PartialEq + std::fmt::Debug + ?Sized>(got: &T, want: &T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

fn contains(text: &str, phrase: &str) -> Result<(), String> {
    if text.contains(phrase) {
        Ok(())
    } else {
        Err(format!("{text:?} does not say {phrase:?}"))
    }
}
