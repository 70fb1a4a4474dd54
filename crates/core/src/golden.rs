//! The golden comparison of issue 15: the single-pass path against the reference path it
//! replaced ([`crate::oracle`]), byte for byte, on every corpus file, every sample event, both
//! bench workloads, the inputs the fuzz seeds are made from and hand-written hostile events,
//! flat and OCSF, with redaction on and off. Expected outputs come from the reference path only.

#![allow(clippy::unwrap_used)]

#[path = "../benches/workload.rs"]
mod workload;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::firehose::{ProcessedRecords, process_records};
use crate::detect::Detector;
use crate::detect::rules::default_pack;
use crate::envelope::models::IncomingEvent;
use crate::filter::{Filter, StageFilter};
use crate::oracle::with_reference;
use crate::pipeline::{Origin, Outcome, process_data, process_payload};
use crate::transform::transform;
use crate::{Format, ProcessOptions, Redaction};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every combination the comparison runs: both formats, redaction off, default and total,
/// the default stage filter and all stages.
fn settings(all: bool) -> Vec<(String, ProcessOptions)> {
    let mut list = Vec::new();
    for format in Format::ALL {
        let redactions: &[&str] = if all {
            &["none", "default", "*"]
        } else {
            &["none", "default"]
        };
        for redaction in redactions {
            for stages in [Filter::default().stages, StageFilter::All] {
                if !all && stages == StageFilter::All {
                    continue;
                }
                let options = ProcessOptions {
                    format,
                    redaction: Redaction::parse(redaction).unwrap(),
                    filter: Filter {
                        stages: stages.clone(),
                        ..Filter::default()
                    },
                    ..ProcessOptions::default()
                };
                list.push((
                    format!("{} redact={redaction} stages={stages:?}", format.name()),
                    options,
                ));
            }
        }
    }
    list.extend(with_detector());
    list
}

/// Both formats with the default rule pack, correlations included: findings must agree too,
/// and rules read the bodies, which the single pass hands over without parsing them.
fn with_detector() -> Vec<(String, ProcessOptions)> {
    let detector = Arc::new(Detector::load(&default_pack()).unwrap());
    Format::ALL
        .into_iter()
        .map(|format| {
            let options = ProcessOptions {
                format,
                detector: Some(detector.clone()),
                ..ProcessOptions::default()
            };
            (format!("{} with the default rules", format.name()), options)
        })
        .collect()
}

/// Fails with the first differing line of two texts.
#[track_caller]
fn same(what: &str, reference: &str, new: &str) {
    if reference == new {
        return;
    }
    let at = reference
        .bytes()
        .zip(new.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(reference.len().min(new.len()));
    let around = |s: &str| {
        let bytes = &s.as_bytes()[at.saturating_sub(200)..(at + 200).min(s.len())];
        String::from_utf8_lossy(bytes).into_owned()
    };
    panic!(
        "{what}: the single-pass path differs from the reference at byte {at} (lengths {} and {})\nreference: {}\nnew:       {}",
        reference.len(),
        new.len(),
        around(reference),
        around(new)
    );
}

fn outcome_text(outcome: &Outcome) -> String {
    let mut text = String::from_utf8_lossy(&outcome.ndjson).into_owned();
    let rest = Outcome {
        ndjson: Vec::new(),
        kept: outcome.kept.clone(),
        quarantined: outcome.quarantined.clone(),
        kept_groups: outcome.kept_groups.clone(),
        quarantine_groups: outcome.quarantine_groups.clone(),
        findings: outcome.findings.clone(),
        finding_groups: outcome.finding_groups.clone(),
        tally: outcome.tally.clone(),
    };
    write!(text, "\n{rest:?}").unwrap();
    for line in &outcome.quarantined {
        text.push_str(&String::from_utf8_lossy(&line.line));
    }
    text
}

fn processed_text(processed: &ProcessedRecords) -> String {
    let mut text = serde_json::to_string(&processed.entries).unwrap();
    write!(
        text,
        "\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        processed.tallies,
        processed.quarantine,
        processed.findings,
        processed.failures,
        processed.clusters
    )
    .unwrap();
    text
}

/// A Lambda event, through the Firehose path or the direct one, both ways.
fn compare_event(what: &str, event: &str, options: &[(String, ProcessOptions)]) {
    let Ok(incoming) = serde_json::from_str::<IncomingEvent<'_>>(event) else {
        return;
    };
    for (name, options) in options {
        let what = format!("{what} ({name})");
        if let Some(records) = incoming.records.as_deref() {
            for quarantine in [None, Some("q")] {
                let run =
                    || process_records(records, Origin::default(), options, quarantine, Some("f"));
                let reference = processed_text(&with_reference(run));
                same(&what, &reference, &processed_text(&run()));
            }
        }
        if let Some(awslogs) = &incoming.awslogs {
            let run = || process_data(&awslogs.data, Origin::default(), options);
            let text = |r: Result<Outcome, _>| match r {
                Ok(outcome) => outcome_text(&outcome),
                Err(e) => format!("{e:?}"),
            };
            same(&what, &text(with_reference(run)), &text(run()));
        }
    }
}

/// A decompressed payload (subscription messages), both ways; how many findings the new path
/// wrote.
fn compare_payload(what: &str, payload: &[u8], options: &[(String, ProcessOptions)]) -> usize {
    let mut findings = 0;
    for (name, options) in options {
        let run = || process_payload(payload.to_vec(), Origin::default(), options);
        let text = |r: Result<Outcome, _>| match r {
            Ok(outcome) => outcome_text(&outcome),
            Err(e) => format!("{e:?}"),
        };
        let new = run();
        findings += new.as_ref().map_or(0, |outcome| outcome.findings.len());
        same(
            &format!("{what} ({name})"),
            &text(with_reference(run)),
            &text(new),
        );
    }
    findings
}

/// JSON string contents as serde_json writes them (CloudWatch Logs' own escaping).
fn escape(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// JSON string contents with every escape JSON allows: non-ASCII as `\u` (pairs beyond the
/// BMP), `/` as `\/`, and the short escapes, so the reading of escapes is exercised.
fn escape_everything(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04X}").unwrap();
                }
            }
        }
    }
    out
}

/// A subscription message carrying `messages`, already escaped.
fn message(escaped: &[String]) -> Vec<u8> {
    let mut json = String::from(
        r#"{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"/aws/eks/golden/cluster","logStream":"kube-apiserver-audit-0123","subscriptionFilters":["f"],"logEvents":["#,
    );
    for (i, text) in escaped.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        write!(
            json,
            r#"{{"id":"{}","timestamp":{},"message":"{text}"}}"#,
            37_000_000 + i,
            1_700_000_000_000i64 + i as i64
        )
        .unwrap();
    }
    json.push_str("]}");
    json.into_bytes()
}

/// Every JSON value of a text (one document, NDJSON or concatenated), and the items of lists
/// and `EventList`s, as text.
fn audit_texts(text: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(map) if map.get("items").is_some_and(|i| i.is_array()) => {
                walk(&map["items"], out)
            }
            other => {
                out.push(serde_json::to_string(other).unwrap());
                out.push(serde_json::to_string_pretty(other).unwrap());
            }
        }
    }
    let mut out = vec![text.to_owned()];
    for value in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        match value {
            Ok(value) => walk(&value, &mut out),
            Err(_) => break,
        }
    }
    out
}

/// Hand-written events for the refusals: depth, surrogates, numbers, syntax, duplicates,
/// truncation, escapes and control characters.
fn hostile_texts() -> Vec<String> {
    let base = r#""kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/secrets/x","verb":"get","user":{"username":"u","groups":["g"]},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"secrets","namespace":"default","name":"x"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2024-01-01T00:00:00.000000Z","stageTimestamp":"2024-01-01T00:00:00.100000Z""#;
    let with = |extra: &str| format!("{{{base}{extra}}}");
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let mut texts = vec![
        with(""),
        with(r#","requestObject":{"a":"b","c":[1,2.5e3,-0.1,true,false,null]}"#),
        with(&format!(r#","requestObject":{}"#, deep(99))),
        with(&format!(r#","requestObject":{}"#, deep(100))),
        with(&format!(r#","responseObject":{}"#, deep(127))),
        with(&format!(r#","responseObject":{}"#, deep(200))),
        with(r#","requestObject":{"a":"\ud83d\ude00"}"#),
        with(r#","requestObject":{"a":"\ud83d"}"#),
        with(r#","requestObject":{"a":"\ude00x"}"#),
        with(r#","requestObject":{"\udfff":1}"#),
        with(r#","requestObject":{"a":"\\ud83d"}"#),
        with(r#","requestObject":{"a":1e400}"#),
        with(r#","requestObject":{"a":-2E+309,"b":1.7976931348623159e308}"#),
        with(&format!(r#","requestObject":{{"a":{}}}"#, "9".repeat(400))),
        with(r#","requestObject":{"a":01}"#),
        with(r#","requestObject":{"a":1.}"#),
        with(r#","requestObject":{"a":tru}"#),
        with(r#","requestObject":{"a":"x\qy"}"#),
        with(r#","requestObject":{"a":"\u12G4"}"#),
        with(r#","requestObject":{"a" "b"}"#),
        with(r#","requestObject":{"a":"b",}"#),
        with(r#","requestObject":[1,2,]"#),
        with(r#","requestObject":{"a":"b"}}"#),
        with(r#","verb":"list""#),
        with("\n, \"responseObject\" : {\n \"a\" : [ 1 , 2 ]\n}\n"),
        with(r#","kind":"Event""#),
        format!("{{{base},\"requestObject\":{{\"a\":\"tab\there\"}}}}"),
        format!("  {{{base}}}  "),
        format!("{{{base}}} x"),
        base.replace("\"kind\":\"Event\"", "\"kind\":\"Pod\""),
        base.replace("\"kind\":\"Event\"", "\"kind\":7"),
        base.replace("\"verb\":\"get\"", "\"verb\":\"g\\u00e9t\\/x\""),
        base.replace("\"sourceIPs\":[\"10.0.0.1\"]", "\"sourceIPs\":\"10.0.0.1\""),
        with(r#","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: \"x\""}"#),
        with(r#","annotations":{"a":"1","a":"2"}"#),
        format!("{{{base},\"requestObject\":{{\"data\":{{\"k\":\"v"),
        format!("{{{base},\"requestObject\":{{\"data\":{{\"k\":\"v[Truncated...]"),
        format!("{{{base}[Truncated...]"),
        format!("{{\"kind\":\"Event\",\"stage\":\"ResponseComplete\",\"requestObject\":{{\"a\":1}},\"verb\":\"get[Truncated...]"),
        "[]".into(),
        "null".into(),
        "\"text\"".into(),
        "{}".into(),
        String::new(),
        "not json at all".into(),
        "{\"kind\":\"Event\",\"stage\":\"ResponseComplete\",\"verb\":\"get\",\"requestURI\":\"/x\",\"objectRef\":{\"resource\":\"pods\",\"resource\":\"x\"}}".into(),
        "{\"kind\":\"Event\",\"stage\":\"ResponseComplete\",\"stage\":\"ResponseComplete\"}".into(),
        format!("{{{base},\"requestObject\":\"{}\"}}", "x".repeat(70_000)),
        with(r#","requestObject":{"a":"é ü 🚀 \u00e9 \u2028","b":"<>&"}"#),
    ];
    texts.push(format!("{{{base},\"x\":\"\u{1}\"}}"));
    texts
}

#[test]
fn both_paths_agree_on_the_sample_events_and_the_lambda_event_corpus() {
    let options = settings(true);
    let mut files = files_under(&root().join("events"));
    files.extend(files_under(
        &root().join("tests/fixtures/third-party/lambda-events"),
    ));
    let mut compared = 0;
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        compare_event(&path.display().to_string(), &text, &options);
        compared += 1;
    }
    assert!(compared > 20, "{compared} files");
}

#[test]
fn both_paths_agree_on_every_audit_event_of_the_corpus() {
    let options = settings(true);
    let few = settings(false);
    let files = files_under(&root().join("tests/fixtures/third-party/audit-events"));
    assert!(files.len() > 60, "the corpus is there");
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let what = path.display().to_string();
        for (name, options) in &options {
            let run = || transform(bytes.clone(), options, Some("eu-west-1"));
            let text = |r: Result<crate::transform::Transformed, _>| match r {
                Ok(t) => format!(
                    "{}\n{:?}\n{:?}",
                    String::from_utf8_lossy(&t.ndjson),
                    t.tally,
                    t.problems
                ),
                Err(e) => format!("{e:?}"),
            };
            same(
                &format!("transform {what} ({name})"),
                &text(with_reference(run)),
                &text(run()),
            );
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let texts = audit_texts(text);
        // All of a file's events in one message, with CloudWatch's escaping and with every
        // escape; each alone (so that a quarantine or a failure is each one's) in a few settings.
        for escaper in [escape as fn(&str) -> String, escape_everything] {
            let escaped: Vec<String> = texts.iter().map(|t| escaper(t)).collect();
            compare_payload(&what, &message(&escaped), &options);
        }
        for one in &texts {
            compare_payload(&what, &message(&[escape(one)]), &few);
        }
    }
}

#[test]
fn both_paths_agree_on_hostile_events() {
    let options = settings(true);
    let texts = hostile_texts();
    for text in &texts {
        for escaper in [escape as fn(&str) -> String, escape_everything] {
            compare_payload(text, &message(&[escaper(text)]), &options);
        }
    }
    let escaped: Vec<String> = texts.iter().map(|t| escape(t)).collect();
    compare_payload("all hostile events", &message(&escaped), &options);
    // Escapes that are not valid in the message itself, and messages that are not messages.
    for payload in [
        &br#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/c/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":"1","timestamp":1,"message":"{\"a\":\"\q\"}"}]}"#[..],
        br#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/c/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":"1","timestamp":1,"message":"{\"a\":\"\ud800\"}"}]}"#,
        br#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/c/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":"1","timestamp":1,"message":"{\"a\":\"\ud800\udc00\"}"}]}"#,
        br#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/c/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":"1","timestamp":1,"message":"{\"kind\":\"Event\"}","message":"{}"}]}"#,
        br#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/c/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":1,"timestamp":1,"message":"{\"kind\":\"Event\",\"stage\":\"ResponseComplete\"}"}]}"#,
        br#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/c/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":"1","timestamp":1,"message":"{\"kind\":\"Event\",\"stage\":\"ResponseComplete\"}"}]}{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/d/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":"2","timestamp":1,"message":"{\"kind\":\"Event\",\"stage\":\"ResponseComplete\"}"}]}"#,
        br#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/c/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":"1","timestamp":1,"message":"{\"a\":\"x"}]}"#,
        br#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/c/cluster","logStream":"kube-apiserver-audit-1","logEvents":[{"id":"1","timestamp":1,"message":"{\"a\":\"
\"}"}]}"#,
        b"{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"/aws/eks/c/cluster\",\"logStream\":\"kube-apiserver-audit-1\",\"logEvents\":[{\"id\":\"1\",\"timestamp\":1,\"message\":\"{\\\"a\\\":\\\"\xff\\\"}\"}]}",
        br#"{"messageType":"CONTROL_MESSAGE","logEvents":[]}"#,
        br#"{"messageType":"DATA_MESSAGE","logStream":"other","logEvents":[{"id":"1","timestamp":1,"message":"{}"}]}"#,
        b"",
        b"[1]",
    ] {
        compare_payload(&String::from_utf8_lossy(payload), payload, &options);
    }
}

#[test]
fn both_paths_agree_on_the_test_events_of_every_rule() {
    let options = with_detector();
    let files = files_under(&root().join("rules/tests"));
    assert!(files.len() > 40, "{} rule tests", files.len());
    let mut findings = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let what = path.display().to_string();
        // A correlation's test is a sequence of events: one message, so they count together.
        let escaped: Vec<String> = audit_texts(&text)[1..]
            .iter()
            .step_by(2)
            .map(|t| escape(t))
            .collect();
        findings += compare_payload(&what, &message(&escaped), &options);
        for escaped in &escaped {
            compare_payload(&what, &message(std::slice::from_ref(escaped)), &options);
        }
    }
    // Every rule's `fires` test fires, in both formats.
    assert!(findings >= 2 * 36, "{findings} findings");
}

/// The bench workloads, which the corpus tests cover in every setting already, in a few (they
/// are slow unoptimized): the typical one flat with redaction, OCSF without, and flat with the
/// default rules; the first payload of the max one, five times bigger, flat with the rules.
#[test]
fn both_paths_agree_on_the_bench_workloads() {
    let options = settings(false);
    let pick = |names: &[&str]| -> Vec<(String, ProcessOptions)> {
        let picked: Vec<_> = options
            .iter()
            .filter(|(name, _)| names.iter().any(|n| name.starts_with(n)))
            .cloned()
            .collect();
        assert_eq!(picked.len(), names.len(), "{names:?}");
        picked
    };
    let typical = workload::generate(workload::Size::TYPICAL);
    let typical_options = pick(&[
        "flat redact=default",
        "ocsf redact=none",
        "flat with the default rules",
    ]);
    compare_event("typical", &typical.event, &typical_options);
    let max = workload::generate(workload::Size::MAX);
    let max_options = pick(&["flat with the default rules"]);
    compare_payload("max, first payload", &max.payloads[1], &max_options);
}
