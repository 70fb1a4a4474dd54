//! `eks-audit collect`: the downstream collector. It long-polls the SQS queue that receives the
//! bucket's `ObjectCreated` notifications, downloads each new object, checks it whole and
//! writes its events out as NDJSON.
//!
//! A message is deleted only once every object it names has been read, checked and written
//! (and flushed): a crash in between sends the message again, so the output is at least once.
//! A message is all or nothing: if one of its objects cannot be read or decoded, none of its
//! events are written and the message is left in the queue. An object named several times in
//! a message is collected once. The objects of a receive (up to ten messages) are downloaded
//! up to [`Options::concurrency`] at a time, ahead of the writer ([`downloads`]), and written
//! in order: message by message as received, each message's objects in the order it names
//! them. At most that many objects are held at once, so memory is bounded by
//! `concurrency` objects (`--max-object-bytes` each), whatever the number of records. After
//! the queue's `maxReceiveCount` its redrive policy moves a failing message to the dead-letter
//! queue, where an operator finds it, rather than it being silently lost. While a message is
//! handled, a heartbeat extends its visibility, so that it is not delivered again meanwhile.
//! An object already written in the run (same bucket, key and ETag, among the last
//! [`SEEN_OBJECTS`]) is not written again; with `--dedup`, neither is an event repeating an
//! audit id and stage among the last [`DEDUP_WINDOW`]. Bodies are S3 notifications, SNS
//! envelopes of them, or EventBridge S3 events ([`notification`]). What is done with each
//! kind of message:
//!
//! | message | action |
//! |---|---|
//! | `ObjectCreated:*` records, EventBridge `Object Created` | collected, then deleted |
//! | an object already collected (same key and ETag) | skipped, deleted |
//! | `s3:TestEvent` (sent when notifications are configured) | deleted |
//! | other S3 events only (`ObjectRemoved:*`, restores, ...) | logged and deleted: there is nothing to collect, and leaving them would only fill the dead-letter queue with messages that are not failures |
//! | an object under `<prefix>/quarantine/` | logged and skipped: quarantine holds what is *not* an audit event, for people, not for a SIEM |
//! | an object that cannot be read or decoded | logged, left for the redrive policy |
//! | a body that is not an S3 notification | logged, left for the redrive policy |

pub(crate) mod dedup;
mod downloads;
pub mod notification;
pub(crate) mod object;

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use tokio::sync::OwnedSemaphorePermit;

use crate::fingerprint::key_of;
use crate::sink::describe_sdk_error;
use dedup::Window;
pub use dedup::{DEDUP_WINDOW, SEEN_OBJECTS};
use downloads::Ordered;
use eks_audit_core::batch::objects::{is_findings_key, is_quarantine_key};
use eks_audit_core::envelope::DecodeError;
use notification::{Notification, NotificationError};
use object::ObjectError;

/// How to poll.
#[derive(Debug, Clone)]
pub struct Options {
    /// URL of the SQS queue that receives the bucket's S3 notifications (`--queue-url`,
    /// `EKS_AUDIT_QUEUE_URL`).
    pub queue_url: String,
    /// Messages per receive, 1–10.
    pub max_messages: i32,
    /// Long-poll wait, 0–20 seconds.
    pub wait_seconds: i32,
    /// How long received messages stay hidden from other consumers; the queue's own setting
    /// when `None`.
    pub visibility_timeout: Option<i32>,
    /// Largest decompressed object accepted (gzip bomb guard); a download longer than this is
    /// refused too.
    pub max_object_bytes: usize,
    /// Objects downloaded (and held) at once, at least 1: memory is bounded by about this many
    /// times `max_object_bytes`.
    pub concurrency: usize,
    /// Stop at the first receive that brings nothing new, instead of polling until stopped.
    pub once: bool,
    /// `--dedup`: drop events whose audit id and stage were among the last [`DEDUP_WINDOW`]
    /// written.
    pub dedup: bool,
}

/// Counters for a run, shown as progress and returned at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Messages handled and deleted.
    pub messages: u64,
    /// Objects read and written out.
    pub objects: u64,
    /// Events (NDJSON lines) written.
    pub events: u64,
    /// Bytes of NDJSON written.
    pub bytes: u64,
    /// Messages or objects skipped on purpose (test events, other S3 events, quarantine,
    /// objects already collected).
    pub skipped: u64,
    /// Events dropped by `--dedup` as repeats of an audit id and stage already written.
    pub duplicates: u64,
    /// Messages that failed and were left in the queue for its redrive policy (each counted
    /// once, however often it came back during the run).
    pub left: u64,
}

/// What stops a run: the queue or the output, never one bad message.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// `ReceiveMessage` failed (after the SDK's retries): the queue is missing, access is denied,
    /// or AWS cannot be reached.
    #[error("cannot receive from {queue_url}: {message}")]
    Receive {
        /// The queue.
        queue_url: String,
        /// The SDK error, on one line.
        message: String,
    },
    /// The output could not be written or flushed; the message being handled stays in the queue.
    #[error("cannot write events: {0}")]
    Write(#[from] std::io::Error),
}

/// Why one message is left in the queue.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MessageError {
    #[error(transparent)]
    Notification(#[from] NotificationError),
    #[error("cannot get s3://{bucket}/{key}: {message}")]
    Get {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("s3://{bucket}/{key}: {source}")]
    Object {
        bucket: String,
        key: String,
        source: ObjectError,
    },
}

/// Reads the objects named by the queue's notifications and writes their events out; see the module
/// documentation for what happens to each kind of message.
pub struct Collector {
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    options: Options,
}

/// What one message asks for: its distinct objects, in order, and the records skipped.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    objects: Vec<Planned>,
    skipped: u64,
}

/// An object of a plan, with the ETag its notification gives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    object: ObjectRef,
    etag: Option<String>,
}

/// An object to download. Two records of a message with the same bucket and key name the same
/// download: a GET without a version returns the current object whatever version or ETag a
/// record carries, so those are deliberately not part of the identity (fetching a record's own
/// version would need `s3:GetObjectVersion`, which collectors are not granted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjectRef {
    bucket: String,
    key: String,
}

/// The longest a message is kept hidden by heartbeats: SQS's own limit on a message's
/// visibility, counted from its receipt.
pub const MAX_HOLD: Duration = Duration::from_secs(12 * 60 * 60);

/// A message's heartbeat task, stopped when dropped.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a message wrote.
#[derive(Debug, Default)]
struct Collected {
    objects: u64,
    events: u64,
    bytes: u64,
    skipped: u64,
    duplicates: u64,
}

/// What a run remembers of what it wrote: objects by (bucket, key, ETag), the last
/// [`SEEN_OBJECTS`]; with `--dedup`, audit ids and stages, the last [`DEDUP_WINDOW`].
#[derive(Debug)]
struct Memory {
    objects: Window,
    ids: Option<Window>,
}

impl Memory {
    fn new(dedup: bool) -> Memory {
        Memory {
            objects: Window::new(SEEN_OBJECTS),
            ids: dedup.then(|| Window::new(DEDUP_WINDOW)),
        }
    }

    fn object(&self, object: &ObjectRef, etag: &str) -> u128 {
        key_of(&[
            object.bucket.as_bytes(),
            object.key.as_bytes(),
            etag.as_bytes(),
        ])
    }
}

impl Collector {
    /// A collector reading `options.queue_url` with `sqs` and the objects with `s3`.
    pub fn new(sqs: aws_sdk_sqs::Client, s3: aws_sdk_s3::Client, options: Options) -> Collector {
        Collector { sqs, s3, options }
    }

    /// The visibility timeout messages are received with: `--visibility-timeout`, else the
    /// queue's (`GetQueueAttributes`); `None`, with a warning, when the queue's cannot be read.
    async fn visibility_timeout(&self) -> Option<i32> {
        if let Some(seconds) = self.options.visibility_timeout {
            return Some(seconds);
        }
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.options.queue_url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await;
        match &attributes {
            Ok(output) => output
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
                .and_then(|v| v.parse().ok()),
            Err(e) => {
                tracing::warn!(error = %describe_sdk_error(e), "cannot read the queue's visibility timeout; messages get no heartbeat (give --visibility-timeout)");
                None
            }
        }
    }

    /// Keeps `message` hidden while it is handled: every half visibility timeout, its
    /// visibility is set to the timeout again (`ChangeMessageVisibility`), for at most
    /// [`MAX_HOLD`]. Runs on its own task, so a blocked output does not stop it; ends when
    /// the returned guard is dropped. None without a visibility timeout, or with 0.
    fn heartbeat(&self, message: &Message, visibility: Option<i32>) -> Option<Heartbeat> {
        let seconds = visibility.filter(|&s| s > 0)?;
        let receipt = message.receipt_handle()?.to_owned();
        let message_id = message.message_id().unwrap_or_default().to_owned();
        let (sqs, queue_url) = (self.sqs.clone(), self.options.queue_url.clone());
        let period = Duration::from_secs((seconds as u64 / 2).max(1));
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(period).await;
                if started.elapsed() + Duration::from_secs(seconds as u64) > MAX_HOLD {
                    tracing::error!(
                        message_id,
                        "message handled for the longest SQS allows (12 hours); it may be delivered again"
                    );
                    return;
                }
                let changed = sqs
                    .change_message_visibility()
                    .queue_url(&queue_url)
                    .receipt_handle(&receipt)
                    .visibility_timeout(seconds)
                    .send()
                    .await;
                match changed {
                    Ok(_) => tracing::debug!(message_id, seconds, "visibility extended"),
                    Err(e) => {
                        tracing::warn!(message_id, error = %describe_sdk_error(&e), "cannot extend the message's visibility; it may be delivered again while it is handled")
                    }
                }
            }
        });
        Some(Heartbeat(task))
    }

    /// Collects until `stop` resolves (Ctrl-C) or, with [`Options::once`], until the queue is
    /// drained. `progress` is called after every message.
    pub async fn run<W: Write>(
        &self,
        out: &mut W,
        stop: impl Future<Output = ()>,
        mut progress: impl FnMut(&Progress),
    ) -> Result<Progress, CollectError> {
        let mut totals = Progress::default();
        // Messages that failed in this run. With a short visibility timeout they come straight
        // back; `--once` ends when a receive brings nothing else, instead of spinning on them.
        let mut failed_ids = std::collections::HashSet::new();
        let mut memory = Memory::new(self.options.dedup);
        let visibility = self.visibility_timeout().await;
        tokio::pin!(stop);
        loop {
            let messages = tokio::select! {
                biased;
                () = &mut stop => {
                    tracing::info!("stopping: interrupted");
                    break;
                }
                received = self.receive() => received?,
            };
            let is_new = |m: &Message| m.message_id().is_none_or(|id| !failed_ids.contains(id));
            if self.options.once && !messages.iter().any(is_new) {
                break;
            }
            let mut state = RunState {
                totals: &mut totals,
                failed_ids: &mut failed_ids,
                memory: &mut memory,
            };
            self.handle_all(&messages, visibility, out, &mut state, &mut progress)
                .await?;
        }
        Ok(totals)
    }

    async fn receive(&self) -> Result<Vec<Message>, CollectError> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.options.queue_url)
            .max_number_of_messages(self.options.max_messages)
            .wait_time_seconds(self.options.wait_seconds)
            .set_visibility_timeout(self.options.visibility_timeout)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| CollectError::Receive {
                queue_url: self.options.queue_url.clone(),
                message: describe_sdk_error(&e),
            })?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Handles the messages of one receive, in order: their objects are downloaded ahead,
    /// [`Options::concurrency`] at a time, while earlier messages are written. Every message is
    /// kept hidden by its heartbeat until it is done.
    async fn handle_all<W: Write>(
        &self,
        messages: &[Message],
        visibility: Option<i32>,
        out: &mut W,
        state: &mut RunState<'_>,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), CollectError> {
        let mut heartbeats: Vec<Option<Heartbeat>> = messages
            .iter()
            .map(|message| self.heartbeat(message, visibility))
            .collect();
        // Planned before any is written: an object that a later message of the receive repeats
        // is downloaded again, and skipped when it is written (same key and ETag).
        let plans: Vec<Result<Plan, MessageError>> = messages
            .iter()
            .map(|message| plan(message.body().unwrap_or_default(), state.memory))
            .collect();
        let limit = self.options.concurrency.max(1);
        let jobs: Vec<(usize, Job)> = plans
            .iter()
            .enumerate()
            .filter_map(|(index, plan)| Some((index, plan.as_ref().ok()?)))
            .flat_map(|(index, plan)| jobs(plan, limit).map(move |job| (index, job)))
            .collect();
        let (s3, max_bytes) = (self.s3.clone(), self.options.max_object_bytes);
        let mut downloads = Ordered::new(limit, jobs, move |job: Job, permit| {
            let s3 = s3.clone();
            async move {
                let fetched = fetch(&s3, &job.object, max_bytes).await;
                match job.pass {
                    // Checked and dropped, the permit with it: the events are not kept.
                    Pass::Check => {
                        drop(permit);
                        Download {
                            fetched: fetched.map(|_| None),
                            _permit: None,
                        }
                    }
                    Pass::Keep => Download {
                        fetched: fetched.map(Some),
                        _permit: Some(permit),
                    },
                }
            }
        });
        for (index, (message, plan)) in messages.iter().zip(plans).enumerate() {
            let mut collected = Collected::default();
            let result = match plan {
                Ok(plan) => {
                    let written = Written {
                        out: &mut *out,
                        collected: &mut collected,
                        memory: state.memory,
                    };
                    collect(&plan, limit, (&mut downloads, index), written).await?
                }
                Err(error) => Err(error),
            };
            downloads.drop_group(index);
            self.finish(message, result, collected, state).await;
            heartbeats[index] = None;
            progress(state.totals);
        }
        Ok(())
    }

    /// Deletes a collected message and counts it; or leaves a failed one, logged with the
    /// reason.
    async fn finish(
        &self,
        message: &Message,
        result: Result<(), MessageError>,
        collected: Collected,
        state: &mut RunState<'_>,
    ) {
        let message_id = message.message_id().unwrap_or_default();
        let totals = &mut *state.totals;
        // Written is written, even when the message is left (see `collect`).
        totals.bytes += collected.bytes;
        if let Err(error) = result {
            let receive_count = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .map_or("?", String::as_str);
            tracing::error!(message_id, receive_count, %error, "message left in the queue for its redrive policy (dead-letter queue after maxReceiveCount)");
            if state.failed_ids.insert(message_id.to_owned()) {
                totals.left += 1;
            }
            return;
        }
        totals.objects += collected.objects;
        totals.events += collected.events;
        totals.skipped += collected.skipped;
        totals.duplicates += collected.duplicates;
        totals.messages += 1;
        if let Some(receipt) = message.receipt_handle() {
            let deleted = self
                .sqs
                .delete_message()
                .queue_url(&self.options.queue_url)
                .receipt_handle(receipt)
                .send()
                .await;
            if let Err(e) = deleted {
                // Its events are out; the message comes back and they are written again.
                tracing::error!(message_id, error = %describe_sdk_error(&e), "cannot delete a collected message; it will be delivered again");
            }
        }
    }
}

/// Writes (then flushes) every distinct object of a message's plan, taking the message's
/// downloads in order. All or nothing: a message naming at most `limit` objects has them all
/// downloaded and checked, and held, before any is written. One naming more has each first
/// downloaded and checked, then downloaded again and written, so that memory stays bounded by
/// `limit` objects while a bad object still leaves the message before any of its events are
/// written. (S3 sends one record per message: this costs nothing on real notifications.) Only
/// an object that turns bad between its check and its second download leaves events of the
/// message written; they are written again when it comes back, as after a crash. The inner
/// error leaves the message; the outer one stops the run.
async fn collect<W: Write, F, Fut>(
    plan: &Plan,
    limit: usize,
    (downloads, message): (&mut Ordered<Job, Download, F>, usize),
    written: Written<'_, W>,
) -> Result<Result<(), MessageError>, CollectError>
where
    F: FnMut(Job, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = Download> + Send + 'static,
{
    let Written {
        out,
        collected,
        memory,
    } = written;
    collected.skipped = plan.skipped;
    if plan.objects.len() > limit {
        for _ in &plan.objects {
            if let Err(error) = take(downloads, message).await {
                return Ok(Err(error));
            }
        }
        for (index, planned) in plan.objects.iter().enumerate() {
            match take(downloads, message).await {
                Ok(Some(fetched)) => write_object(planned, fetched, out, collected, memory)?,
                Ok(None) => unreachable!("a checked download was taken as kept"),
                Err(error) => {
                    if index > 0 {
                        tracing::warn!(
                            bucket = planned.object.bucket,
                            key = planned.object.key,
                            "object changed after it was checked; the events of the message's earlier objects are written and will be written again"
                        );
                        out.flush()?;
                    }
                    return Ok(Err(error));
                }
            }
        }
    } else {
        let mut held = Vec::with_capacity(plan.objects.len());
        for _ in &plan.objects {
            match take(downloads, message).await {
                Ok(Some(fetched)) => held.push(fetched),
                Ok(None) => unreachable!("a checked download was taken as kept"),
                Err(error) => return Ok(Err(error)),
            }
        }
        for (planned, fetched) in plan.objects.iter().zip(held) {
            write_object(planned, fetched, out, collected, memory)?;
        }
    }
    out.flush()?;
    Ok(Ok(()))
}

/// Where a message's objects are written, and what is counted and remembered of them.
struct Written<'a, W> {
    out: &'a mut W,
    collected: &'a mut Collected,
    memory: &'a mut Memory,
}

/// What a run keeps across messages.
struct RunState<'a> {
    totals: &'a mut Progress,
    failed_ids: &'a mut std::collections::HashSet<String>,
    memory: &'a mut Memory,
}

/// Writes one downloaded object's events, unless the run already wrote the object (same key
/// and ETag); with `--dedup`, without the events already written.
fn write_object<W: Write>(
    planned: &Planned,
    fetched: Fetched,
    out: &mut W,
    collected: &mut Collected,
    memory: &mut Memory,
) -> Result<(), CollectError> {
    let Planned { object, etag } = planned;
    let (mut events, fetched_etag) = fetched;
    // The ETag of what was read, else the notification's.
    let seen = fetched_etag
        .as_deref()
        .or(etag.as_deref())
        .map(|etag| memory.object(object, etag));
    if seen.is_some_and(|seen| memory.objects.contains(seen)) {
        tracing::info!(
            bucket = object.bucket,
            key = object.key,
            "object already collected (same key and ETag); not written again"
        );
        collected.skipped += 1;
        return Ok(());
    }
    if let Some(ids) = &mut memory.ids {
        let dropped = dedup::retain_lines(&mut events.ndjson, |line| {
            dedup::event_id(line)
                .is_none_or(|(id, stage)| ids.insert(key_of(&[id.as_bytes(), stage.as_bytes()])))
        });
        events.count -= dropped as usize;
        collected.duplicates += dropped;
    }
    out.write_all(&events.ndjson)?;
    collected.bytes += events.ndjson.len() as u64;
    collected.objects += 1;
    collected.events += events.count as u64;
    if let Some(seen) = seen {
        memory.objects.insert(seen);
    }
    Ok(())
}

/// Which pass of a message a download is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Downloaded and checked, then dropped (a message of more objects than the limit).
    Check,
    /// Downloaded, checked and kept to be written.
    Keep,
}

/// One download of a message's plan.
#[derive(Debug)]
struct Job {
    object: ObjectRef,
    pass: Pass,
}

/// The downloads of a plan, in the order [`Collector::collect`] takes them: each object kept,
/// or, past `limit` objects, each checked and then each kept.
fn jobs(plan: &Plan, limit: usize) -> impl Iterator<Item = Job> + '_ {
    let check = plan.objects.len() > limit;
    let checks = plan
        .objects
        .iter()
        .filter(move |_| check)
        .map(|planned| Job {
            object: planned.object.clone(),
            pass: Pass::Check,
        });
    let keeps = plan.objects.iter().map(|planned| Job {
        object: planned.object.clone(),
        pass: Pass::Keep,
    });
    checks.chain(keeps)
}

/// A checked object: its events and its ETag (unquoted).
type Fetched = (object::Events, Option<String>);

/// A finished download: the object (none for a check), and the permit it holds until the
/// object is dropped.
struct Download {
    fetched: Result<Option<Fetched>, MessageError>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// The next download of the receive, which must be `message`'s: [`jobs`] and
/// [`Collector::collect`] follow the same plan. A slip is a bug, and panics rather than write
/// or delete the wrong message (nothing is deleted, so nothing is lost).
async fn take<F, Fut>(
    downloads: &mut Ordered<Job, Download, F>,
    message: usize,
) -> Result<Option<Fetched>, MessageError>
where
    F: FnMut(Job, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = Download> + Send + 'static,
{
    match downloads.next().await {
        Some((of, download)) if of == message => download.fetched,
        _ => unreachable!("downloads are taken in the order of the plan"),
    }
}

/// Downloads and checks one object; its events and its ETag (unquoted).
async fn fetch(
    s3: &aws_sdk_s3::Client,
    object: &ObjectRef,
    max_bytes: usize,
) -> Result<Fetched, MessageError> {
    let (body, etag) = get(s3, &object.bucket, &object.key, max_bytes).await?;
    let events = object::decode(body, max_bytes).map_err(|source| MessageError::Object {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        source,
    })?;
    Ok((events, etag))
}

/// An object's bytes, read no further than `max_bytes` (a gzip object over the limit would
/// inflate past it anyway), and its ETag.
async fn get(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    max_bytes: usize,
) -> Result<(Vec<u8>, Option<String>), MessageError> {
    let error = |message: String| MessageError::Get {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message,
    };
    let mut object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| error(describe_sdk_error(&e)))?;
    let etag = object
        .e_tag()
        .map(|e| notification::normalize_etag(e).to_owned());
    let too_large = || MessageError::Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        source: ObjectError::Gzip(DecodeError::TooLarge { limit: max_bytes }),
    };
    let length = object
        .content_length()
        .and_then(|l| usize::try_from(l).ok());
    if length.is_some_and(|length| length > max_bytes) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(length.unwrap_or(0));
    while let Some(chunk) = object
        .body
        .try_next()
        .await
        .map_err(|e| error(e.to_string()))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, etag))
}

/// The objects a message names, each once, in order of first mention; test events, other S3
/// events, quarantine objects, repeated objects and objects already collected (same bucket,
/// key and ETag, in `memory`) are skipped (and counted).
fn plan(body: &str, memory: &Memory) -> Result<Plan, MessageError> {
    let mut plan = Plan::default();
    let records = match notification::parse(body)? {
        Notification::TestEvent { bucket } => {
            tracing::info!(bucket, "s3:TestEvent deleted");
            plan.skipped += 1;
            return Ok(plan);
        }
        Notification::Records(records) => records,
    };
    let mut seen = std::collections::HashSet::new();
    let mut repeated = 0u64;
    for record in records {
        if !record.is_created() {
            tracing::info!(
                event = record.event_name,
                bucket = record.bucket,
                key = record.key,
                "not an ObjectCreated event; nothing to collect"
            );
            plan.skipped += 1;
            continue;
        }
        if let Some(skip) = NotEvents::of(&record.key) {
            let (bucket, key) = (&record.bucket, &record.key);
            match skip {
                NotEvents::Quarantine => tracing::warn!(bucket, key, "{}", skip.reason()),
                NotEvents::Findings => tracing::info!(bucket, key, "{}", skip.reason()),
            }
            plan.skipped += 1;
            continue;
        }
        let object = ObjectRef {
            bucket: record.bucket,
            key: record.key,
        };
        if let Some(etag) = &record.etag
            && memory.objects.contains(memory.object(&object, etag))
        {
            tracing::info!(
                bucket = object.bucket,
                key = object.key,
                etag,
                "object already collected (same key and ETag); not written again"
            );
            plan.skipped += 1;
            continue;
        }
        if seen.insert(object.clone()) {
            plan.objects.push(Planned {
                object,
                etag: record.etag,
            });
        } else {
            repeated += 1;
        }
    }
    if repeated > 0 {
        tracing::warn!(
            repeated,
            objects = plan.objects.len(),
            "records naming an object already named in the same message skipped: each object is collected once"
        );
        plan.skipped += repeated;
    }
    Ok(plan)
}

/// The objects of the forwarder's own layout that hold no audit events: `collect` leaves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotEvents {
    /// Original bytes of what could not be normalized: for a person to inspect (a warning).
    Quarantine,
    /// Detection findings, OCSF 2004: read by their own consumers.
    Findings,
}

impl NotEvents {
    fn of(key: &str) -> Option<NotEvents> {
        if is_quarantine_key(key) {
            Some(NotEvents::Quarantine)
        } else if is_findings_key(key) {
            Some(NotEvents::Findings)
        } else {
            None
        }
    }

    fn reason(self) -> &'static str {
        match self {
            NotEvents::Quarantine => {
                "quarantine object (not audit events) skipped; inspect it in S3"
            }
            NotEvents::Findings => "findings object (detections, not audit events) skipped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event: &str, bucket: &str, key: &str) -> serde_json::Value {
        serde_json::json!({"eventName": event, "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": "e"}}})
    }

    #[test]
    fn each_object_is_planned_once_in_order_of_first_mention() {
        let a = record("ObjectCreated:Put", "b", "eks-audit/cluster=x/a.json.gz");
        let b = record("ObjectCreated:Put", "b", "eks-audit/cluster=x/b.json.gz");
        let other_bucket = record("ObjectCreated:Put", "c", "eks-audit/cluster=x/a.json.gz");
        let removed = record("ObjectRemoved:Delete", "b", "eks-audit/cluster=x/a.json.gz");
        let quarantine = record(
            "ObjectCreated:Put",
            "b",
            "eks-audit/quarantine/cluster=x/q.json.gz",
        );
        let mut records = vec![a.clone(); 40];
        records.extend([b.clone(), a, other_bucket, removed, quarantine, b]);
        let body = serde_json::json!({ "Records": records }).to_string();
        let mut memory = Memory::new(false);
        let plan = plan(&body, &memory).unwrap();
        let planned: Vec<(&str, &str)> = plan
            .objects
            .iter()
            .map(|o| (o.object.bucket.as_str(), o.object.key.as_str()))
            .collect();
        assert_eq!(
            planned,
            [
                ("b", "eks-audit/cluster=x/a.json.gz"),
                ("b", "eks-audit/cluster=x/b.json.gz"),
                ("c", "eks-audit/cluster=x/a.json.gz"),
            ]
        );
        // 46 records: 3 objects; 41 repeats, the removal and the quarantine object skipped.
        assert_eq!(plan.skipped, 41 + 1 + 1);

        // Once collected, an object with the same ETag is not planned again; another ETag is.
        let collected = &plan.objects[0].object;
        memory.objects.insert(memory.object(collected, "e"));
        let again = serde_json::json!({ "Records": [
            record("ObjectCreated:Put", "b", "eks-audit/cluster=x/a.json.gz"),
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"},
                "object": {"key": "eks-audit/cluster=x/a.json.gz", "eTag": "f"}}},
        ]});
        let replan = super::plan(&again.to_string(), &memory).unwrap();
        assert_eq!((replan.objects.len(), replan.skipped), (1, 1));
        assert_eq!(replan.objects[0].etag.as_deref(), Some("f"));
    }
}
