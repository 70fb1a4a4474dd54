//! What the core needs to know from the configuration. The shells' settings hold these plus
//! what only they use (bucket, paths, KMS key, output kind).

use std::sync::Arc;

use crate::detect::Detector;
use crate::filter::Filter;
use crate::redact::Redaction;
use crate::schema::Format;

/// How the core processes events: schema, filter, limits, redaction and the cluster name to
/// use when the log group does not say.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    /// The output schema.
    pub format: Format,
    /// Which events are kept (contract §3).
    pub filter: Filter,
    /// Bounds against hostile or broken input.
    pub limits: InputLimits,
    /// Request and response bodies replaced by a marker.
    pub redaction: Redaction,
    /// The cluster of events whose log group is not `/aws/eks/<cluster>/cluster`.
    pub cluster_override: Option<String>,
    /// Sigma rules evaluated on every kept event (contract §12); `None` for no detection.
    pub detector: Option<Arc<Detector>>,
    /// Whether keys and partition keys also name the source account and region (contract §6.4).
    pub key_layout: KeyLayout,
}

/// The layout of object keys and Firehose partition keys (contract §6.1, §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum KeyLayout {
    /// One account: `<prefix>/cluster=<c>/dt=…`, partition keys `cluster` and `account`.
    #[default]
    Cluster,
    /// A fleet of accounts and regions: `<prefix>/cluster=<c>/account=<a>/region=<r>/dt=…`,
    /// partition keys `cluster`, `account` and `region`, so that same-named clusters of two
    /// accounts or two regions never share a folder.
    Fleet,
}

/// Bounds on what one record may cost, against hostile or broken input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Largest audit event (message) accepted; bigger ones are quarantined.
    pub max_event_bytes: usize,
    /// Largest decompressed payload accepted per record.
    pub max_payload_bytes: usize,
    /// Deepest nesting of objects and arrays in an audit event; deeper ones are quarantined.
    pub max_depth: usize,
    /// Most log events in one record (all its messages together); more fail the record.
    pub max_events_per_record: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            // CloudWatch Logs events are at most 1 MiB.
            max_event_bytes: 1 << 20,
            // A Firehose record is at most 1,000 KiB of gzip, which real audit JSON inflates
            // 4–10x; 64 MiB leaves room and bounds bombs (deflate reaches 1,032x).
            max_payload_bytes: 64 << 20,
            // Real events nest a few dozen levels at most (CRD schemas). The output line adds
            // its own levels around RawEvent, and common readers stop at 128 (serde_json).
            max_depth: 100,
            // PutLogEvents takes at most 10,000 events a call; a record holding several
            // messages may carry a few batches. Each event costs about 60 bytes of bookkeeping.
            max_events_per_record: 50_000,
        }
    }
}
