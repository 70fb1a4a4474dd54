//! Output schemas: one normalized JSON line per kept audit event, flat (contract §4) or OCSF
//! (contract §5).

pub mod flat;
pub(crate) mod json;
pub mod ocsf;
pub mod time;

use ::time::OffsetDateTime;

use crate::audit::AuditEvent;

/// Output schema of normalized events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    /// Microsoft Sentinel's `AWSEKSLogs_CL` columns plus extended columns (contract §4).
    #[default]
    Flat,
    /// OCSF 1.1.0 API Activity (6003) with the cloud and datetime profiles, as Amazon Security
    /// Lake's EKS source emits it, with its mapping errors fixed (contract §5).
    Ocsf,
}

impl Format {
    /// Every format, for callers that try them all (benches, fuzz targets).
    pub const ALL: [Format; 2] = [Format::Flat, Format::Ocsf];

    /// The name flags and `EKS_AUDIT_FORMAT` use.
    pub fn name(self) -> &'static str {
        match self {
            Format::Flat => "flat",
            Format::Ocsf => "ocsf",
        }
    }
}

/// What the audit event itself does not say: where it was logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventContext<'a> {
    /// AWS account id, the subscription message's `owner`.
    pub account: Option<&'a str>,
    /// AWS region (contract §4 `Region`); `None` when unknown.
    pub region: Option<&'a str>,
    /// EKS cluster name, from the log group or `EKS_AUDIT_CLUSTER_NAME`; `None` when neither names
    /// one.
    pub cluster: Option<&'a str>,
    /// CloudWatch Logs group of the message; `None` for a bare event given to `transform`.
    pub log_group: Option<&'a str>,
    /// CloudWatch Logs stream of the message; `None` for a bare event given to `transform`.
    pub log_stream: Option<&'a str>,
    /// CloudWatch Logs event id.
    pub event_id: Option<&'a str>,
    /// CloudWatch Logs ingestion time of the event, epoch milliseconds.
    pub cloudwatch_timestamp: Option<i64>,
}

/// Appends `event` as one line (ending in `\n`) in `format` to `out`. `raw` is the event's
/// original JSON text, carried into the output unchanged; `time` is [`time::event_time`].
///
/// The flat schema takes any event. OCSF requires attributes some events cannot fill: then
/// nothing is appended and the error says what is missing.
pub fn write_line(
    format: Format,
    event: &AuditEvent<'_>,
    raw: &str,
    time: Option<OffsetDateTime>,
    context: &EventContext<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ocsf::Unmappable> {
    match format {
        Format::Flat => flat::write(event, raw, time, context, out),
        Format::Ocsf => ocsf::write(event, raw, context, out)?,
    }
    out.push(b'\n');
    Ok(())
}
