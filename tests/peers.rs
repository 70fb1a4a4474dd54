//! The rule pack measured against its peers (docs/detections.md), on their own test data:
//! Falco's k8s_audit regression suite, Panther's EKS rule tests, and SigmaHQ's Kubernetes audit
//! rules loaded unmodified. Each comparison asserts the documented agreement, so a change of
//! either side, better or worse, shows up here and in the docs together.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use eks_audit_core::detect::rules::{self, RuleFile, RuleTest};
use eks_audit_core::detect::{Detector, testing};
use eks_audit_core::{ProcessOptions, transform};
use serde_json::Value;

/// The pack's rule stems that fire on `input` (any input `eks-audit detect` reads), through the
/// forwarder's default filter, as `eks-audit detect` runs them.
fn fired(detector: &Arc<Detector>, input: &[u8]) -> BTreeSet<String> {
    let options = ProcessOptions {
        detector: Some(detector.clone()),
        ..ProcessOptions::default()
    };
    let out = transform::transform(input.to_vec(), &options, None).expect("input reads");
    out.findings
        .iter()
        .map(|f| {
            let finding: Value = serde_json::from_slice(&f.line).unwrap();
            testing::stem(finding["unmapped"]["rule_source"].as_str().unwrap()).to_owned()
        })
        .collect()
}

fn pack() -> Arc<Detector> {
    Arc::new(Detector::load(&rules::default_pack()).expect("the pack loads"))
}

/// One Falco case of `falco_k8s_audit_tests.yaml`: whether Falco must detect, and on which trace.
struct FalcoCase {
    detect: bool,
    trace: String,
}

/// The cases of Falco's suite, read line by line (the file's YAML uses Avocado's `!mux` tag).
fn falco_cases() -> Vec<(String, FalcoCase)> {
    let text = corpus_file("other/falco/falco_k8s_audit_tests.yaml");
    let mut cases: Vec<(String, FalcoCase)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            cases.push((
                name.to_owned(),
                FalcoCase {
                    detect: false,
                    trace: String::new(),
                },
            ));
        } else if let Some((_, case)) = cases.last_mut() {
            let line = line.trim();
            if let Some(value) = line.strip_prefix("detect: ") {
                case.detect = value == "True";
            } else if let Some(at) = line.find("trace_files/k8s_audit/") {
                case.trace = line[at + "trace_files/k8s_audit/".len()..].to_owned();
            }
        }
    }
    cases
}

#[test]
fn falco_k8s_audit_suite_agreement() {
    // (Falco case, our counterpart rule, whether our pack fires it on the case's trace). Cases
    // whose Falco rule has no counterpart (allow-lists, activity feed, engine tests) are left
    // out; docs/detections.md lists them with the reason.
    let mapping: &[(&str, &str, bool)] = &[
        ("create_privileged_pod", "privileged_container", true),
        (
            "compat_engine_v4_create_privileged_pod",
            "privileged_container",
            true,
        ),
        (
            "create_privileged_no_secctx_1st_container_2nd_container_pod",
            "privileged_container",
            true,
        ),
        (
            "create_privileged_2nd_container_pod",
            "privileged_container",
            true,
        ),
        (
            "create_privileged_trusted_pod",
            "privileged_container",
            true,
        ),
        (
            "compat_engine_v4_create_privileged_trusted_pod",
            "privileged_container",
            true,
        ),
        ("create_unprivileged_pod", "privileged_container", false),
        (
            "compat_engine_v4_create_unprivileged_pod",
            "privileged_container",
            false,
        ),
        (
            "create_unprivileged_trusted_pod",
            "privileged_container",
            false,
        ),
        (
            "create_sensitive_mount_pod",
            "sensitive_hostpath_mount",
            true,
        ),
        (
            "create_sensitive_mount_2nd_container_pod",
            "sensitive_hostpath_mount",
            true,
        ),
        (
            "create_sensitive_mount_trusted_pod",
            "sensitive_hostpath_mount",
            true,
        ),
        (
            "create_unsensitive_mount_pod",
            "sensitive_hostpath_mount",
            false,
        ),
        (
            "create_unsensitive_mount_trusted_pod",
            "sensitive_hostpath_mount",
            false,
        ),
        ("create_hostnetwork_pod", "host_network_pod", true),
        (
            "compat_engine_v4_create_hostnetwork_pod",
            "host_network_pod",
            true,
        ),
        ("create_hostnetwork_trusted_pod", "host_network_pod", true),
        (
            "compat_engine_v4_create_hostnetwork_trusted_pod",
            "host_network_pod",
            true,
        ),
        ("create_nohostnetwork_pod", "host_network_pod", false),
        (
            "create_nohostnetwork_trusted_pod",
            "host_network_pod",
            false,
        ),
        ("create_nodeport_service", "nodeport_service", true),
        ("create_nonodeport_service", "nodeport_service", false),
        ("anonymous_user", "anonymous_request_succeeded", true),
        // The trace holds the request's ResponseStarted line, which the forwarder's stage
        // filter drops; the ResponseComplete line of the same request fires.
        ("pod_exec", "pod_exec", false),
        ("pod_attach", "pod_attach", false),
        // Created by replicaset-controller, a platform identity the rule leaves out by design.
        (
            "create_pod_in_kube_system_namespace",
            "pod_created_in_kube_system",
            false,
        ),
        (
            "create_pod_in_kube_public_namespace",
            "pod_created_in_kube_system",
            false,
        ),
        (
            "create_serviceaccount_in_kube_system_namespace",
            "serviceaccount_created_in_kube_system",
            true,
        ),
        (
            "create_serviceaccount_in_kube_public_namespace",
            "serviceaccount_created_in_kube_system",
            true,
        ),
        (
            "system_clusterrole_deleted",
            "system_clusterrole_modified",
            true,
        ),
        (
            "system_clusterrole_modified",
            "system_clusterrole_modified",
            true,
        ),
        ("attach_cluster_admin_role", "cluster_admin_binding", true),
        (
            "create_cluster_role_wildcard_resources",
            "wildcard_role",
            true,
        ),
        ("create_cluster_role_wildcard_verbs", "wildcard_role", true),
        ("create_pod_exec_cluster_role", "role_grants_pod_exec", true),
    ];
    let cases = falco_cases();
    let detector = pack();
    let (mut agree, mut report) = (0, Vec::new());
    for (name, rule, we_fire) in mapping {
        let (_, case) = cases
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("Falco has a case {name}"));
        let trace = corpus_file(&format!("audit-events/falco-k8s_audit/{}", case.trace));
        let fired = fired(&detector, trace.as_bytes());
        assert_eq!(
            fired.contains(*rule),
            *we_fire,
            "{name} ({}): {rule} {}; fired {fired:?}",
            case.trace,
            if *we_fire {
                "must fire"
            } else {
                "must stay silent"
            }
        );
        if case.detect == *we_fire {
            agree += 1;
        } else {
            report.push(format!("{name}: Falco {}, we {}", case.detect, we_fire));
        }
    }
    println!(
        "Falco k8s_audit: {agree} of {} mapped cases agree",
        mapping.len()
    );
    for line in &report {
        println!("  differs: {line}");
    }
    // docs/detections.md: five trusted-image cases Falco silences with a local list (we have
    // none), two ResponseStarted traces, two replicaset-controller pods.
    assert_eq!((agree, mapping.len()), (26, 35), "{report:#?}");
}

/// A Panther unit test's log, as an audit event the forwarder reads: `None` for GCP and Azure
/// shapes. Panther's `p_*` enrichment goes; `kind`, `apiVersion` and `stage` are added where
/// Panther's minimal events leave them out (every event it tests would be ResponseComplete).
fn panther_event(log: &Value) -> Option<Value> {
    let object = log.as_object()?;
    let log_type = object.get("p_log_type").and_then(Value::as_str);
    if log_type.is_some_and(|t| t != "Amazon.EKS.Audit")
        || object.contains_key("protoPayload")
        || object.contains_key("properties")
    {
        return None;
    }
    let mut event: serde_json::Map<String, Value> = object
        .iter()
        .filter(|(key, _)| !key.starts_with("p_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    event.entry("kind").or_insert("Event".into());
    event
        .entry("apiVersion")
        .or_insert("audit.k8s.io/v1".into());
    event.entry("stage").or_insert("ResponseComplete".into());
    Some(Value::Object(event))
}

#[test]
fn panther_rule_tests_agreement() {
    // (Panther rule file, our counterpart rules, agreeing tests, EKS tests): docs/detections.md
    // says where and why each difference is.
    let mapping: &[(&str, &[&str], usize, usize)] = &[
        (
            "anonymous_api_access.yml",
            &["anonymous_request_succeeded"],
            5,
            8,
        ),
        (
            "k8s_anonymous_api_access.yml",
            &["anonymous_request_succeeded"],
            5,
            5,
        ),
        (
            "k8s_admission_controller_created.yml",
            &["admission_webhook_changed"],
            3,
            4,
        ),
        ("k8s_client_certificate_created.yml", &["csr_created"], 5, 6),
        (
            "k8s_clusterrolebinding_privileged.yml",
            &["cluster_admin_binding"],
            4,
            7,
        ),
        ("k8s_exec_into_pod.yml", &["pod_exec"], 3, 3),
        ("k8s_kubectl_cp_operation.yml", &["kubectl_cp"], 5, 6),
        (
            "k8s_pod_created_in_system_namespace.yml",
            &["pod_created_in_kube_system"],
            7,
            7,
        ),
        (
            "k8s_pod_dangerous_capabilities.yml",
            &["dangerous_capabilities"],
            4,
            4,
        ),
        ("k8s_pod_host_ipc.yml", &["host_ipc_pod"], 3, 4),
        ("k8s_pod_host_network.yml", &["host_network_pod"], 4, 4),
        ("k8s_pod_host_pid.yml", &["host_pid_pod"], 3, 3),
        (
            "k8s_pod_hostpath_volume.yml",
            &["hostpath_volume", "sensitive_hostpath_mount"],
            3,
            4,
        ),
        (
            "k8s_privileged_pod_created.yml",
            &["privileged_container"],
            4,
            6,
        ),
        (
            "k8s_role_node_proxy_permissions.yml",
            &["role_grants_nodes_proxy", "wildcard_role"],
            5,
            7,
        ),
        ("k8s_role_pod_exec.yml", &["role_grants_pod_exec"], 4, 6),
        ("k8s_role_wildcard.yml", &["wildcard_role"], 5, 7),
        (
            "k8s_secrets_dump_all_namespaces.yml",
            &["secrets_listed_all_namespaces"],
            5,
            7,
        ),
        ("k8s_service_nodeport.yml", &["nodeport_service"], 4, 4),
        (
            "k8s_serviceaccount_token_created.yml",
            &["serviceaccount_token_requested"],
            7,
            8,
        ),
        (
            "k8s_steal_serviceaccount_token.yml",
            &["exec_reads_serviceaccount_token"],
            4,
            8,
        ),
        (
            "k8s_system_role_modified.yml",
            &["system_clusterrole_modified"],
            5,
            7,
        ),
    ];
    let detector = pack();
    let mut measured = Vec::new();
    let (mut total_agree, mut total) = (0, 0);
    for (file, ours, _, _) in mapping {
        let text = corpus_file(&format!("other/panther-analysis/{file}"));
        let rule: Value = yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (mut agree, mut count) = (0, 0);
        for test in rule["Tests"].as_array().expect("Panther rules have tests") {
            let Some(event) = panther_event(&test["Log"]) else {
                continue;
            };
            let expected = test["ExpectedResult"]
                .as_bool()
                .expect("a boolean expectation");
            let fired = fired(&detector, event.to_string().as_bytes());
            let we_fire = ours.iter().any(|rule| fired.contains(*rule));
            count += 1;
            agree += usize::from(we_fire == expected);
            if we_fire != expected {
                println!(
                    "  {file}: \"{}\": Panther {expected}, we {we_fire}",
                    test["Name"].as_str().unwrap_or_default()
                );
            }
        }
        total_agree += agree;
        total += count;
        measured.push((*file, agree, count));
    }
    println!("Panther: {total_agree} of {total} EKS unit tests agree");
    let documented: Vec<(&str, usize, usize)> = mapping
        .iter()
        .map(|(file, _, a, n)| (*file, *a, *n))
        .collect();
    assert_eq!(measured, documented);
}

#[test]
fn sigmahq_kubernetes_rules_load_unmodified_and_pass_their_test_pairs() {
    let dir = corpus().join("other/sigma-kubernetes-audit");
    let mut files: Vec<RuleFile> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| RuleFile {
            name: p.display().to_string(),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(files.len(), 16, "SigmaHQ's 16 Kubernetes audit rules");
    let detector = Detector::load(&files).expect("every SigmaHQ rule loads through the mapping");
    assert_eq!(detector.rule_count(), 16);

    let tests_dir = repo_file("tests/fixtures/sigma-tests");
    let mut tests = Vec::new();
    for file in &files {
        let stem = testing::stem(&file.name);
        for kind in ["fires.json", "misses.json"] {
            let path = tests_dir.join(stem).join(kind);
            tests.push(RuleTest {
                rule: stem.to_owned(),
                file: kind.to_owned(),
                text: std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            });
        }
    }
    let results = testing::run(&detector, &tests);
    let failures = failed_rule_tests(&results);
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(results.len(), 32);

    // DRL 1.1: a finding from a SigmaHQ rule keeps the rule's author.
    let fires = &tests[0];
    let event = eks_audit_core::AuditEvent::parse(&fires.text).unwrap();
    let findings = detector.findings(&event, &fires.text, &CONTEXT, None);
    let finding: Value = serde_json::from_slice(&findings[0].line).unwrap();
    assert!(
        finding["unmapped"]["rule_author"]
            .as_str()
            .is_some_and(|a| !a.is_empty() && a != "eks-audit-forwarder"),
        "{finding}"
    );
}
