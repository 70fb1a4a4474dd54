//! `eks-audit collect`: the downstream collector. It long-polls the SQS queue that receives the
//! bucket's `ObjectCreated` notifications, downloads each new object, checks it whole and
//! writes its events out as NDJSON.
//!
//! A message is deleted only once every object it names has been read, checked and written
//! (and flushed): a crash in between sends the message again, so the output is at least once.
//! A message is all or nothing: if one of its objects cannot be read or decoded, none of its
//! events are written and the message is left in the queue. After the queue's
//! `maxReceiveCount` its redrive policy moves it to the dead-letter queue, where an operator
//! finds it, rather than it being silently lost. What is done with each kind of message:
//!
//! | message | action |
//! |---|---|
//! | `ObjectCreated:*` records | collected, then deleted |
//! | `s3:TestEvent` (sent when notifications are configured) | deleted |
//! | other S3 events only (`ObjectRemoved:*`, restores, ...) | logged and deleted: there is nothing to collect, and leaving them would only fill the dead-letter queue with messages that are not failures |
//! | an object under `<prefix>/quarantine/` | logged and skipped: quarantine holds what is *not* an audit event, for people, not for a SIEM |
//! | an object that cannot be read or decoded | logged, left for the redrive policy |
//! | a body that is not an S3 notification | logged, left for the redrive policy |

pub mod notification;
pub(crate) mod object;

use std::future::Future;
use std::io::Write;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

use crate::sink::describe_sdk_error;
use eks_audit_core::batch::objects::is_quarantine_key;
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
    /// Largest decompressed object accepted (gzip bomb guard).
    pub max_object_bytes: usize,
    /// Stop at the first receive that brings nothing new, instead of polling until stopped.
    pub once: bool,
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
    /// Messages or objects skipped on purpose (test events, other S3 events, quarantine).
    pub skipped: u64,
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

/// A message's events, held until every object of the message has been checked.
#[derive(Default)]
struct Collected {
    ndjson: Vec<Vec<u8>>,
    objects: u64,
    events: u64,
    skipped: u64,
}

impl Collector {
    /// A collector reading `options.queue_url` with `sqs` and the objects with `s3`.
    pub fn new(sqs: aws_sdk_sqs::Client, s3: aws_sdk_s3::Client, options: Options) -> Collector {
        Collector { sqs, s3, options }
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
            for message in &messages {
                self.handle(message, out, &mut totals, &mut failed_ids)
                    .await?;
                progress(&totals);
            }
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

    /// Collects one message, writes its events and deletes it; or leaves it, logged.
    async fn handle<W: Write>(
        &self,
        message: &Message,
        out: &mut W,
        totals: &mut Progress,
        failed_ids: &mut std::collections::HashSet<String>,
    ) -> Result<(), CollectError> {
        let message_id = message.message_id().unwrap_or_default();
        let collected = match self.collect(message.body().unwrap_or_default()).await {
            Ok(collected) => collected,
            Err(error) => {
                let receive_count = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .map_or("?", String::as_str);
                tracing::error!(message_id, receive_count, %error, "message left in the queue for its redrive policy (dead-letter queue after maxReceiveCount)");
                if failed_ids.insert(message_id.to_owned()) {
                    totals.left += 1;
                }
                return Ok(());
            }
        };
        for ndjson in &collected.ndjson {
            out.write_all(ndjson)?;
            totals.bytes += ndjson.len() as u64;
        }
        out.flush()?;
        totals.objects += collected.objects;
        totals.events += collected.events;
        totals.skipped += collected.skipped;
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
        Ok(())
    }

    /// Reads and checks every object a message names, writing nothing yet.
    async fn collect(&self, body: &str) -> Result<Collected, MessageError> {
        let mut collected = Collected::default();
        let records = match notification::parse(body)? {
            Notification::TestEvent { bucket } => {
                tracing::info!(bucket, "s3:TestEvent deleted");
                collected.skipped += 1;
                return Ok(collected);
            }
            Notification::Records(records) => records,
        };
        for record in records {
            if !record.is_created() {
                tracing::info!(
                    event = record.event_name,
                    bucket = record.bucket,
                    key = record.key,
                    "not an ObjectCreated event; nothing to collect"
                );
                collected.skipped += 1;
                continue;
            }
            if is_quarantine_key(&record.key) {
                tracing::warn!(
                    bucket = record.bucket,
                    key = record.key,
                    "quarantine object (not audit events) skipped; inspect it in S3"
                );
                collected.skipped += 1;
                continue;
            }
            let body = self.get(&record.bucket, &record.key).await?;
            let events = object::decode(body, self.options.max_object_bytes).map_err(|source| {
                MessageError::Object {
                    bucket: record.bucket.clone(),
                    key: record.key.clone(),
                    source,
                }
            })?;
            collected.objects += 1;
            collected.events += events.count as u64;
            collected.ndjson.push(events.ndjson);
        }
        Ok(collected)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, MessageError> {
        let error = |message: String| MessageError::Get {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message,
        };
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| error(describe_sdk_error(&e)))?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| error(e.to_string()))?;
        Ok(body.into_bytes().to_vec())
    }
}
