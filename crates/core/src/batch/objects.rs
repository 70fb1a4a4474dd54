//! S3 objects (contract §6): gzip NDJSON under keys that are a pure function of the input, so a
//! retried invocation overwrites its own objects instead of duplicating data.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use time::macros::format_description;

use crate::eks::UNKNOWN_CLUSTER;
use crate::pipeline::{Group, Outcome};

/// `Content-Type` of NDJSON event and quarantine objects.
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// `Content-Encoding` of NDJSON event and quarantine objects: their bodies are gzip.
pub const CONTENT_ENCODING: &str = "gzip";

/// The key segment that sets quarantine objects apart: `<prefix>/quarantine/cluster=...`.
const QUARANTINE: &str = "quarantine/";

/// An object ready to write: its key and gzip-compressed NDJSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The object key, without a bucket: `<prefix>/cluster=…/dt=…/hour=…/<logStream>-<id>.json.gz`
    /// (contract §6.1).
    pub key: String,
    /// The body, ready to store as is.
    pub body: Vec<u8>,
    /// How many events (lines) the body holds.
    pub lines: usize,
}

/// One object per group (subscription message and UTC hour) of kept events.
pub fn event_objects(outcome: &Outcome, prefix: &str) -> Vec<Object> {
    let lines = outcome
        .kept
        .iter()
        .map(|k| (k.group, &outcome.ndjson[k.bytes.clone()]));
    build(&outcome.kept_groups, lines, prefix, "")
}

/// One object per group of quarantined events, under `<prefix>/quarantine/`.
pub fn quarantine_objects(outcome: &Outcome, prefix: &str) -> Vec<Object> {
    let lines = outcome
        .quarantined
        .iter()
        .map(|q| (q.group, q.line.as_slice()));
    build(&outcome.quarantine_groups, lines, prefix, QUARANTINE)
}

/// One object per group. Lines are bucketed by group first, so the cost is linear in lines
/// plus groups (50,000 events in as many hours made a scan per group quadratic).
fn build<'l>(
    groups: &[Group],
    lines: impl Iterator<Item = (usize, &'l [u8])>,
    prefix: &str,
    kind: &str,
) -> Vec<Object> {
    let mut lines_of: Vec<Vec<&[u8]>> = vec![Vec::new(); groups.len()];
    for (group, line) in lines {
        lines_of[group].push(line);
    }
    let keys = distinct_keys(groups.iter().map(|group| object_key(prefix, kind, group)));
    groups
        .iter()
        .zip(lines_of)
        .zip(keys)
        .map(|((_, lines), key)| {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
            for line in &lines {
                encoder
                    .write_all(line)
                    .expect("writing into a Vec cannot fail");
            }
            let body = encoder.finish().expect("writing into a Vec cannot fail");
            Object {
                key,
                body,
                lines: lines.len(),
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

/// `<prefix>/<kind>cluster=<cluster>/dt=<YYYY-MM-DD>/hour=<HH>/<logStream>-<first event id>.json.gz`
pub fn object_key(prefix: &str, kind: &str, group: &Group) -> String {
    let date_hour = group
        .hour
        .format(format_description!("dt=[year]-[month]-[day]/hour=[hour]"))
        .expect("a UTC time between years 0 and 9999 always formats");
    let cluster = group.cluster.as_deref().unwrap_or(UNKNOWN_CLUSTER);
    let slash = if prefix.is_empty() { "" } else { "/" };
    format!(
        "{prefix}{slash}{kind}cluster={}/{date_hour}/{}-{}{EXTENSION}",
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
