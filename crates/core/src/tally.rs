//! Accounting: every record and every log event ends in exactly one of these counters
//! (`salvaged` counts again some of the quarantined events, see [`Tally::salvaged`]).

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
    /// Events written to the output.
    pub kept: u64,
    /// Events dropped on purpose, by reason.
    pub dropped: Dropped,
    /// Events that are not valid audit events, set aside with their envelope.
    pub quarantined: u64,
    /// Of the quarantined events, those cut by CloudWatch Logs whose fields before the cut were
    /// also written to the output, flagged as truncated (contract §6.2). Counted in
    /// `quarantined`, never in `kept`, so `kept + dropped + quarantined = events` still holds
    /// and the output holds `kept + salvaged` lines.
    pub salvaged: u64,
    /// Records returned to Firehose untouched: undecodable, or holding an event too large to
    /// re-ingest when the response overflowed.
    pub failed_records: u64,
    /// Firehose records sent back into the delivery stream because the response would have
    /// been too large; their events are counted on the pass that delivers them.
    pub reingested_records: u64,
    /// Bytes of decompressed payload read (events' text for bare events given to `transform`).
    pub bytes_in: u64,
    /// Bytes of NDJSON written for kept events, before base64 or gzip.
    pub bytes_out: u64,
}

/// Dropped counts by reason; control messages and other streams count messages' events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// Events of `CONTROL_MESSAGE`s.
    pub control_message: u64,
    /// Events of messages from streams that are not `kube-apiserver-audit-*`.
    pub not_audit_stream: u64,
    /// Events whose stage is not kept.
    pub stage: u64,
    /// Events whose request URI is excluded.
    pub excluded_uri: u64,
}

impl Dropped {
    /// Counts `count` more events dropped for `reason`.
    pub fn add(&mut self, reason: DropReason, count: u64) {
        let counter = match reason {
            DropReason::ControlMessage => &mut self.control_message,
            DropReason::NotAuditStream => &mut self.not_audit_stream,
            DropReason::Stage => &mut self.stage,
            DropReason::ExcludedUri => &mut self.excluded_uri,
        };
        *counter += count;
    }

    /// Events dropped for any reason.
    pub fn total(&self) -> u64 {
        self.control_message + self.not_audit_stream + self.stage + self.excluded_uri
    }
}

impl Tally {
    /// Adds every counter of `other` to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.records += other.records;
        self.events += other.events;
        self.kept += other.kept;
        self.dropped.control_message += other.dropped.control_message;
        self.dropped.not_audit_stream += other.dropped.not_audit_stream;
        self.dropped.stage += other.dropped.stage;
        self.dropped.excluded_uri += other.dropped.excluded_uri;
        self.quarantined += other.quarantined;
        self.salvaged += other.salvaged;
        self.failed_records += other.failed_records;
        self.reingested_records += other.reingested_records;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}
