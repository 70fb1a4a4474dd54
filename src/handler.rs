//! The one handler behind the Lambda and `eks-audit invoke`: detects the event's kind, runs
//! the core on every payload, stores objects and answers.

use serde::Serialize;

use crate::batch::firehose::RecordFate;
use crate::batch::objects::{self, Object};
use crate::config::Settings;
use crate::envelope::models::{FirehoseRecord, FirehoseResponse, IncomingEvent};
use crate::envelope::{DecodeBuffers, DecodeError, parse_messages};
use crate::pipeline::{Origin, Outcome, process_messages_into};
use crate::sink::{ObjectStore, SinkError};
use crate::tally::Tally;

pub struct Handler {
    settings: Settings,
    store: ObjectStore,
    /// The function's own region (`AWS_REGION`), for events that do not name one.
    default_region: Option<String>,
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
}

impl Handler {
    pub fn new(settings: Settings, store: ObjectStore, default_region: Option<String>) -> Handler {
        Handler { settings, store, default_region: default_region.filter(|r| !r.is_empty()) }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Handles one Lambda event given as JSON text.
    pub async fn handle(&self, event: &str) -> Result<Response, HandlerError> {
        let incoming: IncomingEvent<'_> =
            serde_json::from_str(event).map_err(|e| HandlerError::Malformed(e.to_string()))?;
        let (response, tally) = match (&incoming.records, &incoming.awslogs) {
            (Some(records), _) => {
                let region = firehose_region(&incoming).or(self.default_region.as_deref());
                let (response, tally) = self.firehose(records, Origin { region }).await?;
                (Response::Firehose(response), tally)
            }
            (None, Some(awslogs)) => {
                let summary = self.direct(&awslogs.data).await?;
                let tally = summary.tally.clone();
                (Response::Direct(summary), tally)
            }
            (None, None) => return Err(HandlerError::Unsupported),
        };
        log_summary(&tally);
        Ok(response)
    }

    async fn firehose(
        &self,
        records: &[FirehoseRecord<'_>],
        origin: Origin<'_>,
    ) -> Result<(FirehoseResponse, Tally), HandlerError> {
        let mut tally = Tally { records: records.len() as u64, ..Tally::default() };
        let mut response = FirehoseResponse { records: Vec::with_capacity(records.len()) };
        let mut buffers = RecordBuffers::default();
        for record in records {
            let fate = self.firehose_record(record, origin, &mut tally, &mut buffers).await?;
            if let RecordFate::Failed(reason) = &fate {
                tally.failed_records += 1;
                tracing::warn!(record_id = %record.record_id, %reason, "record failed; returned to Firehose untouched");
            }
            response.records.push(fate.response(record));
            if let RecordFate::Ok { ndjson, .. } = fate {
                buffers.ndjson = ndjson;
            }
        }
        Ok((response, tally))
    }

    /// Decodes and processes one record, storing its quarantined events when a bucket is
    /// configured. Only a store failure is an error: it fails the invocation so Firehose retries.
    async fn firehose_record(
        &self,
        record: &FirehoseRecord<'_>,
        origin: Origin<'_>,
        tally: &mut Tally,
        buffers: &mut RecordBuffers,
    ) -> Result<RecordFate, SinkError> {
        let outcome = match self.decode_and_process(&record.data, origin, buffers) {
            Ok(outcome) => outcome,
            Err(e) => return Ok(RecordFate::Failed(e.to_string())),
        };
        let stored = self.store.is_bucket();
        if stored {
            self.put_all(&objects::quarantine_objects(&outcome, &self.settings.prefix)).await?;
        }
        let record_tally = outcome.tally.clone();
        let fate = RecordFate::of(outcome, stored);
        match &fate {
            RecordFate::Failed(_) => tally.bytes_in += record_tally.bytes_in,
            RecordFate::Ok { ndjson, .. } => {
                tally.merge(&record_tally);
                tally.bytes_out += ndjson.len() as u64;
            }
            RecordFate::Dropped => tally.merge(&record_tally),
        }
        Ok(fate)
    }

    async fn direct(&self, data: &str) -> Result<DirectSummary, HandlerError> {
        let region = Origin { region: self.default_region.as_deref() };
        let outcome = self.decode_and_process(data, region, &mut RecordBuffers::default())?;
        let events = objects::event_objects(&outcome, &self.settings.prefix);
        let quarantine = objects::quarantine_objects(&outcome, &self.settings.prefix);
        self.put_all(&events).await?;
        self.put_all(&quarantine).await?;
        let mut tally = outcome.tally;
        tally.records = 1;
        tally.bytes_out = outcome.ndjson.len() as u64;
        Ok(DirectSummary {
            objects: events.iter().map(|o| self.store.location(&o.key)).collect(),
            quarantine_objects: quarantine.iter().map(|o| self.store.location(&o.key)).collect(),
            tally,
        })
    }

    fn decode_and_process(
        &self,
        data: &str,
        origin: Origin<'_>,
        buffers: &mut RecordBuffers,
    ) -> Result<Outcome, DecodeError> {
        let payload = buffers.decode.decode(data, self.settings.limits.max_payload_bytes)?;
        let messages = parse_messages(payload)?;
        let ndjson = std::mem::take(&mut buffers.ndjson);
        let mut outcome = process_messages_into(&messages, origin, &self.settings, ndjson);
        outcome.tally.bytes_in = payload.len() as u64;
        Ok(outcome)
    }

    async fn put_all(&self, objects: &[Object]) -> Result<(), SinkError> {
        for object in objects {
            self.store.put(object).await?;
        }
        Ok(())
    }
}

/// Buffers one invocation reuses from record to record: decoding, and the NDJSON of the last
/// kept record once its response has been encoded.
#[derive(Default)]
struct RecordBuffers {
    decode: DecodeBuffers,
    ndjson: Vec<u8>,
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
        };
        tracing::error!(error_type, error = %error, "invocation failed");
        lambda_runtime::Diagnostic { error_type: error_type.to_owned(), error_message: error.to_string() }
    }
}
