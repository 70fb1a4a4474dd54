//! Redaction (`EKS_AUDIT_REDACT`, off by default): the bodies of events about secrets,
//! configmaps, token reviews and service account tokens are replaced by a marker in RawEvent;
//! everything else in the event stays as it came.

mod common;

use common::*;
use eks_audit_core::ProcessOptions;
use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_core::redact::Redaction;
use eks_audit_core::transform::transform;
use eks_audit_forwarder::config::Settings;
use serde_json::{Value, json};

fn settings(redact: &str) -> Settings {
    let process = ProcessOptions {
        filter: Filter {
            stages: StageFilter::All,
            ..Filter::default()
        },
        redaction: Redaction::parse(redact).unwrap(),
        ..ProcessOptions::default()
    };
    Settings {
        process,
        ..Settings::default()
    }
}

/// The one flat line `transform` makes of `event`.
fn flat_line(event: &str, redact: &str) -> (String, Value) {
    let out = transform(event.as_bytes().to_vec(), &settings(redact).process, None).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let text = String::from_utf8(out.ndjson).unwrap();
    assert_eq!(text.lines().count(), 1);
    let value = serde_json::from_str(text.trim_end()).unwrap();
    (text, value)
}

fn sensitive_configmap() -> String {
    corpus_event(
        "audit-events/falco-k8s_audit/create_configmap_sensitive_values.json",
        0,
    )
}

fn marker(reason: &str) -> Value {
    json!({"redacted": "eks-audit-forwarder", "reason": reason})
}

/// `event` without its bodies, to compare what redaction must leave alone.
fn without_bodies(mut event: Value) -> Value {
    let object = event.as_object_mut().unwrap();
    object.remove("requestObject");
    object.remove("responseObject");
    event
}

#[test]
fn configmap_bodies_are_replaced_and_the_rest_of_the_event_is_unchanged() {
    // falco create_configmap_sensitive_values.json, first event: RequestResponse, the request
    // carries `aws_secret_access_key = MY-KEY`, the response echoes it.
    let original = sensitive_configmap();
    let (text, line) = flat_line(&original, "default");
    assert!(
        !text.contains("aws_secret_access_key") && !text.contains("MY-KEY"),
        "{text}"
    );
    assert_eq!(line["RawEvent"]["requestObject"], marker("configmaps"));
    assert_eq!(line["RawEvent"]["responseObject"], marker("configmaps"));
    let input: Value = serde_json::from_str(&original).unwrap();
    assert_eq!(
        without_bodies(line["RawEvent"].clone()),
        without_bodies(input)
    );
    // Who did what to which object is still there for the SIEM.
    assert_eq!(line["ObjectRef"], "default/configmaps/my-config");
    assert_eq!(line["Verb"], "create");
}

#[test]
fn aws_auth_backdoor_keeps_its_who_and_what_but_not_its_role_mappings() {
    // stratus-red-team's aws-auth backdoor: a pretty-printed configmap update with mapRoles.
    let original = corpus_file(
        "audit-events/stratus-red-team/eks.persistence.backdoor-aws-auth-configmap.snippet.json",
    );
    let (text, line) = flat_line(&original, "configmaps");
    assert!(
        !text.contains("mapRoles") && !text.contains("backdoor\\n"),
        "{text}"
    );
    assert_eq!(line["RawEvent"]["requestObject"], marker("configmaps"));
    assert_eq!(
        line["RawEvent"]["requestURI"],
        "/api/v1/namespaces/kube-system/configmaps/aws-auth"
    );
    assert_eq!(line["ObjectRef"], "configmaps/aws-auth");
}

#[test]
fn redaction_is_off_by_default() {
    let original = sensitive_configmap();
    let (text, line) = flat_line(&original, "none");
    assert!(text.contains("aws_secret_access_key"));
    assert_eq!(
        line["RawEvent"],
        serde_json::from_str::<Value>(&original).unwrap()
    );
    assert!(Settings::default().process.redaction.is_off());
}

#[test]
fn metadata_level_secret_events_have_no_bodies_and_pass_unchanged() {
    // falco create_secret.json is logged at Metadata level: no body, nothing to add a marker to.
    let original = corpus_file("audit-events/falco-k8s_audit/create_secret.json");
    let (_, line) = flat_line(&original, "default");
    assert_eq!(
        line["RawEvent"],
        serde_json::from_str::<Value>(&original).unwrap()
    );
    assert!(line["RawEvent"].get("requestObject").is_none());
}

#[test]
fn events_about_other_resources_keep_their_bodies() {
    let original = corpus_file("audit-events/falco-k8s_audit/create_nginx_pod_privileged.json");
    let (_, line) = flat_line(&original, "default");
    assert_eq!(
        line["RawEvent"],
        serde_json::from_str::<Value>(&original).unwrap()
    );
    assert!(line["RawEvent"]["requestObject"]["spec"].is_object());
}

#[test]
fn token_reviews_and_token_requests_are_covered_by_default() {
    let token_review = json!({
        "kind": "Event", "stage": "ResponseComplete", "verb": "create", "level": "RequestResponse",
        "objectRef": {"resource": "tokenreviews", "apiGroup": "authentication.k8s.io", "apiVersion": "v1"},
        "requestObject": {"kind": "TokenReview", "spec": {"token": "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0"}},
        "responseObject": {"kind": "TokenReview", "status": {"authenticated": true}},
    });
    let (text, line) = flat_line(&token_review.to_string(), "default");
    assert!(!text.contains("eyJhbGciOiJSUzI1NiJ9"));
    assert_eq!(line["RawEvent"]["requestObject"], marker("tokenreviews"));

    let token_request = json!({
        "kind": "Event", "stage": "ResponseComplete", "verb": "create", "level": "RequestResponse",
        "objectRef": {"resource": "serviceaccounts", "subresource": "token", "namespace": "default", "name": "builder"},
        "responseObject": {"kind": "TokenRequest", "status": {"token": "eyJhbGciOiJSUzI1NiJ9.dG9rZW4"}},
    });
    let (text, line) = flat_line(&token_request.to_string(), "default");
    assert!(!text.contains("dG9rZW4"));
    assert_eq!(
        line["RawEvent"]["responseObject"],
        marker("serviceaccounts/token")
    );
    assert!(
        line["RawEvent"].get("requestObject").is_none(),
        "no body is made up"
    );

    // The service account itself is not a secret.
    let service_account = token_request
        .to_string()
        .replace(r#","subresource":"token""#, "");
    let (_, line) = flat_line(&service_account, "default");
    assert_eq!(
        line["RawEvent"]["responseObject"]["status"]["token"],
        "eyJhbGciOiJSUzI1NiJ9.dG9rZW4"
    );
}

#[tokio::test]
async fn the_lambda_redacts_what_it_forwards_to_firehose() {
    let compact = sensitive_configmap();
    let test = handler(settings("default"));
    let response = test
        .firehose(&firehose_event(&[gzip_record(&data_message(
            GROUP,
            STREAM,
            &[&compact],
        ))]))
        .await;
    let text = ok_text(&response.records[0].data);
    assert!(!text.contains("MY-KEY"));
    assert_eq!(
        ok_lines(&response.records[0].data)[0]["RawEvent"]["requestObject"],
        marker("configmaps")
    );
}
