//! contract §12: Sigma rules on every kept event, findings as OCSF Detection Findings beside the
//! data, and the commands that check and test rules.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use common::*;
use eks_audit_core::detect::rules::{self, RuleFile};
use eks_audit_core::detect::{Detector, ip_list, testing};
use eks_audit_forwarder::handler::Response;
use serde_json::{Value, json};

/// An `exec` into a kube-system pod, which the default pack's rule for it must catch.
fn exec_in_kube_system(audit_id: &str) -> String {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": audit_id, "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/kube-system/pods/coredns-1/exec?command=sh",
        "verb": "create",
        "user": {"username": "kubernetes-admin", "groups": ["system:masters"]},
        "sourceIPs": ["203.0.113.10"], "userAgent": "kubectl/v1.29.0",
        "objectRef": {"resource": "pods", "namespace": "kube-system", "name": "coredns-1",
                      "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2024-05-21T10:00:00.000000Z",
        "stageTimestamp": "2024-05-21T10:00:01.000000Z"
    })
    .to_string()
}

/// A read nothing should fire on.
fn quiet_get(audit_id: &str) -> String {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": audit_id, "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods/web-1", "verb": "get",
        "user": {"username": "system:serviceaccount:default:web", "groups": ["system:serviceaccounts"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": "client-go",
        "objectRef": {"resource": "pods", "namespace": "default", "name": "web-1", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2024-05-21T10:00:00.000000Z",
        "stageTimestamp": "2024-05-21T10:00:00.010000Z"
    })
    .to_string()
}

fn default_detector() -> Detector {
    Detector::load(&rules::default_pack()).expect("the default pack loads")
}

fn with_default_rules(
    mut settings: eks_audit_forwarder::Settings,
) -> eks_audit_forwarder::Settings {
    settings.process.detector = Some(Arc::new(default_detector()));
    settings
}

fn finding_validator() -> jsonschema::Validator {
    let path =
        repo_file("tests/fixtures/ocsf/detection_finding-2004-cloud-datetime-1.1.0.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn schema_errors(validator: &jsonschema::Validator, finding: &Value) -> Vec<String> {
    validator
        .iter_errors(finding)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[test]
fn every_default_rule_passes_its_own_test_pair() {
    let detector = default_detector();
    let results = testing::run(&detector, &rules::default_tests());
    let failures = failed_rule_tests(&results);
    assert!(failures.is_empty(), "{failures:#?}");
    // Two tests per rule at least: one that fires, one near miss.
    assert!(results.len() >= 2 * detector.rule_count());
}

#[test]
fn findings_of_every_test_event_validate_as_ocsf_detection_findings() {
    let validator = finding_validator();
    let detector = default_detector();
    let mut checked = 0;
    for test in rules::default_tests().iter().filter(|t| t.must_fire()) {
        let event = eks_audit_core::AuditEvent::parse(&test.text).unwrap();
        let time = eks_audit_core::schema::time::event_time(&event, CONTEXT.cloudwatch_timestamp);
        for finding in detector.findings(&event, &test.text, &CONTEXT, time) {
            let value: Value = serde_json::from_slice(&finding.line).unwrap();
            let errors = schema_errors(&validator, &value);
            assert!(
                errors.is_empty(),
                "{}/{}: {errors:#?}",
                test.rule,
                test.file
            );
            // 1.1.0 puts the actor in evidences and ATT&CK in finding_info: top-level
            // `actor` or `attacks` is rejected.
            assert!(value.get("actor").is_none() && value.get("attacks").is_none());
            checked += 1;
        }
    }
    assert!(
        checked >= detector.rule_count(),
        "every rule fired at least once"
    );
}

#[test]
fn a_finding_carries_rule_severity_attack_cluster_account_actor_resource_and_evidence() {
    let detector = default_detector();
    let text = exec_in_kube_system("audit-1");
    let event = eks_audit_core::AuditEvent::parse(&text).unwrap();
    let findings = detector.findings(&event, &text, &CONTEXT, None);
    let finding: Value = findings
        .iter()
        .map(|f| serde_json::from_slice::<Value>(&f.line).unwrap())
        .find(|f| f["finding_info"]["title"] == "Exec Into a Pod in kube-system")
        .expect("the kube-system exec rule fires");
    assert_eq!(finding["class_uid"], 2004);
    assert_eq!(finding["severity"], "High");
    assert_eq!(finding["severity_id"], 4);
    assert_eq!(finding["cloud"]["account"]["uid"], ACCOUNT);
    assert_eq!(finding["cloud"]["region"], "eu-west-1");
    assert_eq!(finding["unmapped"]["cluster"], "prod-east");
    assert_eq!(
        finding["finding_info"]["related_events"][0]["uid"],
        "audit-1"
    );
    let attacks = finding["finding_info"]["attacks"].as_array().unwrap();
    assert!(attacks.iter().any(|a| a["technique"]["uid"] == "T1609"));
    let evidence = &finding["evidences"][0];
    assert_eq!(evidence["actor"]["user"]["name"], "kubernetes-admin");
    assert_eq!(evidence["api"]["operation"], "create");
    assert_eq!(evidence["src_endpoint"]["ip"], "203.0.113.10");
    let resources = finding["resources"].as_array().unwrap();
    assert!(resources.iter().any(|r| r["name"] == "coredns-1"
        && r["namespace"] == "kube-system"
        && r["type"] == "pods/exec"));
    assert!(
        resources
            .iter()
            .any(|r| r["name"] == "prod-east" && r["type"] == "AWS::EKS::Cluster")
    );
    // Deterministic: the same rule on the same event is the same finding.
    let again = detector.findings(&event, &text, &CONTEXT, None);
    assert_eq!(findings, again);
}

#[tokio::test]
async fn direct_mode_writes_findings_beside_the_data_and_a_retry_overwrites_them() {
    let test = handler(with_default_rules(keep_all()));
    let message = data_message(
        GROUP,
        STREAM,
        &[&quiet_get("a"), &exec_in_kube_system("b"), &quiet_get("c")],
    );
    let event = awslogs_event(&message);
    let Response::Direct(summary) = test.handler.handle(&event).await.unwrap() else {
        panic!("direct response")
    };
    assert!(summary.findings >= 1);
    assert_eq!(summary.findings_objects.len(), 1);
    let objects = test.objects();
    let (key, body) = objects
        .iter()
        .find(|(key, _)| key.starts_with("eks-audit/findings/"))
        .expect("a findings object");
    assert!(
        key.starts_with("eks-audit/findings/cluster=prod-east/dt=2024-05-21/hour=10/"),
        "{key}"
    );
    // The finding's event is the second one: its key names the log event id `id-1`.
    assert!(key.ends_with(&format!("{STREAM}-id-1.json.gz")), "{key}");
    let findings: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(findings.len() as u64, summary.findings);
    assert!(
        findings
            .iter()
            .all(|f| f["finding_info"]["related_events"][0]["uid"] == "b")
    );
    // The data object still holds all three events.
    let data = objects
        .iter()
        .find(|(key, _)| key.starts_with("eks-audit/cluster="))
        .unwrap();
    assert_eq!(data.1.lines().count(), 3);
    // A retry writes the same keys: nothing is duplicated.
    test.handler.handle(&event).await.unwrap();
    assert_eq!(test.objects(), objects);
}

#[tokio::test]
async fn firehose_answers_the_same_with_rules_on_and_writes_findings_itself() {
    let message = data_message(GROUP, STREAM, &[&exec_in_kube_system("b"), &quiet_get("c")]);
    let event = firehose_event(&[gzip_record(&message)]);
    let without = handler(keep_all());
    let with = handler(with_default_rules(keep_all()));
    let plain = without.firehose(&event).await;
    let detected = with.firehose(&event).await;
    assert_eq!(
        serde_json::to_value(&plain.records).unwrap(),
        serde_json::to_value(&detected.records).unwrap(),
        "rules never change the records"
    );
    assert!(without.objects().is_empty());
    let objects = with.objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(
        objects[0]
            .0
            .starts_with("eks-audit/findings/cluster=prod-east/")
    );
}

#[tokio::test]
async fn only_events_the_filter_keeps_are_evaluated() {
    // The default filter keeps ResponseComplete only: the same exec at RequestReceived is
    // dropped, and finds nothing.
    let mut received: Value = serde_json::from_str(&exec_in_kube_system("b")).unwrap();
    received["stage"] = json!("RequestReceived");
    let mut settings = eks_audit_forwarder::Settings::default();
    settings.process.detector = Some(Arc::new(default_detector()));
    let test = handler(settings);
    let message = data_message(GROUP, STREAM, &[&received.to_string()]);
    let Response::Direct(summary) = test.handler.handle(&awslogs_event(&message)).await.unwrap()
    else {
        panic!("direct response")
    };
    assert_eq!((summary.tally.kept, summary.findings), (0, 0));
    assert!(test.objects().is_empty());
}

#[test]
fn an_event_a_rule_cannot_evaluate_keeps_its_fate() {
    // A rule reaching into requestObject, on events whose requestObject is not an object or is
    // absent: the events are kept as without rules, with no finding.
    let rule = RuleFile {
        name: "deep.yml".into(),
        text: "title: Deep\nid: 11111111-2222-4333-8444-555555555555\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    requestObject.spec.containers.securityContext.privileged: true\n  condition: selection\nlevel: high\n".into(),
    };
    let detector = Arc::new(Detector::load(&[rule]).unwrap());
    for request_object in [
        json!("a string"),
        json!([1, 2]),
        json!(null),
        json!({"spec": 7}),
    ] {
        let mut event: Value = serde_json::from_str(&quiet_get("x")).unwrap();
        event["requestObject"] = request_object;
        let text = event.to_string();
        let mut options = keep_all().process;
        let plain = eks_audit_core::process_event(&text, &CONTEXT, &options, &mut Vec::new());
        options.detector = Some(detector.clone());
        let mut findings = Vec::new();
        let fate = eks_audit_core::pipeline::process_event_detecting(
            &text,
            &CONTEXT,
            &options,
            &mut Vec::new(),
            &mut findings,
        );
        assert_eq!(fate, plain);
        assert!(findings.is_empty());
    }
}

#[test]
fn the_ip_list_is_a_rule_over_every_source_ip() {
    let rule = ip_list::rule("ips.txt", "# bad actors\n203.0.113.0/24\n2001:db8::1\n").unwrap();
    let detector = Detector::load(&[rule]).unwrap();
    let fires = |ips: Value| {
        let mut event: Value = serde_json::from_str(&quiet_get("x")).unwrap();
        event["sourceIPs"] = ips;
        let text = event.to_string();
        let event = eks_audit_core::AuditEvent::parse(&text).unwrap();
        !detector.matches(&event, &text).is_empty()
    };
    assert!(fires(json!(["203.0.113.77"])));
    assert!(fires(json!(["10.0.0.1", "2001:db8::1"])), "any hop counts");
    assert!(!fires(json!(["203.0.114.1"])));
    assert!(!fires(json!(["2001:db8::2"])));
}

fn eks_audit(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eks-audit"));
    for (name, _) in std::env::vars() {
        if name.starts_with("EKS_AUDIT_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("eks-audit runs")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn rules_check_names_the_file_and_line_of_each_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = "title: Good\nid: 21111111-2222-4333-8444-555555555555\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    verb: delete\n  condition: selection\nlevel: low\n";
    let bad_yaml = write(
        dir.path(),
        "bad_yaml.yml",
        "title: Broken\ndetection:\n  selection: [\n",
    );
    let bad_modifier = write(
        dir.path(),
        "bad_modifier.yml",
        &good.replace("    verb: delete", "    verb|sometimes: delete"),
    );
    let bad_field = write(
        dir.path(),
        "bad_field.yml",
        &good.replace(
            "    verb: delete",
            "    verb: delete\n    CommandLine: whoami",
        ),
    );
    let good = write(dir.path(), "good.yml", good);
    let output = eks_audit(&["rules", "check", &good], &[]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok, 1 rules"));

    let output = eks_audit(
        &["rules", "check", &bad_yaml, &bad_modifier, &bad_field],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("{bad_yaml}:")), "{stdout}");
    assert!(stdout.contains(&format!("{bad_modifier}:8:")), "{stdout}");
    assert!(stdout.contains("sometimes"), "{stdout}");
    assert!(stdout.contains(&format!("{bad_field}:9: ")), "{stdout}");
    assert!(stdout.contains("unknown field `CommandLine`"), "{stdout}");
}

#[test]
fn a_rule_that_does_not_load_stops_the_lambda_cold_start() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yml",
        "title: x\ndetection:\n  selection:\n    verb|nope: a\n  condition: selection\nlogsource:\n  product: kubernetes\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_eks-audit-forwarder"))
        .env_clear()
        .env("EKS_AUDIT_RULES", &bad)
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{bad}:4")), "{stderr}");
}

#[test]
fn detect_prints_one_finding_per_line_and_rules_can_replace_the_pack() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "events.ndjson",
        &format!("{}\n{}\n", quiet_get("a"), exec_in_kube_system("b")),
    );
    let output = eks_audit(&["detect", &input], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let findings: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!findings.is_empty());
    assert!(
        findings
            .iter()
            .all(|f| f["finding_info"]["related_events"][0]["uid"] == "b")
    );
    assert!(
        findings
            .iter()
            .all(|f| f["unmapped"].get("matched_selections").is_none())
    );

    let explained = eks_audit(&["detect", "--explain", &input], &[]);
    let first: Value = serde_json::from_str(
        String::from_utf8_lossy(&explained.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        first["unmapped"]["matched_selections"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );

    // Only the user's rule: it fires on the get, and the pack is off.
    let rule = write(
        dir.path(),
        "gets.yml",
        "title: Gets\nid: 31111111-2222-4333-8444-555555555555\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    verb: get\n  condition: selection\nlevel: low\n",
    );
    let output = eks_audit(
        &["detect", &input, "--no-default-rules"],
        &[("EKS_AUDIT_RULES", &rule)],
    );
    let findings: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["finding_info"]["title"], "Gets");
    assert_eq!(findings[0]["severity"], "Low");
}

#[test]
fn rules_test_runs_a_directory_of_rules_and_fails_a_rule_without_a_near_miss() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "gets.yml",
        "title: Gets\nid: 41111111-2222-4333-8444-555555555555\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    verb: get\n  condition: selection\nlevel: low\n",
    );
    std::fs::create_dir_all(dir.path().join("tests/gets")).unwrap();
    write(
        &dir.path().join("tests/gets"),
        "fires.json",
        &quiet_get("a"),
    );
    let path = dir.path().display().to_string();
    let output = eks_audit(&["rules", "test", &path], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ok    gets/fires.json"), "{stdout}");
    assert!(stdout.contains("FAIL  gets/misses*.json"), "{stdout}");

    write(
        &dir.path().join("tests/gets"),
        "misses.json",
        &quiet_get("a").replace("\"get\"", "\"list\""),
    );
    let output = eks_audit(&["rules", "test", &path], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    // A "near miss" the rule matches is a failure.
    write(
        &dir.path().join("tests/gets"),
        "misses-2.json",
        &quiet_get("z"),
    );
    let output = eks_audit(&["rules", "test", &path], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAIL  gets/misses-2.json"));
}
