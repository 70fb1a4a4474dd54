//! Firehose re-ingestion, the pure part (contract §2): which records leave an oversized response,
//! and the `PutRecordBatch` records and batches that carry them back into the delivery stream.
//! The call itself is the shell's (`eks_audit_forwarder::sink::firehose`).
//!
//! A transformation Lambda's response must stay under 6,000,000 bytes, but audit JSON inflates
//! 4–10x out of gzip, so a full Firehose batch can transform into far more. What fits stays in
//! the response, in input order. Every other `Ok` record goes back into the stream as its
//! **original** payload (a gzip subscription message), so the next pass transforms it like any
//! other record, and its response entry becomes `Dropped`: its data lives on in the stream.
//!
//! A payload bigger than Firehose's 1,000 KiB record limit, or whose transformed output could
//! never fit in a response on its own, is split into several subscription messages by halving
//! its `logEvents` until each half fits. One event that does not fit alone cannot be split: its
//! record becomes `ProcessingFailed` with its original data, so Firehose writes it to the error
//! output. Every piece is strictly smaller than what it came from, so nothing loops.
//!
//! Firehose limits: <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>,
//! Lambda's: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>.

use std::io::Write;
use std::ops::Range;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::value::RawValue;

use crate::batch::firehose::RecordFate;
use crate::envelope::models::{FirehoseRecord, FirehoseResponseRecord, FirehoseResult, LogEvent};
use crate::envelope::{GZIP_MAGIC, decode_base64, decompress, parse_messages};
use crate::options::ProcessOptions;
use crate::pipeline::{Origin, process_data, process_messages};

/// The bounds re-ingestion works within; [`FirehoseLimits::default`] is what AWS enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirehoseLimits {
    /// Largest response the Lambda returns (contract §2; Lambda's own cap is 6 MiB).
    pub max_response_bytes: usize,
    /// Largest record `PutRecordBatch` accepts, before base64 (1,000 KiB).
    pub max_record_bytes: usize,
    /// Most records in one `PutRecordBatch` call.
    pub max_batch_records: usize,
    /// Most bytes of record data in one `PutRecordBatch` call (4 MiB).
    pub max_batch_bytes: usize,
    /// Largest response entry a re-ingested piece may transform into: half a response, so the
    /// piece fits the next pass next to other records instead of being re-ingested forever.
    pub max_piece_entry_bytes: usize,
}

impl Default for FirehoseLimits {
    fn default() -> Self {
        FirehoseLimits {
            max_response_bytes: 6_000_000,
            max_record_bytes: 1_000 * 1024,
            max_batch_records: 500,
            max_batch_bytes: 4 * 1024 * 1024,
            max_piece_entry_bytes: 3_000_000,
        }
    }
}

/// What to do so the response fits.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indices of the records whose payloads are re-ingested, ascending. Their response
    /// entries are now `Dropped`.
    pub reingested: Vec<usize>,
    /// Records that cannot be re-ingested (one event too large alone), with the reason. Their
    /// entries are now `ProcessingFailed` with the original data.
    pub failed: Vec<(usize, String)>,
    /// The `PutRecordBatch` record data: gzip subscription messages, each within
    /// [`FirehoseLimits::max_record_bytes`], in record order.
    pub payloads: Vec<Vec<u8>>,
}

impl Plan {
    /// Whether the plan changes nothing (the response fitted): nothing re-ingested, nothing failed.
    pub fn is_empty(&self) -> bool {
        self.reingested.is_empty() && self.failed.is_empty()
    }
}

/// Even with every `Ok` record taken out, the entries that must stay (failed records carry
/// their original data) do not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Firehose response needs {bytes} bytes even with every Ok record re-ingested, over the {limit}-byte limit"
)]
pub struct ResponseTooLarge {
    /// The serialized size of the entries that must stay, in bytes.
    pub bytes: usize,
    /// The limit they exceed, [`FirehoseLimits::max_response_bytes`].
    pub limit: usize,
}

/// `{"records":[` and `]}` around the entries.
const RESPONSE_WRAPPER_BYTES: usize = r#"{"records":[]}"#.len();

/// Room for an `Ok` entry's record id, result and partition keys next to its data.
const ENTRY_OVERHEAD_BYTES: usize = 1024;

/// The size of `entries` serialized as the response, exactly as `serde_json` writes it.
pub fn response_size(entries: &[FirehoseResponseRecord]) -> usize {
    sum_with_wrapper(entries.iter().map(entry_size))
}

/// The size of a response whose entries have `sizes`.
pub(crate) fn response_size_of(sizes: impl ExactSizeIterator<Item = usize>) -> usize {
    sum_with_wrapper(sizes)
}

fn sum_with_wrapper(sizes: impl ExactSizeIterator<Item = usize>) -> usize {
    let commas = sizes.len().saturating_sub(1);
    RESPONSE_WRAPPER_BYTES + commas + sizes.sum::<usize>()
}

/// The serialized size of one response entry, counted without building the text. The data of
/// an `Ok` entry is base64, which JSON writes as is, so it adds exactly its length; only a
/// `ProcessingFailed` entry's original data, which may hold anything, is counted by writing it.
pub fn entry_size(entry: &FirehoseResponseRecord) -> usize {
    match entry.result {
        FirehoseResult::Ok | FirehoseResult::Dropped if !entry.data.is_empty() => {
            debug_assert!(
                entry
                    .data
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
                "Ok data is base64"
            );
            let without_data = FirehoseResponseRecord {
                record_id: entry.record_id.clone(),
                result: entry.result,
                data: String::new(),
                metadata: entry.metadata.clone(),
            };
            written_size(&without_data) + entry.data.len()
        }
        _ => written_size(entry),
    }
}

fn written_size(entry: &FirehoseResponseRecord) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, entry).expect("strings and maps always serialize");
    count.0
}

/// Decides which `Ok` entries stay in the response and re-plans the others as re-ingested
/// payloads, rewriting their `entries` (`Dropped`, or `ProcessingFailed` when they cannot be
/// split small enough). `entries[i]` answers `records[i]`. Does nothing when the response fits.
/// `shed` lists the `Ok` entries built without their data, with their full size
/// ([`firehose::process_records_for_response`](crate::batch::firehose::process_records_for_response)):
/// they are planned at that size, and one that stays after all (a later record failed, so
/// entries before it went out instead) is built again whole.
pub fn plan(
    records: &[FirehoseRecord<'_>],
    entries: &mut [FirehoseResponseRecord],
    shed: &[(usize, usize)],
    origin: Origin<'_>,
    options: &ProcessOptions,
    limits: &FirehoseLimits,
) -> Result<Plan, ResponseTooLarge> {
    let mut sizes: Vec<usize> = entries.iter().map(entry_size).collect();
    for &(index, size) in shed {
        sizes[index] = size;
    }
    let mut plan = Plan::default();
    if sum_with_wrapper(sizes.iter().copied()) <= limits.max_response_bytes && shed.is_empty() {
        return Ok(plan);
    }
    // Measuring a piece's output needs no rules: its findings come when the piece returns.
    let options = &ProcessOptions {
        detector: None,
        ..options.clone()
    };
    let dropped_sizes: Vec<usize> = records
        .iter()
        .map(|record| entry_size(&RecordFate::Dropped.into_response(record)))
        .collect();
    // Each round keeps, in input order, the `Ok` entries that fit next to every entry that must
    // stay. A record that cannot be split becomes `ProcessingFailed`, which takes room and may
    // push out more, hence the rounds; each takes at least one `Ok` entry out, so they end.
    loop {
        let is_ok = |i: usize| entries[i].result == FirehoseResult::Ok;
        let floor = sum_with_wrapper(
            (0..entries.len()).map(|i| if is_ok(i) { dropped_sizes[i] } else { sizes[i] }),
        );
        if floor > limits.max_response_bytes {
            return Err(ResponseTooLarge {
                bytes: floor,
                limit: limits.max_response_bytes,
            });
        }
        let mut room = limits.max_response_bytes - floor;
        let mut evict = Vec::new();
        for i in (0..entries.len()).filter(|&i| is_ok(i)) {
            let extra = sizes[i] - dropped_sizes[i];
            if extra <= room {
                room -= extra;
            } else {
                evict.push(i);
            }
        }
        if evict.is_empty() {
            break;
        }
        for i in evict {
            let record = &records[i];
            let fate = match payloads_of(record, sizes[i], origin, options, limits) {
                Ok(payloads) => {
                    plan.payloads.extend(payloads);
                    plan.reingested.push(i);
                    RecordFate::Dropped
                }
                Err(reason) => {
                    plan.failed.push((i, reason.clone()));
                    RecordFate::Failed(reason)
                }
            };
            entries[i] = fate.into_response(record);
            sizes[i] = entry_size(&entries[i]);
        }
    }
    for &(index, _) in shed {
        if entries[index].result == FirehoseResult::Ok {
            entries[index] = rebuilt(&records[index], origin, options);
        }
    }
    plan.reingested.sort_unstable();
    plan.failed.sort_unstable();
    Ok(plan)
}

/// The whole entry of a shed `Ok` record, processed again: the same bytes as the first time,
/// since processing is a function of the record and the options (rules, which add findings
/// but no line, are off here).
fn rebuilt(
    record: &FirehoseRecord<'_>,
    origin: Origin<'_>,
    options: &ProcessOptions,
) -> FirehoseResponseRecord {
    let fate = match process_data(&record.data, origin, options) {
        // It was `Ok` the first time, so any quarantined event had a place to go.
        Ok(outcome) => RecordFate::of(outcome, true),
        Err(e) => RecordFate::Failed(e.to_string()),
    };
    fate.into_response(record)
}

/// The payloads that carry `record` back into the stream: its own bytes when they are gzip
/// within the record limit and its output could fit a response alone, else its messages split
/// by halving their events. `entry_bytes` is the size of the record's `Ok` response entry.
fn payloads_of(
    record: &FirehoseRecord<'_>,
    entry_bytes: usize,
    origin: Origin<'_>,
    options: &ProcessOptions,
    limits: &FirehoseLimits,
) -> Result<Vec<Vec<u8>>, String> {
    let raw = decode_base64(&record.data).map_err(|e| e.to_string())?;
    // A record whose output fits half a response passes that on to each of its parts; only
    // bigger ones need every piece measured by transforming it.
    let measure_output = entry_bytes > limits.max_piece_entry_bytes;
    if !measure_output && raw.starts_with(&GZIP_MAGIC) && raw.len() <= limits.max_record_bytes {
        return Ok(vec![raw]);
    }
    let json = decompress(raw, options.limits.max_payload_bytes).map_err(|e| e.to_string())?;
    let splitter = Splitter {
        measure_output,
        origin,
        options,
        limits,
    };
    let mut payloads = Vec::new();
    for message in serde_json::Deserializer::from_slice(&json).into_iter::<MessageFields>() {
        let message =
            message.map_err(|e| format!("cannot split the record's subscription message: {e}"))?;
        let events = log_events(&message)
            .map_err(|e| format!("cannot split the record's logEvents: {e}"))?;
        splitter.split(&message, &events, &mut payloads)?;
    }
    Ok(payloads)
}

/// A subscription message's fields, kept as their original JSON text.
type MessageFields<'a> = std::collections::BTreeMap<String, &'a RawValue>;

fn log_events<'a>(message: &MessageFields<'a>) -> serde_json::Result<Vec<&'a RawValue>> {
    serde_json::from_str(
        message
            .get("logEvents")
            .map_or("null", |events| events.get()),
    )
}

struct Splitter<'s> {
    measure_output: bool,
    origin: Origin<'s>,
    options: &'s ProcessOptions,
    limits: &'s FirehoseLimits,
}

impl Splitter<'_> {
    /// Appends `message` restricted to `events`, gzip, when it fits; else its two halves.
    fn split(
        &self,
        message: &MessageFields<'_>,
        events: &[&RawValue],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), String> {
        let json = message_json(message, events);
        let gzip = gzip(&json);
        let output = if self.measure_output {
            self.entry_bytes(&json)?
        } else {
            0
        };
        if gzip.len() <= self.limits.max_record_bytes && output <= self.limits.max_piece_entry_bytes
        {
            out.push(gzip);
            return Ok(());
        }
        if events.len() < 2 {
            let id = events
                .first()
                .and_then(|e| serde_json::from_str::<LogEvent>(e.get()).ok())
                .map_or_else(String::new, |e| format!(" {}", e.id.as_str()));
            return Err(format!(
                "log event{id} is too large to re-ingest alone: {} bytes of gzip (limit {}), {output} bytes of transformed response entry (limit {})",
                gzip.len(),
                self.limits.max_record_bytes,
                self.limits.max_piece_entry_bytes
            ));
        }
        let (first, second) = events.split_at(events.len() / 2);
        self.split(message, first, out)?;
        self.split(message, second, out)
    }

    /// The size of the `Ok` response entry the next pass would make of `json`.
    fn entry_bytes(&self, json: &[u8]) -> Result<usize, String> {
        let mut unescaped = Vec::new();
        let max_events = self.options.limits.max_events_per_record;
        let messages =
            parse_messages(json, &mut unescaped, max_events).map_err(|e| e.to_string())?;
        let ndjson = process_messages(&messages, self.origin, self.options)
            .ndjson
            .len();
        Ok(ndjson.div_ceil(3) * 4 + ENTRY_OVERHEAD_BYTES)
    }
}

/// `message` with its `logEvents` replaced by `events`; every other field as it came.
fn message_json(message: &MessageFields<'_>, events: &[&RawValue]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.iter().map(|e| e.get().len() + 1).sum::<usize>() + 256);
    out.push(b'{');
    for (name, value) in message
        .iter()
        .filter(|(name, _)| name.as_str() != "logEvents")
    {
        serde_json::to_writer(&mut out, name).expect("a string always serializes");
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(br#""logEvents":["#);
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(event.get().as_bytes());
    }
    out.extend_from_slice(b"]}");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder
        .write_all(bytes)
        .expect("writing into a Vec cannot fail");
    encoder.finish().expect("writing into a Vec cannot fail")
}

/// Consecutive runs of `payloads` for one `PutRecordBatch` call each: at most
/// [`FirehoseLimits::max_batch_records`] records and [`FirehoseLimits::max_batch_bytes`] bytes.
pub fn batches(payloads: &[Vec<u8>], limits: &FirehoseLimits) -> Vec<Range<usize>> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, payload) in payloads.iter().enumerate() {
        let full =
            i - start == limits.max_batch_records || bytes + payload.len() > limits.max_batch_bytes;
        if full && i > start {
            batches.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += payload.len();
    }
    if start < payloads.len() {
        batches.push(start..payloads.len());
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::models::IncomingEvent;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    /// [`plan`] for records processed without shedding, from the default origin.
    fn plan_unshed(
        records: &[FirehoseRecord<'_>],
        entries: &mut [FirehoseResponseRecord],
        options: &ProcessOptions,
        limits: &FirehoseLimits,
    ) -> Result<Plan, ResponseTooLarge> {
        plan(records, entries, &[], Origin::default(), options, limits)
    }

    /// A realistic audit event: a `get` of a named pod, varying by `i`.
    fn audit_event(i: usize, padding: usize) -> String {
        json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": format!("4f0a2c1e-0000-4000-8000-{i:012}"), "stage": "ResponseComplete",
            "requestURI": format!("/api/v1/namespaces/team-{}/pods/web-{i}", i % 7),
            "verb": "get", "user": {"username": format!("system:serviceaccount:team-{}:deployer", i % 7)},
            "sourceIPs": [format!("10.0.{}.{}", i % 250, i % 200)], "userAgent": "kubectl/v1.29.3",
            "objectRef": {"resource": "pods", "namespace": format!("team-{}", i % 7), "name": format!("web-{i}"), "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": "2024-05-21T10:00:00.000000Z", "stageTimestamp": "2024-05-21T10:00:00.004000Z",
            "annotations": {"authorization.k8s.io/decision": "allow", "note": letters(i as u64, padding)}
        })
        .to_string()
    }

    /// `count` pseudo-random letters: text that gzip cannot shrink much, like real names and ids.
    fn letters(seed: u64, count: usize) -> String {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..count)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                char::from(b'a' + ((x >> 33) % 26) as u8)
            })
            .collect()
    }

    fn message(first: usize, count: usize, padding: usize) -> serde_json::Value {
        let events: Vec<_> = (first..first + count)
            .map(|i| json!({"id": format!("{i:056}"), "timestamp": 1_716_285_600_000_i64, "message": audit_event(i, padding)}))
            .collect();
        json!({"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "/aws/eks/prod-east/cluster",
               "logStream": "kube-apiserver-audit-0123", "subscriptionFilters": ["eks-audit"], "logEvents": events})
    }

    fn event_json(datas: &[String]) -> String {
        let records: Vec<_> = datas
            .iter()
            .enumerate()
            .map(|(i, d)| json!({"recordId": format!("r{i}"), "data": d}))
            .collect();
        json!({"records": records}).to_string()
    }

    fn ok_entry(record: &FirehoseRecord<'_>, ndjson_bytes: usize) -> FirehoseResponseRecord {
        RecordFate::Ok {
            ndjson: vec![b'x'; ndjson_bytes],
            cluster: "prod-east".into(),
            account: "111122223333".into(),
            region: None,
        }
        .into_response(record)
    }

    /// The event ids in gzip payloads, in order.
    fn ids_in(payloads: &[Vec<u8>]) -> Vec<String> {
        payloads
            .iter()
            .flat_map(|p| {
                let json = decompress(p.clone(), 1 << 30).unwrap();
                let mut unescaped = Vec::new();
                let messages = parse_messages(&json, &mut unescaped, usize::MAX).unwrap();
                messages
                    .iter()
                    .flat_map(|m| m.log_events.iter().map(|e| e.id.as_str().to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn gz_b64(value: &serde_json::Value) -> String {
        STANDARD.encode(gzip(value.to_string().as_bytes()))
    }

    #[test]
    fn response_size_is_exactly_the_serialized_length() {
        // A failed record's original data may hold anything JSON must escape.
        let text = event_json(&[
            gz_b64(&message(0, 2, 10)),
            "bm90aGluZw==".into(),
            "quote \" backslash \\ control \u{1} é".into(),
        ]);
        let event: IncomingEvent = serde_json::from_str(&text).unwrap();
        let records = event.records.unwrap();
        let entries = vec![
            ok_entry(&records[0], 1234),
            RecordFate::Dropped.into_response(&records[1]),
            RecordFate::Failed("unreadable".into()).into_response(&records[2]),
        ];
        let response = crate::envelope::models::FirehoseResponse { records: entries };
        assert_eq!(
            response_size(&response.records),
            serde_json::to_vec(&response).unwrap().len()
        );
        assert_eq!(
            response_size(&[]),
            serde_json::to_vec(&json!({"records": []})).unwrap().len()
        );
    }

    #[test]
    fn a_response_that_fits_is_left_alone() {
        let text = event_json(&[gz_b64(&message(0, 2, 10))]);
        let event: IncomingEvent = serde_json::from_str(&text).unwrap();
        let records = event.records.unwrap();
        let mut entries = vec![ok_entry(&records[0], 100)];
        let plan = plan_unshed(
            &records,
            &mut entries,
            &ProcessOptions::default(),
            &FirehoseLimits::default(),
        )
        .unwrap();
        assert!(plan.is_empty());
        assert_eq!(entries[0].result, FirehoseResult::Ok);
    }

    #[test]
    fn what_does_not_fit_is_reingested_as_the_original_payload_in_order() {
        let datas: Vec<String> = (0..5).map(|r| gz_b64(&message(r * 10, 3, 50))).collect();
        let text = event_json(&datas);
        let event: IncomingEvent = serde_json::from_str(&text).unwrap();
        let records = event.records.unwrap();
        // Entries of ~1,000 bytes each in a 3,000-byte response: the first two fit, and the
        // small fifth one fits in what is left after the big fourth.
        let mut entries: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(i, r)| ok_entry(r, if i == 4 { 30 } else { 700 }))
            .collect();
        let limits = FirehoseLimits {
            max_response_bytes: 3_000,
            ..FirehoseLimits::default()
        };
        let plan =
            plan_unshed(&records, &mut entries, &ProcessOptions::default(), &limits).unwrap();
        assert_eq!(plan.reingested, [2, 3]);
        assert!(plan.failed.is_empty());
        let results: Vec<_> = entries.iter().map(|e| e.result).collect();
        use FirehoseResult::*;
        assert_eq!(results, [Ok, Ok, Dropped, Dropped, Ok]);
        assert!(response_size(&entries) <= limits.max_response_bytes);
        let originals: Vec<Vec<u8>> = [2, 3]
            .iter()
            .map(|&i| STANDARD.decode(&datas[i]).unwrap())
            .collect();
        assert_eq!(
            plan.payloads, originals,
            "re-ingested bytes are the input payloads, untouched"
        );
    }

    #[test]
    fn a_payload_over_the_record_limit_is_split_by_halving_its_events() {
        let whole = message(0, 40, 300);
        // Firehose's Decompression option delivers plain JSON: re-ingested pieces are gzip.
        let datas = vec![STANDARD.encode(whole.to_string())];
        let text = event_json(&datas);
        let event: IncomingEvent = serde_json::from_str(&text).unwrap();
        let records = event.records.unwrap();
        let mut entries = vec![ok_entry(&records[0], 5_000)];
        let limits = FirehoseLimits {
            max_response_bytes: 1_000,
            max_record_bytes: 2_500,
            ..FirehoseLimits::default()
        };
        let plan =
            plan_unshed(&records, &mut entries, &ProcessOptions::default(), &limits).unwrap();
        assert_eq!(plan.reingested, [0]);
        assert!(
            plan.payloads.len() > 2,
            "split into several pieces: {}",
            plan.payloads.len()
        );
        assert!(
            plan.payloads
                .iter()
                .all(|p| p.starts_with(&GZIP_MAGIC) && p.len() <= limits.max_record_bytes)
        );
        let expected: Vec<String> = (0..40).map(|i| format!("{i:056}")).collect();
        assert_eq!(
            ids_in(&plan.payloads),
            expected,
            "every event once, in order"
        );
        // Every other field of the message survives the split.
        let piece = decompress(plan.payloads[1].clone(), 1 << 20).unwrap();
        let piece: serde_json::Value = serde_json::from_slice(&piece).unwrap();
        assert_eq!(piece["subscriptionFilters"], json!(["eks-audit"]));
        assert_eq!(piece["logStream"], whole["logStream"]);
        assert_eq!(entries[0].result, FirehoseResult::Dropped);
    }

    #[test]
    fn a_record_whose_output_could_never_fit_is_split_by_output_size() {
        let data = gz_b64(&message(0, 24, 200));
        let text = event_json(&[data]);
        let event: IncomingEvent = serde_json::from_str(&text).unwrap();
        let records = event.records.unwrap();
        let options = ProcessOptions::default();
        let json = decompress(
            STANDARD.decode(records[0].data.as_bytes()).unwrap(),
            1 << 30,
        )
        .unwrap();
        let ndjson = process_messages(
            &parse_messages(&json, &mut Vec::new(), usize::MAX).unwrap(),
            Origin::default(),
            &options,
        )
        .ndjson
        .len();
        let mut entries = vec![ok_entry(&records[0], ndjson)];
        // The gzip fits a record easily, but the output is three times what one piece may
        // become: halves are still too big, quarters fit.
        let per_piece = (ndjson / 3).div_ceil(3) * 4 + ENTRY_OVERHEAD_BYTES;
        let limits = FirehoseLimits {
            max_response_bytes: 2 * per_piece,
            max_piece_entry_bytes: per_piece,
            ..FirehoseLimits::default()
        };
        let plan = plan_unshed(&records, &mut entries, &options, &limits).unwrap();
        assert!(plan.payloads.len() >= 4, "{} pieces", plan.payloads.len());
        for piece in &plan.payloads {
            let json = decompress(piece.clone(), 1 << 30).unwrap();
            let out = process_messages(
                &parse_messages(&json, &mut Vec::new(), usize::MAX).unwrap(),
                Origin::default(),
                &options,
            )
            .ndjson
            .len();
            assert!(
                out.div_ceil(3) * 4 + ENTRY_OVERHEAD_BYTES <= per_piece,
                "each piece's output fits"
            );
        }
        assert_eq!(ids_in(&plan.payloads).len(), 24);
    }

    #[test]
    fn measuring_pieces_evaluates_no_rule() {
        let text = event_json(&[gz_b64(&message(0, 24, 200))]);
        let event: IncomingEvent = serde_json::from_str(&text).unwrap();
        let records = event.records.unwrap();
        let detector = std::sync::Arc::new(
            crate::detect::Detector::load(&crate::detect::rules::default_pack()).unwrap(),
        );
        let options = ProcessOptions {
            detector: Some(detector.clone()),
            ..ProcessOptions::default()
        };
        // An output far over a piece's room: every piece is measured by transforming it.
        let mut entries = vec![ok_entry(&records[0], 200_000)];
        let limits = FirehoseLimits {
            max_response_bytes: 20_000,
            max_piece_entry_bytes: 10_000,
            ..FirehoseLimits::default()
        };
        let plan = plan_unshed(&records, &mut entries, &options, &limits).unwrap();
        assert!(plan.payloads.len() >= 2, "{} pieces", plan.payloads.len());
        assert_eq!(detector.stats().events, 0);
    }

    #[test]
    fn one_event_too_large_alone_fails_its_record_with_the_original_data() {
        let datas = vec![
            gz_b64(&message(0, 1, 20)),
            STANDARD.encode(message(1, 3, 4_000).to_string()),
        ];
        let text = event_json(&datas);
        let event: IncomingEvent = serde_json::from_str(&text).unwrap();
        let records = event.records.unwrap();
        let mut entries = vec![ok_entry(&records[0], 200), ok_entry(&records[1], 40_000)];
        let limits = FirehoseLimits {
            max_response_bytes: 30_000,
            max_record_bytes: 1_500,
            ..FirehoseLimits::default()
        };
        let plan =
            plan_unshed(&records, &mut entries, &ProcessOptions::default(), &limits).unwrap();
        assert_eq!(plan.failed.len(), 1);
        let (index, reason) = &plan.failed[0];
        assert_eq!(*index, 1);
        assert!(reason.contains("too large to re-ingest alone"), "{reason}");
        assert!(
            plan.reingested.is_empty() && plan.payloads.is_empty(),
            "no half of the record is sent twice"
        );
        assert_eq!(entries[1].result, FirehoseResult::ProcessingFailed);
        assert_eq!(entries[1].data, datas[1], "original data, untouched");
        assert_eq!(entries[0].result, FirehoseResult::Ok);
    }

    #[test]
    fn a_failed_record_that_takes_the_room_pushes_out_more() {
        // Record 1 cannot be split; its original data (~5,000 bytes of base64) then takes room
        // that record 0 had, so record 0 is re-ingested in a second round.
        let datas = vec![
            gz_b64(&message(0, 2, 20)),
            STANDARD.encode(message(2, 1, 3_000).to_string()),
        ];
        let text = event_json(&datas);
        let event: IncomingEvent = serde_json::from_str(&text).unwrap();
        let records = event.records.unwrap();
        let mut entries = vec![ok_entry(&records[0], 600), ok_entry(&records[1], 20_000)];
        let failed_entry =
            entry_size(&RecordFate::Failed(String::new()).into_response(&records[1]));
        let limits = FirehoseLimits {
            max_response_bytes: failed_entry + 300,
            max_record_bytes: 1_500,
            ..FirehoseLimits::default()
        };
        let plan =
            plan_unshed(&records, &mut entries, &ProcessOptions::default(), &limits).unwrap();
        assert_eq!(plan.failed.iter().map(|f| f.0).collect::<Vec<_>>(), [1]);
        assert_eq!(plan.reingested, [0]);
        assert!(response_size(&entries) <= limits.max_response_bytes);
    }

    #[test]
    fn failed_entries_alone_over_the_limit_is_an_error() {
        let datas = vec![STANDARD.encode(vec![b'x'; 3_000])];
        let text = event_json(&datas);
        let event: IncomingEvent = serde_json::from_str(&text).unwrap();
        let records = event.records.unwrap();
        let mut entries = vec![RecordFate::Failed("bad".into()).into_response(&records[0])];
        let limits = FirehoseLimits {
            max_response_bytes: 1_000,
            ..FirehoseLimits::default()
        };
        let err =
            plan_unshed(&records, &mut entries, &ProcessOptions::default(), &limits).unwrap_err();
        assert_eq!(err.limit, 1_000);
        assert!(err.bytes > 4_000);
    }

    #[test]
    fn batches_hold_at_most_500_records_and_4_mib() {
        let limits = FirehoseLimits::default();
        let small = vec![vec![0u8; 10]; 1_201];
        let runs = batches(&small, &limits);
        assert_eq!(runs, [0..500, 500..1000, 1000..1201]);

        let big = vec![vec![0u8; 1_000 * 1024]; 9];
        let runs = batches(&big, &limits);
        assert_eq!(
            runs,
            [0..4, 4..8, 8..9],
            "four 1,000 KiB records fit 4 MiB, five do not"
        );
        for run in &runs {
            assert!(big[run.clone()].iter().map(Vec::len).sum::<usize>() <= limits.max_batch_bytes);
        }
        assert!(batches(&[], &limits).is_empty());
    }

    /// The handler's path (records shed while processing, then planned) against planning with
    /// every record's data in hand: the same entries and the same plan. The last case has a
    /// record fail after the response looked full: its original data takes room, planning
    /// takes the first big record out after all, and the record shed for it is rebuilt.
    #[test]
    fn shedding_while_processing_answers_exactly_as_planning_afterwards() {
        use crate::batch::firehose::{process_records, process_records_for_response};
        let options = ProcessOptions::default();
        let datas = |failing: usize| {
            let mut datas = vec![
                gz_b64(&message(0, 40, 300)),
                gz_b64(&message(100, 30, 300)),
                gz_b64(&message(200, 5, 300)),
            ];
            datas.push("!".repeat(failing));
            datas
        };
        let answer = |json: &str, limit: usize, shed: bool| {
            let incoming: IncomingEvent<'_> = serde_json::from_str(json).unwrap();
            let records = incoming.records.unwrap();
            let limits = FirehoseLimits {
                max_response_bytes: limit,
                ..FirehoseLimits::default()
            };
            let origin = Origin::default();
            let mut processed = match shed {
                true => process_records_for_response(&records, origin, &options, None, None, limit),
                false => process_records(&records, origin, &options, None, None),
            };
            let shed_indices: Vec<usize> = processed.shed.iter().map(|&(i, _)| i).collect();
            let shed = processed.shed.clone();
            let plan = plan(
                &records,
                &mut processed.entries,
                &shed,
                origin,
                &options,
                &limits,
            );
            (
                serde_json::to_string(&processed.entries).unwrap(),
                plan,
                shed_indices,
            )
        };
        // The sizes the limits are chosen from: each record's `Ok` entry over its `Dropped` one.
        let probe = event_json(&datas(10));
        let incoming: IncomingEvent<'_> = serde_json::from_str(&probe).unwrap();
        let records = incoming.records.unwrap();
        let processed = process_records(&records, Origin::default(), &options, None, None);
        let extra = |i: usize| {
            entry_size(&processed.entries[i])
                - entry_size(&RecordFate::Dropped.into_response(&records[i]))
        };
        let (big, medium, small) = (extra(0), extra(1), extra(2));
        assert!(big > medium && medium > small, "{big} {medium} {small}");
        // The response with every record `Dropped`: what shedding counts on for the records
        // it has not read yet.
        let base = sum_with_wrapper(
            records
                .iter()
                .map(|record| entry_size(&RecordFate::Dropped.into_response(record))),
        );
        let mut rebuilt = false;
        for (failing, limit) in [
            (10, base + big + medium + small),
            (10, base + big + medium - 1),
            (10, base + small + 10),
            // The failed record's data takes about (big + medium) / 2: big goes out after all.
            ((big + medium) / 2, base + big + medium - 1),
        ] {
            let json = event_json(&datas(failing));
            let (reference, reference_plan, none) = answer(&json, limit, false);
            let (shedding, shedding_plan, shed) = answer(&json, limit, true);
            assert!(none.is_empty());
            assert_eq!(shedding, reference, "limit {limit}, failing {failing}");
            assert_eq!(
                shedding_plan, reference_plan,
                "limit {limit}, failing {failing}"
            );
            if shed.contains(&1) && !reference_plan.as_ref().unwrap().reingested.contains(&1) {
                rebuilt = true;
            }
        }
        assert!(rebuilt, "the last case brings a shed record back");
    }
}
