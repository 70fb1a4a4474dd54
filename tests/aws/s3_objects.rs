//! contract §6 against S3 (moto): object keys, headers, encryption, bodies, idempotent retries,
//! quarantine in both modes, and a missing bucket.

use aws_sdk_s3::types::ServerSideEncryption;
use eks_audit_core::batch::objects::gunzip;
use eks_audit_core::envelope::models::FirehoseResult;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::{DirectSummary, Handler, HandlerError, Response};
use eks_audit_forwarder::sink::s3::S3Store;
use eks_audit_forwarder::sink::{ObjectStore, SinkError};
use serde_json::Value;

use crate::events::{awslogs_message, expected_objects, sample};
use crate::moto::{self, unique};
use crate::resources::new_bucket;

/// A handler writing to `bucket` through the library's own S3 client set-up.
pub async fn s3_handler(bucket: &str, kms_key: Option<&str>) -> Handler {
    let settings = Settings {
        bucket: Some(bucket.to_owned()),
        ..Settings::default()
    };
    let client = eks_audit_forwarder::sink::s3::client(&moto::config().await);
    let store = ObjectStore::S3(S3Store::new(
        client,
        bucket.to_owned(),
        kms_key.map(str::to_owned),
    ));
    Handler::new(settings, store, Some("eu-west-1".into()))
}

pub async fn direct(handler: &Handler, event: &str) -> DirectSummary {
    match handler
        .handle(event)
        .await
        .expect("direct invocation succeeds")
    {
        Response::Direct(summary) => summary,
        other => panic!("expected a direct summary, got {other:?}"),
    }
}

/// Every key in `bucket`, sorted.
pub async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listing = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list objects");
    let mut keys: Vec<String> = listing
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// An object's body, gunzipped, as lines.
pub async fn lines(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<Value> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get object");
    let body = object.body.collect().await.unwrap().into_bytes();
    let text = String::from_utf8(gunzip(&body).expect("body is gzip")).unwrap();
    assert!(text.ends_with('\n'), "{key}: every line ends in a newline");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[tokio::test]
async fn direct_mode_writes_one_object_per_hour_with_the_promised_key_headers_and_body() {
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    let event = sample("awslogs-eks-audit.json");
    let message = awslogs_message(&event);
    let expected = expected_objects(&message, "eks-audit");
    assert_eq!(expected.len(), 2, "the sample crosses an hour boundary");

    let summary = direct(&s3_handler(&bucket, None).await, &event).await;

    assert_eq!(
        keys(&s3, &bucket).await,
        expected.keys().cloned().collect::<Vec<_>>()
    );
    let mut reported = summary.objects.clone();
    reported.sort();
    assert_eq!(
        reported,
        expected
            .keys()
            .map(|k| format!("s3://{bucket}/{k}"))
            .collect::<Vec<_>>()
    );
    for (key, ids) in &expected {
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("head object");
        assert_eq!(head.content_type(), Some("application/x-ndjson"), "{key}");
        assert_eq!(head.content_encoding(), Some("gzip"), "{key}");
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256),
            "{key}"
        );
        // The count and time span, from the input: the object's events and their
        // requestReceivedTimestamp, which every sample event has (microseconds, UTC).
        let mut times: Vec<String> = ids
            .iter()
            .map(|id| {
                let logged = message["logEvents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["id"] == id.as_str())
                    .unwrap();
                let audit: Value =
                    serde_json::from_str(logged["message"].as_str().unwrap()).unwrap();
                audit["requestReceivedTimestamp"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        times.sort();
        assert_eq!(
            user_metadata(&head),
            [
                ("events", ids.len().to_string()),
                ("first-event-time", times[0].clone()),
                ("last-event-time", times[times.len() - 1].clone()),
            ],
            "{key}"
        );

        let lines = lines(&s3, &bucket, key).await;
        let event_ids: Vec<&str> = lines
            .iter()
            .map(|l| l["EventId"].as_str().unwrap())
            .collect();
        assert_eq!(&event_ids, ids, "{key}: the hour's kept events, in order");
        for line in &lines {
            let logged = message["logEvents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["id"] == line["EventId"])
                .unwrap();
            let audit: Value = serde_json::from_str(logged["message"].as_str().unwrap()).unwrap();
            assert_eq!(line["RawEvent"], audit, "the original event, unmodified");
            assert_eq!(line["ClusterName"], "prod-east");
            assert_eq!(line["AwsAccountId"], message["owner"]);
        }
    }
    assert_eq!(
        summary.tally.kept as usize,
        expected.values().map(Vec::len).sum::<usize>()
    );
}

/// An object's user metadata (`x-amz-meta-*`), sorted by name.
pub fn user_metadata(
    head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
) -> Vec<(&str, String)> {
    let mut metadata: Vec<(&str, String)> = head
        .metadata()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    metadata.sort();
    metadata
}

/// A CloudWatch timestamp (epoch milliseconds) as object metadata writes times.
fn rfc3339_of_millis(ms: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time.format(format).unwrap()
}

#[tokio::test]
async fn sse_kms_is_requested_with_the_configured_key() {
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    let key_id = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let summary = direct(
        &s3_handler(&bucket, Some(key_id)).await,
        &sample("awslogs-eks-audit.json"),
    )
    .await;
    assert!(!summary.objects.is_empty());
    for key in keys(&s3, &bucket).await {
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms),
            "{key}"
        );
        assert_eq!(head.ssekms_key_id(), Some(key_id), "{key}");
    }
}

#[tokio::test]
async fn the_same_event_twice_leaves_the_same_objects() {
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    let handler = s3_handler(&bucket, None).await;
    let event = sample("awslogs-eks-audit.json");
    direct(&handler, &event).await;
    let first = keys(&s3, &bucket).await;
    let first_bodies = bodies(&s3, &bucket, &first).await;
    direct(&handler, &event).await;
    let second = keys(&s3, &bucket).await;
    assert_eq!(
        second, first,
        "a retried invocation overwrites its objects, never adds any"
    );
    assert_eq!(bodies(&s3, &bucket, &second).await, first_bodies);
}

async fn bodies(s3: &aws_sdk_s3::Client, bucket: &str, keys: &[String]) -> Vec<Vec<Value>> {
    let mut bodies = Vec::new();
    for key in keys {
        bodies.push(lines(s3, bucket, key).await);
    }
    bodies
}

#[tokio::test]
async fn a_missing_bucket_fails_the_invocation_naming_bucket_and_key() {
    let bucket = unique("no-such-bucket");
    let error = s3_handler(&bucket, None)
        .await
        .handle(&sample("awslogs-eks-audit.json"))
        .await
        .unwrap_err();
    let HandlerError::Store(SinkError::S3 {
        bucket: named,
        key,
        message,
    }) = &error
    else {
        panic!("expected an S3 store error, got {error}")
    };
    assert_eq!(named, &bucket);
    assert!(
        key.starts_with("eks-audit/cluster=prod-east/dt=2024-05-21/hour="),
        "{key}"
    );
    assert!(
        message.starts_with("NoSuchBucket (HTTP 404)"),
        "one line an operator can act on: {message}"
    );
    let text = error.to_string();
    assert!(text.contains(&format!("s3://{bucket}/{key}")), "{text}");
}

/// The events of the malformed sample that are not audit events, as logged.
fn not_audit_events(message: &Value) -> Vec<String> {
    message["logEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .filter(|m| serde_json::from_str::<Value>(m).is_err())
        .collect()
}

async fn quarantined_lines(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for key in keys(s3, bucket)
        .await
        .iter()
        .filter(|k| k.starts_with("eks-audit/quarantine/cluster=prod-east/"))
    {
        found.extend(lines(s3, bucket, key).await);
    }
    found
}

fn assert_quarantined_verbatim(lines: &[Value], message: &Value) {
    let mut logged: Vec<String> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = not_audit_events(message);
    logged.sort();
    expected.sort();
    assert_eq!(
        logged, expected,
        "every non-audit message, exactly as logged"
    );
    for line in lines {
        assert_eq!(line["logGroup"], message["logGroup"]);
        assert_eq!(line["logStream"], message["logStream"]);
        assert_eq!(line["owner"], message["owner"]);
        assert!(!line["reason"].as_str().unwrap().is_empty());
        // The line names the log event it holds: its CloudWatch id and timestamp.
        let source: Vec<&Value> = message["logEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["message"] == line["message"])
            .collect();
        let [source] = source.as_slice() else {
            panic!("one input event per quarantined message: {source:?}")
        };
        assert_eq!(line["id"], source["id"]);
        assert_eq!(line["timestamp"], source["timestamp"]);
    }
}

#[tokio::test]
async fn direct_mode_quarantines_what_is_not_an_audit_event() {
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    let event = sample("awslogs-malformed.json");
    let message = awslogs_message(&event);
    let summary = direct(&s3_handler(&bucket, None).await, &event).await;
    assert_eq!((summary.tally.kept, summary.tally.quarantined), (1, 2));
    assert_eq!(
        summary.tally.salvaged, 1,
        "the truncated event (contract §6.2)"
    );
    assert_eq!(summary.objects.len(), 1);
    assert!(!summary.quarantine_objects.is_empty());
    assert_quarantined_verbatim(&quarantined_lines(&s3, &bucket).await, &message);
    // The event object holds the good event and what precedes the cut of the truncated one,
    // flagged; its original text is in quarantine too.
    let key = summary.objects[0]
        .strip_prefix(&format!("s3://{bucket}/"))
        .unwrap();
    let written = lines(&s3, &bucket, key).await;
    assert_eq!(written.len(), 2);
    assert!(written[0].get("Truncated").is_none());
    let truncated = message["logEvents"][2]["message"].as_str().unwrap();
    assert_eq!(written[1]["Truncated"], true);
    assert_eq!(written[1]["RawEvent"], truncated);
    assert_eq!(written[1]["Verb"], "get");

    // The sample's two messages that are not JSON fall in one CloudWatch hour, so one
    // quarantine object: their count, and the first and last of their CloudWatch timestamps.
    let mut stamps: Vec<i64> = message["logEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| serde_json::from_str::<Value>(e["message"].as_str().unwrap()).is_err())
        .map(|e| e["timestamp"].as_i64().unwrap())
        .collect();
    stamps.sort();
    let [quarantine_key] = summary.quarantine_objects.as_slice() else {
        panic!("one quarantine object: {:?}", summary.quarantine_objects)
    };
    let key = quarantine_key.trim_start_matches(&format!("s3://{bucket}/"));
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .expect("head the quarantine object");
    assert_eq!(
        user_metadata(&head),
        [
            ("events", stamps.len().to_string()),
            ("first-event-time", rfc3339_of_millis(stamps[0])),
            (
                "last-event-time",
                rfc3339_of_millis(stamps[stamps.len() - 1])
            ),
        ]
    );
}

#[tokio::test]
async fn firehose_mode_quarantines_into_the_bucket_and_keeps_the_record() {
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    let sample_event: Value = serde_json::from_str(&sample("awslogs-malformed.json")).unwrap();
    let data = sample_event["awslogs"]["data"].as_str().unwrap().to_owned();
    let message = awslogs_message(&sample_event.to_string());
    let event = crate::common::firehose_event(&[data]);

    let handler = s3_handler(&bucket, None).await;
    let Response::Firehose(response) = handler.handle(&event).await.unwrap() else {
        panic!("a Firehose response")
    };
    assert_eq!(
        response.records[0].result,
        FirehoseResult::Ok,
        "the good event is delivered"
    );
    // With it, what precedes the cut of the truncated event, flagged (contract §6.2).
    let delivered = crate::common::ok_lines(&response.records[0].data);
    assert_eq!(delivered.len(), 2);
    assert!(delivered[0].get("Truncated").is_none());
    assert_eq!(delivered[1]["Truncated"], true);
    assert_quarantined_verbatim(&quarantined_lines(&s3, &bucket).await, &message);
    assert!(
        keys(&s3, &bucket)
            .await
            .iter()
            .all(|k| k.starts_with("eks-audit/quarantine/")),
        "Firehose mode writes only quarantine objects; Firehose delivers the events"
    );
}
