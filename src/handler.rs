//! The one handler behind the Lambda and `eks-audit invoke`: detects the event's kind, runs
//! the core on every payload, stores objects and answers.

use std::collections::BTreeSet;

use serde::Serialize;

use eks_audit_core::batch::firehose::{self, note_clusters};
use eks_audit_core::batch::objects::{self, Object};
use eks_audit_core::batch::reingest::{self, ResponseTooLarge};
use eks_audit_core::envelope::DecodeError;
use eks_audit_core::envelope::models::{FirehoseRecord, FirehoseResponse, IncomingEvent};
use eks_audit_core::pipeline::FindingLine;
use eks_audit_core::{Origin, Outcome, Tally, process_data};

use crate::config::{Output, Settings};
use crate::sink::findings::{self, FindingsQueue, FindingsReport};
use crate::sink::firehose::{DeliveryStream, ReingestError, Reingester};
use crate::sink::{ObjectStore, SinkError};
use crate::subscribe::auto::{self, AutoError, AutoSubscriber, AutoSummary};

/// Handles Lambda events, Firehose or `awslogs`, with one configuration: the Lambda's, or
/// `eks-audit invoke`'s. Build it once and reuse it across invocations.
pub struct Handler {
    settings: Settings,
    store: ObjectStore,
    /// The function's own region (`AWS_REGION`), for events that do not name one.
    default_region: Option<String>,
    /// Where Firehose records that do not fit the response go back to.
    reingester: Reingester,
    /// The SQS queue findings also go to, when configured.
    findings_queue: Option<FindingsQueue>,
    /// Subscribes log groups on EventBridge events, when a destination is configured.
    auto_subscriber: Option<AutoSubscriber>,
}

/// One handled event: the response, and the account of it for logs and metrics.
#[derive(Debug)]
pub struct Invocation {
    /// What the handler answers.
    pub response: Response,
    /// What became of every record and event, for the summary log line and metrics.
    pub tally: Tally,
    /// The clusters of the events kept or quarantined (`_unknown` for events without one).
    pub clusters: BTreeSet<String>,
    /// What became of the findings.
    pub findings: FindingsReport,
}

/// What the handler answers: the Firehose contract, or a summary for direct invocations.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// The response to a Firehose data-transformation event: one record per input record (contract
    /// §2.1).
    Firehose(FirehoseResponse),
    /// The answer to a direct (`awslogs`) invocation: where the objects went, and the counters.
    Direct(DirectSummary),
    /// The answer to an EventBridge event (CloudTrail `CreateLogGroup`, or a schedule): what
    /// the auto-subscriber did to each cluster (contract §1.1).
    Subscribe(AutoSummary),
}

/// The result of a direct (`awslogs`) invocation.
#[derive(Debug, Serialize)]
pub struct DirectSummary {
    /// Where each object went (`s3://bucket/key` or a local path).
    pub objects: Vec<String>,
    /// Where each quarantine object went, as for [`objects`](Self::objects).
    pub quarantine_objects: Vec<String>,
    /// Where each findings object went, as for [`objects`](Self::objects).
    pub findings_objects: Vec<String>,
    /// How many findings the rules produced.
    pub findings: u64,
    /// The counters of contract §11, serialized at the top level of the summary.
    #[serde(flatten)]
    pub tally: Tally,
}

/// Why an invocation failed (contract §2.4, §6.1): Lambda reports it as the invocation's error and
/// the source (Firehose, or CloudWatch Logs for `awslogs`) retries the event whole.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is not JSON, or not of a supported shape (a record without `data`, or with a
    /// `data` that is not a string); says why.
    #[error("event is not valid JSON of a supported shape: {0}")]
    Malformed(String),
    /// JSON, but with neither `records` nor `awslogs` nor `detail-type`.
    #[error(
        "unsupported event: expected a Firehose transformation event (\"records\"), a CloudWatch Logs subscription event (\"awslogs\") or an EventBridge event (\"detail-type\")"
    )]
    Unsupported,
    /// An EventBridge event, but no `EKS_AUDIT_SUBSCRIBE_DESTINATION_ARN` to subscribe to.
    #[error(
        "EventBridge event received, but the auto-subscriber is off: set EKS_AUDIT_SUBSCRIBE_DESTINATION_ARN"
    )]
    NoAutoSubscriber,
    /// The auto-subscriber could not do what the event asks; Lambda retries the event.
    #[error("auto-subscribe: {0}")]
    AutoSubscribe(#[from] AutoError),
    /// The `awslogs` data cannot be read, or breaks a record limit; nothing was written.
    #[error("awslogs event: {0}")]
    Undecodable(#[from] DecodeError),
    /// An object could not be written: a direct-mode object, or a quarantine object in either mode.
    #[error(transparent)]
    Store(#[from] SinkError),
    /// The Firehose response would be too large even with every `Ok` record re-ingested.
    #[error(transparent)]
    ResponseTooLarge(#[from] ResponseTooLarge),
    /// Records must be re-ingested but the event has no `deliveryStreamArn` to send them to.
    #[error(
        "records must be re-ingested, but the event has no deliveryStreamArn naming the delivery stream"
    )]
    NoDeliveryStream,
    /// Re-ingesting records into the delivery stream failed (contract §2.3).
    #[error(transparent)]
    Reingest(#[from] ReingestError),
    /// OCSF lines could not be encoded as Parquet (`--output parquet`); a bug, not bad input.
    #[cfg(feature = "security-lake")]
    #[error(transparent)]
    Encode(#[from] eks_audit_core::batch::parquet::EncodeError),
}

impl Handler {
    /// A handler without a Firehose client: see [`Handler::with_reingester`].
    pub fn new(settings: Settings, store: ObjectStore, default_region: Option<String>) -> Handler {
        Handler {
            settings,
            store,
            default_region: default_region.filter(|r| !r.is_empty()),
            reingester: Reingester::none(),
            findings_queue: None,
            auto_subscriber: None,
        }
    }

    /// Also answers EventBridge events: CloudTrail's `CreateLogGroup` of an EKS cluster's log
    /// group, and schedules (contract §1.1).
    pub fn with_auto_subscriber(mut self, auto_subscriber: AutoSubscriber) -> Handler {
        self.auto_subscriber = Some(auto_subscriber);
        self
    }

    /// Also sends every finding to `queue`.
    pub fn with_findings_queue(mut self, queue: FindingsQueue) -> Handler {
        self.findings_queue = Some(queue);
        self
    }

    /// Sends Firehose records that do not fit the response back into their delivery stream.
    /// Without one, an invocation that needs it fails.
    pub fn with_reingester(mut self, reingester: Reingester) -> Handler {
        self.reingester = reingester;
        self
    }

    /// The settings the handler runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Handles one Lambda event given as JSON text.
    pub async fn handle(&self, event: &str) -> Result<Response, HandlerError> {
        self.invoke(event)
            .await
            .map(|invocation| invocation.response)
    }

    /// Handles one Lambda event given as JSON text, with the account of what happened.
    pub async fn invoke(&self, event: &str) -> Result<Invocation, HandlerError> {
        let incoming: IncomingEvent<'_> =
            serde_json::from_str(event).map_err(|e| HandlerError::Malformed(e.to_string()))?;
        let mut clusters = BTreeSet::new();
        let mut findings = FindingsReport::default();
        let (response, tally) = match (&incoming.records, &incoming.awslogs) {
            (Some(records), _) => {
                if self.settings.output != Output::Ndjson {
                    tracing::warn!(
                        "EKS_AUDIT_OUTPUT applies to direct mode; Firehose records stay NDJSON"
                    );
                }
                let region = firehose_region(&incoming).or(self.default_region.as_deref());
                let stream_arn = incoming.delivery_stream_arn.as_deref();
                let (response, tally) = self
                    .firehose(
                        records,
                        stream_arn,
                        Origin { region },
                        &mut clusters,
                        &mut findings,
                    )
                    .await?;
                (Response::Firehose(response), tally)
            }
            (None, Some(awslogs)) => {
                let summary = self
                    .direct(&awslogs.data, &mut clusters, &mut findings)
                    .await?;
                let tally = summary.tally.clone();
                (Response::Direct(summary), tally)
            }
            (None, None) => {
                let trigger = auto::trigger(event)
                    .ok_or(HandlerError::Unsupported)?
                    .map_err(AutoError::Unsupported)?;
                let auto_subscriber = self
                    .auto_subscriber
                    .as_ref()
                    .ok_or(HandlerError::NoAutoSubscriber)?;
                let summary = auto_subscriber.run(trigger).await?;
                return Ok(Invocation {
                    response: Response::Subscribe(summary),
                    tally: Tally::default(),
                    clusters,
                    findings,
                });
            }
        };
        log_summary(&tally, &findings);
        Ok(Invocation {
            response,
            tally,
            clusters,
            findings,
        })
    }

    /// Every record processed, then, when the response would be too large, the records that do
    /// not fit re-ingested (contract §2) before answering.
    async fn firehose(
        &self,
        records: &[FirehoseRecord<'_>],
        stream_arn: Option<&str>,
        origin: Origin<'_>,
        clusters: &mut BTreeSet<String>,
        findings: &mut FindingsReport,
    ) -> Result<(FirehoseResponse, Tally), HandlerError> {
        let quarantine_prefix = self
            .store
            .is_bucket()
            .then_some(self.settings.prefix.as_str());
        let mut processed = firehose::process_records_for_response(
            records,
            origin,
            &self.settings.process,
            quarantine_prefix,
            Some(self.settings.prefix.as_str()),
            self.reingester.limits().max_response_bytes,
        );
        for (index, reason) in &processed.failures {
            let record_id = &records[*index].record_id;
            tracing::warn!(%record_id, %reason, "record failed; returned to Firehose untouched");
        }
        // A store failure fails the invocation, so Firehose retries the batch.
        self.put_all(&processed.quarantine).await?;
        clusters.append(&mut processed.clusters);

        let plan = reingest::plan(
            records,
            &mut processed.entries,
            &processed.shed,
            origin,
            &self.settings.process,
            self.reingester.limits(),
        )?;
        for (index, reason) in &plan.failed {
            let record_id = &records[*index].record_id;
            tracing::warn!(%record_id, %reason, "record does not fit a response and cannot be split; returned to Firehose untouched");
        }
        if !plan.payloads.is_empty() {
            let stream = stream_arn
                .and_then(DeliveryStream::from_arn)
                .ok_or(HandlerError::NoDeliveryStream)?;
            let done = self.reingester.put(stream, &plan.payloads).await?;
            tracing::info!(
                stream = stream.name,
                records = plan.reingested.len(),
                payloads = done.records,
                bytes = done.bytes,
                calls = done.calls,
                "records that do not fit the response were re-ingested"
            );
        }
        // After re-ingestion, which may still fail the invocation and bring the batch back:
        // findings leave once, and a re-ingested record's leave with it when it returns.
        processed.drop_findings_of(&plan);
        let lines: Vec<&FindingLine> = processed.finding_lines().collect();
        (*findings, _) = findings::deliver(
            &self.store,
            self.findings_queue.as_ref(),
            processed.finding_objects(),
            &lines,
        )
        .await;
        let tally = processed.tally(&plan);
        Ok((
            FirehoseResponse {
                records: processed.entries,
            },
            tally,
        ))
    }

    async fn direct(
        &self,
        data: &str,
        clusters: &mut BTreeSet<String>,
        findings: &mut FindingsReport,
    ) -> Result<DirectSummary, HandlerError> {
        let region = Origin {
            region: self.default_region.as_deref(),
        };
        let outcome = process_data(data, region, &self.settings.process)?;
        let events = self.event_objects(&outcome)?;
        let quarantine = objects::quarantine_objects(&outcome, &self.settings.prefix);
        self.put_all(&events).await?;
        self.put_all(&quarantine).await?;
        // After the data: a findings failure is logged and counted, never fails the data.
        let finding_objects = objects::finding_objects(&outcome, &self.settings.prefix);
        let lines: Vec<&FindingLine> = outcome.findings.iter().collect();
        let findings_objects;
        (*findings, findings_objects) = findings::deliver(
            &self.store,
            self.findings_queue.as_ref(),
            &finding_objects,
            &lines,
        )
        .await;
        note_clusters(&outcome, clusters);
        let mut tally = outcome.tally;
        tally.records = 1;
        tally.bytes_out = outcome.ndjson.len() as u64;
        Ok(DirectSummary {
            objects: events.iter().map(|o| self.store.location(&o.key)).collect(),
            quarantine_objects: quarantine
                .iter()
                .map(|o| self.store.location(&o.key))
                .collect(),
            findings_objects,
            findings: findings.findings,
            tally,
        })
    }

    /// The objects of the kept events, in the configured output.
    fn event_objects(&self, outcome: &Outcome) -> Result<Vec<Object>, HandlerError> {
        match self.settings.output {
            Output::Ndjson => Ok(objects::event_objects(outcome, &self.settings.prefix)),
            #[cfg(feature = "security-lake")]
            Output::Parquet => Ok(eks_audit_core::batch::parquet::security_lake_objects(
                outcome,
                &self.settings.source_name,
                self.default_region.as_deref(),
            )?),
        }
    }

    async fn put_all(&self, objects: &[Object]) -> Result<(), SinkError> {
        for object in objects {
            self.store.put(object).await?;
        }
        Ok(())
    }
}

/// The region of a Firehose event: its `region` field, else the delivery stream ARN's.
fn firehose_region<'e>(event: &'e IncomingEvent<'_>) -> Option<&'e str> {
    let from_field = event.region.as_deref().filter(|r| is_region(r));
    from_field.or_else(|| {
        let arn = event.delivery_stream_arn.as_deref()?;
        arn.split(':').nth(3).filter(|r| is_region(r))
    })
}

/// Region names are lowercase letters, digits and dashes (`eu-west-1`); this rejects blanks
/// and unrendered template placeholders such as `{{{region}}}`.
fn is_region(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn log_summary(tally: &Tally, findings: &FindingsReport) {
    tracing::info!(
        records = tally.records,
        events = tally.events,
        kept = tally.kept,
        dropped_control_message = tally.dropped.control_message,
        dropped_not_audit_stream = tally.dropped.not_audit_stream,
        dropped_stage = tally.dropped.stage,
        dropped_excluded_uri = tally.dropped.excluded_uri,
        quarantined = tally.quarantined,
        salvaged = tally.salvaged,
        failed_records = tally.failed_records,
        reingested_records = tally.reingested_records,
        bytes_in = tally.bytes_in,
        bytes_out = tally.bytes_out,
        findings = findings.findings,
        findings_undelivered = findings.object_failures + findings.queue_failures,
        "invocation summary"
    );
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Malformed(_) => "MalformedEvent",
            HandlerError::Unsupported => "UnsupportedEvent",
            HandlerError::Undecodable(_) => "UndecodablePayload",
            HandlerError::Store(_) => "StoreFailed",
            HandlerError::ResponseTooLarge(_) => "ResponseTooLarge",
            HandlerError::NoDeliveryStream => "NoDeliveryStream",
            HandlerError::Reingest(_) => "ReingestFailed",
            HandlerError::NoAutoSubscriber => "AutoSubscriberOff",
            HandlerError::AutoSubscribe(_) => "AutoSubscribeFailed",
            #[cfg(feature = "security-lake")]
            HandlerError::Encode(_) => "EncodeFailed",
        };
        tracing::error!(error_type, error = %error, "invocation failed");
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}
