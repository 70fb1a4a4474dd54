//! `eks-audit reconcile` against moto: audit events put into a log group, some of them written
//! to the bucket by the real handler (direct mode, or Firehose mode with the objects Firehose
//! would write), one left out and one duplicated; the command's rows, exit code and reads are
//! checked against what the inputs say they must be.
//!
//! moto's `FilterLogEvents` ignores `logStreamNamePrefix` and numbers event ids from a global
//! counter ("0", "1", ...): the command checks the stream prefix itself, and ids are compared
//! as the text CloudWatch returns.

use std::process::{Command, Output};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use eks_audit_core::Format;
use eks_audit_core::eks::log_group_of;
use eks_audit_core::envelope::models::FirehoseResult;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::{Handler, Response};
use eks_audit_forwarder::reconcile::{Reconciler, Request, Window};
use eks_audit_forwarder::sink::ObjectStore;
use eks_audit_forwarder::sink::s3::S3Store;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{ACCOUNT, awslogs_event, firehose_event, gzip, gzip_record, ok_text};
use crate::moto::{self, unique};
use crate::resources::new_bucket;
use crate::s3_objects::direct;

/// One audit event as logged: its name in the test, CloudWatch timestamp and message; the
/// CloudWatch id once put.
#[derive(Debug, Clone)]
struct Logged {
    name: &'static str,
    timestamp: i64,
    message: String,
    id: String,
}

/// A cluster whose audit stream holds, in two hours `A` (the window's first) and `B`:
///
/// - `a1`–`a4`: ResponseComplete in A;
/// - `received`: RequestReceived in A (the default stage filter drops it);
/// - `health`: `/healthz` in A (the default URI filter drops it);
/// - `bad`: not JSON, CloudWatch timestamp in A (quarantined in A);
/// - `watch`: a watch received in A, completed and logged in B (delivered in A: events are
///   placed by `requestReceivedTimestamp`);
/// - `b1`–`b3`: ResponseComplete in B;
///
/// and whose `kube-apiserver-*` stream (not audit) holds one more audit-looking event, in A.
/// So CloudWatch holds, for the forwarder, 6 events in A (5 delivered, 1 quarantined) and 3
/// in B.
struct Fixture {
    cluster: String,
    stream: String,
    /// The beginning of hour A: three hours before the current hour, so every event is in
    /// the past and within moto's 14 days.
    hour_a: OffsetDateTime,
    events: Vec<Logged>,
}

fn audit(
    audit_id: &str,
    stage: &str,
    uri: &str,
    received: OffsetDateTime,
    logged: OffsetDateTime,
) -> String {
    let rfc3339 = |t: OffsetDateTime| t.format(&Rfc3339).unwrap();
    json!({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":audit_id,
           "stage":stage,"requestURI":uri,"verb":"get",
           "user":{"username":"kubernetes-admin","groups":["system:masters"]},
           "sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.29.3",
           "objectRef":{"resource":"pods","namespace":"default","name":"web","apiVersion":"v1"},
           "responseStatus":{"metadata":{},"code":200},
           "requestReceivedTimestamp":rfc3339(received),"stageTimestamp":rfc3339(logged)})
    .to_string()
}

fn millis(time: OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000_000) as i64
}

async fn logs() -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(&moto::config().await)
}

impl Fixture {
    async fn new() -> Fixture {
        let now = OffsetDateTime::now_utc();
        let current_hour = now
            .replace_minute(0)
            .and_then(|t| t.replace_second(0))
            .and_then(|t| t.replace_nanosecond(0))
            .unwrap();
        let hour_a = current_hour - time::Duration::hours(3);
        let at = |minutes: i64| hour_a + time::Duration::minutes(minutes);
        // Logged two seconds after the request was received.
        let event = |name: &'static str, stage: &str, uri: &str, minutes: i64| Logged {
            name,
            timestamp: millis(at(minutes)) + 2_000,
            message: audit(name, stage, uri, at(minutes), at(minutes)),
            id: String::new(),
        };
        let mut events = vec![
            event("a1", "ResponseComplete", "/api/v1/pods", 5),
            event("a2", "ResponseComplete", "/api/v1/pods", 10),
            event("a3", "ResponseComplete", "/api/v1/pods", 15),
            event("a4", "ResponseComplete", "/api/v1/pods", 20),
            event("received", "RequestReceived", "/api/v1/pods", 25),
            event("health", "ResponseComplete", "/healthz", 30),
            Logged {
                name: "bad",
                timestamp: millis(at(35)),
                message: "E0521 15:00:01.204981 11 writers.go:122] apiserver was unable to write a JSON response".to_owned(),
                id: String::new(),
            },
            event("b1", "ResponseComplete", "/api/v1/pods", 65),
            Logged {
                name: "watch",
                timestamp: millis(at(66)),
                message: audit(
                    "watch",
                    "ResponseComplete",
                    "/api/v1/pods?watch=true",
                    at(50),
                    at(66),
                ),
                id: String::new(),
            },
            event("b2", "ResponseComplete", "/api/v1/pods", 70),
            event("b3", "ResponseComplete", "/api/v1/pods", 75),
        ];
        let cluster = unique("reconcile");
        let stream = format!("kube-apiserver-audit-{}", unique("s"));
        let logs = logs().await;
        let group = log_group_of(&cluster);
        logs.create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .expect("create log group");
        let not_audit = format!("kube-apiserver-{}", unique("s"));
        for name in [&stream, &not_audit] {
            logs.create_log_stream()
                .log_group_name(&group)
                .log_stream_name(name)
                .send()
                .await
                .expect("create log stream");
        }
        let put = |stream: &str, events: &[Logged]| {
            let mut request = logs
                .put_log_events()
                .log_group_name(&group)
                .log_stream_name(stream);
            for event in events {
                request = request.log_events(
                    InputLogEvent::builder()
                        .timestamp(event.timestamp)
                        .message(&event.message)
                        .build()
                        .unwrap(),
                );
            }
            request.send()
        };
        put(&stream, &events).await.expect("put audit events");
        put(
            &not_audit,
            &[event("elsewhere", "ResponseComplete", "/api/v1/pods", 12)],
        )
        .await
        .expect("put an event on a stream that is not audit");

        // The ids CloudWatch gave them, as a subscription would carry them.
        let read = logs
            .filter_log_events()
            .log_group_name(&group)
            .log_stream_names(&stream)
            .send()
            .await
            .expect("read the events back");
        for event in &mut events {
            let logged = read
                .events()
                .iter()
                .find(|e| e.message() == Some(event.message.as_str()))
                .unwrap_or_else(|| panic!("{} was put", event.name));
            event.id = logged.event_id().unwrap().to_owned();
        }
        Fixture {
            cluster,
            stream,
            hour_a,
            events,
        }
    }

    fn named(&self, names: &[&str]) -> Vec<&Logged> {
        names
            .iter()
            .map(|name| self.events.iter().find(|e| e.name == *name).unwrap())
            .collect()
    }

    /// A subscription message of the audit stream holding the named events, in order.
    fn message(&self, names: &[&str]) -> Value {
        let events: Vec<Value> = self
            .named(names)
            .iter()
            .map(|e| json!({"id": e.id, "timestamp": e.timestamp, "message": e.message}))
            .collect();
        json!({
            "messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": log_group_of(&self.cluster),
            "logStream": self.stream, "subscriptionFilters": ["eks-audit"], "logEvents": events,
        })
    }

    /// The window of hours A and B.
    fn since(&self) -> String {
        self.hour_a.format(&Rfc3339).unwrap()
    }

    fn until(&self) -> String {
        (self.hour_a + time::Duration::hours(2))
            .format(&Rfc3339)
            .unwrap()
    }

    fn hour(&self, index: i64) -> String {
        (self.hour_a + time::Duration::hours(index))
            .format(&Rfc3339)
            .unwrap()
    }
}

/// Every event of hours A and B, in messages as CloudWatch might batch them: hour A (the
/// quarantined and filtered events among them), then hour B with the watch that ends in it.
const ALL_A: &[&str] = &["a1", "a2", "a3", "a4", "received", "health", "bad"];
const ALL_B: &[&str] = &["b1", "watch", "b2", "b3"];

async fn handler(bucket: &str, format: Format) -> Handler {
    let mut settings = Settings {
        bucket: Some(bucket.to_owned()),
        ..Settings::default()
    };
    settings.process.format = format;
    let client = eks_audit_forwarder::sink::s3::client(&moto::config().await);
    let store = ObjectStore::S3(S3Store::new(client, bucket.to_owned(), None));
    Handler::new(settings, store, Some(moto::REGION.to_owned()))
}

/// Writes each message's objects with the direct-mode handler, one invocation each.
async fn deliver(fixture: &Fixture, bucket: &str, messages: &[&[&str]]) {
    let handler = handler(bucket, Format::Flat).await;
    for names in messages {
        direct(&handler, &awslogs_event(&fixture.message(names))).await;
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `eks-audit reconcile` over hours A and B of `fixture`, with `extra` arguments.
fn reconcile(fixture: &Fixture, bucket: &str, extra: &[&str]) -> Run {
    let (since, until) = (fixture.since(), fixture.until());
    let mut args = vec!["--cluster", &fixture.cluster, "--bucket", bucket];
    args.extend(["--since", &since, "--until", &until]);
    args.extend(extra);
    run(&args)
}

/// `eks-audit reconcile ARGS` against moto, with none of the forwarder's variables set.
fn run(args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eks-audit"));
    command
        .arg("reconcile")
        .args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("EKS_AUDIT_BUCKET")
        .env_remove("EKS_AUDIT_PREFIX")
        .env_remove("EKS_AUDIT_FORMAT")
        .env("RUST_LOG", "warn");
    for (name, value) in moto::env() {
        command.env(name, value);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("eks-audit runs");
    Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// `reconcile --json`'s report.
fn json_report(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("--json prints JSON ({e}): {}\n{}", run.stdout, run.stderr))
}

/// A row: (hour, in CloudWatch, delivered, quarantined, missing, duplicated, unexpected,
/// checked).
type Row = (String, u64, u64, u64, u64, u64, u64, String);

/// Each row of a JSON report.
fn rows(report: &Value) -> Vec<Row> {
    report["hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |field: &str| r[field].as_u64().unwrap();
            (
                r["hour"].as_str().unwrap().to_owned(),
                n("in_cloudwatch"),
                n("delivered"),
                n("quarantined"),
                n("missing"),
                n("duplicated"),
                n("unexpected"),
                r["checked"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_lost_event_and_a_duplicated_one_are_found_in_their_hours_and_exit_1() {
    let fixture = Fixture::new().await;
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    // a2 never delivered; b2 delivered twice (in a second message, so a second object).
    deliver(
        &fixture,
        &bucket,
        &[
            &["a1", "a3", "a4", "received", "health", "bad"],
            ALL_B,
            &["b2"],
        ],
    )
    .await;

    let run = reconcile(&fixture, &bucket, &["--json"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("1 event(s) in CloudWatch"),
        "{}",
        run.stderr
    );
    let report = json_report(&run);
    // A: 5 to deliver (a1-a4, the watch) and 1 to quarantine; 4 delivered, a2 missing. The
    // metadata says 4 events where CloudWatch has 5, so the hour is read line by line.
    // B: 3 to deliver; 4 lines, one of them a second b2.
    assert_eq!(
        rows(&report),
        [
            (fixture.hour(0), 6, 4, 1, 1, 0, 0, "objects".to_owned()),
            (fixture.hour(1), 3, 4, 0, 0, 1, 0, "objects".to_owned()),
        ]
    );
    assert_eq!(
        (
            report["total"]["missing"].as_u64(),
            report["total"]["duplicated"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // CloudWatch: the 11 audit-stream events of the fixture; the other stream's is not read.
    assert_eq!(report["reads"]["cloudwatch_events"], 11);

    let table = reconcile(&fixture, &bucket, &[]);
    assert_eq!(table.code, Some(1));
    let lines: Vec<Vec<&str>> = table
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "hour",
            "(UTC)",
            "in",
            "CloudWatch",
            "delivered",
            "quarantined",
            "missing",
            "duplicated",
            "unexpected",
            "checked"
        ]
    );
    let (hour_a, hour_b) = (fixture.hour(0), fixture.hour(1));
    assert_eq!(
        lines[1],
        [hour_a.as_str(), "6", "4", "1", "1", "0", "0", "objects"]
    );
    assert_eq!(
        lines[2],
        [hour_b.as_str(), "3", "4", "0", "0", "1", "0", "objects"]
    );
    assert_eq!(lines[3], ["total", "9", "8", "1", "1", "1", "0"]);
}

#[tokio::test]
async fn everything_delivered_once_exits_0_and_agreeing_metadata_saves_every_download() {
    let fixture = Fixture::new().await;
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    deliver(&fixture, &bucket, &[ALL_A, ALL_B]).await;
    // Objects: A's events (message 1), A's quarantine, B's events and A's watch (message 2).
    let objects = crate::s3_objects::keys(&s3, &bucket).await.len() as u64;
    assert_eq!(objects, 4);

    let run = reconcile(&fixture, &bucket, &["--json"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let report = json_report(&run);
    assert_eq!(
        rows(&report),
        [
            (fixture.hour(0), 6, 5, 1, 0, 0, 0, "metadata".to_owned()),
            (fixture.hour(1), 3, 3, 0, 0, 0, 0, "metadata".to_owned()),
        ]
    );
    assert_eq!(report["reads"]["objects_listed"], objects);
    assert_eq!(report["reads"]["objects_headed"], objects);
    assert_eq!(
        report["reads"]["objects_downloaded"], 0,
        "nothing downloaded"
    );

    let verified = reconcile(&fixture, &bucket, &["--json", "--verify"]);
    assert_eq!(verified.code, Some(0), "{}", verified.stderr);
    let verified = json_report(&verified);
    assert_eq!(
        rows(&verified),
        [
            (fixture.hour(0), 6, 5, 1, 0, 0, 0, "objects".to_owned()),
            (fixture.hour(1), 3, 3, 0, 0, 0, 0, "objects".to_owned()),
        ]
    );
    assert_eq!(verified["reads"]["objects_headed"], 0);
    assert_eq!(verified["reads"]["objects_downloaded"], objects);
}

#[tokio::test]
async fn a_loss_and_a_duplicate_in_one_hour_cancel_out_in_the_metadata_and_verify_finds_them() {
    let fixture = Fixture::new().await;
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    // a2 lost and a3 delivered twice: hour A still has 5 events by the objects' metadata.
    deliver(
        &fixture,
        &bucket,
        &[
            &["a1", "a3", "a4", "received", "health", "bad"],
            ALL_B,
            &["a3"],
        ],
    )
    .await;

    let trusting = reconcile(&fixture, &bucket, &["--json"]);
    assert_eq!(trusting.code, Some(0), "the trade-off --verify exists for");
    assert_eq!(
        rows(&json_report(&trusting))[0],
        (fixture.hour(0), 6, 5, 1, 0, 0, 0, "metadata".to_owned())
    );

    let verified = reconcile(&fixture, &bucket, &["--json", "--verify"]);
    assert_eq!(verified.code, Some(1));
    assert_eq!(
        rows(&json_report(&verified)),
        [
            (fixture.hour(0), 6, 5, 1, 1, 1, 0, "objects".to_owned()),
            (fixture.hour(1), 3, 3, 0, 0, 0, 0, "objects".to_owned()),
        ]
    );
}

#[tokio::test]
async fn firehose_objects_of_ocsf_lines_are_read_by_each_line_s_own_hour() {
    let fixture = Fixture::new().await;
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    // Firehose mode, OCSF: the handler quarantines into the bucket itself and answers the
    // lines, which Firehose writes gzip under the hour they arrive, here the hour after the
    // events' own (B for A's, B+1 for B's), whatever hours they hold.
    let handler = handler(&bucket, Format::Ocsf).await;
    for (names, arrival) in [(ALL_A, 1), (ALL_B, 2)] {
        let event = firehose_event(&[gzip_record(&fixture.message(names))]);
        let Response::Firehose(response) = handler.handle(&event).await.unwrap() else {
            panic!("a Firehose response")
        };
        let record = &response.records[0];
        assert_eq!(record.result, FirehoseResult::Ok);
        let arrival = fixture.hour_a + time::Duration::hours(arrival);
        let folder = arrival
            .format(time::macros::format_description!(
                "dt=[year]-[month]-[day]/hour=[hour]"
            ))
            .unwrap();
        let key = format!(
            "eks-audit/cluster={}/account={ACCOUNT}/{folder}/eks-audit-1-{}.gz",
            fixture.cluster,
            unique("f")
        );
        let body = gzip(ok_text(&record.data).as_bytes());
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .expect("put a Firehose object");
    }

    let run = reconcile(&fixture, &bucket, &["--json", "--format", "ocsf"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let report = json_report(&run);
    assert_eq!(
        rows(&report),
        [
            (fixture.hour(0), 6, 5, 1, 0, 0, 0, "objects".to_owned()),
            (fixture.hour(1), 3, 3, 0, 0, 0, 0, "objects".to_owned()),
        ],
        "Firehose objects have no metadata of ours: every hour is read"
    );
    // Two Firehose objects and A's quarantine object.
    assert_eq!(report["reads"]["objects_downloaded"], 3);
}

#[tokio::test]
async fn cloudwatch_is_read_page_by_page_through_the_library() {
    let fixture = Fixture::new().await;
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    deliver(&fixture, &bucket, &[ALL_A, ALL_B]).await;
    let aws = moto::config().await;
    let since = OffsetDateTime::parse(&fixture.since(), &Rfc3339).unwrap();
    let until = OffsetDateTime::parse(&fixture.until(), &Rfc3339).unwrap();
    let request = Request {
        cluster: fixture.cluster.clone(),
        bucket: bucket.clone(),
        prefix: "eks-audit".to_owned(),
        window: Window::new(since, until).unwrap(),
        options: Default::default(),
        verify: true,
    };
    let report = Reconciler::new(&aws)
        .with_page_size(2)
        .run(&request)
        .await
        .expect("reconcile");
    assert!(!report.is_missing_events(), "{report:?}");
    assert_eq!(report.total.in_cloudwatch, 9);
    // 12 events in the group (moto ignores the stream prefix), 2 a page.
    assert_eq!(report.reads.cloudwatch_pages, 6);
    assert_eq!(report.reads.cloudwatch_events, 11);
}

#[test]
fn without_a_bucket_or_with_an_empty_window_it_is_bad_usage() {
    let no_bucket = run(&["--cluster", "prod"]);
    assert_eq!(no_bucket.code, Some(2));
    assert!(
        no_bucket.stderr.contains("--bucket"),
        "{}",
        no_bucket.stderr
    );

    let empty = run(&[
        "--cluster",
        "prod",
        "--bucket",
        "any",
        "--since",
        "2024-05-21T10:00:00Z",
        "--until",
        "2024-05-21T09:59:59Z",
    ]);
    assert_eq!(empty.code, Some(2), "{}", empty.stderr);
    assert!(empty.stderr.contains("window is empty"), "{}", empty.stderr);

    let not_a_time = run(&[
        "--cluster",
        "prod",
        "--bucket",
        "any",
        "--since",
        "yesterday",
    ]);
    assert_eq!(not_a_time.code, Some(2), "{}", not_a_time.stderr);
}

#[tokio::test]
async fn a_missing_log_group_fails_with_the_reason() {
    let s3 = moto::s3().await;
    let bucket = new_bucket(&s3).await;
    let out = run(&["--cluster", &unique("nowhere"), "--bucket", &bucket]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}
