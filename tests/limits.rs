//! Limits against resource exhaustion (`EKS_AUDIT_MAX_*`): each one holds, and what goes over it
//! fails or is quarantined with its original bytes, quickly and in bounded memory.

mod common;

use std::time::{Duration, Instant};

use common::*;
use eks_audit_core::envelope::DecodeError;
use eks_audit_core::envelope::models::FirehoseResult;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::{HandlerError, Response};
use serde_json::{Value, json};

#[path = "common/peak.rs"]
mod peak;

const MIB: usize = 1 << 20;

/// A gzip stream that inflates to 1 GiB of zeros: 1,024 members of 1 MiB each (deflate cannot
/// beat about 1,032:1, so a gigabyte needs about a megabyte of gzip, whatever the trick).
fn gigabyte_bomb() -> Vec<u8> {
    let member = gzip(&vec![0u8; MIB]);
    let bomb = member.repeat(1024);
    assert!(bomb.len() < 2 * MIB, "{} bytes of gzip", bomb.len());
    bomb
}

#[tokio::test(flavor = "current_thread")]
async fn a_gigabyte_gzip_bomb_fails_its_record_with_its_original_data_quickly_in_bounded_memory() {
    let data = b64(&gigabyte_bomb());
    let event = firehose_event(std::slice::from_ref(&data));
    for limit in [MIB, 64 * MIB] {
        let mut settings = Settings::default();
        settings.process.limits.max_payload_bytes = limit;
        let test = handler(settings);
        let base = peak::held();
        peak::reset();
        let started = Instant::now();
        let response = test.firehose(&event).await;
        let (elapsed, peak) = (started.elapsed(), peak::since(base));
        let record = &response.records[0];
        assert_eq!(record.result, FirehoseResult::ProcessingFailed);
        assert_eq!(
            record.data, data,
            "the bomb goes to the error output as it came"
        );
        // Decompression stops one byte past the limit: the 1 GiB is never produced. Besides
        // the output (at most 1/8 over the limit as it grows), the heap holds the decoded
        // base64 (1 MB) and the response's copy of the data (1.4 MB).
        let budget = limit + limit / 8 + 4 * MIB;
        eprintln!("limit {limit}: peak heap {peak} bytes, {elapsed:?}");
        assert!(
            peak < budget,
            "limit {limit}: {peak} bytes at peak for a {}-byte event",
            event.len()
        );
        assert!(
            elapsed < Duration::from_secs(30),
            "limit {limit}: {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn the_bomb_fails_a_direct_invocation_with_the_reason() {
    let mut settings = Settings::default();
    settings.process.limits.max_payload_bytes = MIB;
    let test = handler(settings);
    let error = test
        .handler
        .handle(&json!({"awslogs": {"data": b64(&gigabyte_bomb())}}).to_string())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            HandlerError::Undecodable(DecodeError::TooLarge { limit: MIB })
        ),
        "{error}"
    );
    assert!(test.objects().is_empty());
}

/// `{"kind":"Event","stage":"ResponseComplete","requestObject":<body>}` in a data message.
fn event_with_body(body: &str) -> String {
    format!(
        r#"{{"kind":"Event","stage":"ResponseComplete","verb":"update","requestObject":{body}}}"#
    )
}

async fn direct(
    settings: Settings,
    messages: &[&str],
) -> (eks_audit_core::tally::Tally, Vec<(String, String)>) {
    let test = handler(settings);
    match test
        .handler
        .handle(&awslogs_event(&data_message(GROUP, STREAM, messages)))
        .await
        .unwrap()
    {
        Response::Direct(summary) => (summary.tally, test.objects()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn nesting_past_the_depth_limit_is_quarantined_not_a_stack_overflow() {
    // 400,000 levels (800 KB, under the 1 MiB event cap): a recursive reader would overflow
    // its stack; the byte scan stops at level 101.
    let deep = event_with_body(&format!("{}{}", "[".repeat(400_000), "]".repeat(400_000)));
    let (tally, objects) = direct(Settings::default(), &[&deep]).await;
    assert_eq!((tally.kept, tally.quarantined), (0, 1));
    let (_, body) = objects
        .iter()
        .find(|(k, _)| k.contains("quarantine"))
        .unwrap();
    let line: Value = serde_json::from_str(body.trim_end()).unwrap();
    assert_eq!(line["message"], deep.as_str(), "quarantined verbatim");
    assert_eq!(
        line["reason"],
        "JSON nested more than 100 levels deep (EKS_AUDIT_MAX_DEPTH)"
    );
}

#[tokio::test]
async fn the_depth_limit_counts_every_object_and_array_and_is_configurable() {
    // Depth 5: the event, requestObject, a, b, c.
    let five = event_with_body(r#"{"a":{"b":[{}]}}"#);
    let mut settings = Settings::default();
    settings.process.limits.max_depth = 5;
    assert_eq!(direct(settings.clone(), &[&five]).await.0.kept, 1);
    settings.process.limits.max_depth = 4;
    assert_eq!(direct(settings, &[&five]).await.0.quarantined, 1);
    // The default leaves room for real events: 100 levels are kept, and the output line,
    // which nests RawEvent one level deeper, is still read by serde_json (limit 128).
    let hundred = event_with_body(&format!("{}{}", "[".repeat(99), "]".repeat(99)));
    let (tally, objects) = direct(Settings::default(), &[&hundred]).await;
    assert_eq!(tally.kept, 1);
    let line: Value = serde_json::from_str(objects[0].1.trim_end()).unwrap();
    assert_eq!(
        line["RawEvent"],
        serde_json::from_str::<Value>(&hundred).unwrap()
    );
}

#[tokio::test]
async fn a_record_with_more_events_than_the_limit_fails_with_its_original_data() {
    let event = corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    );
    let mut settings = Settings::default();
    settings.process.limits.max_events_per_record = 3;
    let three = gzip_record(&data_message(GROUP, STREAM, &[event.as_str(); 3]));
    let four = gzip_record(&data_message(GROUP, STREAM, &[event.as_str(); 4]));
    let test = handler(settings.clone());
    let response = test.firehose(&firehose_event(&[three, four.clone()])).await;
    assert_eq!(response.records[0].result, FirehoseResult::Ok);
    assert_eq!(ok_lines(&response.records[0].data).len(), 3);
    assert_eq!(response.records[1].result, FirehoseResult::ProcessingFailed);
    assert_eq!(response.records[1].data, four);

    let direct = handler(settings);
    let error = direct
        .handler
        .handle(&awslogs_event(&data_message(
            GROUP,
            STREAM,
            &[event.as_str(); 4],
        )))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            HandlerError::Undecodable(DecodeError::TooManyEvents { limit: 3 })
        ),
        "{error}"
    );
    assert!(direct.objects().is_empty(), "nothing half-written");
}

#[tokio::test]
async fn the_default_event_limit_stops_a_flood_of_tiny_events() {
    // 50,001 events of `{}` (2.5 MB of JSON, 40 KB of gzip): one past the default.
    let flood = gzip_record(&data_message(GROUP, STREAM, &vec!["{}"; 50_001]));
    let response = handler(Settings::default())
        .firehose(&firehose_event(std::slice::from_ref(&flood)))
        .await;
    assert_eq!(response.records[0].result, FirehoseResult::ProcessingFailed);
    assert_eq!(response.records[0].data, flood);
}

#[tokio::test]
async fn an_event_over_the_size_limit_fails_its_firehose_record_without_a_bucket() {
    let event = corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    );
    let mut settings = Settings::default();
    settings.process.limits.max_event_bytes = event.len() - 1;
    let data = gzip_record(&data_message(GROUP, STREAM, &[&event]));
    let response = handler(settings)
        .firehose(&firehose_event(std::slice::from_ref(&data)))
        .await;
    assert_eq!(response.records[0].result, FirehoseResult::ProcessingFailed);
    assert_eq!(response.records[0].data, data);
}
