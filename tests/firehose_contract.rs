//! contract §2, the Firehose response contract, rule by rule.

mod common;

use common::*;
use eks_audit_core::envelope::models::{FirehoseResponse, FirehoseResponseRecord, FirehoseResult};
use eks_audit_forwarder::config::Settings;
use serde_json::Value;

/// A kept event: a real EKS `list` (ResponseComplete, /apis/apps/...).
fn kept_event() -> String {
    corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    )
}

/// The same event at the RequestReceived stage, which the default filter drops.
fn request_received_event() -> String {
    kept_event().replace(
        "\"stage\":\"ResponseComplete\"",
        "\"stage\":\"RequestReceived\"",
    )
}

/// The answer to a one-record event: exactly one record, with the input's id `r0`.
fn only_record(response: &FirehoseResponse) -> &FirehoseResponseRecord {
    assert_eq!(response.records.len(), 1, "one answer for one record");
    assert_eq!(response.records[0].record_id, "r0");
    &response.records[0]
}

#[tokio::test]
async fn every_record_comes_back_once_in_input_order() {
    let good = gzip_record(&data_message(GROUP, STREAM, &[&kept_event()]));
    let datas = vec![
        gzip_record(&control_message()),
        "not*base64!".to_owned(),
        good.clone(),
        gzip_record(&data_message(GROUP, STREAM, &[&request_received_event()])),
        good,
    ];
    let response = handler(Settings::default())
        .firehose(&firehose_event(&datas))
        .await;
    let ids: Vec<&str> = response
        .records
        .iter()
        .map(|r| r.record_id.as_str())
        .collect();
    assert_eq!(ids, ["r0", "r1", "r2", "r3", "r4"]);
    let results: Vec<FirehoseResult> = response.records.iter().map(|r| r.result).collect();
    use FirehoseResult::*;
    assert_eq!(results, [Dropped, ProcessingFailed, Ok, Dropped, Ok]);
}

#[tokio::test]
async fn control_message_is_dropped() {
    let response = handler(Settings::default())
        .firehose(&firehose_event(&[gzip_record(&control_message())]))
        .await;
    let record = only_record(&response);
    assert_eq!(record.result, FirehoseResult::Dropped);
    assert!(record.metadata.is_none());
}

#[tokio::test]
async fn record_whose_events_are_all_filtered_is_dropped() {
    let noise = kept_event().replace(
        "/apis/apps/v1/namespaces/kube-system/deployments?fieldSelector=metadata.name%3Dvpc-resource-controller",
        "/readyz?verbose",
    );
    let message = data_message(GROUP, STREAM, &[&noise, &request_received_event()]);
    let response = handler(Settings::default())
        .firehose(&firehose_event(&[gzip_record(&message)]))
        .await;
    assert_eq!(only_record(&response).result, FirehoseResult::Dropped);
}

#[tokio::test]
async fn messages_from_other_control_plane_streams_are_dropped_not_failed() {
    let message = data_message(
        GROUP,
        "authenticator-0123456789abcdef",
        &["time=\"2024\" level=info msg=\"access granted\""],
    );
    let response = handler(Settings::default())
        .firehose(&firehose_event(&[gzip_record(&message)]))
        .await;
    assert_eq!(only_record(&response).result, FirehoseResult::Dropped);
}

#[tokio::test]
async fn undecodable_records_fail_with_their_original_data_untouched() {
    let truncated_gzip = {
        let whole = gzip(
            data_message(GROUP, STREAM, &[&kept_event()])
                .to_string()
                .as_bytes(),
        );
        b64(&whole[..whole.len() / 2])
    };
    let unknown_type = {
        let mut message = data_message(GROUP, STREAM, &[&kept_event()]);
        message["messageType"] = "SOMETHING_ELSE".into();
        gzip_record(&message)
    };
    let datas = vec![
        "not*base64!".to_owned(),
        b64(b"Hello World"),
        truncated_gzip,
        unknown_type,
        b64(&gzip(b"[1,2,3]")),
        b64(b""),
        // Valid base64 that a lenient decoder would accept differently: must come back as sent.
        "SGVsbG8gV29ybGQ".to_owned(),
    ];
    let response = handler(Settings::default())
        .firehose(&firehose_event(&datas))
        .await;
    // One answer per record, in order (firehose_event names them r0, r1, ...), before pairing
    // answers with inputs: a short response must not pass.
    let ids: Vec<&str> = response
        .records
        .iter()
        .map(|r| r.record_id.as_str())
        .collect();
    assert_eq!(ids, ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]);
    assert_eq!(response.records.len(), datas.len());
    for (record, data) in response.records.iter().zip(&datas) {
        assert_eq!(
            record.result,
            FirehoseResult::ProcessingFailed,
            "{}",
            record.record_id
        );
        assert_eq!(&record.data, data, "original data of {}", record.record_id);
        assert!(record.metadata.is_none());
    }
}

#[tokio::test]
async fn kept_events_are_base64_ndjson_with_partition_keys() {
    let message = data_message(
        GROUP,
        STREAM,
        &[&kept_event(), &request_received_event(), &kept_event()],
    );
    let response = handler(Settings::default())
        .firehose(&firehose_event(&[gzip_record(&message)]))
        .await;
    let record = only_record(&response);
    assert_eq!(record.result, FirehoseResult::Ok);
    let text = ok_text(&record.data);
    assert_eq!(
        text.matches('\n').count(),
        2,
        "two kept events, each line ending in \\n"
    );
    let lines = ok_lines(&record.data);
    assert_eq!(lines[0]["EventId"], "id-0");
    assert_eq!(
        lines[1]["EventId"], "id-2",
        "the RequestReceived event in between was dropped"
    );
    let keys = &record
        .metadata
        .as_ref()
        .expect("Ok records carry metadata")
        .partition_keys;
    assert_eq!(keys.get("cluster").map(String::as_str), Some("prod-east"));
    assert_eq!(keys.get("account").map(String::as_str), Some(ACCOUNT));
    assert_eq!(keys.len(), 2);
}

#[tokio::test]
async fn already_decompressed_records_are_accepted() {
    let message = data_message(GROUP, STREAM, &[&kept_event()]);
    let plain = b64(message.to_string().as_bytes());
    let response = handler(Settings::default())
        .firehose(&firehose_event(&[plain]))
        .await;
    let record = only_record(&response);
    assert_eq!(record.result, FirehoseResult::Ok);
    assert_eq!(ok_lines(&record.data)[0]["Verb"], "list");
}

#[tokio::test]
async fn malformed_audit_message_without_a_bucket_fails_the_record_with_its_original_data() {
    let message = data_message(
        GROUP,
        STREAM,
        &[
            &kept_event(),
            "{\"kind\":\"Event\",\"verb\":\"get\" [Truncated...]",
        ],
    );
    let data = gzip_record(&message);
    let response = handler(Settings::default())
        .firehose(&firehose_event(std::slice::from_ref(&data)))
        .await;
    let record = only_record(&response);
    assert_eq!(record.result, FirehoseResult::ProcessingFailed);
    assert_eq!(
        record.data, data,
        "the good event travels with it to the error output"
    );
}

/// contract §6.2: a truncated event whose fields before the cut are written, flagged, is still
/// quarantined; without a bucket its record fails whole, like any record holding a quarantined
/// event.
#[tokio::test]
async fn a_salvaged_truncated_event_without_a_bucket_still_fails_the_record() {
    let kept = kept_event();
    // Its keys are sorted (`corpus_event`), so `verb` comes last: cut inside it.
    assert!(kept.ends_with(r#","verb":"list"}"#));
    let cut = format!("{}[Truncated...]", &kept[..kept.len() - 4]);
    let message = data_message(GROUP, STREAM, &[&kept, &cut]);
    let data = gzip_record(&message);
    let test = handler(Settings::default());
    let response = test
        .firehose(&firehose_event(std::slice::from_ref(&data)))
        .await;
    let record = only_record(&response);
    assert_eq!(record.result, FirehoseResult::ProcessingFailed);
    assert_eq!(record.data, data, "the original data, both events");
    assert!(
        test.objects().is_empty(),
        "Firehose mode writes only to a bucket"
    );
}

#[tokio::test]
async fn kinesis_sourced_events_with_extra_fields_are_accepted() {
    // powertools' Kinesis-sourced Firehose event: records carry kinesisRecordMetadata and
    // their data is not CloudWatch Logs output at all.
    let event = corpus_file("lambda-events/powertools-python__kinesisFirehoseKinesisEvent.json");
    let response = handler(Settings::default()).firehose(&event).await;
    let input: Value = serde_json::from_str(&event).unwrap();
    let inputs = input["records"].as_array().unwrap();
    // The fixture's two records, record1 and record2: answered once each, in order.
    let ids: Vec<&str> = response
        .records
        .iter()
        .map(|r| r.record_id.as_str())
        .collect();
    assert_eq!(ids, ["record1", "record2"]);
    assert_eq!(response.records.len(), inputs.len());
    for (record, input) in response.records.iter().zip(inputs) {
        assert_eq!(record.record_id, input["recordId"].as_str().unwrap());
        assert_eq!(record.result, FirehoseResult::ProcessingFailed);
        assert_eq!(record.data, input["data"].as_str().unwrap());
    }
}

#[tokio::test]
async fn sam_cloudwatch_logs_processor_sample_is_fully_accounted_for() {
    // SAM CLI's sample: four gzip records (a control message and application log data).
    let event =
        corpus_file("lambda-events/aws-sam-cli__KinesisFirehoseCloudwatchLogsProcessor.json");
    let input: Value = serde_json::from_str(&event).unwrap();
    let response = handler(Settings::default()).firehose(&event).await;
    let input_ids: Vec<&str> = input["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["recordId"].as_str().unwrap())
        .collect();
    let ids: Vec<&str> = response
        .records
        .iter()
        .map(|r| r.record_id.as_str())
        .collect();
    assert_eq!(input_ids.len(), 4, "SOURCES.md: four records");
    assert_eq!(ids, input_ids, "each record answered once, in input order");
    for record in &response.records {
        // None of its log streams is an EKS audit stream: nothing is kept, nothing fails.
        assert_eq!(
            record.result,
            FirehoseResult::Dropped,
            "{}",
            record.record_id
        );
    }
}

#[tokio::test]
async fn response_serializes_in_the_wire_format_firehose_reads() {
    let message = data_message(GROUP, STREAM, &[&kept_event()]);
    let event = firehose_event(&[
        gzip_record(&message),
        gzip_record(&control_message()),
        "!".to_owned(),
    ]);
    let response = handler(Settings::default())
        .handler
        .handle(&event)
        .await
        .unwrap();
    let wire: Value = serde_json::to_value(&response).unwrap();
    let records = wire["records"].as_array().unwrap();
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["recordId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r0", "r1", "r2"]);
    assert_eq!(records[0]["result"], "Ok");
    assert_eq!(
        records[0]["metadata"]["partitionKeys"]["cluster"],
        "prod-east"
    );
    assert_eq!(records[1]["result"], "Dropped");
    assert_eq!(records[2]["result"], "ProcessingFailed");
    assert_eq!(records[2]["data"], "!");
    for record in records {
        assert!(record["recordId"].is_string() && record["data"].is_string());
    }
}
