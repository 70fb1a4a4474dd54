//! Accounting: every record and every log event ends in exactly one of these counters.

use serde::Serialize;

/// Why an event (or a whole message) was dropped on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// CloudWatch Logs' `CONTROL_MESSAGE` health check.
    ControlMessage,
    /// A message from a control-plane stream that does not carry audit events.
    NotAuditStream,
    /// The event's stage is not in the kept list.
    Stage,
    /// The event's request URI matches an excluded pattern.
    ExcludedUri,
}

/// Counters for one invocation (or one payload, merged into the invocation's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Firehose records, or 1 for an `awslogs` event.
    pub records: u64,
    /// Log events seen in data messages.
    pub events: u64,
    pub kept: u64,
    pub dropped: Dropped,
    /// Events that are not valid audit events, set aside with their envelope.
    pub quarantined: u64,
    /// Records returned to Firehose untouched: undecodable, or holding an event too large to
    /// re-ingest when the response overflowed.
    pub failed_records: u64,
    /// Firehose records sent back into the delivery stream because the response would have
    /// been too large; their events are counted on the pass that delivers them.
    pub reingested_records: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Dropped counts by reason; control messages and other streams count messages' events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub control_message: u64,
    pub not_audit_stream: u64,
    pub stage: u64,
    pub excluded_uri: u64,
}

impl Dropped {
    pub fn add(&mut self, reason: DropReason, count: u64) {
        let counter = match reason {
            DropReason::ControlMessage => &mut self.control_message,
            DropReason::NotAuditStream => &mut self.not_audit_stream,
            DropReason::Stage => &mut self.stage,
            DropReason::ExcludedUri => &mut self.excluded_uri,
        };
        *counter += count;
    }

    pub fn total(&self) -> u64 {
        self.control_message + self.not_audit_stream + self.stage + self.excluded_uri
    }
}

impl Tally {
    pub fn merge(&mut self, other: &Tally) {
        self.records += other.records;
        self.events += other.events;
        self.kept += other.kept;
        self.dropped.control_message += other.dropped.control_message;
        self.dropped.not_audit_stream += other.dropped.not_audit_stream;
        self.dropped.stage += other.dropped.stage;
        self.dropped.excluded_uri += other.dropped.excluded_uri;
        self.quarantined += other.quarantined;
        self.failed_records += other.failed_records;
        self.reingested_records += other.reingested_records;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}
