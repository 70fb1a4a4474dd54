//! The core, free of I/O: subscription messages in, normalized NDJSON and an account of every
//! log event out.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::detect::{Correlations, Finding};
use crate::eks::{UNKNOWN_CLUSTER, cluster_from_log_group, is_audit_stream};
use crate::envelope::{
    DecodeBuffers, DecodeError, LogEvent, SubscriptionMessage, decode_base64, decompress,
    parse_messages,
};
use crate::options::{KeyLayout, ProcessOptions};
use crate::schema::time::{event_time, from_epoch_millis};
use crate::schema::{self, EventContext};
use crate::tally::{DropReason, Tally};
use crate::{redact, salvage, single_pass, strict_json};

/// Where a batch of events was logged, shared by every event of one subscription message and
/// one UTC hour: the unit of an S3 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The EKS cluster, from the log group or the configured override; `None` when neither names
    /// one (keys then say `_unknown`).
    pub cluster: Option<String>,
    /// The AWS account id, the message's `owner`; empty when the message has none.
    pub account: String,
    /// The source region and account in keys: `Some(region)` (empty when unknown) in the
    /// fleet layout, which adds `account=…/region=…/` to keys (contract §6.4); `None` in the
    /// single-account layout, whose keys stay as they were.
    pub fleet_region: Option<String>,
    /// The CloudWatch log stream of the message.
    pub log_stream: String,
    /// UTC hour of the audit events (or, for quarantine, of their CloudWatch timestamps).
    pub hour: OffsetDateTime,
    /// CloudWatch id of the group's first event: names its object, so a retry rewrites it.
    pub first_event_id: String,
}

/// One kept event's line in [`Outcome::ndjson`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLine {
    /// Where the line is in [`Outcome::ndjson`], its `\n` included.
    pub bytes: Range<usize>,
    /// Index of its group in [`Outcome::kept_groups`].
    pub group: usize,
    /// The event's time, the one its group's hour comes from ([`EventFate::Kept`]'s, else the
    /// CloudWatch timestamp); `None` when neither is a valid time. For object metadata.
    pub time: Option<OffsetDateTime>,
}

/// A log event that is not a valid audit event, kept verbatim with its CloudWatch envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedEvent {
    /// Why it is not a valid audit event, for people (and the quarantine line's `reason`).
    pub reason: String,
    /// One JSON line: the envelope fields, the reason and the original message.
    pub line: Vec<u8>,
    /// Index of its group in [`Outcome::quarantine_groups`].
    pub group: usize,
    /// Its CloudWatch timestamp, the one its group's hour comes from; `None` when it is not a
    /// valid time. For object metadata.
    pub time: Option<OffsetDateTime>,
}

/// One finding ([`crate::detect`]) of a kept event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingLine {
    /// The finding.
    pub finding: Finding,
    /// Index of its group in [`Outcome::finding_groups`].
    pub group: usize,
    /// Its event's time, as [`KeptLine::time`].
    pub time: Option<OffsetDateTime>,
}

/// What one payload (all its subscription messages) came to: the kept events as NDJSON, the
/// quarantined ones, the groups that name their objects, and the counts.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every kept event, one line each, in input order.
    pub ndjson: Vec<u8>,
    /// One entry per kept event, in input order.
    pub kept: Vec<KeptLine>,
    /// Events set aside as not valid audit events, in input order (contract §6.2).
    pub quarantined: Vec<QuarantinedEvent>,
    /// The groups (message, UTC hour of the audit time) of the kept events, in order of first
    /// appearance: one S3 object each in direct mode.
    pub kept_groups: Vec<Group>,
    /// The groups (message, UTC hour of the CloudWatch timestamp) of the quarantined events, in
    /// order of first appearance: one quarantine object each.
    pub quarantine_groups: Vec<Group>,
    /// The findings of the kept events, in input order (contract §12).
    pub findings: Vec<FindingLine>,
    /// The groups (message, UTC hour of the event) of the findings: one findings object each.
    pub finding_groups: Vec<Group>,
    /// What became of every log event. `bytes_out` is left for the caller to set.
    pub tally: Tally,
}

impl Outcome {
    /// The partitions (cluster, account, and in the fleet layout region) of the kept events,
    /// in order of first appearance, up to the second distinct one: a Firehose record's
    /// partition keys must be true for every one of its events, so one is an answer and two
    /// are already too many.
    pub fn partitions(&self) -> Vec<Partition<'_>> {
        let mut partitions: Vec<Partition<'_>> = Vec::new();
        for group in &self.kept_groups {
            let partition = Partition {
                cluster: group.cluster.as_deref().unwrap_or(UNKNOWN_CLUSTER),
                account: group.account.as_str(),
                region: group.fleet_region.as_deref(),
            };
            if !partitions.contains(&partition) {
                partitions.push(partition);
                if partitions.len() > 1 {
                    break;
                }
            }
        }
        partitions
    }
}

/// The Firehose partition of kept events (contract §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition<'a> {
    /// `cluster`: the events' cluster, or `_unknown`.
    pub cluster: &'a str,
    /// `account`: their message's `owner`, the source account.
    pub account: &'a str,
    /// `region`, in the fleet layout only: the source log group's region (contract §6.4).
    pub region: Option<&'a str>,
}

/// Where a payload came from, beyond what its messages say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The region of the source log groups, reported in the events (`Region`, contract §4)
    /// and, in the fleet layout, in keys; `None` when unknown. A log group delivers only to a
    /// destination of its own region, so the receiving stream's or function's region is the
    /// source's as long as the destination and its target share a region (contract §6.4).
    pub region: Option<&'a str>,
}

/// One record's `data` (or an `awslogs` event's) from base64 to an account of every log event:
/// the pure core of both modes. An error means the data cannot be read at all.
pub fn process_data(
    data: &str,
    origin: Origin<'_>,
    options: &ProcessOptions,
) -> Result<Outcome, DecodeError> {
    process_payload(decode_base64(data)?, origin, options)
}

/// [`process_data`] into decode buffers reused across the records of one invocation, so that
/// decoding allocates nothing once they have grown to the largest record. The events count for
/// the correlation rules in `correlations`, the state of the whole invocation.
pub fn process_data_into(
    data: &str,
    origin: Origin<'_>,
    options: &ProcessOptions,
    buffers: &mut DecodeBuffers,
    correlations: Option<&mut Correlations>,
) -> Result<Outcome, DecodeError> {
    let limits = &options.limits;
    let (bytes_in, messages) =
        buffers.decode_messages(data, limits.max_payload_bytes, limits.max_events_per_record)?;
    Ok(process_parsed(
        bytes_in,
        &messages,
        origin,
        options,
        correlations,
    ))
}

/// [`process_data`] after base64: gzip or plain JSON subscription messages. The payload is an
/// invocation of its own for the correlation rules.
pub fn process_payload(
    bytes: Vec<u8>,
    origin: Origin<'_>,
    options: &ProcessOptions,
) -> Result<Outcome, DecodeError> {
    let mut correlations = options.detector.as_ref().and_then(|d| d.correlations());
    process_payload_correlating(bytes, origin, options, correlations.as_mut())
}

/// [`process_payload`], its events counting for the correlation rules in `correlations`.
pub fn process_payload_correlating(
    bytes: Vec<u8>,
    origin: Origin<'_>,
    options: &ProcessOptions,
    correlations: Option<&mut Correlations>,
) -> Result<Outcome, DecodeError> {
    let payload = decompress(bytes, options.limits.max_payload_bytes)?;
    let mut unescaped = Vec::new();
    let max_events = options.limits.max_events_per_record;
    let messages = parse_messages(&payload, &mut unescaped, max_events)?;
    Ok(process_parsed(
        payload.len(),
        &messages,
        origin,
        options,
        correlations,
    ))
}

/// A decoded payload's subscription messages, filtered and normalized; `bytes_in` is the size
/// of the decoded payload.
fn process_parsed(
    bytes_in: usize,
    messages: &[SubscriptionMessage<'_>],
    origin: Origin<'_>,
    options: &ProcessOptions,
    correlations: Option<&mut Correlations>,
) -> Outcome {
    let mut outcome = process_messages_correlating(messages, origin, options, correlations);
    outcome.tally.bytes_in = bytes_in as u64;
    outcome
}

/// Filters and normalizes every log event of `messages`. The messages are an invocation of
/// their own for the correlation rules.
pub fn process_messages(
    messages: &[SubscriptionMessage<'_>],
    origin: Origin<'_>,
    options: &ProcessOptions,
) -> Outcome {
    let mut correlations = options.detector.as_ref().and_then(|d| d.correlations());
    process_messages_correlating(messages, origin, options, correlations.as_mut())
}

/// About the size of the NDJSON of `messages` when every event is kept: each event's text plus
/// the columns, 650 to 980 bytes an event in the bench workloads' records. Growing the buffer
/// as the lines came cost a copy of all of it, a few times over, on megabyte payloads; room
/// reserved and not written is never touched, so it costs no memory.
fn lines_estimate(messages: &[SubscriptionMessage<'_>]) -> usize {
    const COLUMNS: usize = 1024;
    let events = messages.iter().flat_map(|m| &m.log_events);
    events.map(|e| e.message.len() + COLUMNS).sum()
}

/// [`process_messages`], the events counting for the correlation rules in `correlations`.
pub fn process_messages_correlating(
    messages: &[SubscriptionMessage<'_>],
    origin: Origin<'_>,
    options: &ProcessOptions,
    mut correlations: Option<&mut Correlations>,
) -> Outcome {
    let mut outcome = Outcome::default();
    // In the fleet layout every group remembers the source region for its keys.
    let fleet_region = (options.key_layout == KeyLayout::Fleet)
        .then(|| origin.region.unwrap_or_default().to_owned());
    let groups = || Groups {
        fleet_region: fleet_region.clone(),
        ..Groups::default()
    };
    let (mut kept_groups, mut quarantine_groups) = (groups(), groups());
    let mut finding_groups = groups();
    let mut findings = Vec::new();
    outcome.ndjson.reserve(lines_estimate(messages));
    for (index, message) in messages.iter().enumerate() {
        let events = message.log_events.len() as u64;
        outcome.tally.events += events;
        if message.message_type == "CONTROL_MESSAGE" {
            outcome
                .tally
                .dropped
                .add(DropReason::ControlMessage, events);
            continue;
        }
        if !is_audit_stream(&message.log_stream) {
            outcome
                .tally
                .dropped
                .add(DropReason::NotAuditStream, events);
            continue;
        }
        let cluster =
            cluster_from_log_group(&message.log_group).or(options.cluster_override.as_deref());
        for log_event in &message.log_events {
            let context = EventContext {
                account: Some(&message.owner).filter(|o| !o.is_empty()).map(|o| &**o),
                region: origin.region,
                cluster,
                log_group: Some(&message.log_group),
                log_stream: Some(&message.log_stream),
                event_id: Some(log_event.id.as_str()),
                cloudwatch_timestamp: Some(log_event.timestamp),
            };
            let fate = process_event_correlating(
                &log_event.message,
                &context,
                options,
                &mut outcome.ndjson,
                &mut findings,
                correlations.as_deref_mut(),
            );
            if !findings.is_empty() {
                let time = match &fate {
                    EventFate::Kept { time, .. } | EventFate::Salvaged { time, .. } => *time,
                    _ => None,
                }
                .or_else(|| from_epoch_millis(log_event.timestamp));
                let group = finding_groups.group_for(index, message, log_event, cluster, time);
                outcome
                    .findings
                    .extend(findings.drain(..).map(|finding| FindingLine {
                        finding,
                        group,
                        time,
                    }));
            }
            let quarantine = match fate {
                EventFate::Kept { bytes, time } => {
                    let hour = time.or_else(|| from_epoch_millis(log_event.timestamp));
                    let group = kept_groups.group_for(index, message, log_event, cluster, hour);
                    outcome.kept.push(KeptLine {
                        bytes,
                        group,
                        time: hour,
                    });
                    outcome.tally.kept += 1;
                    None
                }
                EventFate::Dropped(reason) => {
                    outcome.tally.dropped.add(reason, 1);
                    None
                }
                EventFate::Quarantined(reason) => Some(reason),
                EventFate::Salvaged {
                    bytes,
                    time,
                    reason,
                } => {
                    let hour = time.or_else(|| from_epoch_millis(log_event.timestamp));
                    let group = kept_groups.group_for(index, message, log_event, cluster, hour);
                    outcome.kept.push(KeptLine {
                        bytes,
                        group,
                        time: hour,
                    });
                    outcome.tally.salvaged += 1;
                    Some(reason)
                }
            };
            if let Some(reason) = quarantine {
                let hour = from_epoch_millis(log_event.timestamp);
                let group = quarantine_groups.group_for(index, message, log_event, cluster, hour);
                let line = quarantine_line(message, log_event, &reason);
                outcome.quarantined.push(QuarantinedEvent {
                    reason,
                    line,
                    group,
                    time: hour,
                });
                outcome.tally.quarantined += 1;
            }
        }
    }
    outcome.kept_groups = kept_groups.list;
    outcome.quarantine_groups = quarantine_groups.list;
    outcome.finding_groups = finding_groups.list;
    outcome
}

/// What became of one audit event.
#[derive(Debug, PartialEq, Eq)]
pub enum EventFate {
    /// Written to the output at `bytes`; `time` is its audit time.
    Kept {
        /// Where its line is in the output.
        bytes: Range<usize>,
        /// Its time (contract §4 `TimeGenerated`); `None` when it has no valid time at all.
        time: Option<OffsetDateTime>,
    },
    /// Filtered out on purpose; nothing was written.
    Dropped(DropReason),
    /// Not a usable audit event, with the reason; nothing was written.
    Quarantined(String),
    /// Cut by CloudWatch Logs, and salvaged ([`crate::salvage`]): what was read before the cut
    /// was written at `bytes`, flagged as truncated, and the original text must still be
    /// quarantined with `reason` (contract §6.2).
    Salvaged {
        /// Where its line is in the output.
        bytes: Range<usize>,
        /// Its time, as for [`EventFate::Kept`], from the fields read before the cut.
        time: Option<OffsetDateTime>,
        /// Why its original text is quarantined.
        reason: String,
    },
}

/// The quarantine reason of every event cut by CloudWatch Logs.
const TRUNCATED: &str = "event was truncated by CloudWatch Logs ([Truncated...])";

/// Parses, filters and normalizes one audit event's text, appending its line to `out`.
pub fn process_event(
    text: &str,
    context: &EventContext<'_>,
    options: &ProcessOptions,
    out: &mut Vec<u8>,
) -> EventFate {
    process_event_detecting(text, context, options, out, &mut Vec::new())
}

/// [`process_event`], also appending to `findings` what the rules of `options.detector` find in
/// the event when the filter keeps it. A rule never changes the event's fate. Correlation rules
/// are not evaluated: see [`process_event_correlating`].
pub fn process_event_detecting(
    text: &str,
    context: &EventContext<'_>,
    options: &ProcessOptions,
    out: &mut Vec<u8>,
    findings: &mut Vec<Finding>,
) -> EventFate {
    process_event_correlating(text, context, options, out, findings, None)
}

/// [`process_event_detecting`], the event also counting for the correlation rules in
/// `correlations`, the state of the invocation it belongs to.
pub fn process_event_correlating(
    text: &str,
    context: &EventContext<'_>,
    options: &ProcessOptions,
    out: &mut Vec<u8>,
    findings: &mut Vec<Finding>,
    correlations: Option<&mut Correlations>,
) -> EventFate {
    if text.len() > options.limits.max_event_bytes {
        return EventFate::Quarantined(format!(
            "event of {} bytes exceeds the {}-byte limit (EKS_AUDIT_MAX_EVENT_BYTES)",
            text.len(),
            options.limits.max_event_bytes
        ));
    }
    if let Some(cut) = salvage::cut_text(text) {
        return process_truncated(text, cut, context, options, out, findings, correlations);
    }
    // strict_json::check then AuditEvent::parse in one pass, the bodies never parsed unless a
    // rule looks into them.
    let event = match single_pass::parse_event(text, options.limits.max_depth) {
        Ok(event) => event,
        Err(reason) => return EventFate::Quarantined(reason),
    };
    if let Err(reason) = options.filter.check(&event) {
        return EventFate::Dropped(reason);
    }
    let raw = match redact::apply(&options.redaction, &event, text) {
        Ok(raw) => raw,
        Err(reason) => return EventFate::Quarantined(reason),
    };
    let time = event_time(&event, context.cloudwatch_timestamp);
    if let Some(detector) = &options.detector {
        findings.extend(detector.findings_correlating(correlations, &event, text, context, time));
    }
    let start = out.len();
    if let Err(unmappable) = schema::write_line(options.format, &event, &raw, time, context, out) {
        return EventFate::Quarantined(unmappable.to_string());
    }
    EventFate::Kept {
        bytes: start..out.len(),
        time,
    }
}

/// An event cut by CloudWatch Logs: its original text is always quarantined, and what was read
/// before the cut is also written, flagged, when the filter keeps it and the cut took nothing
/// the filter, redaction or the format depend on (contract §6.2). When the filter drops it,
/// it is dropped like a whole event, with nothing quarantined.
fn process_truncated(
    text: &str,
    cut: &str,
    context: &EventContext<'_>,
    options: &ProcessOptions,
    out: &mut Vec<u8>,
    findings: &mut Vec<Finding>,
    correlations: Option<&mut Correlations>,
) -> EventFate {
    let unsalvaged =
        |why: &dyn std::fmt::Display| EventFate::Quarantined(format!("{TRUNCATED}; {why}"));
    let Some(salvage) = salvage::read(cut) else {
        return unsalvaged(&"the text before the cut is not the start of a JSON object");
    };
    let members = salvage.json();
    if let Err(rejection) = strict_json::check(members, options.limits.max_depth) {
        return unsalvaged(&rejection);
    }
    let event = match AuditEvent::parse(members) {
        Ok(event) => event,
        Err(e) => return unsalvaged(&e),
    };
    if !salvage.knows("stage") {
        return unsalvaged(&"the cut came before `stage`, so the event cannot be filtered");
    }
    if let Err(reason) = options.filter.check(&event) {
        return EventFate::Dropped(reason);
    }
    if !options.filter.exclude_uris.is_empty() && !salvage.knows("requestURI") {
        return unsalvaged(
            &"the cut came before `requestURI`, so the URI exclusions cannot be applied",
        );
    }
    let object_ref = event.object_ref();
    let rule = options.redaction.rule_for(
        object_ref.and_then(|o| o.resource.as_deref()),
        object_ref.and_then(|o| o.subresource.as_deref()),
    );
    // Without `objectRef`, only a rule for every event (`*`) is sure to cover the bodies.
    if !options.redaction.is_off()
        && rule.is_none()
        && !salvage.knows("objectRef")
        && salvage.holds_body()
    {
        return unsalvaged(
            &"the cut came before `objectRef`, so redaction cannot tell whether the bodies before it are covered",
        );
    }
    let (raw, members) = match rule {
        None => (Cow::Borrowed(text), Cow::Borrowed(members)),
        Some(rule) => match redact::redact_bodies(members, rule) {
            Ok(redacted) => {
                let mut raw = salvage.with_bodies_replaced(&redact::marker(rule));
                raw.push_str(&text[cut.len()..]);
                (Cow::Owned(raw), redacted)
            }
            Err(e) => {
                return unsalvaged(&format_args!(
                    "cannot redact the bodies of the event ({rule}): {e}"
                ));
            }
        },
    };
    let time = event_time(&event, context.cloudwatch_timestamp);
    if let Some(detector) = &options.detector {
        // The members before the cut, unredacted: rules see what the API server logged.
        findings.extend(detector.findings_correlating(
            correlations,
            &event,
            salvage.json(),
            context,
            time,
        ));
    }
    let start = out.len();
    if let Err(unmappable) =
        schema::write_truncated_line(options.format, &event, &raw, &members, time, context, out)
    {
        return unsalvaged(&unmappable);
    }
    EventFate::Salvaged {
        bytes: start..out.len(),
        time,
        reason: format!(
            "{TRUNCATED}; the fields before the cut are also in the output, flagged as truncated"
        ),
    }
}

/// The groups of one kind of outcome, found by (message, UTC hour) in one lookup: events of
/// as many hours as there are events must not cost a scan each.
#[derive(Default)]
struct Groups {
    list: Vec<Group>,
    index: HashMap<(usize, OffsetDateTime), usize>,
    /// [`Group::fleet_region`] of every group.
    fleet_region: Option<String>,
}

impl Groups {
    /// The index of the group the event belongs to, adding it when new.
    fn group_for(
        &mut self,
        message_index: usize,
        message: &SubscriptionMessage<'_>,
        event: &LogEvent<'_>,
        cluster: Option<&str>,
        time: Option<OffsetDateTime>,
    ) -> usize {
        let hour = truncate_to_hour(time.unwrap_or(OffsetDateTime::UNIX_EPOCH));
        let list = &mut self.list;
        let fleet_region = &self.fleet_region;
        *self.index.entry((message_index, hour)).or_insert_with(|| {
            list.push(Group {
                cluster: cluster.map(str::to_owned),
                account: message.owner.to_string(),
                fleet_region: fleet_region.clone(),
                log_stream: message.log_stream.to_string(),
                hour,
                first_event_id: event.id.as_str().to_owned(),
            });
            list.len() - 1
        })
    }
}

fn truncate_to_hour(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(time)
}

fn quarantine_line(
    message: &SubscriptionMessage<'_>,
    event: &LogEvent<'_>,
    reason: &str,
) -> Vec<u8> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Line<'a> {
        reason: &'a str,
        owner: &'a str,
        log_group: &'a str,
        log_stream: &'a str,
        id: &'a str,
        timestamp: i64,
        message: &'a Cow<'a, str>,
    }
    let line = Line {
        reason,
        owner: &message.owner,
        log_group: &message.log_group,
        log_stream: &message.log_stream,
        id: event.id.as_str(),
        timestamp: event.timestamp,
        message: &event.message,
    };
    let mut bytes = serde_json::to_vec(&line).expect("strings and numbers always serialize");
    bytes.push(b'\n');
    bytes
}
