//! contract §6: direct (`awslogs`) invocations write gzip NDJSON objects under deterministic keys,
//! and quarantine what is not an audit event. A local directory stands in for S3 here.

mod common;

use common::*;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::{HandlerError, Response};
use serde_json::{Value, json};

/// Real EKS event (immersion day), received 2023-07-31T01:58:11Z: hour 01.
fn event_at_01h() -> String {
    corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    )
}

/// The same event moved to 02:00:00.2Z, the next hour.
fn event_at_02h() -> String {
    event_at_01h()
        .replace("2023-07-31T01:58:11.743936Z", "2023-07-31T02:00:00.200000Z")
        .replace(
            "ff666369-8ea8-4fd9-8c54-64a49dc90e1d",
            "aa666369-8ea8-4fd9-8c54-64a49dc90e1d",
        )
}

async fn direct(test: &TestHandler, event: &str) -> eks_audit_forwarder::handler::DirectSummary {
    match test
        .handler
        .handle(event)
        .await
        .expect("direct invocation succeeds")
    {
        Response::Direct(summary) => summary,
        other => panic!("expected a direct summary, got {other:?}"),
    }
}

#[tokio::test]
async fn events_spanning_two_hours_become_two_objects_keyed_by_their_first_event() {
    let test = handler(Settings::default());
    let message = data_message(
        GROUP,
        STREAM,
        &[&event_at_01h(), &event_at_02h(), &event_at_01h()],
    );
    let summary = direct(&test, &awslogs_event(&message)).await;
    assert_eq!(summary.tally.kept, 3);

    let objects = test.objects();
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("eks-audit/cluster=prod-east/dt=2023-07-31/hour=01/{STREAM}-id-0.json.gz"),
            format!("eks-audit/cluster=prod-east/dt=2023-07-31/hour=02/{STREAM}-id-1.json.gz"),
        ]
    );
    let hour_01: Vec<Value> = objects[0]
        .1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = hour_01
        .iter()
        .map(|l| l["EventId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["id-0", "id-2"],
        "each object holds its hour's events in order"
    );
    assert!(objects[0].1.ends_with('\n'));
    assert_eq!(summary.objects.len(), 2);
}

#[tokio::test]
async fn the_same_event_twice_rewrites_the_same_objects() {
    let test = handler(Settings::default());
    let event = awslogs_event(&data_message(
        GROUP,
        STREAM,
        &[&event_at_01h(), &event_at_02h()],
    ));
    direct(&test, &event).await;
    let first = test.objects();
    direct(&test, &event).await;
    assert_eq!(
        test.objects(),
        first,
        "a retried invocation overwrites, never duplicates"
    );
}

#[tokio::test]
async fn object_bodies_round_trip_to_the_flat_lines() {
    let test = handler(Settings::default());
    direct(
        &test,
        &awslogs_event(&data_message(GROUP, STREAM, &[&event_at_01h()])),
    )
    .await;
    let (_, body) = &test.objects()[0];
    let line: Value = serde_json::from_str(body.trim_end()).unwrap();
    assert_eq!(
        line["RawEvent"],
        serde_json::from_str::<Value>(&event_at_01h()).unwrap()
    );
    assert_eq!(
        line["Region"], "us-west-2",
        "direct mode: the function's AWS_REGION"
    );
}

/// contract §6.2: a truncated event whose stage and request URI came before the cut is written,
/// flagged `Truncated`, with what precedes the cut, and quarantined verbatim as well.
#[tokio::test]
async fn a_truncated_event_is_written_flagged_and_quarantined_verbatim() {
    let test = handler(Settings::default());
    let whole = event_at_01h();
    // Its keys are sorted (`corpus_event`), so `verb` comes last: cut inside it.
    assert!(whole.ends_with(r#","verb":"list"}"#));
    let cut = format!("{}[Truncated...]", &whole[..whole.len() - 4]);
    let message = data_message(GROUP, STREAM, &[&cut]);
    let summary = direct(&test, &awslogs_event(&message)).await;
    let tally = &summary.tally;
    assert_eq!(
        (tally.kept, tally.quarantined, tally.salvaged),
        (0, 1, 1),
        "counted once, as quarantined, and salvaged"
    );
    let objects = test.objects();
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("eks-audit/cluster=prod-east/dt=2023-07-31/hour=01/{STREAM}-id-0.json.gz"),
            format!(
                "eks-audit/quarantine/cluster=prod-east/dt=2024-05-21/hour=10/{STREAM}-id-0.json.gz"
            ),
        ]
    );
    let line: Value = serde_json::from_str(objects[0].1.trim_end()).unwrap();
    let whole_line = {
        let test = handler(Settings::default());
        direct(
            &test,
            &awslogs_event(&data_message(GROUP, STREAM, &[&whole])),
        )
        .await;
        let objects = test.objects();
        serde_json::from_str::<Value>(objects[0].1.trim_end()).unwrap()
    };
    assert_eq!(line["Truncated"], true);
    assert_eq!(
        line["RawEvent"],
        cut.as_str(),
        "the text received, as a string"
    );
    for column in [
        "TimeGenerated",
        "User",
        "SourceIPs",
        "UserAgent",
        "ObjectRef",
        "ResponseCode",
        "AuthDecision",
    ] {
        assert_eq!(line[column], whole_line[column], "{column}");
    }
    assert_eq!(line["Verb"], Value::Null, "cut");
    assert!(
        whole_line.get("Truncated").is_none(),
        "a whole event is not flagged"
    );
    let quarantined: Value = serde_json::from_str(objects[1].1.trim_end()).unwrap();
    assert_eq!(quarantined["message"], cut.as_str(), "verbatim");
    assert!(
        quarantined["reason"]
            .as_str()
            .unwrap()
            .contains("[Truncated...]")
    );
}

#[tokio::test]
async fn malformed_messages_are_quarantined_verbatim_with_their_envelope() {
    let test = handler(Settings {
        prefix: "audit".into(),
        ..Settings::default()
    });
    let truncated = format!("{}[Truncated...]", &event_at_01h()[..200]);
    let message = data_message(
        GROUP,
        STREAM,
        &[&event_at_01h(), "E0521 10:00:00 not json", &truncated],
    );
    let summary = direct(&test, &awslogs_event(&message)).await;
    assert_eq!((summary.tally.kept, summary.tally.quarantined), (1, 2));

    let objects = test.objects();
    // 1716285600001 ms (the second event's CloudWatch timestamp) is 2024-05-21T10:00:00Z.
    let (key, body) = objects
        .iter()
        .find(|(k, _)| k.contains("quarantine"))
        .expect("a quarantine object");
    assert_eq!(
        key,
        &format!("audit/quarantine/cluster=prod-east/dt=2024-05-21/hour=10/{STREAM}-id-1.json.gz")
    );
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["message"], "E0521 10:00:00 not json",
        "the message exactly as logged"
    );
    assert_eq!(lines[1]["message"], truncated.as_str());
    assert!(lines[1]["reason"].as_str().unwrap().contains("Truncated"));
    // Each line names its log event as CloudWatch did: data_message gives event i the id
    // `id-<i>` and the timestamp 1716285600000 + i, so the quarantined events 1 and 2 are
    // id-1 at 1716285600001 and id-2 at 1716285600002.
    assert_eq!(lines[0]["id"], "id-1");
    assert_eq!(lines[0]["timestamp"].as_i64(), Some(1_716_285_600_001));
    assert_eq!(lines[1]["id"], "id-2");
    assert_eq!(lines[1]["timestamp"].as_i64(), Some(1_716_285_600_002));
    for line in &lines {
        assert_eq!(line["logGroup"], GROUP);
        assert_eq!(line["logStream"], STREAM);
        assert_eq!(line["owner"], ACCOUNT);
    }
}

#[tokio::test]
async fn oversized_event_is_quarantined_not_parsed() {
    let mut settings = Settings::default();
    settings.process.limits.max_event_bytes = 100;
    let test = handler(settings);
    let summary = direct(
        &test,
        &awslogs_event(&data_message(GROUP, STREAM, &[&event_at_01h()])),
    )
    .await;
    assert_eq!((summary.tally.kept, summary.tally.quarantined), (0, 1));
    let (_, body) = &test.objects()[0];
    assert!(body.contains("exceeds the 100-byte limit"));
}

#[tokio::test]
async fn undecodable_awslogs_data_fails_the_invocation() {
    let test = handler(Settings::default());
    let error = test
        .handler
        .handle(r#"{"awslogs":{"data":"H4sI-not-base64"}}"#)
        .await
        .unwrap_err();
    assert!(matches!(error, HandlerError::Undecodable(_)), "{error}");
    assert!(error.to_string().contains("base64"), "{error}");
    assert!(test.objects().is_empty());
}

#[tokio::test]
async fn events_of_other_shapes_are_rejected_by_name() {
    let test = handler(Settings::default());
    let s3_event = corpus_file("lambda-events/aws-lambda-rust-runtime__example-s3-event.json");
    let error = test.handler.handle(&s3_event).await.unwrap_err();
    assert!(matches!(error, HandlerError::Unsupported), "{error}");
    assert!(test.handler.handle("not json").await.is_err());
}

/// A DATA_MESSAGE of `log_group`/`log_stream` with the log events (id, CloudWatch timestamp in
/// ms, message) given.
fn message_of(log_group: &str, log_stream: &str, events: &[(&str, i64, &str)]) -> Value {
    let events: Vec<Value> = events
        .iter()
        .map(|(id, timestamp, message)| json!({"id": id, "timestamp": timestamp, "message": message}))
        .collect();
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": ["eks-audit-forwarder"],
        "logEvents": events,
    })
}

/// A kept audit event with no time of its own (no `requestReceivedTimestamp`,
/// `stageTimestamp` or `timestamp`): its TimeGenerated, and so its key's `dt` and `hour`, come
/// from the CloudWatch timestamp (contract §4 column 1, §6.1).
const TIMELESS: &str =
    r#"{"kind":"Event","verb":"get","stage":"ResponseComplete","requestURI":"/api/v1/pods"}"#;

/// An event of another kind: quarantined (contract §6.2), keyed by its CloudWatch timestamp
/// even though it carries a request time of its own.
const POD: &str = r#"{"kind":"Pod","requestReceivedTimestamp":"2023-07-31T01:58:11.743936Z"}"#;

// CloudWatch timestamps: 2024-05-21T00:00:00Z is 1,716,249,600,000 ms (19,864 days).
const LAST_MS_OF_MAY_20: i64 = 1_716_249_599_999; // 2024-05-20T23:59:59.999Z
const MIDNIGHT_MAY_21: i64 = 1_716_249_600_000; // 2024-05-21T00:00:00.000Z
const TEN_AM_MAY_21: i64 = 1_716_285_600_000; // + 36,000 s: 2024-05-21T10:00:00.000Z

#[tokio::test]
async fn object_keys_take_dt_and_hour_from_the_cloudwatch_timestamp_of_a_timeless_event() {
    let test = handler(Settings::default());
    let stream = "kube-apiserver-audit-0123456789abcdef0123456789abcdef";
    let message = message_of(
        "/aws/eks/prod-east/cluster",
        stream,
        &[
            ("e1", LAST_MS_OF_MAY_20, TIMELESS),
            ("e2", MIDNIGHT_MAY_21, TIMELESS),
            ("e3", MIDNIGHT_MAY_21 + 1_000, TIMELESS),
            ("q1", TEN_AM_MAY_21, POD),
        ],
    );
    let summary = direct(&test, &awslogs_event(&message)).await;
    assert_eq!((summary.tally.kept, summary.tally.quarantined), (3, 1));

    let objects = test.objects();
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "eks-audit/cluster=prod-east/dt=2024-05-20/hour=23/kube-apiserver-audit-0123456789abcdef0123456789abcdef-e1.json.gz",
            "eks-audit/cluster=prod-east/dt=2024-05-21/hour=00/kube-apiserver-audit-0123456789abcdef0123456789abcdef-e2.json.gz",
            "eks-audit/quarantine/cluster=prod-east/dt=2024-05-21/hour=10/kube-apiserver-audit-0123456789abcdef0123456789abcdef-q1.json.gz",
        ]
    );
    let times: Vec<Vec<(String, String)>> = objects[..2]
        .iter()
        .map(|(_, body)| {
            body.lines()
                .map(|l| {
                    let line: Value = serde_json::from_str(l).unwrap();
                    (
                        line["EventId"].as_str().unwrap().to_owned(),
                        line["TimeGenerated"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .collect();
    let pair = |id: &str, time: &str| (id.to_owned(), time.to_owned());
    assert_eq!(
        times,
        [
            vec![pair("e1", "2024-05-20T23:59:59.999000Z")],
            vec![
                pair("e2", "2024-05-21T00:00:00.000000Z"),
                pair("e3", "2024-05-21T00:00:01.000000Z")
            ],
        ]
    );
}

#[tokio::test]
async fn object_keys_say_unknown_for_a_log_group_that_names_no_cluster() {
    // Neither log group is /aws/eks/<one non-empty segment>/cluster, and no
    // EKS_AUDIT_CLUSTER_NAME is set: keys use `_unknown`, the column stays null (contract §4).
    for group in ["/aws/lambda/audit-relay", "/aws/eks//cluster"] {
        let test = handler(Settings::default());
        let message = message_of(
            group,
            "kube-apiserver-audit-1",
            &[("e1", TEN_AM_MAY_21, TIMELESS), ("q1", TEN_AM_MAY_21, POD)],
        );
        direct(&test, &awslogs_event(&message)).await;
        let objects = test.objects();
        let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "eks-audit/cluster=_unknown/dt=2024-05-21/hour=10/kube-apiserver-audit-1-e1.json.gz",
                "eks-audit/quarantine/cluster=_unknown/dt=2024-05-21/hour=10/kube-apiserver-audit-1-q1.json.gz",
            ],
            "{group}"
        );
        let line: Value = serde_json::from_str(objects[0].1.trim_end()).unwrap();
        assert_eq!(line["ClusterName"], Value::Null, "{group}");
    }
}

#[tokio::test]
async fn object_keys_replace_slashes_and_other_characters_in_stream_and_id() {
    // Only A-Z a-z 0-9 - _ . = stay; every other byte becomes `!` and its two hex digits
    // (contract §6.1): `/` is 2F, space 20, `:` 3A, `+` 2B, and `é` is the two UTF-8 bytes
    // C3 A9. The stream is still an audit stream by its prefix.
    let test = handler(Settings::default());
    let message = message_of(
        "/aws/eks/prod-east/cluster",
        "kube-apiserver-audit-a/b c:é",
        &[
            ("49/5+7=x.y", TEN_AM_MAY_21, TIMELESS),
            ("q/1", TEN_AM_MAY_21, POD),
        ],
    );
    direct(&test, &awslogs_event(&message)).await;
    let objects = test.objects();
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "eks-audit/cluster=prod-east/dt=2024-05-21/hour=10/kube-apiserver-audit-a!2Fb!20c!3A!C3!A9-49!2F5!2B7=x.y.json.gz",
            "eks-audit/quarantine/cluster=prod-east/dt=2024-05-21/hour=10/kube-apiserver-audit-a!2Fb!20c!3A!C3!A9-q!2F1.json.gz",
        ]
    );
    // The columns keep the names as they came.
    let line: Value = serde_json::from_str(objects[0].1.trim_end()).unwrap();
    assert_eq!(line["LogStream"], "kube-apiserver-audit-a/b c:é");
    assert_eq!(line["EventId"], "49/5+7=x.y");
}

#[tokio::test]
async fn an_empty_prefix_starts_keys_at_cluster() {
    let test = handler(Settings {
        prefix: String::new(),
        ..Settings::default()
    });
    let message = message_of(
        "/aws/eks/prod-east/cluster",
        "kube-apiserver-audit-1",
        &[("e1", TEN_AM_MAY_21, TIMELESS), ("q1", TEN_AM_MAY_21, POD)],
    );
    let summary = direct(&test, &awslogs_event(&message)).await;
    let objects = test.objects();
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "cluster=prod-east/dt=2024-05-21/hour=10/kube-apiserver-audit-1-e1.json.gz",
            "quarantine/cluster=prod-east/dt=2024-05-21/hour=10/kube-apiserver-audit-1-q1.json.gz",
        ]
    );
    // The summary names the same files.
    let root = test.dir.path();
    assert_eq!(
        summary.objects,
        [root
            .join("cluster=prod-east/dt=2024-05-21/hour=10/kube-apiserver-audit-1-e1.json.gz")
            .to_string_lossy()]
    );
    assert_eq!(
        summary.quarantine_objects,
        [root
            .join("quarantine/cluster=prod-east/dt=2024-05-21/hour=10/kube-apiserver-audit-1-q1.json.gz")
            .to_string_lossy()]
    );
}
