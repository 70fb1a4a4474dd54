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
    write(format, event, Raw::Whole(raw), time, context, out)
}

/// [`write_line`] for an event cut by CloudWatch Logs and salvaged ([`crate::salvage`]), flagged
/// as truncated: `Truncated: true` in the flat schema, `unmapped.truncated` in OCSF. `event` is
/// what was read before the cut; `received` is the text received, marker included (after
/// redaction), which the flat schema's `RawEvent` carries as a JSON string since it is no
/// longer JSON; `members` is the JSON object of the members complete before the cut (after
/// redaction), where OCSF finds the bodies.
pub fn write_truncated_line(
    format: Format,
    event: &AuditEvent<'_>,
    received: &str,
    members: &str,
    time: Option<OffsetDateTime>,
    context: &EventContext<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ocsf::Unmappable> {
    let raw = Raw::Cut { received, members };
    write(format, event, raw, time, context, out)
}

/// The text an event came as.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw<'r> {
    /// A whole event: its JSON text.
    Whole(&'r str),
    /// An event cut by CloudWatch Logs: the text received and the JSON object of its complete
    /// members.
    Cut { received: &'r str, members: &'r str },
}

fn write(
    format: Format,
    event: &AuditEvent<'_>,
    raw: Raw<'_>,
    time: Option<OffsetDateTime>,
    context: &EventContext<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ocsf::Unmappable> {
    match (format, raw) {
        (Format::Flat, raw) => flat::write(event, raw, time, context, out),
        (Format::Ocsf, Raw::Whole(raw)) => ocsf::write(event, raw, context, out)?,
        (Format::Ocsf, Raw::Cut { members, .. }) => {
            ocsf::write_truncated(event, members, context, out)?
        }
    }
    out.push(b'\n');
    Ok(())
}
