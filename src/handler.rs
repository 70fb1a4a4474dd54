//! The one handler behind the Lambda and `eks-audit invoke`: detects the event's kind, runs
//! the core on every payload, stores objects and answers.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::batch::firehose::RecordFate;
use crate::batch::objects::{self, Object};
use crate::batch::reingest::{self, ResponseTooLarge};
use crate::config::{Output, Settings};
use crate::envelope::models::{FirehoseRecord, FirehoseResponse, FirehoseResult, IncomingEvent};
use crate::envelope::{DecodeBuffers, DecodeError};
use crate::pipeline::{Origin, Outcome, UNKNOWN_CLUSTER, process_data, process_data_into};
use crate::sink::firehose::{DeliveryStream, ReingestError, Reingester};
use crate::sink::{ObjectStore, SinkError};
use crate::tally::Tally;

pub struct Handler {
    settings: Settings,
    store: ObjectStore,
    /// The function's own region (`AWS_REGION`), for events that do not name one.
    default_region: Option<String>,
    /// Where Firehose records that do not fit the response go back to.
    reingester: Reingester,
}

/// One handled event: the response, and the account of it for logs and metrics.
#[derive(Debug)]
pub struct Invocation {
    pub response: Response,
    pub tally: Tally,
    /// The clusters of the events kept or quarantined (`_unknown` for events without one).
    pub clusters: BTreeSet<String>,
}

/// What the handler answers: the Firehose contract, or a summary for direct invocations.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Response {
    Firehose(FirehoseResponse),
    Direct(DirectSummary),
}

/// The result of a direct (`awslogs`) invocation.
#[derive(Debug, Serialize)]
pub struct DirectSummary {
    /// Where each object went (`s3://bucket/key` or a local path).
    pub objects: Vec<String>,
    pub quarantine_objects: Vec<String>,
    #[serde(flatten)]
    pub tally: Tally,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("event is not valid JSON of a supported shape: {0}")]
    Malformed(String),
    #[error(
        "unsupported event: expected a Firehose transformation event (\"records\") or a CloudWatch Logs subscription event (\"awslogs\")"
    )]
    Unsupported,
    #[error("awslogs event: {0}")]
    Undecodable(#[from] DecodeError),
    #[error(transparent)]
    Store(#[from] SinkError),
    #[error(transparent)]
    ResponseTooLarge(#[from] ResponseTooLarge),
    #[error("records must be re-ingested, but the event has no deliveryStreamArn naming the delivery stream")]
    NoDeliveryStream,
    #[error(transparent)]
    Reingest(#[from] ReingestError),
    #[cfg(feature = "security-lake")]
    #[error(transparent)]
    Encode(#[from] crate::batch::parquet::EncodeError),
}

impl Handler {
    /// A handler without a Firehose client: see [`Handler::with_reingester`].
    pub fn new(settings: Settings, store: ObjectStore, default_region: Option<String>) -> Handler {
        Handler {
            settings,
            store,
            default_region: default_region.filter(|r| !r.is_empty()),
            reingester: Reingester::none(),
        }
    }

    /// Sends Firehose records that do not fit the response back into their delivery stream.
    /// Without one, an invocation that needs it fails.
    pub fn with_reingester(mut self, reingester: Reingester) -> Handler {
        self.reingester = reingester;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Handles one Lambda event given as JSON text.
    pub async fn handle(&self, event: &str) -> Result<Response, HandlerError> {
        self.invoke(event).await.map(|invocation| invocation.response)
    }

    /// Handles one Lambda event given as JSON text, with the account of what happened.
    pub async fn invoke(&self, event: &str) -> Result<Invocation, HandlerError> {
        let incoming: IncomingEvent<'_> =
            serde_json::from_str(event).map_err(|e| HandlerError::Malformed(e.to_string()))?;
        let mut clusters = BTreeSet::new();
        let (response, tally) = match (&incoming.records, &incoming.awslogs) {
            (Some(records), _) => {
                if self.settings.output != Output::Ndjson {
                    tracing::warn!("EKS_AUDIT_OUTPUT applies to direct mode; Firehose records stay NDJSON");
                }
                let region = firehose_region(&incoming).or(self.default_region.as_deref());
                let stream_arn = incoming.delivery_stream_arn.as_deref();
                let (response, tally) = self.firehose(records, stream_arn, Origin { region }, &mut clusters).await?;
                (Response::Firehose(response), tally)
            }
            (None, Some(awslogs)) => {
                let summary = self.direct(&awslogs.data, &mut clusters).await?;
                let tally = summary.tally.clone();
                (Response::Direct(summary), tally)
            }
            (None, None) => return Err(HandlerError::Unsupported),
        };
        log_summary(&tally);
        Ok(Invocation { response, tally, clusters })
    }

    /// Every record processed, then, when the response would be too large, the records that do
    /// not fit re-ingested (SPEC §2) before answering.
    async fn firehose(
        &self,
        records: &[FirehoseRecord<'_>],
        stream_arn: Option<&str>,
        origin: Origin<'_>,
        clusters: &mut BTreeSet<String>,
    ) -> Result<(FirehoseResponse, Tally), HandlerError> {
        let mut entries = Vec::with_capacity(records.len());
        let mut record_tallies = Vec::with_capacity(records.len());
        // Decode buffers reused across the records of the invocation.
        let mut buffers = DecodeBuffers::default();
        for record in records {
            let (fate, record_tally) = self.firehose_record(record, origin, clusters, &mut buffers).await?;
            if let RecordFate::Failed(reason) = &fate {
                tracing::warn!(record_id = %record.record_id, %reason, "record failed; returned to Firehose untouched");
            }
            entries.push(fate.into_response(record));
            record_tallies.push(record_tally);
        }

        let plan = reingest::plan(records, &mut entries, origin, &self.settings, self.reingester.limits())?;
        for (index, reason) in &plan.failed {
            let record_id = &records[*index].record_id;
            tracing::warn!(%record_id, %reason, "record does not fit a response and cannot be split; returned to Firehose untouched");
        }
        if !plan.payloads.is_empty() {
            let stream = stream_arn.and_then(DeliveryStream::from_arn).ok_or(HandlerError::NoDeliveryStream)?;
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

        // Re-ingested records are counted when they come back, so nothing is counted twice.
        let mut tally = Tally { records: records.len() as u64, ..Tally::default() };
        for (index, (entry, record_tally)) in entries.iter().zip(&record_tallies).enumerate() {
            if plan.reingested.binary_search(&index).is_ok() {
                tally.reingested_records += 1;
            } else if entry.result == FirehoseResult::ProcessingFailed {
                tally.failed_records += 1;
                tally.bytes_in += record_tally.bytes_in;
            } else {
                tally.merge(record_tally);
            }
        }
        Ok((FirehoseResponse { records: entries }, tally))
    }

    /// Decodes and processes one record, storing its quarantined events when a bucket is
    /// configured. Only a store failure is an error: it fails the invocation so Firehose retries.
    async fn firehose_record(
        &self,
        record: &FirehoseRecord<'_>,
        origin: Origin<'_>,
        clusters: &mut BTreeSet<String>,
        buffers: &mut DecodeBuffers,
    ) -> Result<(RecordFate, Tally), SinkError> {
        let outcome = match process_data_into(&record.data, origin, &self.settings, buffers) {
            Ok(outcome) => outcome,
            Err(e) => return Ok((RecordFate::Failed(e.to_string()), Tally::default())),
        };
        let stored = self.store.is_bucket();
        if stored {
            self.put_all(&objects::quarantine_objects(&outcome, &self.settings.prefix)).await?;
        }
        note_clusters(&outcome, clusters);
        let mut record_tally = outcome.tally.clone();
        let fate = RecordFate::of(outcome, stored);
        if let RecordFate::Ok { ndjson, .. } = &fate {
            record_tally.bytes_out = ndjson.len() as u64;
        }
        Ok((fate, record_tally))
    }

    async fn direct(&self, data: &str, clusters: &mut BTreeSet<String>) -> Result<DirectSummary, HandlerError> {
        let region = Origin { region: self.default_region.as_deref() };
        let outcome = process_data(data, region, &self.settings)?;
        let events = self.event_objects(&outcome)?;
        let quarantine = objects::quarantine_objects(&outcome, &self.settings.prefix);
        self.put_all(&events).await?;
        self.put_all(&quarantine).await?;
        note_clusters(&outcome, clusters);
        let mut tally = outcome.tally;
        tally.records = 1;
        tally.bytes_out = outcome.ndjson.len() as u64;
        Ok(DirectSummary {
            objects: events.iter().map(|o| self.store.location(&o.key)).collect(),
            quarantine_objects: quarantine.iter().map(|o| self.store.location(&o.key)).collect(),
            tally,
        })
    }

    /// The objects of the kept events, in the configured output.
    fn event_objects(&self, outcome: &Outcome) -> Result<Vec<Object>, HandlerError> {
        match self.settings.output {
            Output::Ndjson => Ok(objects::event_objects(outcome, &self.settings.prefix)),
            #[cfg(feature = "security-lake")]
            Output::Parquet => Ok(crate::batch::parquet::security_lake_objects(
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

fn note_clusters(outcome: &Outcome, clusters: &mut BTreeSet<String>) {
    for group in outcome.kept_groups.iter().chain(&outcome.quarantine_groups) {
        clusters.insert(group.cluster.as_deref().unwrap_or(UNKNOWN_CLUSTER).to_owned());
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
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn log_summary(tally: &Tally) {
    tracing::info!(
        records = tally.records,
        events = tally.events,
        kept = tally.kept,
        dropped_control_message = tally.dropped.control_message,
        dropped_not_audit_stream = tally.dropped.not_audit_stream,
        dropped_stage = tally.dropped.stage,
        dropped_excluded_uri = tally.dropped.excluded_uri,
        quarantined = tally.quarantined,
        failed_records = tally.failed_records,
        reingested_records = tally.reingested_records,
        bytes_in = tally.bytes_in,
        bytes_out = tally.bytes_out,
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
            #[cfg(feature = "security-lake")]
            HandlerError::Encode(_) => "EncodeFailed",
        };
        tracing::error!(error_type, error = %error, "invocation failed");
        lambda_runtime::Diagnostic { error_type: error_type.to_owned(), error_message: error.to_string() }
    }
}
