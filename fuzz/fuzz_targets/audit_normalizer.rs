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
//! ends with CloudWatch's marker (redacted); a kept event is never flagged. With the default
//! Sigma rule pack on, the fate and the output are the same as without, and every finding is
//! one JSON line of an OCSF Detection Finding.
#![no_main]

use std::sync::LazyLock;

use eks_audit_core::filter::{Filter, StageFilter};
use std::sync::Arc;

use eks_audit_core::detect::{Detector, rules};
use eks_audit_core::pipeline::{EventFate, process_event, process_event_detecting};
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

/// Keeping every event, flat, with and without the default rule pack.
static DETECTING: LazyLock<[ProcessOptions; 2]> = LazyLock::new(|| {
    let plain = ProcessOptions {
        filter: Filter {
            stages: StageFilter::All,
            exclude_uris: Vec::new(),
        },
        ..ProcessOptions::default()
    };
    let detector = Detector::load(&rules::default_pack()).expect("the default pack loads");
    let detecting = ProcessOptions {
        detector: Some(Arc::new(detector)),
        ..plain.clone()
    };
    [plain, detecting]
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
    let [plain, detecting] = &*DETECTING;
    let (mut plain_out, mut out, mut findings) = (Vec::new(), Vec::new(), Vec::new());
    let plain_fate = process_event(text, &CONTEXT, plain, &mut plain_out);
    let fate = process_event_detecting(text, &CONTEXT, detecting, &mut out, &mut findings);
    assert_eq!(fate, plain_fate, "rules changed the fate");
    assert_eq!(out, plain_out, "rules changed the output");
    for finding in &findings {
        assert!(finding.line.ends_with(b"\n"));
        let value: Value = serde_json::from_slice(&finding.line).expect("a finding is JSON");
        assert_eq!(value["class_uid"], 2004);
    }
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
