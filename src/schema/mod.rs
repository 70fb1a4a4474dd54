//! Output schemas: one normalized JSON line per kept audit event, flat (SPEC §4) or OCSF
//! (SPEC §5).

pub mod flat;
pub mod json;
pub mod ocsf;
pub mod time;

use ::time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::config::Format;

/// What the audit event itself does not say: where it was logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventContext<'a> {
    /// AWS account id, the subscription message's `owner`.
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    pub cluster: Option<&'a str>,
    pub log_group: Option<&'a str>,
    pub log_stream: Option<&'a str>,
    /// CloudWatch Logs event id.
    pub event_id: Option<&'a str>,
    /// CloudWatch Logs ingestion time of the event, epoch milliseconds.
    pub cloudwatch_timestamp: Option<i64>,
}

/// The cluster named by an EKS control-plane log group, `/aws/eks/<cluster>/cluster`.
pub fn cluster_from_log_group(log_group: &str) -> Option<&str> {
    let cluster = log_group.strip_prefix("/aws/eks/")?.strip_suffix("/cluster")?;
    (!cluster.is_empty() && !cluster.contains('/')).then_some(cluster)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_comes_from_eks_log_groups_only() {
        assert_eq!(cluster_from_log_group("/aws/eks/prod-east/cluster"), Some("prod-east"));
        assert_eq!(cluster_from_log_group("/aws/eks//cluster"), None);
        assert_eq!(cluster_from_log_group("/aws/eks/a/b/cluster"), None);
        assert_eq!(cluster_from_log_group("/custom/audit"), None);
    }
}
