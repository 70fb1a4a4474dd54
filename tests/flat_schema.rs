//! contract §4: every flat column, from real corpus events. Expected values are read off the
//! events by hand; the comments say where each comes from.

mod common;

use common::*;
use eks_audit_core::ProcessOptions;
use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_forwarder::config::Settings;
use serde_json::{Value, json};

const SENTINEL_COLUMNS: [&str; 13] = [
    "TimeGenerated",
    "AwsAccountId",
    "Region",
    "ClusterName",
    "Verb",
    "User",
    "SourceIPs",
    "UserAgent",
    "ObjectRef",
    "ResponseCode",
    "Stage",
    "AuthDecision",
    "RawEvent",
];

const EXTENDED_COLUMNS: [&str; 19] = [
    "AuditId",
    "Level",
    "RequestURI",
    "ApiGroup",
    "ApiVersion",
    "Namespace",
    "Resource",
    "Subresource",
    "Name",
    "UserGroups",
    "UserArn",
    "ImpersonatedUser",
    "AuthReason",
    "ResponseReason",
    "RequestReceivedTimestamp",
    "StageTimestamp",
    "LogGroup",
    "LogStream",
    "EventId",
];

fn all_stages() -> Settings {
    let filter = Filter {
        stages: StageFilter::All,
        ..Filter::default()
    };
    Settings {
        process: ProcessOptions {
            filter,
            ..ProcessOptions::default()
        },
        ..Settings::default()
    }
}

/// Runs one event through a Firehose record from the EKS group and returns its flat line.
async fn flat_via_firehose(event: &str, settings: Settings) -> Value {
    serde_json::from_str(&flat_text_via_firehose(event, settings).await).unwrap()
}

async fn flat_text_via_firehose(event: &str, settings: Settings) -> String {
    let test = handler(settings);
    let message = data_message(GROUP, STREAM, &[event]);
    let response = test
        .firehose(&firehose_event(&[gzip_record(&message)]))
        .await;
    let text = ok_text(&response.records[0].data);
    assert_eq!(text.lines().count(), 1);
    text
}

fn flat_via_transform(event: &str) -> Value {
    let out = eks_audit_core::transform::transform(
        event.as_bytes().to_vec(),
        &all_stages().process,
        None,
    )
    .unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let text = String::from_utf8(out.ndjson).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    lines.remove(0)
}

#[tokio::test]
async fn eks_event_fills_every_sentinel_column() {
    // A real EKS event (eks-security-immersion-day): eks:k8s-metrics lists a deployment.
    let raw = corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    );
    let text = flat_text_via_firehose(&raw, Settings::default()).await;
    let line: Value = serde_json::from_str(&text).unwrap();

    let keys = keys_in_order(&text);
    let expected: Vec<&str> = SENTINEL_COLUMNS
        .iter()
        .chain(EXTENDED_COLUMNS.iter())
        .copied()
        .collect();
    assert_eq!(
        keys, expected,
        "columns in the documented order, Sentinel's 13 first"
    );

    assert_eq!(
        line["TimeGenerated"], "2023-07-31T01:58:11.743936Z",
        "requestReceivedTimestamp"
    );
    assert_eq!(line["AwsAccountId"], ACCOUNT, "subscription message owner");
    assert_eq!(line["Region"], "eu-west-1", "Firehose event region");
    assert_eq!(
        line["ClusterName"], "prod-east",
        "from /aws/eks/prod-east/cluster"
    );
    assert_eq!(line["Verb"], "list");
    assert_eq!(line["User"], "eks:k8s-metrics");
    assert_eq!(line["SourceIPs"], json!(["172.16.33.233"]));
    assert_eq!(
        line["UserAgent"],
        "eks-k8s-metrics/v0.0.0 (linux/amd64) kubernetes/$Format"
    );
    assert_eq!(
        line["ObjectRef"],
        "kube-system/deployments/vpc-resource-controller"
    );
    assert_eq!(line["ResponseCode"], 200);
    assert_eq!(line["Stage"], "ResponseComplete");
    assert_eq!(line["AuthDecision"], "allow");
    assert_eq!(
        line["RawEvent"],
        serde_json::from_str::<Value>(&raw).unwrap(),
        "the original event, whole"
    );

    assert_eq!(line["AuditId"], "ff666369-8ea8-4fd9-8c54-64a49dc90e1d");
    assert_eq!(line["Level"], "Request");
    assert_eq!(
        line["RequestURI"],
        "/apis/apps/v1/namespaces/kube-system/deployments?fieldSelector=metadata.name%3Dvpc-resource-controller"
    );
    assert_eq!(line["ApiGroup"], "apps");
    assert_eq!(line["ApiVersion"], "v1");
    assert_eq!(line["Namespace"], "kube-system");
    assert_eq!(line["Resource"], "deployments");
    assert_eq!(
        line["Subresource"],
        Value::Null,
        "objectRef has no subresource"
    );
    assert_eq!(line["Name"], "vpc-resource-controller");
    assert_eq!(line["UserGroups"], json!(["system:authenticated"]));
    assert_eq!(
        line["UserArn"],
        Value::Null,
        "no user.extra.arn in this event"
    );
    assert_eq!(line["ImpersonatedUser"], Value::Null);
    assert_eq!(
        line["AuthReason"],
        "RBAC: allowed by ClusterRoleBinding \"eks:k8s-metrics\" of ClusterRole \"eks:k8s-metrics\" to User \"eks:k8s-metrics\""
    );
    assert_eq!(
        line["ResponseReason"],
        Value::Null,
        "responseStatus has only code"
    );
    assert_eq!(
        line["RequestReceivedTimestamp"],
        "2023-07-31T01:58:11.743936Z"
    );
    assert_eq!(line["StageTimestamp"], "2023-07-31T01:58:11.751914Z");
    assert_eq!(line["LogGroup"], GROUP);
    assert_eq!(line["LogStream"], STREAM);
    assert_eq!(line["EventId"], "id-0", "the CloudWatch event id");
}

#[test]
fn exec_subresource_joins_all_four_parts() {
    // falco exec_pod.json: minikube-user execs into nginx (ResponseStarted, code 101).
    let line = flat_via_transform(&corpus_file("audit-events/falco-k8s_audit/exec_pod.json"));
    assert_eq!(
        line["ObjectRef"],
        "default/pods/nginx-deployment-7998647bdf-phvq7/exec"
    );
    assert_eq!(line["Subresource"], "exec");
    assert_eq!(line["ResponseCode"], 101);
    assert_eq!(line["Stage"], "ResponseStarted");
    assert_eq!(line["User"], "minikube-user");
    assert_eq!(
        line["UserGroups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(
        line["AuthReason"], "",
        "present but empty stays empty, it is not made up or nulled"
    );
    assert_eq!(line["ApiVersion"], "v1");
    assert_eq!(
        line["ApiGroup"],
        Value::Null,
        "core group: objectRef has no apiGroup"
    );
    assert_eq!(line["TimeGenerated"], "2018-10-26T13:38:34.867116Z");
    // A raw event has no CloudWatch envelope: those columns are null, not invented.
    for column in [
        "AwsAccountId",
        "Region",
        "ClusterName",
        "LogGroup",
        "LogStream",
        "EventId",
    ] {
        assert_eq!(line[column], Value::Null, "{column}");
    }
}

#[test]
fn cluster_scoped_object_ref_has_no_namespace_part() {
    // falco anonymous_creates_namespace_foo.json: objectRef {resource: namespaces, name: foo}.
    let line = flat_via_transform(&corpus_file(
        "audit-events/falco-k8s_audit/anonymous_creates_namespace_foo.json",
    ));
    assert_eq!(line["ObjectRef"], "namespaces/foo");
    assert_eq!(line["Namespace"], Value::Null);
    assert_eq!(line["User"], "system:anonymous");
    assert_eq!(line["ResponseCode"], 201);
}

#[test]
fn impersonation_and_forbidden_response() {
    // audit2rbac demo, first line: system:admin impersonates bob and is refused.
    let line = flat_via_transform(&corpus_event("audit-events/audit2rbac/demo.log.ndjson", 0));
    assert_eq!(line["User"], "system:admin");
    assert_eq!(line["ImpersonatedUser"], "bob");
    assert_eq!(line["ResponseCode"], 403);
    assert_eq!(line["ResponseReason"], "Forbidden");
    assert_eq!(line["ObjectRef"], "default/pods");
    assert_eq!(line["SourceIPs"], json!(["::1"]));
    assert_eq!(
        line["AuthDecision"],
        Value::Null,
        "this event has no annotations"
    );
    // Neither requestReceivedTimestamp nor stageTimestamp: the v1alpha1 `timestamp` is the time.
    assert_eq!(line["TimeGenerated"], "2017-09-11T19:55:05.000000Z");
}

#[test]
fn event_with_nothing_but_a_wrongly_typed_kind_is_all_nulls() {
    // falco fal_01_003.json is `{"kind": 0}`: accepted, and every column says "unknown".
    let line = flat_via_transform(&corpus_file("audit-events/falco-k8s_audit/fal_01_003.json"));
    for column in SENTINEL_COLUMNS.iter().chain(EXTENDED_COLUMNS.iter()) {
        match *column {
            "SourceIPs" | "UserGroups" => assert_eq!(line[column], json!([]), "{column}"),
            "RawEvent" => assert_eq!(line[column], json!({"kind": 0})),
            _ => assert_eq!(line[column], Value::Null, "{column}"),
        }
    }
}

#[tokio::test]
async fn user_arn_is_the_first_iam_arn_in_user_extra() {
    let event = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","stage":"ResponseComplete","verb":"get",
        "user":{"username":"kubernetes-admin","extra":{"arn":["arn:aws:iam::111122223333:role/Admin","arn:aws:iam::111122223333:role/Other"],
        "sessionName":["alice"]}},"requestReceivedTimestamp":"2024-05-21T10:00:00.5Z"}"#;
    let line = flat_via_firehose(event, Settings::default()).await;
    assert_eq!(line["UserArn"], "arn:aws:iam::111122223333:role/Admin");
    assert_eq!(line["TimeGenerated"], "2024-05-21T10:00:00.500000Z");
}

#[tokio::test]
async fn cluster_override_applies_only_when_the_log_group_names_none() {
    let event = corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    );
    let settings = || Settings {
        process: ProcessOptions {
            cluster_override: Some("from-config".into()),
            ..ProcessOptions::default()
        },
        ..Settings::default()
    };

    let eks_group = flat_via_firehose(&event, settings()).await;
    assert_eq!(eks_group["ClusterName"], "prod-east", "the log group wins");

    let test = handler(settings());
    let message = data_message("/custom/audit", STREAM, &[&event]);
    let response = test
        .firehose(&firehose_event(&[gzip_record(&message)]))
        .await;
    let line = &ok_lines(&response.records[0].data)[0];
    assert_eq!(line["ClusterName"], "from-config");
    assert_eq!(
        response.records[0]
            .metadata
            .as_ref()
            .unwrap()
            .partition_keys["cluster"],
        "from-config"
    );
}

#[tokio::test]
async fn region_falls_back_to_the_delivery_stream_arn_then_the_function() {
    let event = corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    );
    let data = gzip_record(&data_message(GROUP, STREAM, &[&event]));
    let mut firehose: Value = serde_json::from_str(&firehose_event(&[data])).unwrap();
    // SAM's sample events carry an unrendered placeholder instead of a region.
    firehose["region"] = json!("{{{region}}}");
    firehose["deliveryStreamArn"] =
        json!("arn:aws:firehose:ap-southeast-2:111122223333:deliverystream/x");
    let test = handler(Settings::default());
    let response = test.firehose(&firehose.to_string()).await;
    assert_eq!(
        ok_lines(&response.records[0].data)[0]["Region"],
        "ap-southeast-2"
    );

    firehose.as_object_mut().unwrap().remove("region");
    firehose
        .as_object_mut()
        .unwrap()
        .remove("deliveryStreamArn");
    let response = test.firehose(&firehose.to_string()).await;
    assert_eq!(
        ok_lines(&response.records[0].data)[0]["Region"],
        "us-west-2",
        "the handler's AWS_REGION"
    );
}

#[test]
fn pretty_printed_event_becomes_one_line_with_the_same_raw_event() {
    // falco files are pretty-printed JSON over many lines.
    let text = corpus_file("audit-events/falco-k8s_audit/create_clusterrole.json");
    let out =
        eks_audit_core::transform::transform(text.as_bytes().to_vec(), &all_stages().process, None)
            .unwrap();
    let ndjson = String::from_utf8(out.ndjson).unwrap();
    assert_eq!(ndjson.matches('\n').count(), 1, "one event, one line");
    let line: Value = serde_json::from_str(ndjson.trim_end()).unwrap();
    assert_eq!(
        line["RawEvent"],
        serde_json::from_str::<Value>(&text).unwrap()
    );
}

#[test]
fn object_ref_column_joins_the_non_empty_parts_literally() {
    // contract §4 column 9: the non-empty ones of namespace, resource, name, subresource,
    // joined by `/`, in that order; null when none is there.
    let cases: [(&str, Value); 8] = [
        (
            r#"{"namespace":"default","resource":"pods","name":"nginx","subresource":"exec"}"#,
            json!("default/pods/nginx/exec"),
        ),
        // An empty namespace is left out, not joined as an empty segment.
        (
            r#"{"resource":"namespaces","name":"foo","namespace":""}"#,
            json!("namespaces/foo"),
        ),
        // No name: the subresource follows the resource.
        (
            r#"{"namespace":"kube-system","resource":"pods","subresource":"log"}"#,
            json!("kube-system/pods/log"),
        ),
        (r#"{"name":"x","subresource":""}"#, json!("x")),
        // JSON escapes are read: the column holds the text, `é` and `"` included.
        (
            r#"{"namespace":"caf\u00e9","resource":"pods"}"#,
            json!("café/pods"),
        ),
        (
            r#"{"namespace":"a\"b","resource":"pods"}"#,
            json!("a\"b/pods"),
        ),
        // No part at all, or an objectRef of the wrong type (read as absent, §1.3): null.
        (r#"{"apiGroup":"apps"}"#, Value::Null),
        (r#""pods""#, Value::Null),
    ];
    for (object_ref, expected) in cases {
        let event =
            format!(r#"{{"kind":"Event","stage":"ResponseComplete","objectRef":{object_ref}}}"#);
        let line = flat_via_transform(&event);
        assert_eq!(line["ObjectRef"], expected, "{object_ref}");
        // The public helper says the same.
        let parsed = eks_audit_core::AuditEvent::parse(&event).unwrap();
        let path = parsed
            .object_ref()
            .and_then(eks_audit_core::schema::flat::object_path);
        assert_eq!(
            path.map(Value::from).unwrap_or(Value::Null),
            expected,
            "{object_ref}"
        );
    }
}
