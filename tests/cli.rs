//! contract §7: the `eks-audit` commands as operators and scripts call them.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn eks_audit(args: &[&str], envs: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eks-audit"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Start from a clean configuration so the developer's shell does not leak in.
    for (name, _) in std::env::vars() {
        if name.starts_with("EKS_AUDIT_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "warn").envs(envs.iter().copied());
    let mut child = command.spawn().expect("eks-audit runs");
    if let Some(input) = stdin {
        // A command refused as bad usage exits before reading its input: the pipe closing
        // under the write is then the expected outcome, not a test failure.
        match child.stdin.take().unwrap().write_all(input) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            written => written.unwrap(),
        }
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Asserts the exit code (contract §7.2: 0 success, 1 input that could not be processed, 2 bad
/// usage), showing stderr when it differs.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn invoke_prints_the_firehose_response_of_the_sample_event() {
    let event = repo_file("events/firehose-eks-audit.json");
    let out = tempfile::tempdir().unwrap();
    let output = eks_audit(
        &[
            "invoke",
            event.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    let results: Vec<&str> = response["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    // events/README.md: control message, mixed noise, forbidden secret read, exec, large
    // RequestResponse, authenticator stream, decompressed record.
    assert_eq!(
        results,
        ["Dropped", "Ok", "Ok", "Ok", "Ok", "Dropped", "Ok"]
    );
}

#[test]
fn invoke_on_a_direct_event_writes_objects_to_the_out_directory() {
    let event = repo_file("events/awslogs-eks-audit.json");
    let out = tempfile::tempdir().unwrap();
    let output = eks_audit(
        &[
            "invoke",
            event.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let objects = summary["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2, "events/README.md: hours 13 and 14");
    for object in objects {
        let path = object.as_str().unwrap();
        assert!(path.starts_with(out.path().to_str().unwrap()));
        assert!(std::path::Path::new(path).is_file(), "{path}");
    }
}

#[test]
fn invoke_prefix_loses_its_slashes_and_may_be_empty() {
    // contract §6.1: `<prefix>` is EKS_AUDIT_PREFIX without leading or trailing `/`, and an
    // empty --prefix starts keys at `cluster=`. events/README.md: the sample's stream is
    // kube-apiserver-audit-4c32aba7e0ab5ccdee4286ec390a6a30; its objects are hour 13, named
    // after event 1, and hour 14, named after event 5.
    let event = repo_file("events/awslogs-eks-audit.json");
    let cases = [
        (
            "/audit/",
            [
                "audit/cluster=prod-east/dt=2024-05-21/hour=13/kube-apiserver-audit-4c32aba7e0ab5ccdee4286ec390a6a30-38274768951356324145982964960672468520056241476290543616.json.gz",
                "audit/cluster=prod-east/dt=2024-05-21/hour=14/kube-apiserver-audit-4c32aba7e0ab5ccdee4286ec390a6a30-38274769036440239074990741403348175343574738722875179012.json.gz",
            ],
        ),
        (
            "",
            [
                "cluster=prod-east/dt=2024-05-21/hour=13/kube-apiserver-audit-4c32aba7e0ab5ccdee4286ec390a6a30-38274768951356324145982964960672468520056241476290543616.json.gz",
                "cluster=prod-east/dt=2024-05-21/hour=14/kube-apiserver-audit-4c32aba7e0ab5ccdee4286ec390a6a30-38274769036440239074990741403348175343574738722875179012.json.gz",
            ],
        ),
    ];
    for (prefix, keys) in cases {
        let out = tempfile::tempdir().unwrap();
        let output = eks_audit(
            &[
                "invoke",
                event.to_str().unwrap(),
                "--out",
                out.path().to_str().unwrap(),
                "--prefix",
                prefix,
            ],
            &[],
            None,
        );
        assert_exit(&output, 0);
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        let objects: Vec<&str> = summary["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        let expected: Vec<String> = keys
            .iter()
            .map(|key| out.path().join(key).to_string_lossy().into_owned())
            .collect();
        assert_eq!(objects, expected, "--prefix {prefix:?}");
    }
}

#[test]
fn filters_come_from_flags_or_environment_alike() {
    // A ResponseStarted event is dropped by default and kept when its stage is allowed.
    let event = corpus_event("audit-events/falco-k8s_audit/exec_pod.json", 0); // ResponseStarted
    // contract §7.2: a filtered event is not a reported problem, so `transform` exits 0.
    let default = eks_audit(&["transform"], &[], Some(event.as_bytes()));
    assert_exit(&default, 0);
    assert!(
        stdout_lines(&default).is_empty(),
        "ResponseStarted is not kept by default"
    );

    let by_flag = eks_audit(
        &["transform", "--stages", "ResponseStarted"],
        &[],
        Some(event.as_bytes()),
    );
    let by_env = eks_audit(
        &["transform"],
        &[("EKS_AUDIT_STAGES", "*")],
        Some(event.as_bytes()),
    );
    assert_exit(&by_flag, 0);
    assert_exit(&by_env, 0);
    assert_eq!(stdout_lines(&by_flag).len(), 1);
    assert_eq!(stdout_lines(&by_env).len(), 1);

    let empty_env = eks_audit(
        &["transform"],
        &[("EKS_AUDIT_STAGES", "")],
        Some(event.as_bytes()),
    );
    assert_exit(&empty_env, 0);
    assert!(
        stdout_lines(&empty_env).is_empty(),
        "an empty variable counts as unset: the default applies"
    );
}

#[test]
fn uri_exclusions_can_be_replaced_or_disabled() {
    let event = corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    );
    let readyz = event.replace(
        "/apis/apps/v1/namespaces/kube-system/deployments?fieldSelector=metadata.name%3Dvpc-resource-controller",
        "/readyz?verbose",
    );
    // An excluded event is dropped, not reported (contract §7.2): exit 0 with no output.
    let default = eks_audit(&["transform"], &[], Some(readyz.as_bytes()));
    assert_exit(&default, 0);
    assert!(
        stdout_lines(&default).is_empty(),
        "/readyz* is excluded by default"
    );
    let none = eks_audit(
        &["transform"],
        &[("EKS_AUDIT_EXCLUDE_URIS", "none")],
        Some(readyz.as_bytes()),
    );
    assert_exit(&none, 0);
    assert_eq!(stdout_lines(&none).len(), 1);
    let custom = eks_audit(
        &["transform", "--exclude-uris", "/apis/apps/*"],
        &[],
        Some(event.as_bytes()),
    );
    assert_exit(&custom, 0);
    assert!(stdout_lines(&custom).is_empty());
}

#[test]
fn transform_reads_a_saved_lambda_event_or_a_gzip_subscription_message() {
    let lambda = eks_audit(
        &[
            "transform",
            repo_file("events/firehose-eks-audit.json")
                .to_str()
                .unwrap(),
        ],
        &[],
        None,
    );
    assert!(
        lambda.status.success(),
        "{}",
        String::from_utf8_lossy(&lambda.stderr)
    );
    // events/README.md: 4 + 1 + 1 + 1 + 1 kept events.
    assert_eq!(stdout_lines(&lambda).len(), 8);

    let event = corpus_event(
        "audit-events/eks-security-immersion-day/log-insights-result-1.json",
        0,
    );
    let message = gzip(
        data_message(GROUP, STREAM, &[&event])
            .to_string()
            .as_bytes(),
    );
    let output = eks_audit(
        &["transform", "-"],
        &[("AWS_REGION", "eu-central-1")],
        Some(&message),
    );
    assert_exit(&output, 0);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["ClusterName"], "prod-east");
    assert_eq!(lines[0]["Region"], "eu-central-1");
}

#[test]
fn problems_are_reported_one_line_each_and_exit_1() {
    let ndjson = "{\"stage\":\"ResponseComplete\",\"verb\":\"get\"}\nnot json at all\n";
    let output = eks_audit(&["transform"], &[], Some(ndjson.as_bytes()));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not JSON"), "{stderr}");

    let missing = eks_audit(&["invoke", "/nonexistent/event.json"], &[], None);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/event.json"), "{stderr}");

    let unsupported = eks_audit(
        &[
            "invoke",
            corpus()
                .join("lambda-events/aws-lambda-rust-runtime__example-sqs-event.json")
                .to_str()
                .unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(unsupported.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unsupported.stderr).contains("unsupported event"));
}

#[test]
fn transform_prints_every_good_ndjson_line_and_reports_each_bad_one() {
    // Lines 2 and 4 are not JSON (line 4 is cut short); 1, 3 and 5 are events. Expected: the
    // three events on stdout in input order, one stderr line per bad line naming its number,
    // exit 1. Before, the first bad line ended the whole input: no event printed.
    let event =
        |verb: &str| format!(r#"{{"kind":"Event","stage":"ResponseComplete","verb":"{verb}"}}"#);
    let ndjson = format!(
        "{}\nnot json\n{}\n{{\"kind\":\"Eve\n{}\n",
        event("get"),
        event("list"),
        event("watch")
    );
    for input in [ndjson.as_bytes().to_vec(), gzip(ndjson.as_bytes())] {
        let output = eks_audit(&["transform", "-"], &[], Some(&input));
        assert_eq!(output.status.code(), Some(1));
        let verbs: Vec<Value> = stdout_lines(&output)
            .iter()
            .map(|l| l["Verb"].clone())
            .collect();
        assert_eq!(verbs, ["get", "list", "watch"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("eks-audit: "))
            .collect();
        assert_eq!(problems.len(), 2, "{stderr}");
        assert!(
            problems[0].starts_with("eks-audit: -: line 2, column "),
            "{stderr}"
        );
        assert!(
            problems[1].starts_with("eks-audit: -: line 4, column "),
            "{stderr}"
        );
        assert!(problems.iter().all(|p| p.contains("not JSON")), "{stderr}");
    }
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(eks_audit(&["invoke"], &[], None).status.code(), Some(2));
    assert_eq!(
        eks_audit(&["transform", "--format", "xml"], &[], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(eks_audit(&["frobnicate"], &[], None).status.code(), Some(2));
}

/// The Lambda binary as it cold-starts, with only `envs` set: it reads its settings before it
/// first calls the runtime API (an unused port here), so a bad setting ends it right there.
fn lambda_cold_start(envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eks-audit-forwarder"));
    for (name, _) in std::env::vars() {
        if name.starts_with("EKS_AUDIT_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("RUST_LOG", "warn")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the Lambda binary runs")
}

#[test]
fn a_prefix_that_would_make_events_read_as_quarantine_is_bad_usage() {
    // Event keys are <prefix>/cluster=…, quarantine keys <prefix>/quarantine/cluster=…: with a
    // prefix ending in `quarantine`, collectors would skip every event as quarantine.
    let event = repo_file("events/awslogs-eks-audit.json");
    let out = tempfile::tempdir().unwrap();
    let invoke = [
        "invoke",
        event.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ];
    for output in [
        eks_audit(
            &[&invoke[..], &["--prefix", "quarantine"]].concat(),
            &[],
            None,
        ),
        eks_audit(&invoke, &[("EKS_AUDIT_PREFIX", "audit/quarantine/")], None),
        eks_audit(
            &invoke,
            &[("EKS_AUDIT_PREFIX", "quarantine/cluster=x")],
            None,
        ),
    ] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("EKS_AUDIT_PREFIX (--prefix)"), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing is written"
    );
    // A prefix that merely contains the word stays valid.
    let fine = eks_audit(
        &[&invoke[..], &["--prefix", "quarantine-archive"]].concat(),
        &[],
        None,
    );
    assert!(
        fine.status.success(),
        "{}",
        String::from_utf8_lossy(&fine.stderr)
    );

    // The Lambda reads the same settings from its environment and fails its cold start.
    let cold = lambda_cold_start(&[("EKS_AUDIT_PREFIX", "quarantine")]);
    let stderr = String::from_utf8_lossy(&cold.stderr);
    assert!(!cold.status.success(), "{stderr}");
    assert!(stderr.contains("invalid configuration"), "{stderr}");
    assert!(stderr.contains("EKS_AUDIT_PREFIX (--prefix)"), "{stderr}");
}

#[test]
fn a_prefix_that_climbs_out_of_the_output_directory_is_bad_usage() {
    let event = repo_file("events/awslogs-eks-audit.json");
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("a/b/out");
    let invoke = [
        "invoke",
        event.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    for output in [
        eks_audit(
            &[&invoke[..], &["--prefix", "../../escaped"]].concat(),
            &[],
            None,
        ),
        eks_audit(&invoke, &[("EKS_AUDIT_PREFIX", "/x/../../../e")], None),
        eks_audit(&invoke, &[("EKS_AUDIT_PREFIX", "x//y")], None),
    ] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("EKS_AUDIT_PREFIX (--prefix) may not"),
            "{stderr}"
        );
    }
    let written: Vec<_> = std::fs::read_dir(parent.path()).unwrap().collect();
    assert!(written.is_empty(), "nothing written anywhere: {written:?}");
    let cold = lambda_cold_start(&[("EKS_AUDIT_PREFIX", "../../escaped")]);
    assert!(!cold.status.success());
    assert!(String::from_utf8_lossy(&cold.stderr).contains("`..` segment"));
}

/// The `EKS_AUDIT_*` names in `text`, each once.
fn variables_in(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("EKS_AUDIT_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// A table row's first cell, where the README names its variables.
fn first_cell(row: &str) -> &str {
    row.split('|').nth(1).unwrap_or_default()
}

#[test]
fn the_readme_configuration_table_and_help_name_the_same_variables() {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Configuration section");
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
    let documented = variables_in(&rows.iter().map(|r| first_cell(r)).collect::<String>());
    let lambda_only = variables_in(
        &rows
            .iter()
            .filter(|row| row.contains("| Lambda only |"))
            .map(|r| first_cell(r))
            .collect::<String>(),
    );

    let mut in_help = std::collections::BTreeSet::new();
    for command in ["invoke", "transform", "detect", "reconcile", "collect"] {
        let help = eks_audit(&[command, "--help"], &[], None);
        assert_exit(&help, 0);
        in_help.extend(variables_in(&String::from_utf8_lossy(&help.stdout)));
    }
    // Every flag's variable has its row, and every row is a flag's variable or the Lambda's own.
    let undocumented: Vec<_> = in_help.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "missing from the README table: {undocumented:?}"
    );
    let unknown: Vec<_> = documented
        .difference(&in_help)
        .filter(|v| !lambda_only.contains(*v))
        .collect();
    assert!(
        unknown.is_empty(),
        "in the README table but no command takes them: {unknown:?}"
    );
    for variable in [
        "EKS_AUDIT_FORMAT",
        "EKS_AUDIT_BUCKET",
        "EKS_AUDIT_RULES",
        "EKS_AUDIT_FINDINGS_QUEUE_URL",
        "EKS_AUDIT_QUEUE_URL",
    ] {
        assert!(in_help.contains(variable), "--help names {variable}");
    }
}

/// Every `EKS_AUDIT_*` variable named anywhere in the code has its row in the README's table.
#[test]
fn every_variable_the_code_names_is_in_the_readme_table() {
    fn sources(dir: &std::path::Path, into: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, into);
            } else if path.extension().is_some_and(|e| e == "rs") {
                into.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut code = String::new();
    sources(&repo_file("src"), &mut code);
    sources(&repo_file("crates/core/src"), &mut code);
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let table: String = readme
        .lines()
        .filter(|l| l.starts_with("| `EKS_AUDIT_"))
        .map(first_cell)
        .collect();
    // `EKS_AUDIT_SUBSCRIBE_*` in prose ends in `_`: a family, not a variable.
    let named: Vec<String> = variables_in(&code)
        .into_iter()
        .filter(|v| !v.ends_with('_'))
        .collect();
    assert!(named.len() >= 25, "{named:?}");
    let missing: Vec<_> = named
        .iter()
        .filter(|v| !table.contains(&format!("`{v}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "named in the code, not in the README table: {missing:?}"
    );
}

#[test]
fn limits_are_flags_and_variables_alike() {
    // Depth 3: the event, requestObject, and the list in it.
    let event = r#"{"kind":"Event","stage":"ResponseComplete","requestObject":{"a":[]}}"#;
    let default = eks_audit(&["transform"], &[], Some(event.as_bytes()));
    assert_exit(&default, 0);
    assert_eq!(stdout_lines(&default).len(), 1);
    for output in [
        eks_audit(
            &["transform", "--max-depth", "2"],
            &[],
            Some(event.as_bytes()),
        ),
        eks_audit(
            &["transform"],
            &[("EKS_AUDIT_MAX_DEPTH", "2")],
            Some(event.as_bytes()),
        ),
    ] {
        assert_eq!(output.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&output.stderr).contains("nested more than 2 levels"));
    }
    let message = data_message(GROUP, STREAM, &[event, event]).to_string();
    for output in [
        eks_audit(
            &["transform", "--max-events-per-record", "1"],
            &[],
            Some(message.as_bytes()),
        ),
        eks_audit(
            &["transform"],
            &[("EKS_AUDIT_MAX_EVENTS_PER_RECORD", "1")],
            Some(message.as_bytes()),
        ),
    ] {
        assert_eq!(output.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&output.stderr)
                .contains("more than 1 log events in one record")
        );
    }
    assert_eq!(
        eks_audit(&["transform", "--max-depth", "deep"], &[], None)
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn limits_out_of_range_are_bad_usage_naming_the_variable_and_the_range() {
    // u64::MAX made `limit + 1` wrap to 0 in the core: every gzip record failed as "data is
    // empty". Zero would fail or quarantine everything. Both are refused before any input is read.
    let event = data_message(
        GROUP,
        STREAM,
        &[r#"{"kind":"Event","stage":"ResponseComplete"}"#],
    );
    let gzip_message = gzip(event.to_string().as_bytes());
    for (flag, variable, bad, range) in [
        (
            "--max-payload-bytes",
            "EKS_AUDIT_MAX_PAYLOAD_BYTES",
            "18446744073709551615",
            "from 1 to 4294967296",
        ),
        (
            "--max-event-bytes",
            "EKS_AUDIT_MAX_EVENT_BYTES",
            "0",
            "from 1 to 4294967296",
        ),
        (
            "--max-depth",
            "EKS_AUDIT_MAX_DEPTH",
            "1001",
            "from 1 to 1000",
        ),
        (
            "--max-events-per-record",
            "EKS_AUDIT_MAX_EVENTS_PER_RECORD",
            "0",
            "from 1 to 10000000",
        ),
    ] {
        for output in [
            eks_audit(&["transform", flag, bad], &[], Some(&gzip_message)),
            eks_audit(&["transform"], &[(variable, bad)], Some(&gzip_message)),
        ] {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{stderr}");
            assert!(
                stderr.contains(&format!(
                    "{variable} ({flag}) must be a whole number {range}"
                )),
                "{stderr}"
            );
            assert!(output.stdout.is_empty());
        }
        let cold = lambda_cold_start(&[(variable, bad)]);
        assert!(!cold.status.success());
        assert!(String::from_utf8_lossy(&cold.stderr).contains(variable));
    }
    // The ceiling itself is valid: the gzip record is read as usual.
    let at_ceiling = eks_audit(
        &["transform", "--max-payload-bytes", "4294967296"],
        &[],
        Some(&gzip_message),
    );
    assert!(
        at_ceiling.status.success(),
        "{}",
        String::from_utf8_lossy(&at_ceiling.stderr)
    );
    assert_eq!(stdout_lines(&at_ceiling).len(), 1);

    let collect = eks_audit(
        &[
            "collect",
            "--queue-url",
            "http://127.0.0.1:9/q",
            "--max-object-bytes",
            "0",
        ],
        &[],
        None,
    );
    let stderr = String::from_utf8_lossy(&collect.stderr);
    assert_eq!(collect.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--max-object-bytes must be a whole number from 1 to 4294967296"),
        "{stderr}"
    );

    for concurrency in ["0", "65"] {
        let collect = eks_audit(
            &[
                "collect",
                "--queue-url",
                "http://127.0.0.1:9/q",
                "--concurrency",
                concurrency,
            ],
            &[],
            None,
        );
        let stderr = String::from_utf8_lossy(&collect.stderr);
        assert_eq!(collect.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--concurrency"), "{stderr}");
    }
    let help = eks_audit(&["collect", "--help"], &[], None);
    // clap wraps help to the terminal's width: compare with the line breaks taken out.
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("--concurrency") && help.contains("N x --max-object-bytes"),
        "the memory bound is stated: {help}"
    );
}

#[test]
fn redaction_is_a_flag_and_a_variable_and_bad_rules_are_bad_usage() {
    let event = corpus_event(
        "audit-events/falco-k8s_audit/create_configmap_sensitive_values.json",
        0,
    );
    let plain = eks_audit(&["transform"], &[], Some(event.as_bytes()));
    assert_exit(&plain, 0);
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("MY-KEY"),
        "off by default"
    );
    for output in [
        eks_audit(
            &["transform", "--redact", "configmaps"],
            &[],
            Some(event.as_bytes()),
        ),
        eks_audit(
            &["transform"],
            &[("EKS_AUDIT_REDACT", "default")],
            Some(event.as_bytes()),
        ),
    ] {
        assert!(output.status.success());
        let lines = stdout_lines(&output);
        assert_eq!(
            lines[0]["RawEvent"]["requestObject"]["redacted"],
            "eks-audit-forwarder"
        );
        assert!(!String::from_utf8_lossy(&output.stdout).contains("MY-KEY"));
    }
    let empty = eks_audit(
        &["transform"],
        &[("EKS_AUDIT_REDACT", "")],
        Some(event.as_bytes()),
    );
    assert_exit(&empty, 0);
    assert!(
        String::from_utf8_lossy(&empty.stdout).contains("MY-KEY"),
        "an empty variable counts as unset"
    );
    let bad = eks_audit(&["transform", "--redact", "Secrets"], &[], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid redaction rule"));
}

#[test]
fn fleet_subscribe_usage_is_checked_before_any_call() {
    // No endpoint and no credentials: each is refused before any AWS call could be tried.
    let role_required = "arn:aws:firehose:{region}:999999999999:deliverystream/central";
    for (args, says) in [
        (
            &[
                "subscribe",
                "--accounts",
                "111111111111",
                "--destination-arn",
                "arn:aws:logs:eu-west-1:9:destination:d",
            ][..],
            "--role-name",
        ),
        (
            &[
                "subscribe",
                "--accounts",
                "111111111111",
                "--all",
                "--role-name",
                "r",
            ][..],
            "--all",
        ),
        (
            &["subscribe", "--ou", "ou-ab12-cdef3456", "--role-name", "r"][..],
            "--org",
        ),
        (
            &[
                "subscribe",
                "--org",
                "--role-name",
                "r",
                "--concurrency",
                "0",
                "--check",
            ][..],
            "--concurrency",
        ),
        (
            &[
                "subscribe",
                "--accounts",
                "1,2",
                "--role-name",
                "r",
                "--regions",
                "eu-west-1",
                "--destination-arn",
                role_required,
            ][..],
            "--role-arn",
        ),
    ] {
        let output = eks_audit(args, &[("AWS_EC2_METADATA_DISABLED", "true")], None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_auto_subscribe_destination_subscribe_would_refuse_fails_the_cold_start() {
    let output = lambda_cold_start(&[
        ("EKS_AUDIT_SUBSCRIBE_DESTINATION_ARN", "not-an-arn"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_REGION", "eu-west-1"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("invalid auto-subscribe destination") && stderr.contains("not-an-arn"),
        "{stderr}"
    );
}

/// 8 records of 50 events, each event carrying a ~20 KB body: ~8 MB of NDJSON, ~10.7 MB of
/// base64, well over one response. Every event comes from 10.0.0.1; each record is its own log
/// stream, as each of CloudWatch's subscription messages would be.
fn oversized_batch() -> Vec<String> {
    let body = "k".repeat(20_000);
    (0..8)
        .map(|r| {
            let events: Vec<String> = (0..50)
                .map(|e| {
                    serde_json::json!({
                        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
                        "auditID": format!("audit-{r}-{e}"), "stage": "ResponseComplete",
                        "requestURI": "/api/v1/namespaces/default/configmaps/big", "verb": "get",
                        "user": {"username": "alice"}, "sourceIPs": ["10.0.0.1"],
                        "objectRef": {"resource": "configmaps", "namespace": "default", "name": "big"},
                        "responseStatus": {"code": 200},
                        "requestReceivedTimestamp": "2024-05-21T10:00:00.000000Z",
                        "stageTimestamp": "2024-05-21T10:00:00.100000Z",
                        "responseObject": {"data": {"value": body}},
                    })
                    .to_string()
                })
                .collect();
            let events: Vec<&str> = events.iter().map(String::as_str).collect();
            gzip_record(&data_message(
                "/aws/eks/big/cluster",
                &format!("kube-apiserver-audit-{r:04}"),
                &events,
            ))
        })
        .collect()
}

/// The `PutRecordBatch` data `invoke` wrote under `<out>/firehose/eks-audit`, as Firehose
/// record data (base64), in file-name order.
fn reingested_records(out: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(out.join("firehose/eks-audit")) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .iter()
        .map(|p| b64(&std::fs::read(p).unwrap()))
        .collect()
}

/// Every finding's `finding_info.uid` in the findings objects `invoke` wrote under `out`.
fn finding_uids(out: &std::path::Path) -> Vec<String> {
    let mut uids = Vec::new();
    let mut dirs = vec![out.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if !path.to_str().unwrap().contains("/findings/") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
                .unwrap();
            for line in text.lines() {
                let finding: Value = serde_json::from_str(line).unwrap();
                uids.push(finding["finding_info"]["uid"].as_str().unwrap().to_owned());
            }
        }
    }
    uids
}

/// Findings leave with their data (contract §12): a record sent back into the stream delivers
/// its findings when it returns, not also on the pass that sent it back.
#[test]
fn the_findings_of_a_reingested_record_are_delivered_once_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let ip_list = dir.path().join("ips.txt");
    std::fs::write(&ip_list, "# every event of the batch\n10.0.0.1\n").unwrap();
    let mut records = oversized_batch();
    let mut uids = Vec::new();
    let mut passes = 0;
    while !records.is_empty() {
        passes += 1;
        assert!(passes <= 3, "re-ingested records keep coming back");
        let event_file = dir.path().join(format!("event-{passes}.json"));
        std::fs::write(&event_file, firehose_event(&records)).unwrap();
        let out = dir.path().join(format!("out-{passes}"));
        let output = eks_audit(
            &[
                "invoke",
                event_file.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--no-default-rules",
                "--ip-list",
                ip_list.to_str().unwrap(),
            ],
            &[],
            None,
        );
        assert_exit(&output, 0);
        let response: Value = serde_json::from_slice(&output.stdout).unwrap();
        let delivered = response["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["result"] == "Ok")
            .map(|r| ok_lines(r["data"].as_str().unwrap()).len())
            .sum::<usize>();
        let found = finding_uids(&out);
        assert_eq!(
            found.len(),
            delivered,
            "pass {passes}: one finding per event delivered"
        );
        uids.extend(found);
        records = reingested_records(&out);
        assert!(
            passes > 1 || !records.is_empty(),
            "the first pass re-ingests"
        );
    }
    // One finding per event of the batch, each once, whichever pass delivered it.
    let mut expected: Vec<String> = (0..8)
        .flat_map(|r| (0..50).map(move |e| format!("audit-{r}-{e}")))
        .collect();
    expected.sort();
    let mut found: Vec<String> = uids
        .iter()
        .map(|uid| uid.rsplit_once(':').unwrap().1.to_owned())
        .collect();
    found.sort();
    assert_eq!(found, expected);
}

/// A local run stays local: an event whose response would pass Firehose's 6 MB sends records
/// back into the stream (contract §2), and `invoke` without a bucket writes them under `--out`
/// instead of calling AWS. Every kept event is either in the response or in those files.
#[test]
fn invoke_without_a_bucket_reingests_into_the_out_directory() {
    let records = oversized_batch();
    let dir = tempfile::tempdir().unwrap();
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, firehose_event(&records)).unwrap();
    let out = dir.path().join("out");
    let run = || {
        let output = eks_audit(
            &[
                "invoke",
                event_file.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[("EKS_AUDIT_NO_DEFAULT_RULES", "true")],
            None,
        );
        assert_exit(&output, 0);
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let response = run();
    let mut in_response = 0;
    let mut results = Vec::new();
    for record in response["records"].as_array().unwrap() {
        results.push(record["result"].as_str().unwrap().to_owned());
        if record["result"] == "Ok" {
            in_response += ok_lines(record["data"].as_str().unwrap()).len();
        }
    }
    assert!(
        results.iter().all(|r| r == "Ok" || r == "Dropped"),
        "{results:?}"
    );
    assert!(
        results.iter().any(|r| r == "Dropped"),
        "some records were sent back"
    );
    let stream_dir = out.join("firehose/eks-audit");
    let mut files: Vec<String> = std::fs::read_dir(&stream_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut reingested = 0;
    for name in &files {
        assert!(name.ends_with(".json.gz"), "{name}");
        let bytes = std::fs::read(stream_dir.join(name)).unwrap();
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut json)
            .unwrap();
        let message: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(message["logGroup"], "/aws/eks/big/cluster");
        reingested += message["logEvents"].as_array().unwrap().len();
    }
    assert_eq!(in_response + reingested, 8 * 50, "every event once");
    assert!(reingested > 0);
    // The same invocation again writes the same files, named by their content.
    run();
    let mut again: Vec<String> = std::fs::read_dir(&stream_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    again.sort();
    assert_eq!(again, files);
}
