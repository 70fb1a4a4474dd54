//! Every file of the third-party corpus goes through `transform` and the handler without a panic,
//! and every record and event is accounted for. Each Lambda-event fixture is named with what the
//! handler must do with it: refuse it (and why) or answer it (and how).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use eks_audit_core::ProcessOptions;
use eks_audit_core::envelope::DecodeError;
use eks_audit_core::envelope::models::FirehoseResult::{self, Dropped, ProcessingFailed};
use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_core::tally::Tally;
use eks_audit_core::transform::transform;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::{HandlerError, Response};
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

/// Why the handler must refuse a fixture (contract §1.1: an event that is neither a Firehose
/// transformation event nor an `awslogs` event, or that is not JSON, fails the invocation).
#[derive(Debug, Clone, Copy)]
enum Refused {
    /// JSON without `records` or `awslogs`: another service's event.
    Unsupported,
    /// Not one JSON value.
    NotJson,
    /// `awslogs.data` whose bytes are zlib: neither gzip nor JSON (§1.2), so nothing is written.
    Zlib,
}

/// The fixtures of tests/fixtures/third-party/lambda-events/ the handler must refuse, and why.
const REFUSED: &[(&str, Refused, &str)] = &[
    (
        "aws-lambda-rust-runtime__example-kinesis-event.json",
        Refused::Unsupported,
        "a Kinesis Data Streams event (`Records`): not a supported input",
    ),
    (
        "aws-lambda-rust-runtime__example-s3-event.json",
        Refused::Unsupported,
        "an S3 notification event (`Records`): not a supported input",
    ),
    (
        "aws-lambda-rust-runtime__example-s3-event-with-decoded.json",
        Refused::Unsupported,
        "an S3 notification event (`Records`): not a supported input",
    ),
    (
        "aws-lambda-rust-runtime__example-sqs-event.json",
        Refused::Unsupported,
        "an SQS event (`Records`): not a supported input",
    ),
    (
        "aws-lambda-rust-runtime__example-sqs-event-obj.json",
        Refused::Unsupported,
        "an SQS event (`Records`): not a supported input",
    ),
    (
        "aws-lambda-rust-runtime__example-sqs-batch-response.json",
        Refused::Unsupported,
        "an SQS partial-batch response (`batchItemFailures`): not an event at all",
    ),
    (
        "powertools-python__kinesisStreamCloudWatchLogsEvent.json",
        Refused::Unsupported,
        "a Kinesis Data Streams event (`Records`), even though its data are CloudWatch Logs payloads",
    ),
    (
        "powertools-python__s3SqsEvent.json",
        Refused::Unsupported,
        "an SQS event (`Records`) carrying an S3 notification: not a supported input",
    ),
    (
        "powertools-python__sqsEvent.json",
        Refused::Unsupported,
        "an SQS event (`Records`): not a supported input",
    ),
    (
        "powertools-python__cloudWatchLogEventWithPolicyLevel.json",
        Refused::Zlib,
        "an `awslogs` event whose data is zlib (`eNq…`, bytes 78 da), not gzip",
    ),
    (
        "otel-awsfirehosereceiver-cwlog/only_control",
        Refused::Unsupported,
        "a bare subscription message, without the Lambda event around it",
    ),
    (
        "otel-awsfirehosereceiver-cwlog/single_record",
        Refused::Unsupported,
        "a bare subscription message, without the Lambda event around it",
    ),
    (
        "otel-awsfirehosereceiver-cwlog/multiple_records",
        Refused::NotJson,
        "two concatenated subscription messages: not one JSON value",
    ),
    (
        "otel-awsfirehosereceiver-cwlog/some_invalid_records",
        Refused::NotJson,
        "three concatenated JSON objects: not one JSON value",
    ),
    (
        "otel-awsfirehosereceiver-cwlog/invalid_records",
        Refused::NotJson,
        "four concatenated stock-ticker objects: not one JSON value",
    ),
];

/// What the handler must answer for a fixture it accepts.
#[derive(Debug, Clone, Copy)]
enum Answered {
    /// A Firehose response with these results, one per input record, in order.
    Firehose(&'static [FirehoseResult]),
    /// A direct-mode summary: this many events, all from streams that are not
    /// `kube-apiserver-audit-*`, so dropped as `not_audit_stream` and nothing written.
    DirectNotAudit { events: u64 },
}

/// The other fixtures of lambda-events/: each must be answered, as said.
const ANSWERED: &[(&str, Answered, &str)] = &[
    (
        "aws-lambda-rust-runtime__example-cloudwatch_logs-event.json",
        Answered::DirectNotAudit { events: 2 },
        "gzip DATA_MESSAGE of 2 events from testLogGroup/testLogStream",
    ),
    (
        "powertools-typescript__cloudwatch__base.json",
        Answered::DirectNotAudit { events: 3 },
        "gzip DATA_MESSAGE of 3 events from a Lambda function's log stream",
    ),
    (
        "aws-lambda-rust-runtime__example-kinesis-firehose-event.json",
        Answered::Firehose(&[ProcessingFailed, ProcessingFailed]),
        "2 records of `Hello World`: neither gzip nor JSON",
    ),
    (
        "powertools-python__kinesisFirehosePutEvent.json",
        Answered::Firehose(&[ProcessingFailed, ProcessingFailed]),
        "`Hello World` is neither gzip nor JSON; `{\"Hello\": \"World\"}` is JSON without messageType",
    ),
    (
        "powertools-python__kinesisFirehoseKinesisEvent.json",
        Answered::Firehose(&[ProcessingFailed, ProcessingFailed]),
        "as the DirectPut event; kinesisRecordMetadata is ignored",
    ),
    (
        "powertools-python__kinesisFirehoseSQSEvent.json",
        Answered::Firehose(&[ProcessingFailed]),
        "an SQS message as JSON: not a subscription message",
    ),
    (
        "powertools-typescript__kinesis__firehose-sqs-invalid.json",
        Answered::Firehose(&[ProcessingFailed]),
        "`not a valid jason`: neither gzip nor JSON",
    ),
    (
        "aws-sam-cli__KinesisFirehoseCloudwatchLogsProcessor.json",
        Answered::Firehose(&[Dropped, Dropped, Dropped, Dropped]),
        "a CONTROL_MESSAGE, then 3 DATA_MESSAGEs from copy-cwl-… streams, not audit streams",
    ),
    (
        "aws-lambda-rust-runtime__example-kinesis-firehose-response.json",
        Answered::Firehose(&[ProcessingFailed, ProcessingFailed, ProcessingFailed]),
        "a Firehose response still has records with recordId and data, so it reads as a \
         transformation event (§1.1); each `Hello World` record fails with its data",
    ),
    (
        "aws-lambda-go__kinesis-firehose-response.json",
        Answered::Firehose(&[ProcessingFailed, ProcessingFailed, ProcessingFailed]),
        "as aws-lambda-rust-runtime's response; otfMetadata is ignored",
    ),
];

/// The relative path of a fixture under lambda-events/, with `/` separators.
fn lambda_fixture_name(path: &Path) -> String {
    let dir = corpus().join("lambda-events");
    let relative = path.strip_prefix(&dir).expect("under lambda-events/");
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_lambda_event_fixture_is_answered_or_refused_as_listed() {
    let test = handler(Settings::default());
    let files = files_under(&corpus().join("lambda-events"));
    let mut names: Vec<String> = files.iter().map(|p| lambda_fixture_name(p)).collect();
    names.sort_unstable();
    let mut listed: Vec<&str> = REFUSED
        .iter()
        .map(|(name, ..)| *name)
        .chain(ANSWERED.iter().map(|(name, ..)| *name))
        .collect();
    listed.sort_unstable();
    // SOURCES.md: 25 files under lambda-events/, each listed exactly once here.
    assert_eq!(names.len(), 25);
    assert_eq!(
        names, listed,
        "every fixture is listed once, and only fixtures"
    );

    for path in &files {
        let name = lambda_fixture_name(path);
        let text = std::fs::read_to_string(path).unwrap();
        let result = test.handler.handle(&text).await;
        if let Some((_, refused, why)) = REFUSED.iter().find(|(n, ..)| *n == name) {
            let error = match result {
                Err(error) => error,
                Ok(response) => panic!("{name} ({why}) must be refused, got {response:?}"),
            };
            let message = error.to_string();
            assert!(
                !message.contains('\n'),
                "{name}: one-line reason: {message}"
            );
            match (refused, &error) {
                (Refused::Unsupported, HandlerError::Unsupported) => {}
                (Refused::NotJson, HandlerError::Malformed(_)) => {}
                (Refused::Zlib, HandlerError::Undecodable(DecodeError::NotGzipOrJson(start))) => {
                    assert_eq!(start[..2], [0x78, 0xda], "{name}: zlib header")
                }
                _ => panic!("{name} ({why}): expected {refused:?}, got {error:?}"),
            }
            continue;
        }
        let (_, answer, why) = ANSWERED.iter().find(|(n, ..)| *n == name).expect("listed");
        let response = match result {
            Ok(response) => response,
            Err(error) => panic!("{name} ({why}) must be answered, got: {error}"),
        };
        match (answer, response) {
            (Answered::Firehose(results), Response::Firehose(response)) => {
                let input: Value = serde_json::from_str(&text).unwrap();
                let inputs = input["records"].as_array().expect("records");
                assert_eq!(inputs.len(), results.len(), "{name}: the table's count");
                let got: Vec<FirehoseResult> = response.records.iter().map(|r| r.result).collect();
                assert_eq!(&got, results, "{name}: {why}");
                for (record, input) in response.records.iter().zip(inputs) {
                    assert_eq!(record.record_id, input["recordId"].as_str().unwrap());
                    match record.result {
                        FirehoseResult::ProcessingFailed => {
                            assert_eq!(record.data, input["data"].as_str().unwrap(), "{name}")
                        }
                        _ => assert_eq!(record.data, "", "{name}"),
                    }
                    assert_eq!(record.metadata, None, "{name}");
                }
            }
            (Answered::DirectNotAudit { events }, Response::Direct(summary)) => {
                assert_eq!(summary.tally.records, 1, "{name}");
                assert_eq!(summary.tally.events, *events, "{name}: {why}");
                assert_eq!(summary.tally.dropped.not_audit_stream, *events, "{name}");
                assert_events_accounted(&summary.tally, path);
                assert!(summary.objects.is_empty(), "{name}: {:?}", summary.objects);
                assert!(summary.quarantine_objects.is_empty(), "{name}");
            }
            (answer, response) => panic!("{name}: expected {answer:?}, got {response:?}"),
        }
    }
    assert!(
        test.objects().is_empty(),
        "nothing written: {:?}",
        test.objects()
    );
}

#[tokio::test]
async fn every_extra_lambda_event_is_answered_or_refused_with_a_reason() {
    // Only the optional extra corpus (EKS_AUDIT_EXTRA_CORPUS), whose files this test cannot
    // know: each is answered with every record accounted for, or refused with a one-line
    // reason. The repository's own fixtures are checked one by one above.
    let Some(extra) = std::env::var_os("EKS_AUDIT_EXTRA_CORPUS").filter(|v| !v.is_empty()) else {
        return;
    };
    let dir = PathBuf::from(extra).join("lambda-events");
    if !dir.is_dir() {
        return;
    }
    let test = handler(Settings::default());
    for path in files_under(&dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        let input: Option<Value> = serde_json::from_str(&text).ok();
        match test.handler.handle(&text).await {
            Ok(Response::Firehose(response)) => {
                let inputs = input
                    .as_ref()
                    .and_then(|v| v["records"].as_array())
                    .expect("a Firehose event");
                assert_eq!(response.records.len(), inputs.len(), "{}", path.display());
                assert_eq!(
                    response
                        .records
                        .iter()
                        .map(|r| r.record_id.as_str())
                        .collect::<Vec<_>>(),
                    inputs
                        .iter()
                        .map(|i| i["recordId"].as_str().unwrap())
                        .collect::<Vec<_>>(),
                    "{}",
                    path.display()
                );
                for (record, input) in response.records.iter().zip(inputs) {
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
            Ok(Response::Subscribe(summary)) => panic!(
                "{}: answered by an auto-subscriber this handler does not have: {summary:?}",
                path.display()
            ),
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
fn decompressed_subscription_payloads_transform_with_every_event_accounted_for() {
    // OpenTelemetry's fixtures are CloudWatch Logs payloads as Firehose delivers them
    // decompressed. `transform` reads each JSON value on its own: a value with `messageType` is
    // a subscription message (one record), any other object a bare audit event. Their streams
    // (`test`) are not audit streams, and the stock-ticker objects have no `stage`, which the
    // default filter drops (contract §3). Nothing is kept, nothing fails.
    struct Expected {
        records: u64,
        events: u64,
        control_message: u64,
        not_audit_stream: u64,
        stage: u64,
    }
    let expected = |name: &str| match name {
        "only_control" => Expected {
            records: 1,
            events: 1,
            control_message: 1,
            not_audit_stream: 0,
            stage: 0,
        },
        "single_record" => Expected {
            records: 1,
            events: 1,
            control_message: 0,
            not_audit_stream: 1,
            stage: 0,
        },
        "multiple_records" => Expected {
            records: 2,
            events: 2,
            control_message: 0,
            not_audit_stream: 2,
            stage: 0,
        },
        // A message, a ticker object, a message.
        "some_invalid_records" => Expected {
            records: 2,
            events: 3,
            control_message: 0,
            not_audit_stream: 2,
            stage: 1,
        },
        "invalid_records" => Expected {
            records: 0,
            events: 4,
            control_message: 0,
            not_audit_stream: 0,
            stage: 4,
        },
        other => panic!("unlisted fixture {other}"),
    };
    let files = files_under(&corpus().join("lambda-events/otel-awsfirehosereceiver-cwlog"));
    assert_eq!(files.len(), 5);
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let want = expected(&name);
        let out = transform(
            std::fs::read(&path).unwrap(),
            &ProcessOptions::default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let tally = &out.tally;
        assert_events_accounted(tally, &path);
        assert_eq!(tally.records, want.records, "{name}");
        assert_eq!(tally.events, want.events, "{name}");
        assert_eq!(
            tally.dropped.control_message, want.control_message,
            "{name}"
        );
        assert_eq!(
            tally.dropped.not_audit_stream, want.not_audit_stream,
            "{name}"
        );
        assert_eq!(tally.dropped.stage, want.stage, "{name}");
        assert_eq!(tally.dropped.excluded_uri, 0, "{name}");
        assert_eq!(
            (tally.kept, tally.quarantined, tally.failed_records),
            (0, 0, 0),
            "{name}"
        );
        assert!(
            out.ndjson.is_empty() && out.problems.is_empty(),
            "{name}: {:?}",
            out.problems
        );
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
