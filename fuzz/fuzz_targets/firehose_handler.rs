//! The Firehose handler's core end to end: the event parsed as the handler parses it, every
//! record through `process_records_for_response` and the response through re-ingestion
//! planning, on a transformation event whose records hold arbitrary bytes, arbitrary text, or
//! valid-ish subscription messages (gzip or not, one or several per record) built from
//! arbitrary parts; and, now and then, on arbitrary event text. With `with_bucket`, quarantined events become
//! objects (as when the Lambda has a bucket) instead of failing their records.
//!
//! Holds the accounting invariant of contract §2: as many response records as input records, with
//! the same ids in the same order; `ProcessingFailed` data is the input data byte for byte;
//! `Dropped` data is empty; `Ok` data is base64 of NDJSON whose every line ends in `\n` and is a
//! JSON object, and `Ok` records carry the cluster and account partition keys.
#![no_main]

use std::io::Write;
use std::sync::LazyLock;

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use eks_audit_core::batch::firehose::process_records_for_response;
use eks_audit_core::batch::reingest::{self, FirehoseLimits};
use eks_audit_core::envelope::models::{FirehoseResponse, FirehoseResult, IncomingEvent};
use eks_audit_core::{Filter, Origin, ProcessOptions, StageFilter};
use flate2::Compression;
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Event {
        keep_all_stages: bool,
        with_bucket: bool,
        records: Vec<Record<'a>>,
    },
    /// Any text as the Lambda event.
    Text(&'a str),
}

#[derive(Arbitrary, Debug)]
struct Record<'a> {
    id: RecordId<'a>,
    data: Data<'a>,
}

#[derive(Arbitrary, Debug)]
enum RecordId<'a> {
    /// `r<position>`.
    Position,
    /// The id of an earlier record again (Firehose never does this; the handler must cope).
    Repeat(u8),
    Text(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Data<'a> {
    Base64(&'a [u8]),
    /// Sent as is: usually not base64.
    Verbatim(&'a str),
    /// Base64 of gzip of arbitrary bytes.
    GzipBytes(&'a [u8]),
    /// Base64 of subscription messages, gzip (each its own member) or plain JSON.
    Messages {
        gzip: bool,
        messages: Vec<Message<'a>>,
    },
}

#[derive(Arbitrary, Debug)]
struct Message<'a> {
    message_type: MessageType<'a>,
    owner: Option<&'a str>,
    log_group: LogGroup<'a>,
    log_stream: LogStream<'a>,
    events: Vec<LogEvent<'a>>,
}

#[derive(Arbitrary, Debug)]
enum MessageType<'a> {
    Data,
    Control,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
enum LogGroup<'a> {
    Eks(&'a str),
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
enum LogStream<'a> {
    Audit(&'a str),
    Authenticator,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
struct LogEvent<'a> {
    id: u64,
    timestamp: i64,
    message: AuditMessage<'a>,
}

#[derive(Arbitrary, Debug)]
enum AuditMessage<'a> {
    Text(&'a str),
    Event(AuditEvent<'a>),
}

/// An audit event with fields of arbitrary value, some of them of the wrong type.
#[derive(Arbitrary, Debug)]
struct AuditEvent<'a> {
    stage: Option<&'a str>,
    response_complete: bool,
    request_uri: Option<&'a str>,
    verb: &'a str,
    username: &'a str,
    source_ips: Vec<&'a str>,
    resource: Option<&'a str>,
    namespace: Option<&'a str>,
    code: Option<i64>,
    received: Option<&'a str>,
    extra_key: &'a str,
    extra_value: &'a str,
    pretty: bool,
    truncate_at: Option<u16>,
}

impl AuditEvent<'_> {
    fn text(&self) -> String {
        let stage = if self.response_complete {
            Some("ResponseComplete")
        } else {
            self.stage
        };
        let event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": "5bb9b4b5-1b9d-4a4c-9f36-9bd5e8a7d2a1",
            "stage": stage,
            "requestURI": self.request_uri,
            "verb": self.verb,
            "user": {"username": self.username, "groups": ["system:authenticated"]},
            "sourceIPs": self.source_ips,
            "objectRef": {"resource": self.resource, "namespace": self.namespace},
            "responseStatus": {"code": self.code},
            "requestReceivedTimestamp": self.received,
            "stageTimestamp": "2024-05-21T10:00:00.123456Z",
            self.extra_key: self.extra_value,
        });
        let text = if self.pretty {
            serde_json::to_string_pretty(&event)
        } else {
            serde_json::to_string(&event)
        };
        let mut text = text.expect("a Value always serializes");
        if let Some(at) = self.truncate_at {
            let mut at = usize::from(at).min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.truncate(at);
            text.push_str("[Truncated...]");
        }
        text
    }
}

impl Message<'_> {
    fn json(&self) -> Value {
        let message_type = match self.message_type {
            MessageType::Data => "DATA_MESSAGE",
            MessageType::Control => "CONTROL_MESSAGE",
            MessageType::Other(other) => other,
        };
        let log_group = match self.log_group {
            LogGroup::Eks(cluster) => format!("/aws/eks/{cluster}/cluster"),
            LogGroup::Other(other) => other.to_owned(),
        };
        let log_stream = match self.log_stream {
            LogStream::Audit(suffix) => format!("kube-apiserver-audit-{suffix}"),
            LogStream::Authenticator => "authenticator-0123456789abcdef".to_owned(),
            LogStream::Other(other) => other.to_owned(),
        };
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|e| {
                let message = match &e.message {
                    AuditMessage::Text(text) => (*text).to_owned(),
                    AuditMessage::Event(event) => event.text(),
                };
                json!({"id": e.id.to_string(), "timestamp": e.timestamp, "message": message})
            })
            .collect();
        json!({
            "messageType": message_type,
            "owner": self.owner,
            "logGroup": log_group,
            "logStream": log_stream,
            "subscriptionFilters": ["eks-audit"],
            "logEvents": events,
        })
    }
}

impl Data<'_> {
    fn encode(&self) -> String {
        match self {
            Data::Base64(bytes) => STANDARD.encode(bytes),
            Data::Verbatim(text) => (*text).to_owned(),
            Data::GzipBytes(bytes) => STANDARD.encode(gzip(bytes)),
            Data::Messages {
                gzip: compress,
                messages,
            } => {
                let mut payload = Vec::new();
                for message in messages {
                    let text = message.json().to_string();
                    if *compress {
                        payload.extend(gzip(text.as_bytes()));
                    } else {
                        payload.extend(text.as_bytes());
                        payload.push(b'\n');
                    }
                }
                STANDARD.encode(payload)
            }
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder
        .write_all(bytes)
        .expect("writing into a Vec cannot fail");
    encoder.finish().expect("writing into a Vec cannot fail")
}

/// The options of the two handlers fuzzed: the defaults, and every stage kept.
struct World {
    default: ProcessOptions,
    keep_all: ProcessOptions,
}

static WORLD: LazyLock<World> = LazyLock::new(|| World {
    default: ProcessOptions::default(),
    keep_all: ProcessOptions {
        filter: Filter {
            stages: StageFilter::All,
            ..Filter::default()
        },
        ..ProcessOptions::default()
    },
});

/// The quarantine prefix of a handler with a bucket.
const PREFIX: &str = "eks-audit";

/// What the handler answers to `text`: `None` when it is not a Firehose event.
fn answer(text: &str, options: &ProcessOptions, with_bucket: bool) -> Option<FirehoseResponse> {
    let event: IncomingEvent<'_> = serde_json::from_str(text).ok()?;
    let records = event.records.as_deref()?;
    let origin = Origin {
        region: Some("us-west-2"),
    };
    let mut processed = process_records_for_response(
        records,
        origin,
        options,
        with_bucket.then_some(PREFIX),
        with_bucket.then_some(PREFIX),
        FirehoseLimits::default().max_response_bytes,
    );
    for object in &processed.quarantine {
        assert!(
            object.key.starts_with("eks-audit/quarantine/"),
            "quarantine stays apart: {}",
            object.key
        );
        assert!(object.lines > 0, "no empty quarantine object");
    }
    // Small records always fit one response; when they do not, planning says so.
    reingest::plan(
        records,
        &mut processed.entries,
        &processed.shed,
        origin,
        options,
        &FirehoseLimits::default(),
    )
    .ok()?;
    Some(FirehoseResponse {
        records: processed.entries,
    })
}

fuzz_target!(|input: Input<'_>| {
    let world = &*WORLD;
    match input {
        Input::Text(text) => {
            if let Some(response) = answer(text, &world.default, false) {
                // Read the records as the handler does (unknown fields skipped unread), not as
                // a Value, which refuses text the handler rightly accepts (`"x": 1e400`).
                let event: RecordsOnly =
                    serde_json::from_str(text).expect("an answered event has records");
                let inputs: Vec<(String, String)> = event
                    .records
                    .into_iter()
                    .map(|r| (r.record_id, r.data))
                    .collect();
                check(&inputs, &response);
            }
        }
        Input::Event {
            keep_all_stages,
            with_bucket,
            records,
        } => {
            let mut inputs: Vec<(String, String)> = Vec::with_capacity(records.len());
            for (position, record) in records.iter().enumerate() {
                let id = match record.id {
                    RecordId::Position => format!("r{position}"),
                    RecordId::Repeat(back) if !inputs.is_empty() => {
                        inputs[usize::from(back) % inputs.len()].0.clone()
                    }
                    RecordId::Repeat(_) => format!("r{position}"),
                    RecordId::Text(text) => text.to_owned(),
                };
                inputs.push((id, record.data.encode()));
            }
            let event = json!({
                "invocationId": "00540a87-5050-496a-84e4-e7d92bbaf5e2",
                "deliveryStreamArn": "arn:aws:firehose:eu-west-1:111122223333:deliverystream/eks-audit",
                "region": "eu-west-1",
                "records": inputs.iter().enumerate().map(|(i, (id, data))| json!({
                    "recordId": id, "approximateArrivalTimestamp": 1_716_285_601_000_i64 + i as i64, "data": data,
                })).collect::<Vec<_>>(),
            })
            .to_string();
            let options = if keep_all_stages {
                &world.keep_all
            } else {
                &world.default
            };
            match answer(&event, options, with_bucket) {
                Some(response) => check(&inputs, &response),
                None => panic!("a well-formed Firehose event must be answered record by record"),
            }
        }
    }
});

#[derive(serde::Deserialize)]
struct RecordsOnly {
    records: Vec<InputRecord>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct InputRecord {
    record_id: String,
    data: String,
}

/// The accounting invariant, record by record.
fn check(inputs: &[(String, String)], response: &FirehoseResponse) {
    assert_eq!(
        response.records.len(),
        inputs.len(),
        "one response record per input record"
    );
    for ((id, data), record) in inputs.iter().zip(&response.records) {
        assert_eq!(&record.record_id, id, "same ids in the same order");
        match record.result {
            FirehoseResult::ProcessingFailed => {
                assert_eq!(
                    &record.data, data,
                    "a failed record carries its original data"
                );
                assert!(record.metadata.is_none());
            }
            FirehoseResult::Dropped => {
                assert!(record.data.is_empty(), "a dropped record carries no data");
                assert!(record.metadata.is_none());
            }
            FirehoseResult::Ok => {
                let keys = &record
                    .metadata
                    .as_ref()
                    .expect("Ok records carry partition keys")
                    .partition_keys;
                assert!(
                    keys.contains_key("cluster") && keys.contains_key("account"),
                    "{keys:?}"
                );
                let ndjson = STANDARD.decode(&record.data).expect("Ok data is base64");
                let text = std::str::from_utf8(&ndjson).expect("NDJSON is UTF-8");
                assert!(
                    !text.is_empty() && text.ends_with('\n'),
                    "every line ends in \\n: {text:?}"
                );
                for line in text.split_terminator('\n') {
                    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                        panic!("Ok line is not JSON strict readers accept ({e}): {line}")
                    });
                    assert!(value.is_object(), "{line}");
                }
            }
        }
    }
}
