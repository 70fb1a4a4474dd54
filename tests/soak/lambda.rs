//! Lambda and Firehose around the handler, as the soak plays them.
//!
//! - **Execution environments**: `workers` tasks, each with its own [`Handler`] (its own S3 and
//!   Firehose clients, retry budgets and connections), take invocations from one queue, as
//!   concurrent Lambda environments do. Their clients go through the fault proxy, with a
//!   one-second attempt timeout; each invocation also runs under a function timeout.
//! - **Retries of a failed invocation**, as the deployed stack's callers make them
//!   (template.yaml): CloudWatch Logs invokes direct mode asynchronously, and Lambda retries
//!   twice (`MaximumRetryAttempts: 2`) before the on-failure destination; Firehose retries its
//!   processor three times (`NumberOfRetries: 3`) before the error output. An invocation that
//!   runs out is **parked**, as its payload is there, and **redriven** once the others are
//!   done, as an operator redrives the on-failure destination (or the error output) after an
//!   incident: the soak counts both, and fails if one is still parked after ten redrives.
//! - **Firehose delivery**: the `Ok` records' lines are buffered per partition (cluster,
//!   account) and written, gzip, under the stack's prefix
//!   `<prefix>/cluster=…/account=…/dt=…/hour=…/` by arrival time, as Firehose does with
//!   dynamic partitioning. Firehose retries its own S3 delivery; so does the soak, straight to
//!   moto. `ProcessingFailed` records are counted (they would go to the error output).
//! - **Re-ingestion**: what the handler puts back with `PutRecordBatch` lands in the delivery
//!   stream's bucket (moto writes one object per call, the records' gzip members one after the
//!   other); each member is a record again, and the next round invokes the handler with them,
//!   as Firehose would, until nothing comes back.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use eks_audit_core::batch::reingest::FirehoseLimits;
use eks_audit_core::envelope::models::{FirehoseResponse, FirehoseResult};
use eks_audit_forwarder::handler::{Handler, HandlerError, Response};
use serde_json::{Value, json};

use crate::events::Random;
use crate::moto::REGION;

/// One event for the handler, as its caller sends it.
pub struct Invocation {
    pub mode: Mode,
    pub event: String,
}

/// Who calls: CloudWatch Logs (direct mode) or Firehose; it decides the retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Direct,
    Firehose,
}

impl Mode {
    /// Attempts in all: the first and the caller's retries.
    fn attempts(self) -> u32 {
        match self {
            Mode::Direct => 1 + 2,
            Mode::Firehose => 1 + 3,
        }
    }
}

/// The longest one invocation may run, as the function's timeout: far above what an
/// invocation takes, even with every retry of the SDK.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);

/// What the callers saw.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Invocations, each counted once however often it was tried, by mode.
    pub invocations: BTreeMap<Mode, u64>,
    /// Attempts that failed, by the error's kind: each was tried again, unless its invocation
    /// was parked.
    pub failed_attempts: BTreeMap<String, u64>,
    /// Invocations that failed every attempt the caller makes (then redriven).
    pub parked: u64,
    /// Redrives of parked invocations.
    pub redrives: u64,
    /// Firehose records answered `ProcessingFailed` (Firehose's error output).
    pub processing_failed: u64,
    /// Records the handler re-ingested (counted on the attempt that succeeded).
    pub reingested_records: u64,
    /// Records that came back from the delivery stream and were invoked again.
    pub records_from_stream: u64,
    /// Rounds of re-ingested records.
    pub rounds: u64,
    /// Objects Firehose delivered.
    pub firehose_objects: u64,
    pub firehose_lines: u64,
}

/// The lines of `Ok` records waiting for delivery, per partition.
#[derive(Default)]
struct Buffers {
    lines: BTreeMap<(String, String), Vec<u8>>,
}

/// Firehose's buffer is delivered once it holds this much (the stack's is 64 MB or 300 s).
const DELIVERY_BYTES: usize = 1 << 20;

pub struct Firehose {
    /// moto, without faults: Firehose's own delivery.
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    /// The bucket the delivery stream writes re-ingested records to.
    stream_bucket: String,
    pub stream_arn: String,
    buffers: Mutex<Buffers>,
    delivered: Mutex<u64>,
    read_back: Mutex<HashSet<String>>,
}

impl Firehose {
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        stream_bucket: &str,
        stream_arn: &str,
    ) -> Firehose {
        Firehose {
            s3,
            bucket: bucket.to_owned(),
            prefix: "eks-audit".to_owned(),
            stream_bucket: stream_bucket.to_owned(),
            stream_arn: stream_arn.to_owned(),
            buffers: Mutex::new(Buffers::default()),
            delivered: Mutex::new(0),
            read_back: Mutex::new(HashSet::new()),
        }
    }

    /// A transformation event of `records` (base64 record data) from the delivery stream.
    pub fn event(&self, records: &[String]) -> String {
        let records: Vec<Value> = records
            .iter()
            .enumerate()
            .map(|(i, data)| {
                json!({"recordId": format!("{i:056}"), "approximateArrivalTimestamp": now_millis(), "data": data})
            })
            .collect();
        json!({"invocationId": format!("{:x}", now_millis()), "deliveryStreamArn": self.stream_arn,
               "region": REGION, "records": records})
        .to_string()
    }

    /// Takes a response as Firehose does: `Ok` lines into the partition's buffer.
    async fn take(&self, response: &FirehoseResponse, counts: &Mutex<Counts>) {
        let mut full = Vec::new();
        {
            let mut buffers = self.buffers.lock().unwrap();
            for record in &response.records {
                match record.result {
                    FirehoseResult::Ok => {
                        let keys = record
                            .metadata
                            .as_ref()
                            .map(|m| m.partition_keys.clone())
                            .unwrap_or_default();
                        let partition = (
                            keys.get("cluster").cloned().unwrap_or_default(),
                            keys.get("account").cloned().unwrap_or_default(),
                        );
                        let lines = STANDARD.decode(&record.data).expect("Ok data is base64");
                        let buffer = buffers.lines.entry(partition.clone()).or_default();
                        buffer.extend_from_slice(&lines);
                        if buffer.len() >= DELIVERY_BYTES {
                            full.push((partition, std::mem::take(buffer)));
                        }
                    }
                    FirehoseResult::Dropped => {}
                    FirehoseResult::ProcessingFailed => {
                        counts.lock().unwrap().processing_failed += 1;
                    }
                }
            }
        }
        for (partition, lines) in full {
            self.deliver(&partition, lines, counts).await;
        }
    }

    /// Delivers whatever is buffered.
    pub async fn flush(&self, counts: &Mutex<Counts>) {
        let buffers = std::mem::take(&mut self.buffers.lock().unwrap().lines);
        for (partition, lines) in buffers {
            if !lines.is_empty() {
                self.deliver(&partition, lines, counts).await;
            }
        }
    }

    async fn deliver(
        &self,
        (cluster, account): &(String, String),
        lines: Vec<u8>,
        counts: &Mutex<Counts>,
    ) {
        let now = time::OffsetDateTime::now_utc();
        let serial = {
            let mut delivered = self.delivered.lock().unwrap();
            *delivered += 1;
            *delivered
        };
        let folder = now
            .format(time::macros::format_description!(
                "dt=[year]-[month]-[day]/hour=[hour]"
            ))
            .unwrap();
        let stamp = now
            .format(time::macros::format_description!(
                "[year]-[month]-[day]-[hour]-[minute]-[second]"
            ))
            .unwrap();
        let key = format!(
            "{}/cluster={cluster}/account={account}/{folder}/eks-audit-1-{stamp}-{serial:08}.gz",
            self.prefix
        );
        let line_count = lines.iter().filter(|&&b| b == b'\n').count() as u64;
        let body = crate::common::gzip(&lines);
        // Firehose retries its delivery until it succeeds; moto does not fail.
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .expect("Firehose delivers to the bucket");
        let mut counts = counts.lock().unwrap();
        counts.firehose_objects += 1;
        counts.firehose_lines += line_count;
    }

    /// The records re-ingested since the last call: every gzip member of every object the
    /// delivery stream wrote, as record data (base64).
    pub async fn reingested(&self) -> Vec<String> {
        let mut records = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.stream_bucket)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list the delivery stream's bucket");
            for object in page.contents() {
                let key = object.key().unwrap_or_default().to_owned();
                if !self.read_back.lock().unwrap().insert(key.clone()) {
                    continue;
                }
                let body = self
                    .s3
                    .get_object()
                    .bucket(&self.stream_bucket)
                    .key(&key)
                    .send()
                    .await
                    .expect("read a delivered object")
                    .body
                    .collect()
                    .await
                    .expect("its body")
                    .into_bytes();
                records.extend(members(&body).iter().map(|m| STANDARD.encode(m)));
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return records;
            }
        }
    }
}

/// The gzip members of `data`, each as its own bytes: a record's data, as it was put.
fn members(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut members = Vec::new();
    while !data.is_empty() {
        let mut decoder = flate2::bufread::GzDecoder::new(data);
        let mut json = Vec::new();
        decoder
            .read_to_end(&mut json)
            .expect("the delivery stream holds gzip records");
        serde_json::from_slice::<serde::de::IgnoredAny>(&json)
            .expect("each record is one subscription message");
        let rest = decoder.into_inner();
        members.push(data[..data.len() - rest.len()].to_vec());
        data = rest;
    }
    members
}

fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A name for a failed attempt's error, for the counts.
fn kind(error: &HandlerError) -> String {
    match error {
        HandlerError::Store(_) => "PutObject failed (after the SDK's retries)".to_owned(),
        HandlerError::Reingest(_) => {
            "PutRecordBatch gave up (after the handler's retries)".to_owned()
        }
        other => format!("other: {other}"),
    }
}

/// How many notifications wait in the queue, as last measured, and the most the forwarder
/// lets wait: moto's SQS scans every message of a queue on each call, so a backlog of
/// thousands slows it to a halt, and clients that time out and retry then bury it. Real SQS
/// does not care; the soak paces its forwarder to its collectors instead.
pub struct Backlog {
    messages: AtomicUsize,
    limit: usize,
    /// Time the environments spent waiting, in all, in milliseconds.
    waited_ms: AtomicU64,
}

impl Backlog {
    pub fn new(limit: usize) -> Backlog {
        Backlog {
            messages: AtomicUsize::new(0),
            limit,
            waited_ms: AtomicU64::new(0),
        }
    }

    pub fn set(&self, messages: usize) {
        self.messages.store(messages, Ordering::Relaxed);
    }

    /// Total time the environments waited.
    pub fn waited(&self) -> Duration {
        Duration::from_millis(self.waited_ms.load(Ordering::Relaxed))
    }

    async fn wait(&self) {
        let started = std::time::Instant::now();
        while self.messages.load(Ordering::Relaxed) > self.limit {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let waited = started.elapsed().as_millis() as u64;
        self.waited_ms.fetch_add(waited, Ordering::Relaxed);
    }
}

/// The Lambda execution environments and the Firehose they answer to.
pub struct Environments {
    pub handlers: Vec<Arc<Handler>>,
    pub firehose: Arc<Firehose>,
    pub counts: Arc<Mutex<Counts>>,
    pub backlog: Arc<Backlog>,
}

impl Environments {
    /// Runs `invocations`, one task per handler, until each succeeded or was parked; then
    /// redrives the parked ones, up to ten times. Returns the invocations still parked.
    pub async fn run(&self, invocations: Vec<Invocation>) -> Vec<Invocation> {
        let mut parked = self.run_once(invocations, true).await;
        for _ in 0..10 {
            if parked.is_empty() {
                break;
            }
            self.counts.lock().unwrap().redrives += parked.len() as u64;
            parked = self.run_once(parked, false).await;
        }
        parked
    }

    async fn run_once(&self, invocations: Vec<Invocation>, first: bool) -> Vec<Invocation> {
        let queue = Arc::new(Mutex::new(VecDeque::from(invocations)));
        let parked = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for handler in &self.handlers {
            let (handler, queue, parked) = (handler.clone(), queue.clone(), parked.clone());
            let (firehose, counts, backlog) = (
                self.firehose.clone(),
                self.counts.clone(),
                self.backlog.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    backlog.wait().await;
                    let Some(invocation) = queue.lock().unwrap().pop_front() else {
                        return;
                    };
                    if first {
                        *counts
                            .lock()
                            .unwrap()
                            .invocations
                            .entry(invocation.mode)
                            .or_insert(0) += 1;
                    }
                    if !invoke(&handler, &invocation, &firehose, &counts).await {
                        counts.lock().unwrap().parked += 1;
                        parked.lock().unwrap().push(invocation);
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("a worker panicked");
        }
        std::mem::take(&mut *parked.lock().unwrap())
    }
}

/// One invocation, tried as its caller tries it; whether it succeeded.
async fn invoke(
    handler: &Handler,
    invocation: &Invocation,
    firehose: &Firehose,
    counts: &Mutex<Counts>,
) -> bool {
    for attempt in 1..=invocation.mode.attempts() {
        let outcome =
            tokio::time::timeout(FUNCTION_TIMEOUT, handler.invoke(&invocation.event)).await;
        let error = match outcome {
            Ok(Ok(done)) => {
                if let Response::Firehose(response) = &done.response {
                    // What Firehose reads is the response's JSON.
                    let wire = serde_json::to_vec(response).expect("the response serializes");
                    let read: FirehoseResponse =
                        serde_json::from_slice(&wire).expect("Firehose reads the response");
                    firehose.take(&read, counts).await;
                    counts.lock().unwrap().reingested_records += done.tally.reingested_records;
                }
                return true;
            }
            Ok(Err(error)) => kind(&error),
            Err(_) => "function timeout".to_owned(),
        };
        *counts
            .lock()
            .unwrap()
            .failed_attempts
            .entry(error)
            .or_insert(0) += 1;
        if attempt < invocation.mode.attempts() {
            // Lambda and Firehose wait before retrying; scaled down.
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
        }
    }
    false
}

/// Firehose invocations of 1 to `most` records each.
pub fn firehose_invocations(
    firehose: &Firehose,
    records: &[String],
    random: &mut Random,
    most: usize,
) -> Vec<Invocation> {
    let mut invocations = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let take = (1 + random.below(most)).min(rest.len());
        let (batch, after) = rest.split_at(take);
        rest = after;
        invocations.push(Invocation {
            mode: Mode::Firehose,
            event: firehose.event(batch),
        });
    }
    invocations
}

/// Responses capped at 120,000 bytes, 50 times below Lambda's 6 MB, so that the soak's larger
/// Firehose invocations overflow and re-ingest, as full-size ones do in production, without
/// millions of events. Half of it is the most one re-ingested piece may transform into, as in
/// production; the Firehose cluster's events are kept under [`FIREHOSE_EVENT_BYTES`] to fit.
pub fn limits() -> FirehoseLimits {
    FirehoseLimits {
        max_response_bytes: 120_000,
        max_piece_entry_bytes: 60_000,
        ..FirehoseLimits::default()
    }
}

/// The largest corpus event the Firehose cluster logs: its line, base64, stays under half the
/// soak's response limit. (Two corpus events of 220 KB would fail alone against it, where
/// Lambda's real limit takes them; the direct cluster logs them.)
pub const FIREHOSE_EVENT_BYTES: usize = 40_000;
