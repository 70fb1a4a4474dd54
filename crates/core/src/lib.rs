//! The pure core of eks-audit-forwarder: EKS audit logs from CloudWatch Logs subscription
//! payloads to normalized lines, with an account of every event. No I/O, no clock, no AWS SDK,
//! no async runtime: the Lambda, the CLI and the AWS adapters are shells around it.
//!
//! Follow one audit event through it:
//!
//! 1. [`envelope`] reads the Lambda event (Firehose transformation or `awslogs`), base64 and
//!    gzip, and the CloudWatch Logs subscription messages inside.
//! 2. [`AuditEvent`] parses each log event's message, borrowing from it.
//! 3. [`Filter`] keeps the stages and URIs the operator asked for (contract §3).
//! 4. [`schema`] writes the event as one NDJSON line in the flat schema (contract §4) or as an
//!    OCSF API Activity event (contract §5); OCSF quarantines events it cannot represent.
//! 5. [`pipeline`] ties 1–4 together per payload and accounts for every event ([`Tally`]).
//! 6. [`batch`] turns outcomes into a Firehose response, S3 objects with deterministic keys,
//!    and the records to re-ingest when a response would be too large.
//!
//! An event CloudWatch Logs cut (`[Truncated...]`) is read by [`salvage`] up to the cut, then
//! goes through steps 3–5 flagged as truncated, its original text quarantined as well.
//!
//! [`ProcessOptions`] is all the configuration the core reads. [`eks`] holds the EKS naming
//! rules; [`transform`] serves `eks-audit transform` on any saved input; [`allocator`] holds
//! the process-wide allocator settings the binaries make at start.
//!
//! The API is what this file exports: the modules below, and at the root the types most
//! callers need.

pub mod allocator;
pub mod audit;
mod audit_reader;
pub mod batch;
pub mod detect;
pub mod eks;
pub mod envelope;
pub mod filter;
#[cfg(test)]
mod golden;
mod options;
#[cfg(any(test, feature = "oracle"))]
pub mod oracle;
pub mod pipeline;
pub mod redact;
pub mod salvage;
pub mod schema;
mod single_pass;
mod strict_json;
mod string_stops;
pub mod tally;
pub mod transform;

pub use audit::AuditEvent;
pub use filter::{Filter, StageFilter, UriPattern};
pub use options::{InputLimits, KeyLayout, ProcessOptions};
pub use pipeline::{
    EventFate, Origin, Outcome, Partition, process_data, process_event, process_messages,
};
pub use redact::Redaction;
pub use schema::{EventContext, Format};
pub use tally::{DropReason, Tally};
