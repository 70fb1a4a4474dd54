//! The collector's bounded memories of what it has written: objects (bucket, key, ETag), so
//! that a notification repeated for the same object writes it once, and, with `--dedup`, audit
//! event ids, so that an event written twice upstream (re-ingestion is at least once) is
//! written once. Both hold fixed-size 128-bit fingerprints, never the strings themselves, and
//! forget the oldest first once full.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};

use serde::Deserialize;

/// Objects remembered by (bucket, key, ETag): a notification naming one of the last this many
/// objects written is skipped. About 5 MB.
pub const SEEN_OBJECTS: usize = 100_000;

/// Audit event ids (with their stage) remembered by `--dedup`: an event repeating one of the
/// last this many written is dropped. About 52 MB (16 bytes a fingerprint, in a hash set and
/// in a queue of their order).
pub const DEDUP_WINDOW: usize = 1_000_000;

/// The last `capacity` distinct fingerprints inserted.
#[derive(Debug)]
pub(crate) struct Window {
    capacity: usize,
    set: HashSet<u128>,
    order: VecDeque<u128>,
}

impl Window {
    pub(crate) fn new(capacity: usize) -> Window {
        Window {
            capacity: capacity.max(1),
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn contains(&self, fingerprint: u128) -> bool {
        self.set.contains(&fingerprint)
    }

    /// Remembers `fingerprint`, forgetting the oldest when full; false when it was already
    /// there.
    pub(crate) fn insert(&mut self, fingerprint: u128) -> bool {
        if !self.set.insert(fingerprint) {
            return false;
        }
        self.order.push_back(fingerprint);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        true
    }
}

/// The id and stage of an audit event line in any of the forwarder's formats: flat
/// (`AuditId`, `Stage`), OCSF (`metadata.uid`, `message`) or the API server's own (`auditID`,
/// `stage`). `None` for a line that has no id: such a line is never dropped.
pub(crate) fn event_id(line: &[u8]) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Metadata<'a> {
        #[serde(borrow)]
        uid: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Ids<'a> {
        #[serde(rename = "AuditId", borrow)]
        flat_id: Option<Cow<'a, str>>,
        #[serde(rename = "Stage", borrow)]
        flat_stage: Option<Cow<'a, str>>,
        #[serde(borrow)]
        metadata: Option<Metadata<'a>>,
        #[serde(borrow)]
        message: Option<Cow<'a, str>>,
        #[serde(rename = "auditID", borrow)]
        audit_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        stage: Option<Cow<'a, str>>,
    }
    let ids: Ids = serde_json::from_slice(line).ok()?;
    let stage = |s: Option<Cow<str>>| s.map(Cow::into_owned).unwrap_or_default();
    let ocsf_uid = ids.metadata.and_then(|m| m.uid);
    let (id, stage) = match (ids.flat_id, ocsf_uid, ids.audit_id) {
        (Some(id), _, _) => (id, stage(ids.flat_stage)),
        (None, Some(id), _) => (id, stage(ids.message)),
        (None, None, Some(id)) => (id, stage(ids.stage)),
        (None, None, None) => return None,
    };
    (!id.is_empty()).then(|| (id.into_owned(), stage))
}

/// Keeps the lines of `ndjson` (each ending in `\n`) for which `keep` is true, in place;
/// returns how many were dropped.
pub(crate) fn retain_lines(ndjson: &mut Vec<u8>, mut keep: impl FnMut(&[u8]) -> bool) -> u64 {
    let (mut read, mut write, mut dropped) = (0, 0, 0);
    while read < ndjson.len() {
        let end = ndjson[read..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(ndjson.len(), |p| read + p + 1);
        if keep(&ndjson[read..end]) {
            ndjson.copy_within(read..end, write);
            write += end - read;
        } else {
            dropped += 1;
        }
        read = end;
    }
    ndjson.truncate(write);
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_forgets_the_oldest_first() {
        let mut window = Window::new(2);
        assert!(window.insert(1));
        assert!(window.insert(2));
        assert!(!window.insert(1));
        assert!(window.insert(3));
        assert!(!window.contains(1), "the oldest is forgotten");
        assert!(window.contains(2) && window.contains(3));
        assert!(window.insert(1));
    }

    #[test]
    fn event_ids_are_read_in_every_format() {
        let id = |line: &str| event_id(line.as_bytes());
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(
            id(
                r#"{"Verb":"get","Stage":"ResponseComplete","RawEvent":{"auditID":"raw","stage":"x"},"AuditId":"a1"}"#
            ),
            pair("a1", "ResponseComplete")
        );
        assert_eq!(
            id(
                r#"{"metadata":{"version":"1.1.0","uid":"a2"},"message":"ResponseStarted","api":{"request":{"uid":"a2"}}}"#
            ),
            pair("a2", "ResponseStarted")
        );
        assert_eq!(
            id(r#"{"kind":"Event","auditID":"a\u0033","stage":"Panic"}"#),
            pair("a3", "Panic")
        );
        assert_eq!(id(r#"{"AuditId":"a4"}"#), pair("a4", ""));
        assert_eq!(id(r#"{"Verb":"get"}"#), None);
        assert_eq!(id(r#"{"AuditId":""}"#), None);
        assert_eq!(id(r#"{"AuditId":5}"#), None);
    }

    #[test]
    fn lines_are_retained_in_place() {
        let mut ndjson = b"{\"a\":1}\n{\"b\":2}\n{\"a\":3}\n".to_vec();
        let dropped = retain_lines(&mut ndjson, |line| !line.starts_with(b"{\"a\""));
        assert_eq!((ndjson.as_slice(), dropped), (&b"{\"b\":2}\n"[..], 2));
        let mut empty = Vec::new();
        assert_eq!(retain_lines(&mut empty, |_| false), 0);
    }
}
