//! Inputs the fuzzers (`fuzz/`, scripts/fuzz.sh) broke the forwarder with, each kept as the
//! crashing input and the outcome it must have now. CI runs these; it does not run the fuzzers.
//!
//! Each case names the target that found it, or says it was found by review and confirmed by
//! running the old fuzz binary on it.

mod common;

use std::io::Write;

use common::*;
use eks_audit_core::pipeline::{EventFate, process_event};
use eks_audit_core::transform::{Transformed, transform};
use serde_json::Value;

fn fate(text: &str) -> (EventFate, Vec<u8>) {
    let mut out = Vec::new();
    let fate = process_event(text, &CONTEXT, &keep_all().process, &mut out);
    (fate, out)
}

fn quarantine_reason(text: &str) -> String {
    match fate(text) {
        (EventFate::Quarantined(reason), out) => {
            assert!(out.is_empty(), "nothing written for a quarantined event");
            reason
        }
        other => panic!("{text} should be quarantined: {other:?}"),
    }
}

fn kept_line(text: &str) -> Value {
    match fate(text) {
        (EventFate::Kept { .. }, out) => {
            serde_json::from_slice(&out).expect("a kept line is JSON serde_json reads")
        }
        other => panic!("{text} should be kept: {other:?}"),
    }
}

#[test]
fn audit_normalizer_number_beyond_a_float_is_quarantined_not_forwarded() {
    // Found by audit_normalizer on the first run: serde_json skipped the unknown field without
    // reading the number, so the event was kept, and its line was refused by every strict
    // reader ("number out of range").
    let reason = quarantine_reason(r#"{"kinZ":22E2222222222}"#);
    assert_eq!(
        reason,
        "number 22E2222222222 is beyond the range of a 64-bit float"
    );
}

#[test]
fn transform_number_beyond_a_float_then_bare_values() {
    // Found by transform on the first run (same cause), in NDJSON-ish input of four values:
    // the object with the big number, then 99, {} and 5009.
    let out = transform(
        br#"{"" : 99E2299}99 {}5009"#.to_vec(),
        &keep_all().process,
        None,
    )
    .unwrap();
    assert_eq!(
        (out.tally.events, out.tally.kept, out.tally.quarantined),
        (4, 1, 3)
    );
    assert_eq!(out.problems.len(), 3);
    assert!(
        out.problems[0].contains("beyond the range of a 64-bit float"),
        "{:?}",
        out.problems
    );
    assert_lines_are_json(&out);
}

#[test]
fn review_timestamp_whose_utc_year_is_10000_falls_back_instead_of_panicking() {
    // Found by review, confirmed on the old audit_normalizer binary: `time` panicked
    // ("local datetime out of valid range") converting 9999-12-31T23:00:00-02:00 to UTC.
    let line = kept_line(r#"{"requestReceivedTimestamp":"9999-12-31T23:00:00-02:00"}"#);
    assert_eq!(
        line["TimeGenerated"], "2024-05-21T10:00:00.000000Z",
        "the CloudWatch time"
    );
    assert_eq!(
        line["RequestReceivedTimestamp"], "9999-12-31T23:00:00-02:00",
        "the field as it came"
    );
}

#[test]
fn review_lone_surrogate_escape_is_quarantined() {
    // Found by review, confirmed on the old audit_normalizer binary: kept, and the line was
    // refused by serde_json ("unexpected end of hex escape").
    let reason = quarantine_reason(r#"{"kind":"Event","requestObject":{"x":"\ud800"}}"#);
    assert_eq!(
        reason,
        "string holds an unpaired UTF-16 surrogate escape \\ud800"
    );
}

#[test]
fn review_nesting_past_serde_json_recursion_limit_is_quarantined() {
    // Found by review, confirmed on the old audit_normalizer binary: 200 levels in an unknown
    // field were kept, and the line was refused by serde_json ("recursion limit exceeded").
    let text = format!(
        r#"{{"kind":"Event","requestObject":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(
        quarantine_reason(&text),
        "JSON nested more than 100 levels deep (EKS_AUDIT_MAX_DEPTH)"
    );
}

#[test]
fn review_transform_of_deeply_nested_arrays_does_not_overflow_the_stack() {
    // Found by review, confirmed on the old transform binary: 436 bytes of gzip (200,000
    // nested arrays) recursed once per level and crashed with a stack overflow (SIGSEGV).
    let nested = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(nested.as_bytes()).unwrap();
    let out = transform(encoder.finish().unwrap(), &keep_all().process, None).unwrap();
    assert_eq!((out.tally.events, out.tally.quarantined), (1, 1));
    assert_eq!(
        out.problems,
        ["event 1: JSON nested more than 100 levels deep (EKS_AUDIT_MAX_DEPTH)"]
    );
}

#[test]
fn review_transform_reads_a_plain_json_array_of_events() {
    // Found while reproducing the case above: plain (not gzip) input had to start with `{`,
    // so the JSON array the README promises was refused as "neither gzip nor JSON".
    let out = transform(
        br#"[{"kind":"Event","stage":"ResponseComplete"}, {"kind":"Event"}]"#.to_vec(),
        &keep_all().process,
        None,
    )
    .unwrap();
    assert_eq!(out.tally.kept, 2);
    assert_lines_are_json(&out);
}

fn assert_lines_are_json(out: &Transformed) {
    let text = std::str::from_utf8(&out.ndjson).unwrap();
    assert_eq!(text.lines().count() as u64, out.tally.kept);
    for line in text.lines() {
        assert!(serde_json::from_str::<Value>(line).unwrap().is_object());
    }
}
