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
    let mut correlated = 0;
    for test in rules::default_tests().iter().filter(|t| t.must_fire()) {
        // A correlation's test is a sequence, one invocation: one state for its events.
        let mut correlations = detector.correlations();
        let mut findings = Vec::new();
        for text in test.events() {
            let event = eks_audit_core::AuditEvent::parse(text).unwrap();
            let time =
                eks_audit_core::schema::time::event_time(&event, CONTEXT.cloudwatch_timestamp);
            findings.extend(detector.findings_correlating(
                correlations.as_mut(),
                &event,
                text,
                &CONTEXT,
                time,
            ));
        }
        correlated += usize::from(test.events().len() > 1 && !findings.is_empty());
        for finding in findings {
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
    let silent = detector.rules().filter(|r| r.silent).count();
    assert!(
        checked >= detector.rule_count() - silent,
        "every rule that makes findings fired at least once"
    );
    assert!(
        correlated >= 2,
        "the correlation rules' findings were checked"
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

// Correlation rules: counted over the events of one invocation, by each event's own time.

/// A request by `user` refused as forbidden, `second` seconds after 10:00:00 on 2024-05-21.
fn forbidden_by(user: &str, audit_id: &str, second: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(1_716_285_600 + second).unwrap();
    let stamp = eks_audit_core::schema::time::rfc3339_utc(at);
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": audit_id, "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/kube-system/secrets", "verb": "list",
        "user": {"username": user, "groups": ["system:serviceaccounts", "system:authenticated"]},
        "sourceIPs": ["198.51.100.77"], "userAgent": "python-requests/2.32.3",
        "objectRef": {"resource": "secrets", "namespace": "kube-system", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403},
        "requestReceivedTimestamp": stamp, "stageTimestamp": stamp
    })
    .to_string()
}

const PROBER: &str = "system:serviceaccount:payments:api";
const BURST: &str = "Many Forbidden Requests From One Principal";

/// The findings of `events` counted as one invocation, as JSON.
fn correlate(detector: &Detector, events: &[String]) -> Vec<Value> {
    let mut correlations = detector.correlations();
    let mut findings = Vec::new();
    for text in events {
        let event = eks_audit_core::AuditEvent::parse(text).unwrap();
        let time = eks_audit_core::schema::time::event_time(&event, None);
        for finding in
            detector.findings_correlating(correlations.as_mut(), &event, text, &CONTEXT, time)
        {
            findings.push(serde_json::from_slice::<Value>(&finding.line).unwrap());
        }
    }
    findings
}

fn titles(findings: &[Value]) -> Vec<&str> {
    findings
        .iter()
        .map(|f| f["finding_info"]["title"].as_str().unwrap())
        .collect()
}

#[test]
fn the_forbidden_burst_fires_at_twenty_in_ten_minutes_and_not_at_nineteen() {
    let detector = default_detector();
    // 20 refusals 15 s apart: the 20th (at 285 s) reaches the threshold.
    let twenty: Vec<String> = (0..20)
        .map(|i| forbidden_by(PROBER, &format!("p-{i}"), 15 * i))
        .collect();
    let findings = correlate(&detector, &twenty);
    assert_eq!(titles(&findings), [BURST], "one finding, no per-event one");
    let finding = &findings[0];
    assert_eq!(
        finding["finding_info"]["uid"],
        format!("c2430c17-d7a9-4a76-8358-3aa86cb631e7:p-19")
    );
    assert_eq!(finding["count"], 20);
    assert_eq!(finding["severity"], "Medium");
    let related: Vec<&str> = finding["finding_info"]["related_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["uid"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("p-{i}")).collect();
    assert_eq!(related, expected, "every contributing event, oldest first");
    assert_eq!(
        finding["finding_info"]["first_seen_time"],
        1_716_285_600_000_i64
    );
    assert_eq!(
        finding["finding_info"]["last_seen_time"],
        1_716_285_885_000_i64
    );
    assert_eq!(
        finding["evidences"][0]["actor"]["user"]["name"], PROBER,
        "the evidence is the event that reached the threshold"
    );
    assert_eq!(
        finding["unmapped"]["correlation"],
        json!({"type": "event_count", "group_by": {"user.username": PROBER}, "value": 20.0,
               "timespan_seconds": 600, "events": 20})
    );
    let errors = schema_errors(&finding_validator(), finding);
    assert!(errors.is_empty(), "{errors:#?}");

    assert!(
        correlate(&detector, &twenty[..19]).is_empty(),
        "19 is one below"
    );
    // 30 refusals: still one finding for the burst (quiet for the timespan after it).
    let thirty: Vec<String> = (0..30)
        .map(|i| forbidden_by(PROBER, &format!("q-{i}"), 10 * i))
        .collect();
    assert_eq!(titles(&correlate(&detector, &thirty)), [BURST]);
}

#[test]
fn events_of_two_principals_or_beyond_the_timespan_do_not_add_up() {
    let detector = default_detector();
    // 10 refusals each for two principals, interleaved within 3 minutes: 20 in all.
    let two: Vec<String> = (0..20)
        .map(|i| {
            let user = if i % 2 == 0 {
                PROBER
            } else {
                "system:serviceaccount:monitoring:agent"
            };
            forbidden_by(user, &format!("t-{i}"), 10 * i)
        })
        .collect();
    assert!(correlate(&detector, &two).is_empty());
    // 10 refusals, then 10 more starting 11 minutes after the first batch ended: no
    // 10-minute window holds more than 10.
    let spread: Vec<String> = (0..20)
        .map(|i| {
            let second = if i < 10 {
                10 * i
            } else {
                90 + 660 + 10 * (i - 10)
            };
            forbidden_by(PROBER, &format!("s-{i}"), second)
        })
        .collect();
    assert!(correlate(&detector, &spread).is_empty());
    // The same 20 events closer together (the second half 5 minutes after the first) fire.
    let close: Vec<String> = (0..20)
        .map(|i| {
            let second = if i < 10 {
                10 * i
            } else {
                90 + 300 + 10 * (i - 10)
            };
            forbidden_by(PROBER, &format!("c-{i}"), second)
        })
        .collect();
    assert_eq!(titles(&correlate(&detector, &close)), [BURST]);
}

#[test]
fn state_is_per_invocation_and_events_are_placed_by_their_own_time() {
    let detector = default_detector();
    let events: Vec<String> = (0..20)
        .map(|i| forbidden_by(PROBER, &format!("i-{i}"), 15 * i))
        .collect();
    // Two invocations of 10 events each: nothing carries from one to the next.
    assert!(correlate(&detector, &events[..10]).is_empty());
    assert!(correlate(&detector, &events[10..]).is_empty());
    // The same events a year later are the same finding, but for their times: the clock
    // plays no part.
    let later: Vec<String> = events
        .iter()
        .map(|e| e.replace("2024-05-21", "2025-05-21"))
        .collect();
    let (a, b) = (correlate(&detector, &events), correlate(&detector, &later));
    assert_eq!(titles(&a), titles(&b));
    assert_eq!(
        a[0]["finding_info"]["related_events"],
        b[0]["finding_info"]["related_events"]
    );
    // Without correlation state (findings()), the silent base rule makes nothing.
    let text = &events[0];
    let event = eks_audit_core::AuditEvent::parse(text).unwrap();
    assert!(detector.findings(&event, text, &CONTEXT, None).is_empty());
}

#[tokio::test]
async fn firehose_counts_across_the_batch_writes_the_finding_beside_the_data_and_answers_the_same()
{
    // 12 refusals in one record and 8 in the next, from another log stream: 20 in the batch.
    let events: Vec<String> = (0..20)
        .map(|i| forbidden_by(PROBER, &format!("f-{i}"), 15 * i))
        .collect();
    let texts: Vec<&str> = events.iter().map(String::as_str).collect();
    let other_stream = STREAM.replace("0123", "4567");
    let records = [
        gzip_record(&data_message(GROUP, STREAM, &texts[..12])),
        gzip_record(&data_message(GROUP, &other_stream, &texts[12..])),
    ];
    let event = firehose_event(&records);
    let without_rules = handler(keep_all());
    let no_correlations = {
        let files: Vec<RuleFile> = rules::default_pack()
            .into_iter()
            .filter(|f| !f.text.contains("\ncorrelation:"))
            .collect();
        let mut settings = keep_all();
        settings.process.detector = Some(Arc::new(Detector::load(&files).unwrap()));
        handler(settings)
    };
    let with = handler(with_default_rules(keep_all()));
    let plain = serde_json::to_vec(&without_rules.firehose(&event).await).unwrap();
    let uncorrelated = serde_json::to_vec(&no_correlations.firehose(&event).await).unwrap();
    let correlated = serde_json::to_vec(&with.firehose(&event).await).unwrap();
    assert_eq!(plain, correlated, "the response is byte for byte the same");
    assert_eq!(uncorrelated, correlated);
    assert!(
        no_correlations.objects().is_empty(),
        "no other rule fires on these events"
    );
    let objects = with.objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let (key, body) = &objects[0];
    // Keyed like the event that reached the threshold: the 8th of the second record.
    assert!(
        key.starts_with("eks-audit/findings/cluster=prod-east/dt=2024-05-21/hour=10/"),
        "{key}"
    );
    assert!(key.contains(&other_stream), "{key}");
    let findings: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(titles(&findings), [BURST]);
    assert_eq!(
        findings[0]["finding_info"]["related_events"]
            .as_array()
            .unwrap()
            .len(),
        20,
        "events of both records"
    );
    // The records one invocation each: 12 and 8 do not add up.
    let apart = handler(with_default_rules(keep_all()));
    apart.firehose(&firehose_event(&records[..1])).await;
    apart.firehose(&firehose_event(&records[1..])).await;
    assert!(apart.objects().is_empty());
}

const BASE_RULE: &str = "title: Deletes\nname: deletes\nid: 51111111-2222-4333-8444-555555555555\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    verb: delete\n  condition: selection\nlevel: informational\n";

fn correlation_over(rules: &str, group_by: &str) -> String {
    format!(
        "{BASE_RULE}---\ntitle: Many Deletes\nid: 61111111-2222-4333-8444-555555555555\ncorrelation:\n  type: event_count\n  rules:\n    - {rules}\n  group-by:\n    - {group_by}\n  timespan: 5m\n  condition:\n    gte: 3\nlevel: high\n"
    )
}

#[test]
fn a_broken_correlation_rule_fails_the_load_with_its_file_and_line() {
    let load = |text: String| {
        Detector::load(&[RuleFile {
            name: "corr.yml".into(),
            text,
        }])
        .expect_err("the load fails")
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
    };
    assert!(
        Detector::load(&[RuleFile {
            name: "corr.yml".into(),
            text: correlation_over("deletes", "user.username"),
        }])
        .is_ok_and(|d| d.has_correlations())
    );

    let errors = load(correlation_over("delets", "user.username"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("corr.yml:18: "), "{errors:?}");
    assert!(
        errors[0].contains("rule `delets` is not loaded"),
        "{errors:?}"
    );

    let errors = load(correlation_over("deletes", "user.nickname"));
    assert!(errors[0].starts_with("corr.yml:20: "), "{errors:?}");
    assert!(
        errors[0].contains("unknown field `user.nickname`"),
        "{errors:?}"
    );

    let errors = load(correlation_over("deletes", "user.username").replace("5m", "5 minutes"));
    assert!(errors[0].starts_with("corr.yml:21: "), "{errors:?}");
}

#[test]
fn rules_test_runs_the_sequences_of_a_correlation_rule() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "deletes.yml",
        &correlation_over("deletes", "user.username"),
    );
    let tests = dir.path().join("tests/deletes");
    std::fs::create_dir_all(&tests).unwrap();
    let delete = |id: usize, second: i64| {
        forbidden_by("alice", &format!("d-{id}"), second)
            .replace("\"list\"", "\"delete\"")
            .replace("403", "200")
    };
    let sequence = |events: &[String]| format!("[{}]", events.join(","));
    write(
        &tests,
        "fires.json",
        &sequence(&[delete(0, 0), delete(1, 60), delete(2, 120)]),
    );
    write(
        &tests,
        "misses.json",
        &sequence(&[delete(3, 0), delete(4, 60)]),
    );
    // Three deletes over 10 minutes: not within 5; this near miss is mislabelled as firing.
    write(
        &tests,
        "fires-spread.json",
        &sequence(&[delete(5, 0), delete(6, 300), delete(7, 600)]),
    );
    let path = dir.path().display().to_string();
    let output = eks_audit(&["rules", "test", &path], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok    deletes/fires.json"), "{stdout}");
    assert!(stdout.contains("ok    deletes/misses.json"), "{stdout}");
    assert!(
        stdout.contains("FAIL  deletes/fires-spread.json: the correlation did not fire"),
        "{stdout}"
    );
    std::fs::rename(
        tests.join("fires-spread.json"),
        tests.join("misses-spread.json"),
    )
    .unwrap();
    let output = eks_audit(&["rules", "test", &path], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn in_direct_mode_one_subscription_message_is_the_invocation() {
    let events: Vec<String> = (0..20)
        .map(|i| forbidden_by(PROBER, &format!("m-{i}"), 15 * i))
        .collect();
    let texts: Vec<&str> = events.iter().map(String::as_str).collect();
    let whole = handler(with_default_rules(keep_all()));
    let message = data_message(GROUP, STREAM, &texts);
    let Response::Direct(summary) = whole
        .handler
        .handle(&awslogs_event(&message))
        .await
        .unwrap()
    else {
        panic!("direct response")
    };
    assert_eq!((summary.tally.kept, summary.findings), (20, 1));
    let objects = whole.objects();
    let (key, body) = objects
        .iter()
        .find(|(key, _)| key.starts_with("eks-audit/findings/"))
        .expect("a findings object");
    // Keyed by the event that reached the threshold, the 20th: log event `id-19`.
    assert!(key.ends_with(&format!("{STREAM}-id-19.json.gz")), "{key}");
    assert_eq!(
        titles(&[serde_json::from_str(body.trim()).unwrap()]),
        [BURST]
    );

    // The same events in two messages are two invocations: 10 and 10 do not add up.
    let split = handler(with_default_rules(keep_all()));
    for half in [&texts[..10], &texts[10..]] {
        let message = data_message(GROUP, STREAM, half);
        split
            .handler
            .handle(&awslogs_event(&message))
            .await
            .unwrap();
    }
    assert!(
        split
            .objects()
            .iter()
            .all(|(key, _)| !key.starts_with("eks-audit/findings/"))
    );
}
