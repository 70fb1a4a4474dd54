//! Every file of the third-party corpus goes through `transform` and the handler without a panic,
//! and every record and event is accounted for.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use eks_audit_core::ProcessOptions;
use eks_audit_core::envelope::models::FirehoseResult;
use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_core::tally::Tally;
use eks_audit_core::transform::transform;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::Response;
use serde_json::Value;

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

/// Every file under `sub` of the corpus, then under `sub` of the optional extra corpus named by
/// `EKS_AUDIT_EXTRA_CORPUS` (laid out the same way; see tests/fixtures/third-party/SOURCES.md).
fn corpus_files(sub: &str) -> Vec<PathBuf> {
    let mut files = files_under(&corpus().join(sub));
    let extra = std::env::var_os("EKS_AUDIT_EXTRA_CORPUS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(extra) = extra {
        assert!(
            extra.join("audit-events").is_dir() || extra.join("lambda-events").is_dir(),
            "EKS_AUDIT_EXTRA_CORPUS={} has no audit-events/ or lambda-events/ folder",
            extra.display()
        );
        if extra.join(sub).is_dir() {
            files.extend(files_under(&extra.join(sub)));
        }
    }
    files
}

fn assert_events_accounted(tally: &Tally, what: &Path) {
    assert_eq!(
        tally.events,
        tally.kept + tally.dropped.total() + tally.quarantined,
        "{}: every event kept, dropped or quarantined: {tally:?}",
        what.display()
    );
}

#[test]
fn every_audit_event_file_transforms_with_every_event_accounted_for() {
    let all = ProcessOptions {
        filter: Filter {
            stages: StageFilter::All,
            ..Filter::default()
        },
        ..ProcessOptions::default()
    };
    let files = corpus_files("audit-events");
    assert!(files.len() > 60, "the corpus is there");
    let mut kept_everywhere = 0;
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml");
        for settings in [&ProcessOptions::default(), &all] {
            match transform(bytes.clone(), settings, None) {
                Ok(out) => {
                    assert!(!is_yaml, "{} is not JSON", path.display());
                    assert_events_accounted(&out.tally, &path);
                    assert_eq!(out.tally.quarantined as usize, out.problems.len());
                    let lines = String::from_utf8(out.ndjson).unwrap();
                    assert_eq!(
                        lines.lines().count() as u64,
                        out.tally.kept,
                        "{}",
                        path.display()
                    );
                    for line in lines.lines() {
                        let value: Value = serde_json::from_str(line).unwrap();
                        assert!(value["RawEvent"].is_object(), "{}", path.display());
                    }
                    kept_everywhere += out.tally.kept;
                }
                Err(e) => assert!(is_yaml, "{}: {e}", path.display()),
            }
        }
    }
    assert!(
        kept_everywhere > 300,
        "most corpus events are real audit events: {kept_everywhere}"
    );
}

#[tokio::test]
async fn every_lambda_event_fixture_is_answered_or_rejected_with_a_reason() {
    let test = handler(Settings::default());
    for path in corpus_files("lambda-events") {
        let text = std::fs::read_to_string(&path).unwrap();
        let input: Option<Value> = serde_json::from_str(&text).ok();
        match test.handler.handle(&text).await {
            Ok(Response::Firehose(response)) => {
                let inputs = input
                    .as_ref()
                    .and_then(|v| v["records"].as_array())
                    .expect("a Firehose event");
                assert_eq!(response.records.len(), inputs.len(), "{}", path.display());
                for (record, input) in response.records.iter().zip(inputs) {
                    assert_eq!(record.record_id, input["recordId"].as_str().unwrap());
                    if record.result == FirehoseResult::ProcessingFailed {
                        assert_eq!(
                            record.data,
                            input["data"].as_str().unwrap(),
                            "{}",
                            path.display()
                        );
                    }
                }
            }
            Ok(Response::Direct(summary)) => assert_events_accounted(&summary.tally, &path),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    !message.is_empty() && !message.contains('\n'),
                    "{}: one-line reason",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn decompressed_subscription_payloads_transform_or_report_each_problem() {
    // OpenTelemetry's fixtures are CloudWatch Logs payloads as Firehose delivers them decompressed.
    for path in corpus_files("lambda-events/otel-awsfirehosereceiver-cwlog") {
        let out = transform(
            std::fs::read(&path).unwrap(),
            &ProcessOptions::default(),
            None,
        );
        if let Ok(out) = out {
            assert_events_accounted(&out.tally, &path);
            // Their log streams are not EKS audit streams: nothing is kept.
            assert_eq!(out.tally.kept, 0, "{}", path.display());
        }
    }
}

#[test]
fn sample_events_are_what_aws_lambda_events_reads_too() {
    // An independent reading of events/: the community crate's types decode them.
    use aws_lambda_events::event::cloudwatch_logs::LogsEvent;
    use aws_lambda_events::event::firehose::KinesisFirehoseEvent;
    let firehose: KinesisFirehoseEvent = serde_json::from_str(
        &std::fs::read_to_string(repo_file("events/firehose-eks-audit.json")).unwrap(),
    )
    .unwrap();
    assert!(firehose.records.len() >= 6);
    let logs: LogsEvent = serde_json::from_str(
        &std::fs::read_to_string(repo_file("events/awslogs-eks-audit.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(logs.aws_logs.data.log_group, GROUP);
    assert!(
        logs.aws_logs
            .data
            .log_stream
            .starts_with("kube-apiserver-audit-")
    );
}
