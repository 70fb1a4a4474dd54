//! The Firehose response contract (contract §2): one response record per input record, in order,
//! `Ok` with base64 NDJSON, `Dropped`, or `ProcessingFailed` with the original data.

use std::collections::{BTreeMap, BTreeSet};

use crate::batch::objects::{self, Object};
use crate::batch::reingest::{self, Plan};
use crate::eks::UNKNOWN_CLUSTER;
use crate::envelope::DecodeBuffers;
use crate::envelope::models::{
    FirehoseRecord, FirehoseResponseRecord, FirehoseResult, ResponseMetadata,
};
use crate::options::ProcessOptions;
use crate::pipeline::{FindingLine, Origin, Outcome, process_data_into};
use crate::tally::Tally;

/// A Firehose transformation event's records, processed: the response entries and what the
/// shell must do beside answering (store quarantine objects, log failures).
#[derive(Debug, Default)]
pub struct ProcessedRecords {
    /// One response entry per record, in order.
    pub entries: Vec<FirehoseResponseRecord>,
    /// The account of each record, in order.
    pub tallies: Vec<Tally>,
    /// Quarantined events to store before answering (only when a quarantine prefix was given).
    pub quarantine: Vec<Object>,
    /// The findings of each record that has some (contract §12): a transformation cannot add
    /// records, so the invocation delivers them itself. Only when a findings prefix was given.
    /// Deliver them once re-ingestion is planned: see [`drop_findings_of`](Self::drop_findings_of).
    pub findings: Vec<RecordFindings>,
    /// Records that failed whole, by index, with the reason.
    pub failures: Vec<(usize, String)>,
    /// The clusters of the events kept or quarantined (`_unknown` for events without one).
    pub clusters: BTreeSet<String>,
    /// `Ok` entries left without their data, as [`process_records_for_response`] sheds them:
    /// the record's index and the size its entry has with the data. For
    /// [`reingest::plan`](crate::batch::reingest::plan).
    pub shed: Vec<(usize, usize)>,
}

/// One record's findings: their objects and, one by one, for the findings queue.
#[derive(Debug)]
pub struct RecordFindings {
    /// The record's index.
    pub record: usize,
    /// The objects to store.
    pub objects: Vec<Object>,
    /// The findings in those objects.
    pub lines: Vec<FindingLine>,
}

/// Decodes and processes every record. With `quarantine_prefix`, quarantined events become
/// objects under it for the shell to store; without it there is nowhere to put them, so their
/// records fail whole and Firehose keeps the original bytes. With `findings_prefix`, findings
/// become objects under it; without it they are not kept.
pub fn process_records(
    records: &[FirehoseRecord<'_>],
    origin: Origin<'_>,
    options: &ProcessOptions,
    quarantine_prefix: Option<&str>,
    findings_prefix: Option<&str>,
) -> ProcessedRecords {
    let prefixes = (quarantine_prefix, findings_prefix);
    process_records_within(records, origin, options, prefixes, None)
}

/// [`process_records`] for a response of at most `max_response_bytes`. An `Ok` record that
/// cannot fit next to the records before it and the room every other record needs at least
/// is *shed*: its entry is built without data, so its output is never base64-encoded nor
/// held, and [`reingest::plan`](crate::batch::reingest::plan) re-ingests it (contract §2.3:
/// `Ok` records are kept in input order while they fit). Without this, the largest request
/// held ~33 MB of base64 at once to answer with 6 MB of it.
pub fn process_records_for_response(
    records: &[FirehoseRecord<'_>],
    origin: Origin<'_>,
    options: &ProcessOptions,
    quarantine_prefix: Option<&str>,
    findings_prefix: Option<&str>,
    max_response_bytes: usize,
) -> ProcessedRecords {
    let prefixes = (quarantine_prefix, findings_prefix);
    process_records_within(records, origin, options, prefixes, Some(max_response_bytes))
}

/// Room left in the response while records are processed in order: the limit, less the
/// entries so far and what every record not yet processed takes at least (a `Dropped` entry).
struct Room {
    left: i64,
    dropped_sizes: Vec<usize>,
}

impl Room {
    fn new(records: &[FirehoseRecord<'_>], max_response_bytes: usize) -> Room {
        let dropped_sizes: Vec<usize> = records
            .iter()
            .map(|record| reingest::entry_size(&RecordFate::Dropped.into_response(record)))
            .collect();
        let floor = reingest::response_size_of(dropped_sizes.iter().copied());
        Room {
            left: max_response_bytes as i64 - floor as i64,
            dropped_sizes,
        }
    }

    /// The entry of record `index`, and the size it would have had when it is `Ok` and does
    /// not fit: then the entry is left without its data.
    fn take(
        &mut self,
        index: usize,
        mut fate: RecordFate,
        record: &FirehoseRecord<'_>,
    ) -> (FirehoseResponseRecord, Option<usize>) {
        let floor = self.dropped_sizes[index] as i64;
        let RecordFate::Ok { ndjson, .. } = &mut fate else {
            let entry = fate.into_response(record);
            self.left -= reingest::entry_size(&entry) as i64 - floor;
            return (entry, None);
        };
        let ndjson = std::mem::take(ndjson);
        let empty = fate.into_response(record);
        // base64 needs no escaping, so the data adds exactly its length to the entry.
        let size = reingest::entry_size(&empty) + ndjson.len().div_ceil(3) * 4;
        if size as i64 - floor <= self.left {
            self.left -= size as i64 - floor;
            let entry = FirehoseResponseRecord {
                data: base64_simd::STANDARD.encode_to_string(&ndjson),
                ..empty
            };
            (entry, None)
        } else {
            (empty, Some(size))
        }
    }
}

fn process_records_within(
    records: &[FirehoseRecord<'_>],
    origin: Origin<'_>,
    options: &ProcessOptions,
    (quarantine_prefix, findings_prefix): (Option<&str>, Option<&str>),
    max_response_bytes: Option<usize>,
) -> ProcessedRecords {
    let mut room = max_response_bytes.map(|max| Room::new(records, max));
    let mut processed = ProcessedRecords {
        entries: Vec::with_capacity(records.len()),
        tallies: Vec::with_capacity(records.len()),
        ..ProcessedRecords::default()
    };
    // Decode buffers reused across the records of the invocation.
    let mut buffers = DecodeBuffers::default();
    // Correlation rules count over the whole batch (contract §12).
    let mut correlations = options.detector.as_ref().and_then(|d| d.correlations());
    for (index, record) in records.iter().enumerate() {
        let data = &record.data;
        let (fate, tally) =
            match process_data_into(data, origin, options, &mut buffers, correlations.as_mut()) {
                Ok(mut outcome) => {
                    if let Some(prefix) = quarantine_prefix {
                        processed
                            .quarantine
                            .extend(objects::quarantine_objects(&outcome, prefix));
                    }
                    if let Some(prefix) = findings_prefix.filter(|_| !outcome.findings.is_empty()) {
                        processed.findings.push(RecordFindings {
                            record: index,
                            objects: objects::finding_objects(&outcome, prefix),
                            lines: std::mem::take(&mut outcome.findings),
                        });
                    }
                    note_clusters(&outcome, &mut processed.clusters);
                    let mut tally = outcome.tally.clone();
                    let fate = RecordFate::of(outcome, quarantine_prefix.is_some());
                    if let RecordFate::Ok { ndjson, .. } = &fate {
                        tally.bytes_out = ndjson.len() as u64;
                    }
                    (fate, tally)
                }
                Err(e) => (RecordFate::Failed(e.to_string()), Tally::default()),
            };
        if let RecordFate::Failed(reason) = &fate {
            processed.failures.push((index, reason.clone()));
        }
        let entry = match &mut room {
            Some(room) => {
                let (entry, shed) = room.take(index, fate, record);
                if let Some(size) = shed {
                    processed.shed.push((index, size));
                }
                entry
            }
            None => fate.into_response(record),
        };
        processed.entries.push(entry);
        processed.tallies.push(tally);
    }
    processed
}

impl ProcessedRecords {
    /// Forgets the findings of the records `plan` re-ingests: each comes back as a record of
    /// its own, and its findings are delivered then, with its data, not twice (contract §12).
    pub fn drop_findings_of(&mut self, plan: &Plan) {
        self.findings
            .retain(|of| plan.reingested.binary_search(&of.record).is_err());
    }

    /// Every findings object, in record order.
    pub fn finding_objects(&self) -> impl Iterator<Item = &Object> {
        self.findings.iter().flat_map(|of| &of.objects)
    }

    /// Every finding, in record order.
    pub fn finding_lines(&self) -> impl Iterator<Item = &FindingLine> {
        self.findings.iter().flat_map(|of| &of.lines)
    }

    /// The invocation's account once `plan` (re-ingestion) has rewritten the entries.
    /// Re-ingested records are counted when they come back, so nothing is counted twice.
    pub fn tally(&self, plan: &Plan) -> Tally {
        let mut tally = Tally {
            records: self.entries.len() as u64,
            ..Tally::default()
        };
        for (index, (entry, record_tally)) in self.entries.iter().zip(&self.tallies).enumerate() {
            if plan.reingested.binary_search(&index).is_ok() {
                tally.reingested_records += 1;
            } else if entry.result == FirehoseResult::ProcessingFailed {
                tally.failed_records += 1;
                tally.bytes_in += record_tally.bytes_in;
            } else {
                tally.merge(record_tally);
            }
        }
        tally
    }
}

/// Adds the clusters of `outcome`'s kept and quarantined events to `clusters`.
pub fn note_clusters(outcome: &Outcome, clusters: &mut BTreeSet<String>) {
    for group in outcome.kept_groups.iter().chain(&outcome.quarantine_groups) {
        clusters.insert(
            group
                .cluster
                .as_deref()
                .unwrap_or(UNKNOWN_CLUSTER)
                .to_owned(),
        );
    }
}

/// What becomes of one Firehose record.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordFate {
    /// Kept events as NDJSON, with the record's partition keys.
    Ok {
        /// The kept events, one NDJSON line each, before base64.
        ndjson: Vec<u8>,
        /// The `cluster` partition key: the first kept event's cluster, or `_unknown`.
        cluster: String,
        /// The `account` partition key: the `owner` of the first kept event's message.
        account: String,
        /// The `region` partition key, in the fleet layout only (contract §6.4).
        region: Option<String>,
    },
    /// Nothing to deliver: a control message, or every event filtered out.
    Dropped,
    /// Returned untouched so Firehose writes it to its error output.
    Failed(String),
}

impl RecordFate {
    /// The fate of a decoded record. Quarantined events must be stored somewhere: when they
    /// could not be (`quarantine_stored` false), the whole record fails so its original bytes
    /// reach Firehose's error output.
    pub fn of(outcome: Outcome, quarantine_stored: bool) -> RecordFate {
        if let Some(first) = outcome.quarantined.first().filter(|_| !quarantine_stored) {
            return RecordFate::Failed(format!(
                "{} event(s) are not valid audit events and no bucket is configured for quarantine; first: {}",
                outcome.quarantined.len(),
                first.reason
            ));
        }
        let partitions = outcome.partitions();
        match partitions[..] {
            [] => RecordFate::Dropped,
            [one] => RecordFate::Ok {
                cluster: one.cluster.to_owned(),
                account: one.account.to_owned(),
                region: one.region.map(str::to_owned),
                ndjson: outcome.ndjson,
            },
            [first, second, ..] => {
                let (cluster, account) = (first.cluster, first.account);
                let (other_cluster, other_account) = (second.cluster, second.account);
                RecordFate::Failed(format!(
                    "the record holds events of more than one cluster or account \
                 (cluster {cluster} in account {account}, cluster {other_cluster} in account \
                 {other_account}): no partition keys are true for all of them"
                ))
            }
        }
    }

    /// The response record for `record`.
    pub fn into_response(self, record: &FirehoseRecord<'_>) -> FirehoseResponseRecord {
        let record_id = record.record_id.to_string();
        match self {
            RecordFate::Ok {
                ndjson,
                cluster,
                account,
                region,
            } => FirehoseResponseRecord {
                record_id,
                result: FirehoseResult::Ok,
                // SIMD base64: a megabyte of NDJSON per record, the scalar encoder was 12% of a run.
                data: base64_simd::STANDARD.encode_to_string(&ndjson),
                metadata: Some(ResponseMetadata {
                    partition_keys: BTreeMap::from([
                        ("cluster".into(), cluster),
                        ("account".into(), account),
                    ])
                    .into_iter()
                    .chain(region.map(|region| {
                        let region = Some(region).filter(|r| !r.is_empty());
                        (
                            "region".into(),
                            region.unwrap_or_else(|| UNKNOWN_CLUSTER.into()),
                        )
                    }))
                    .collect(),
                }),
            },
            RecordFate::Dropped => FirehoseResponseRecord {
                record_id,
                result: FirehoseResult::Dropped,
                data: String::new(),
                metadata: None,
            },
            RecordFate::Failed(_) => FirehoseResponseRecord {
                record_id,
                result: FirehoseResult::ProcessingFailed,
                data: record.data.to_string(),
                metadata: None,
            },
        }
    }
}
