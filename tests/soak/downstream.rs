//! What the soak checks the forwarder's output with: `eks-audit collect`, run as a service
//! would run it (restarted whenever it exits) through the fault proxy while the forwarder
//! writes, until the queue is drained; `eks-audit reconcile`, straight to moto; and the
//! bucket's event objects, read line by line to compare with what `collect` wrote.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::moto;

/// How the collector's runs went.
#[derive(Debug, Default)]
pub struct CollectRuns {
    pub runs: u64,
    /// Runs by exit code: 1 when a message was left in the queue (an object that could not be
    /// read after the SDK's retries) or a receive failed; the next run takes it again.
    pub exit_codes: BTreeMap<i32, u64>,
    /// The last lines a failing run logged.
    pub last_error: String,
    pub took: Duration,
}

impl CollectRuns {
    /// Adds another collector's runs.
    pub fn add(&mut self, other: CollectRuns) {
        self.runs += other.runs;
        for (code, count) in other.exit_codes {
            *self.exit_codes.entry(code).or_insert(0) += count;
        }
        if !other.last_error.is_empty() {
            self.last_error = other.last_error;
        }
        self.took = self.took.max(other.took);
    }
}

/// The `eks-audit` binary: cargo's, or `EKS_AUDIT_SOAK_BIN` (a copy that a build in a shared
/// target directory cannot replace during a long run).
fn eks_audit() -> tokio::process::Command {
    let binary = std::env::var_os("EKS_AUDIT_SOAK_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_eks-audit").into());
    let mut command = tokio::process::Command::new(binary);
    // A soak that fails stops its collectors.
    command.kill_on_drop(true);
    command
}

/// Messages in `queue_url`, visible or in flight.
pub async fn depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let attributes = attributes.attributes().cloned().unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|name| {
        attributes
            .get(name)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    })
    .sum()
}

/// Runs `eks-audit collect --once` through `endpoint` again and again, until `writing` is over
/// and the queue is empty, or `deadline` passes. What it writes is read from its stdout as it
/// comes and only counted, so a long soak keeps nothing on disk.
pub async fn collect(
    queue_url: &str,
    endpoint: &str,
    writing: Arc<AtomicBool>,
    deadline: Instant,
) -> (CollectRuns, Events) {
    let sqs = moto::sqs().await;
    let started = Instant::now();
    let mut runs = CollectRuns::default();
    let mut events = Events::new();
    loop {
        let done_writing = !writing.load(Ordering::SeqCst);
        if done_writing && depth(&sqs, queue_url).await == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue was not drained in time; last collect error: {}",
            runs.last_error
        );
        let mut command = eks_audit();
        command
            .args(["collect", "--queue-url", queue_url, "--once"])
            .args(["--wait-seconds", "1", "--visibility-timeout", "5"])
            .args(["--max-messages", "5", "--concurrency", "4"])
            .env_remove("AWS_PROFILE")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in moto::env() {
            command.env(name, value);
        }
        command.env("AWS_ENDPOINT_URL", endpoint);
        let mut child = command.spawn().expect("eks-audit collect runs");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let logged = tokio::spawn(async move {
            let mut text = String::new();
            drop(stderr.read_to_string(&mut text).await);
            text
        });
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        while let Some(line) = lines.next_line().await.expect("collect's output") {
            count_line(&line, &mut events);
        }
        let status = child.wait().await.expect("collect ends");
        let stderr = logged.await.unwrap_or_default();
        runs.runs += 1;
        let code = status.code().unwrap_or(-1);
        *runs.exit_codes.entry(code).or_insert(0) += 1;
        if code != 0 {
            runs.last_error = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        }
        if code == 0 && !done_writing {
            // Drained for now: the forwarder is still writing.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    runs.took = started.elapsed();
    (runs, events)
}

/// One cluster's `reconcile --json` totals.
#[derive(Debug, Default, Clone)]
pub struct Reconciled {
    pub code: i32,
    pub in_cloudwatch: u64,
    pub delivered: u64,
    pub quarantined: u64,
    pub missing: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    /// Events `FilterLogEvents` returned, the forwarder's or not.
    pub cloudwatch_events: u64,
}

/// `eks-audit reconcile --verify --json` for `cluster` over `[since, until)`, straight to moto.
pub async fn reconcile(cluster: &str, bucket: &str, since: &str, until: &str) -> Reconciled {
    let mut command = eks_audit();
    command
        .args(["reconcile", "--cluster", cluster, "--bucket", bucket])
        .args(["--since", since, "--until", until, "--verify", "--json"])
        .env_remove("AWS_PROFILE")
        .env_remove("EKS_AUDIT_BUCKET")
        .env_remove("EKS_AUDIT_PREFIX")
        .env_remove("EKS_AUDIT_FORMAT")
        .env("RUST_LOG", "warn");
    for (name, value) in moto::env() {
        command.env(name, value);
    }
    let ran = command.output().await.expect("eks-audit reconcile runs");
    let report: Value = serde_json::from_slice(&ran.stdout).unwrap_or_else(|e| {
        panic!(
            "reconcile prints JSON ({e}): {}",
            String::from_utf8_lossy(&ran.stderr)
        )
    });
    let total = |field: &str| report["total"][field].as_u64().unwrap_or_default();
    Reconciled {
        code: ran.status.code().unwrap_or(-1),
        in_cloudwatch: total("in_cloudwatch"),
        delivered: total("delivered"),
        quarantined: total("quarantined"),
        missing: total("missing"),
        duplicated: total("duplicated"),
        unexpected: total("unexpected"),
        cloudwatch_events: report["reads"]["cloudwatch_events"]
            .as_u64()
            .unwrap_or_default(),
    }
}

/// The events of a set of lines: how often each (log group, CloudWatch event id) occurs.
pub type Events = HashMap<(String, String), u64>;

/// Counts each line's event.
pub fn count_lines(ndjson: &str, events: &mut Events) {
    for line in ndjson.lines() {
        count_line(line, events);
    }
}

/// Counts a line's event.
fn count_line(line: &str, events: &mut Events) {
    let value: Value = serde_json::from_str(line).expect("every line is JSON");
    let key = (
        value["LogGroup"].as_str().unwrap_or_default().to_owned(),
        value["EventId"].as_str().unwrap_or_default().to_owned(),
    );
    *events.entry(key).or_insert(0) += 1;
}

/// The events of every event object in `bucket` (quarantine left out, as `collect` leaves it).
pub async fn bucket_events(s3: &aws_sdk_s3::Client, bucket: &str) -> (Events, u64) {
    let mut events = Events::new();
    let mut objects = 0;
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix("eks-audit/cluster=")
            .set_continuation_token(token)
            .send()
            .await
            .expect("list the bucket");
        for object in page.contents() {
            let key = object.key().unwrap_or_default();
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .expect("get an object")
                .body
                .collect()
                .await
                .expect("its body")
                .into_bytes();
            let ndjson = eks_audit_core::batch::objects::gunzip(&body).expect("gzip objects");
            count_lines(
                &String::from_utf8(ndjson).expect("UTF-8 lines"),
                &mut events,
            );
            objects += 1;
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return (events, objects);
        }
    }
}
