//! S3 objects (contract §6): gzip NDJSON under keys that are a pure function of the input, so a
//! retried invocation overwrites its own objects instead of duplicating data.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;
use time::macros::format_description;

use crate::batch::gzip;
use crate::eks::UNKNOWN_CLUSTER;
use crate::pipeline::{Group, Outcome};
use crate::schema::time::rfc3339_utc;

/// `Content-Type` of NDJSON event and quarantine objects.
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// `Content-Encoding` of NDJSON event and quarantine objects: their bodies are gzip.
pub const CONTENT_ENCODING: &str = "gzip";

/// The key segment that sets quarantine objects apart: `<prefix>/quarantine/cluster=...`.
const QUARANTINE: &str = "quarantine/";
/// The key segment that sets findings objects apart: `<prefix>/findings/cluster=...`.
const FINDINGS: &str = "findings/";

/// S3 user metadata (`x-amz-meta-events`) of every object: how many events (lines, or
/// Parquet rows) it holds, in decimal (contract §6).
pub const META_EVENTS: &str = "events";
/// S3 user metadata (`x-amz-meta-first-event-time`): the earliest event time in the object,
/// RFC 3339 UTC with microseconds; absent when no event has a valid time.
pub const META_FIRST_EVENT_TIME: &str = "first-event-time";
/// S3 user metadata (`x-amz-meta-last-event-time`): the latest event time in the object, as
/// [`META_FIRST_EVENT_TIME`].
pub const META_LAST_EVENT_TIME: &str = "last-event-time";

/// An object ready to write: its key, its body, and the account of what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The object key, without a bucket: `<prefix>/cluster=…/dt=…/hour=…/<logStream>-<id>.json.gz`
    /// (contract §6.1).
    pub key: String,
    /// The body, ready to store as is.
    pub body: Vec<u8>,
    /// How many events (lines) the body holds.
    pub lines: usize,
    /// The earliest event time among them: each kept event's time as its key's hour is taken
    /// (contract §6.1), or each quarantined event's CloudWatch timestamp; `None` when none has a
    /// valid time.
    pub first_event_time: Option<OffsetDateTime>,
    /// The latest event time among them, as [`first_event_time`](Self::first_event_time).
    pub last_event_time: Option<OffsetDateTime>,
}

impl Object {
    /// The object's user metadata, name and value, for S3 (`x-amz-meta-<name>`): the event
    /// count always, the first and last event times when known.
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        let mut metadata = vec![(META_EVENTS, self.lines.to_string())];
        if let Some(first) = self.first_event_time {
            metadata.push((META_FIRST_EVENT_TIME, rfc3339_utc(first)));
        }
        if let Some(last) = self.last_event_time {
            metadata.push((META_LAST_EVENT_TIME, rfc3339_utc(last)));
        }
        metadata
    }
}

/// The earliest and latest of `times`, ignoring `None`s.
pub fn time_span(
    times: impl IntoIterator<Item = Option<OffsetDateTime>>,
) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
    times
        .into_iter()
        .flatten()
        .fold((None, None), |(first, last), time| {
            (
                Some(first.map_or(time, |f: OffsetDateTime| f.min(time))),
                Some(last.map_or(time, |l: OffsetDateTime| l.max(time))),
            )
        })
}

/// One object per group (subscription message and UTC hour) of kept events.
pub fn event_objects(outcome: &Outcome, prefix: &str) -> Vec<Object> {
    let lines = outcome
        .kept
        .iter()
        .map(|k| (k.group, &outcome.ndjson[k.bytes.clone()], k.time));
    build(&outcome.kept_groups, lines, prefix, "")
}

/// One object per group of quarantined events, under `<prefix>/quarantine/`.
pub fn quarantine_objects(outcome: &Outcome, prefix: &str) -> Vec<Object> {
    let lines = outcome
        .quarantined
        .iter()
        .map(|q| (q.group, q.line.as_slice(), q.time));
    build(&outcome.quarantine_groups, lines, prefix, QUARANTINE)
}

/// One object per group of findings (contract §12), under `<prefix>/findings/`: gzip NDJSON of
/// OCSF Detection Findings, keyed like the events they came from, so a retry overwrites them.
pub fn finding_objects(outcome: &Outcome, prefix: &str) -> Vec<Object> {
    let lines = outcome
        .findings
        .iter()
        .map(|f| (f.group, f.finding.line.as_slice(), f.time));
    // A few findings per object: a reused level-1 state, set up once per thread.
    build_with(
        &outcome.finding_groups,
        lines,
        prefix,
        FINDINGS,
        gzip::gzip_small,
    )
}

/// One object per group. Lines are bucketed by group first, so the cost is linear in lines
/// plus groups (50,000 events in as many hours made a scan per group quadratic).
fn build<'l>(
    groups: &[Group],
    lines: impl Iterator<Item = (usize, &'l [u8], Option<OffsetDateTime>)>,
    prefix: &str,
    kind: &str,
) -> Vec<Object> {
    build_with(groups, lines, prefix, kind, gzip::gzip)
}

/// [`build`] with the given gzip of a body's lines.
fn build_with<'l>(
    groups: &[Group],
    lines: impl Iterator<Item = (usize, &'l [u8], Option<OffsetDateTime>)>,
    prefix: &str,
    kind: &str,
    gzip: fn(&[&[u8]]) -> Vec<u8>,
) -> Vec<Object> {
    let mut lines_of: Vec<Vec<&[u8]>> = vec![Vec::new(); groups.len()];
    let mut times_of: Vec<Vec<Option<OffsetDateTime>>> = vec![Vec::new(); groups.len()];
    for (group, line, time) in lines {
        lines_of[group].push(line);
        times_of[group].push(time);
    }
    let keys = distinct_keys(groups.iter().map(|group| object_key(prefix, kind, group)));
    groups
        .iter()
        .zip(lines_of)
        .zip(times_of)
        .zip(keys)
        .map(|(((_, lines), times), key)| {
            let body = gzip(&lines);
            let (first_event_time, last_event_time) = time_span(times);
            Object {
                key,
                body,
                lines: lines.len(),
                first_event_time,
                last_event_time,
            }
        })
        .collect()
}

/// `keys` made distinct: a key already taken gets `-2`, `-3`, ... before `.json.gz`, in group
/// order, so a retry names every object the same way again. Two groups share a key only when
/// one payload holds two messages of the same log stream whose first events share an id and
/// an hour: nothing CloudWatch sends, but nothing a hostile payload may use to overwrite.
fn distinct_keys(keys: impl Iterator<Item = String>) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::new();
    // The next suffix to try per key, so k groups of one key cost k tries, not k².
    let mut next_suffix: HashMap<String, usize> = HashMap::new();
    keys.map(|key| {
        let mut candidate = key.clone();
        if taken.contains(&candidate) {
            let stem = key.strip_suffix(EXTENSION).unwrap_or(&key);
            let n = next_suffix.entry(key.clone()).or_insert(2);
            loop {
                candidate = format!("{stem}-{n}{EXTENSION}");
                *n += 1;
                if !taken.contains(&candidate) {
                    break;
                }
            }
        }
        taken.insert(candidate.clone());
        candidate
    })
    .collect()
}

/// The extension of every NDJSON object.
const EXTENSION: &str = ".json.gz";

/// `<prefix>/<kind>cluster=<cluster>/dt=<YYYY-MM-DD>/hour=<HH>/<logStream>-<first event id>.json.gz`,
/// with `account=<account>/region=<region>/` after the cluster in the fleet layout (contract
/// §6.4): `cluster=` stays first so that notification filters and collectors read both layouts.
pub fn object_key(prefix: &str, kind: &str, group: &Group) -> String {
    let date_hour = group
        .hour
        .format(format_description!("dt=[year]-[month]-[day]/hour=[hour]"))
        .expect("a UTC time between years 0 and 9999 always formats");
    let cluster = group.cluster.as_deref().unwrap_or(UNKNOWN_CLUSTER);
    let slash = if prefix.is_empty() { "" } else { "/" };
    let source = group
        .fleet_region
        .as_deref()
        .map(|region| {
            let known = |part: &str| {
                key_safe(
                    Some(part)
                        .filter(|p| !p.is_empty())
                        .unwrap_or(UNKNOWN_CLUSTER),
                )
            };
            format!(
                "account={}/region={}/",
                known(&group.account),
                known(region)
            )
        })
        .unwrap_or_default();
    format!(
        "{prefix}{slash}{kind}cluster={}/{source}{date_hour}/{}-{}{EXTENSION}",
        key_safe(cluster),
        key_safe(&group.log_stream),
        key_safe(&group.first_event_id)
    )
}

/// Whether `key` names a quarantine object (messages that are not audit events) rather than
/// normalized events, whatever the prefix.
pub fn is_quarantine_key(key: &str) -> bool {
    let marker = format!("{QUARANTINE}cluster=");
    key.starts_with(&marker) || key.contains(&format!("/{marker}"))
}

/// Whether `key` names a findings object rather than normalized events, whatever the prefix.
pub fn is_findings_key(key: &str) -> bool {
    let marker = format!("{FINDINGS}cluster=");
    key.starts_with(&marker) || key.contains(&format!("/{marker}"))
}

/// A name made safe for one key segment, one to one: ASCII letters, digits and `-_.=` stay,
/// every other byte becomes `!` and two hex digits (`!` itself too), so two different names
/// never share a key (`a b` is `a!20b`, `a_b` stays `a_b`) and no segment is `.` or `..`.
/// EKS cluster and log stream names, and CloudWatch event ids, need no escape.
pub(crate) fn key_safe(part: &str) -> String {
    let mut safe = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.=".contains(&byte) {
            safe.push(char::from(byte));
        } else {
            safe.push_str(&format!("!{byte:02X}"));
        }
    }
    if safe == "." || safe == ".." {
        return safe.replace('.', "!2E");
    }
    safe
}

/// Decompresses an object body written by [`event_objects`], for collectors and tests.
pub fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Origin, process_payload};
    use crate::{Format, ProcessOptions};

    /// Three kept events in two hours, given out of time order, a RequestReceived event the
    /// default filter drops, and two messages that are not JSON (quarantined by their
    /// CloudWatch timestamps).
    fn outcome(format: Format) -> Outcome {
        let event = |stage: &str, time: &str| {
            serde_json::json!({"kind":"Event","auditID":time,"stage":stage,"verb":"get",
                "requestURI":"/api/v1/pods","user":{"username":"u"},"sourceIPs":["10.0.0.1"],
                "requestReceivedTimestamp":time,"stageTimestamp":time})
            .to_string()
        };
        // 1716285600000 ms is 2024-05-21T10:00:00Z.
        let message = serde_json::json!({
            "messageType":"DATA_MESSAGE","owner":"111122223333",
            "logGroup":"/aws/eks/prod/cluster","logStream":"kube-apiserver-audit-1",
            "subscriptionFilters":[],
            "logEvents":[
                {"id":"1","timestamp":1_716_285_600_000_i64,"message":event("ResponseComplete","2024-05-21T10:05:00.000001Z")},
                {"id":"2","timestamp":1_716_285_600_000_i64,"message":event("ResponseComplete","2024-05-21T10:01:00Z")},
                {"id":"3","timestamp":1_716_285_600_000_i64,"message":event("RequestReceived","2024-05-21T09:00:00Z")},
                {"id":"4","timestamp":1_716_285_600_000_i64,"message":event("ResponseComplete","2024-05-21T11:30:00Z")},
                {"id":"5","timestamp":1_716_285_660_000_i64,"message":"not json"},
                {"id":"6","timestamp":1_716_285_600_500_i64,"message":"{"},
            ]
        });
        let options = ProcessOptions {
            format,
            ..ProcessOptions::default()
        };
        process_payload(
            message.to_string().into_bytes(),
            Origin::default(),
            &options,
        )
        .unwrap()
    }

    fn metadata(object: &Object) -> Vec<(&'static str, String)> {
        object.metadata()
    }

    #[test]
    fn objects_carry_their_event_count_and_first_and_last_event_time() {
        for format in Format::ALL {
            let outcome = outcome(format);
            let events = event_objects(&outcome, "p");
            let found: Vec<_> = events.iter().map(metadata).collect();
            assert_eq!(
                found,
                [
                    vec![
                        (META_EVENTS, "2".to_owned()),
                        (
                            META_FIRST_EVENT_TIME,
                            "2024-05-21T10:01:00.000000Z".to_owned()
                        ),
                        (
                            META_LAST_EVENT_TIME,
                            "2024-05-21T10:05:00.000001Z".to_owned()
                        ),
                    ],
                    vec![
                        (META_EVENTS, "1".to_owned()),
                        (
                            META_FIRST_EVENT_TIME,
                            "2024-05-21T11:30:00.000000Z".to_owned()
                        ),
                        (
                            META_LAST_EVENT_TIME,
                            "2024-05-21T11:30:00.000000Z".to_owned()
                        ),
                    ],
                ],
                "{format:?}"
            );
            let quarantine = quarantine_objects(&outcome, "p");
            assert_eq!(
                quarantine.iter().map(metadata).collect::<Vec<_>>(),
                [vec![
                    (META_EVENTS, "2".to_owned()),
                    (
                        META_FIRST_EVENT_TIME,
                        "2024-05-21T10:00:00.500000Z".to_owned()
                    ),
                    (
                        META_LAST_EVENT_TIME,
                        "2024-05-21T10:01:00.000000Z".to_owned()
                    ),
                ]],
                "{format:?}: CloudWatch timestamps, milliseconds"
            );
        }
    }

    #[test]
    fn events_without_any_valid_time_leave_the_times_out() {
        let object = Object {
            key: "k".to_owned(),
            body: Vec::new(),
            lines: 3,
            first_event_time: None,
            last_event_time: None,
        };
        assert_eq!(object.metadata(), [(META_EVENTS, "3".to_owned())]);
        assert_eq!(time_span([None, None]), (None, None));
    }

    #[test]
    fn quarantine_keys_are_told_apart_whatever_the_prefix() {
        assert!(is_quarantine_key(
            "eks-audit/quarantine/cluster=prod/dt=2024-05-21/hour=15/s-1.json.gz"
        ));
        assert!(is_quarantine_key(
            "quarantine/cluster=prod/dt=2024-05-21/hour=15/s-1.json.gz"
        ));
        assert!(!is_quarantine_key(
            "eks-audit/cluster=prod/dt=2024-05-21/hour=15/s-1.json.gz"
        ));
        // A prefix or cluster named "quarantine" does not make events quarantine.
        assert!(!is_quarantine_key(
            "quarantine-x/cluster=prod/dt=2024-05-21/hour=15/s-1.json.gz"
        ));
        assert!(!is_quarantine_key(
            "eks-audit/cluster=quarantine/dt=2024-05-21/hour=15/s-1.json.gz"
        ));
    }
}
