//! Findings out (contract §12): their objects beside the data, and, when
//! `EKS_AUDIT_FINDINGS_QUEUE_URL` is set, each finding as an SQS message too. Delivering
//! findings never fails the audit data: what cannot be delivered is logged and counted.
//!
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html>

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::Serialize;

use eks_audit_core::batch::objects::Object;
use eks_audit_core::pipeline::FindingLine;

use super::{ObjectStore, describe_sdk_error};

/// SQS takes at most 10 messages per `SendMessageBatch`.
const BATCH_ENTRIES: usize = 10;
/// SQS takes at most 256 KiB per batch (and per message).
const BATCH_BYTES: usize = 256 * 1024;
/// Calls per batch for entries SQS refused, the first included; the SDK's own retries cover
/// throttling and 5xx of each call.
const ATTEMPTS: u32 = 3;

/// What became of an invocation's findings, for the summary and the EMF metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FindingsReport {
    /// Findings produced.
    pub findings: u64,
    /// Findings by OCSF severity (`High`, ...).
    pub by_severity: BTreeMap<&'static str, u64>,
    /// Findings whose object could not be written.
    pub object_failures: u64,
    /// Findings sent to the queue.
    pub queued: u64,
    /// Findings the queue did not take after the retries.
    pub queue_failures: u64,
}

/// The SQS queue findings also go to.
#[derive(Debug, Clone)]
pub struct FindingsQueue {
    client: Client,
    url: String,
}

impl FindingsQueue {
    /// Sends to the queue at `url` with `client`.
    pub fn new(client: Client, url: String) -> FindingsQueue {
        FindingsQueue { client, url }
    }

    /// Sends each finding as one message, in batches of up to 10, retrying the entries SQS
    /// refuses. Returns how many were sent and how many were not.
    pub async fn send(&self, findings: &[&FindingLine]) -> (u64, u64) {
        let (mut sent, mut failed) = (0, 0);
        for batch in batches(findings) {
            let mut pending: Vec<(String, &FindingLine)> = batch
                .iter()
                .enumerate()
                .map(|(i, f)| (i.to_string(), *f))
                .collect();
            for attempt in 1..=ATTEMPTS {
                if attempt > 1 {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                let entries: Vec<SendMessageBatchRequestEntry> = pending
                    .iter()
                    .filter_map(|(id, f)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(body(f))
                            .build()
                            .ok()
                    })
                    .collect();
                let call = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await;
                match call {
                    Ok(output) => {
                        let refused: Vec<&str> = output.failed().iter().map(|f| f.id()).collect();
                        sent += (pending.len() - refused.len()) as u64;
                        for failure in output.failed() {
                            tracing::warn!(
                                code = failure.code(),
                                message = failure.message().unwrap_or_default(),
                                attempt,
                                "the findings queue refused a finding"
                            );
                        }
                        pending.retain(|(id, _)| refused.contains(&id.as_str()));
                    }
                    Err(error) => {
                        tracing::warn!(
                            error = %describe_sdk_error(&error),
                            attempt,
                            "SendMessageBatch to the findings queue failed"
                        );
                    }
                }
                if pending.is_empty() {
                    break;
                }
            }
            failed += pending.len() as u64;
        }
        (sent, failed)
    }
}

/// The message body: the finding's JSON, without its line end.
fn body(finding: &FindingLine) -> String {
    let line = &finding.finding.line;
    String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line)).into_owned()
}

/// Batches within SQS's limits of 10 entries and 256 KiB.
fn batches<'f>(findings: &[&'f FindingLine]) -> Vec<Vec<&'f FindingLine>> {
    let mut batches: Vec<Vec<&FindingLine>> = Vec::new();
    let mut bytes = 0;
    for finding in findings {
        let size = finding.finding.line.len();
        let full = batches
            .last()
            .is_none_or(|b| b.len() == BATCH_ENTRIES || bytes + size > BATCH_BYTES);
        if full {
            batches.push(Vec::new());
            bytes = 0;
        }
        batches.last_mut().expect("just pushed").push(finding);
        bytes += size;
    }
    batches
}

/// Writes the findings objects and queues the findings. Never fails: what cannot be delivered
/// is logged and counted in the report.
pub async fn deliver(
    store: &ObjectStore,
    queue: Option<&FindingsQueue>,
    objects: impl IntoIterator<Item = &Object>,
    findings: &[&FindingLine],
) -> (FindingsReport, Vec<String>) {
    let mut report = FindingsReport {
        findings: findings.len() as u64,
        ..FindingsReport::default()
    };
    for finding in findings {
        *report
            .by_severity
            .entry(finding.finding.severity)
            .or_default() += 1;
    }
    let mut written = Vec::new();
    for object in objects {
        match store.put(object).await {
            Ok(()) => written.push(store.location(&object.key)),
            Err(error) => {
                report.object_failures += object.lines as u64;
                tracing::error!(%error, key = object.key, "findings object not written; the audit data is not affected");
            }
        }
    }
    if let Some(queue) = queue
        && !findings.is_empty()
    {
        (report.queued, report.queue_failures) = queue.send(findings).await;
    }
    (report, written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eks_audit_core::detect::Finding;

    fn finding(bytes: usize) -> FindingLine {
        FindingLine {
            finding: Finding {
                line: vec![b'x'; bytes],
                rule: "r".into(),
                severity: "High",
            },
            group: 0,
            time: None,
        }
    }

    #[test]
    fn batches_hold_at_most_ten_findings_and_256_kib() {
        let small: Vec<FindingLine> = (0..23).map(|_| finding(100)).collect();
        let refs: Vec<&FindingLine> = small.iter().collect();
        let sizes: Vec<usize> = batches(&refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);
        let large: Vec<FindingLine> = (0..4).map(|_| finding(100 * 1024)).collect();
        let refs: Vec<&FindingLine> = large.iter().collect();
        let sizes: Vec<usize> = batches(&refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2]);
    }
}
