//! The audit-event normalizer on arbitrary text: `pipeline::process_event` in every output
//! format (`Format::ALL`, so a new format is fuzzed as soon as it is listed there), with the
//! default filter and with one that keeps everything.
//!
//! Holds: no panic; nothing is written for an event that is neither kept nor salvaged; a kept or
//! salvaged event is exactly one line ending in `\n`, a JSON object that strict readers
//! (serde_json) accept; in the flat format a kept event's `RawEvent` equals the input read as a
//! `serde_json::Value`, but for redacted bodies, which are the marker when they were there and
//! not null; a salvaged event (cut by CloudWatch Logs) is flagged as truncated in every format,
//! and its flat `RawEvent` is the input text as a string (unredacted) or a string that still
//! ends with CloudWatch's marker (redacted); a kept event is never flagged.
#![no_main]

use std::sync::LazyLock;

use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_core::pipeline::{EventFate, process_event};
use eks_audit_core::redact::Redaction;
use eks_audit_core::schema::EventContext;
use eks_audit_core::{Format, ProcessOptions};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Every format with the default filter, keeping every event, and keeping and redacting every
/// event.
static SETTINGS: LazyLock<Vec<ProcessOptions>> = LazyLock::new(|| {
    let keep_all = Filter {
        stages: StageFilter::All,
        exclude_uris: Vec::new(),
    };
    let redact_all = Redaction::parse("*").expect("a valid rule");
    Format::ALL
        .iter()
        .flat_map(|&format| {
            [
                ProcessOptions {
                    format,
                    ..ProcessOptions::default()
                },
                ProcessOptions {
                    format,
                    filter: keep_all.clone(),
                    ..ProcessOptions::default()
                },
                ProcessOptions {
                    format,
                    filter: keep_all.clone(),
                    redaction: redact_all.clone(),
                    ..ProcessOptions::default()
                },
            ]
        })
        .collect()
});

const BODIES: [&str; 2] = ["requestObject", "responseObject"];

const CONTEXT: EventContext<'static> = EventContext {
    account: Some("111122223333"),
    region: Some("eu-west-1"),
    cluster: Some("prod-east"),
    log_group: Some("/aws/eks/prod-east/cluster"),
    log_stream: Some("kube-apiserver-audit-0123456789abcdef"),
    event_id: Some("37446480926402052183949474339138577925447582474154713088"),
    cloudwatch_timestamp: Some(1_716_285_600_000),
};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    for settings in SETTINGS.iter() {
        let mut out = b"previous line\n".to_vec();
        let fate = process_event(text, &CONTEXT, settings, &mut out);
        let (bytes, truncated) = match fate {
            EventFate::Kept { bytes, .. } => (bytes, false),
            EventFate::Salvaged { bytes, .. } => (bytes, true),
            _ => {
                assert_eq!(out, b"previous line\n", "{fate:?} wrote output");
                continue;
            }
        };
        assert_eq!(bytes.start, "previous line\n".len(), "the line is appended");
        assert_eq!(bytes.end, out.len());
        let line = std::str::from_utf8(&out[bytes]).expect("output is UTF-8");
        assert!(
            line.ends_with('\n') && line.find('\n') == Some(line.len() - 1),
            "one line: {line:?}"
        );
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("kept line is not JSON strict readers accept ({e}): {line}")
        });
        assert!(value.is_object());
        match settings.format {
            Format::Flat if truncated => {
                assert_eq!(value["Truncated"], Value::Bool(true), "{line}");
                let raw = value["RawEvent"]
                    .as_str()
                    .expect("a cut RawEvent is a string");
                if settings.redaction.is_off() {
                    assert_eq!(raw, text, "RawEvent is the text received");
                } else {
                    assert!(raw.trim_end().ends_with("[Truncated...]"), "{raw}");
                }
            }
            Format::Ocsf => {
                let flag = value.get("unmapped").and_then(|u| u.get("truncated"));
                assert_eq!(
                    flag,
                    truncated.then(|| Value::from("true")).as_ref(),
                    "{line}"
                );
            }
            Format::Flat => {
                assert!(value.get("Truncated").is_none(), "{line}");
                let mut input: Value = serde_json::from_str(text).unwrap_or_else(|e| {
                    panic!("kept an event strict readers reject ({e}): {text}")
                });
                let mut raw = value["RawEvent"].clone();
                if !settings.redaction.is_off() {
                    // Every body that was there is the marker now; nothing else changed.
                    let marker =
                        serde_json::json!({"redacted": "eks-audit-forwarder", "reason": "*"});
                    for body in BODIES {
                        match input.get(body) {
                            None => assert!(raw.get(body).is_none(), "no {body} is made up"),
                            Some(Value::Null) => assert_eq!(raw[body], Value::Null),
                            Some(_) => assert_eq!(raw[body], marker, "{body} is redacted"),
                        }
                        input.as_object_mut().map(|o| o.remove(body));
                        raw.as_object_mut().map(|o| o.remove(body));
                    }
                }
                assert_eq!(raw, input, "RawEvent is the input event");
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
});
