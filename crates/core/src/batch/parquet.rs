//! Amazon Security Lake custom-source objects: the kept OCSF events of an outcome as Apache
//! Parquet, the way Security Lake requires them from a custom source:
//!
//! - one OCSF class per object (here always API Activity, 6003), zstd-compressed;
//! - under `ext/<source-name>/region=<region>/accountId=<account>/eventDay=<YYYYMMDD>/`, the
//!   day being the UTC day of each event's OCSF `time`;
//! - rows sorted by `time`;
//! - column types of Security Lake's OCSF tables ([`crate::schema::ocsf::columns`]).
//!
//! One object per log stream, account and day, named `<logStream>-<first event id>.parquet`
//! after the CloudWatch id of the first event group it holds, so that, as for NDJSON objects
//! (contract §6), the key is a pure function of the input and a retried invocation overwrites its
//! own objects instead of duplicating them.
//!
//! The OCSF JSON lines the pipeline wrote are decoded into Arrow with the fixed schema, so
//! Parquet and NDJSON output can never disagree on a value.

use std::collections::HashMap;
use std::io::Cursor;

use arrow_json::ReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use time::macros::format_description;

use super::objects::{Object, key_safe, time_span};
use crate::eks::UNKNOWN_CLUSTER;
use crate::pipeline::Outcome;
use crate::schema::ocsf::columns;
use crate::schema::time::from_epoch_millis;

/// Why OCSF lines could not become Parquet. The lines are this crate's own output, so this
/// is a bug rather than bad input; the invocation fails and the source retries it.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A line has no integer `time`, or one outside years 0–9999 (no day to key it by).
    #[error("an OCSF line has no integer `time` within the supported range: {0}")]
    Time(String),
    /// Arrow refused the lines for the Security Lake schema.
    #[error("cannot decode OCSF lines into Arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The Parquet writer failed.
    #[error("cannot write Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// The lines of one object, before sorting.
struct Part<'o> {
    account: &'o str,
    log_stream: &'o str,
    day: String,
    first_event_id: &'o str,
    rows: Vec<(i64, &'o [u8])>,
    /// Each row's event time as [`Object::first_event_time`] takes it, for the metadata.
    times: Vec<Option<time::OffsetDateTime>>,
}

/// Security Lake objects for the kept events of `outcome`, in the order their first events
/// came in. `region` is the function's region (`None` writes `region=_unknown`).
pub fn security_lake_objects(
    outcome: &Outcome,
    source_name: &str,
    region: Option<&str>,
) -> Result<Vec<Object>, EncodeError> {
    let mut parts: Vec<Part<'_>> = Vec::new();
    // (account, log stream, day) to its part: one lookup per event, whatever the days.
    let mut index_of: HashMap<(&str, &str, String), usize> = HashMap::new();
    for kept in &outcome.kept {
        let line = &outcome.ndjson[kept.bytes.clone()];
        let group = &outcome.kept_groups[kept.group];
        let time = line_time(line)?;
        let day = event_day(time).ok_or_else(|| EncodeError::Time(time.to_string()))?;
        let part_key = (group.account.as_str(), group.log_stream.as_str(), day);
        let index = *index_of.entry(part_key).or_insert_with_key(|(_, _, day)| {
            parts.push(Part {
                account: &group.account,
                log_stream: &group.log_stream,
                day: day.clone(),
                first_event_id: &group.first_event_id,
                rows: Vec::new(),
                times: Vec::new(),
            });
            parts.len() - 1
        });
        parts[index].rows.push((time, line));
        parts[index].times.push(kept.time);
    }
    let prefix = source_prefix(source_name);
    let region = key_safe(region.filter(|r| !r.is_empty()).unwrap_or(UNKNOWN_CLUSTER));
    parts
        .into_iter()
        .map(|mut part| {
            // Stable: events of the same millisecond keep their input order.
            part.rows.sort_by_key(|(time, _)| *time);
            let lines = part.rows.len();
            let (first_event_time, last_event_time) = time_span(part.times);
            let body = parquet_of(part.rows.iter().map(|(_, line)| *line))?;
            let account = key_safe(if part.account.is_empty() {
                UNKNOWN_CLUSTER
            } else {
                part.account
            });
            let key = format!(
                "{prefix}region={region}/accountId={account}/eventDay={}/{}-{}.parquet",
                part.day,
                key_safe(part.log_stream),
                key_safe(part.first_event_id)
            );
            Ok(Object {
                key,
                body,
                lines,
                first_event_time,
                last_event_time,
            })
        })
        .collect()
}

/// `ext/<source-name>/`, each segment of the name made key-safe (a versioned custom-source
/// location such as `eks-audit/1.0` keeps its slash).
fn source_prefix(source_name: &str) -> String {
    let mut prefix = "ext/".to_owned();
    for segment in source_name.split('/').filter(|s| !s.is_empty()) {
        prefix.push_str(&key_safe(segment));
        prefix.push('/');
    }
    prefix
}

/// The `time` of one OCSF line.
fn line_time(line: &[u8]) -> Result<i64, EncodeError> {
    #[derive(serde::Deserialize)]
    struct Time {
        time: i64,
    }
    serde_json::from_slice::<Time>(line)
        .map(|t| t.time)
        .map_err(|e| EncodeError::Time(e.to_string()))
}

/// `YYYYMMDD` of an epoch-millisecond time, in UTC.
fn event_day(time_ms: i64) -> Option<String> {
    from_epoch_millis(time_ms)?
        .format(format_description!("[year][month][day]"))
        .ok()
}

/// One zstd Parquet file of the given OCSF JSON lines, in order.
pub fn parquet_of<'l>(lines: impl Iterator<Item = &'l [u8]>) -> Result<Vec<u8>, EncodeError> {
    let schema = columns::schema();
    let mut json = Vec::new();
    let mut rows = 0;
    for line in lines {
        json.extend_from_slice(line);
        rows += 1;
    }
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(concat!("eks-audit-forwarder ", env!("CARGO_PKG_VERSION")).to_owned())
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties))?;
    let reader = ReaderBuilder::new(schema)
        .with_batch_size(rows.max(1))
        .build(Cursor::new(json))?;
    for batch in reader {
        writer.write(&batch?)?;
    }
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        // 1716249599999 ms is 2024-05-20T23:59:59.999Z, one millisecond before 2024-05-21
        // (19,864 days × 86,400,000 ms = 1,716,249,600,000).
        assert_eq!(event_day(1_716_249_599_999).as_deref(), Some("20240520"));
        assert_eq!(event_day(1_716_249_600_000).as_deref(), Some("20240521"));
    }

    #[test]
    fn objects_carry_their_row_count_and_first_and_last_event_time() {
        use crate::batch::objects::{META_EVENTS, META_FIRST_EVENT_TIME, META_LAST_EVENT_TIME};
        use crate::pipeline::{Origin, process_payload};
        use crate::{Format, ProcessOptions};
        let event = |time: &str| {
            serde_json::json!({"kind":"Event","auditID":time,"stage":"ResponseComplete",
                "verb":"get","user":{"username":"u"},"sourceIPs":["10.0.0.1"],
                "requestReceivedTimestamp":time,"stageTimestamp":time})
            .to_string()
        };
        // Two events of 2024-05-21 given late first, one of the next day.
        let message = serde_json::json!({
            "messageType":"DATA_MESSAGE","owner":"111122223333",
            "logGroup":"/aws/eks/prod/cluster","logStream":"kube-apiserver-audit-1",
            "subscriptionFilters":[],
            "logEvents":[
                {"id":"1","timestamp":0,"message":event("2024-05-21T23:00:00Z")},
                {"id":"2","timestamp":0,"message":event("2024-05-21T10:00:00Z")},
                {"id":"3","timestamp":0,"message":event("2024-05-22T00:00:01Z")},
            ]
        });
        let options = ProcessOptions {
            format: Format::Ocsf,
            ..ProcessOptions::default()
        };
        let outcome = process_payload(
            message.to_string().into_bytes(),
            Origin::default(),
            &options,
        )
        .unwrap();
        let objects = security_lake_objects(&outcome, "eks-audit", None).unwrap();
        let found: Vec<_> = objects.iter().map(Object::metadata).collect();
        let entry = |name, value: &str| (name, value.to_owned());
        assert_eq!(
            found,
            [
                vec![
                    entry(META_EVENTS, "2"),
                    entry(META_FIRST_EVENT_TIME, "2024-05-21T10:00:00.000000Z"),
                    entry(META_LAST_EVENT_TIME, "2024-05-21T23:00:00.000000Z"),
                ],
                vec![
                    entry(META_EVENTS, "1"),
                    entry(META_FIRST_EVENT_TIME, "2024-05-22T00:00:01.000000Z"),
                    entry(META_LAST_EVENT_TIME, "2024-05-22T00:00:01.000000Z"),
                ],
            ]
        );
    }

    #[test]
    fn source_names_keep_their_segments() {
        assert_eq!(source_prefix("eks-audit"), "ext/eks-audit/");
        assert_eq!(source_prefix("/eks audit/1.0/"), "ext/eks!20audit/1.0/");
    }
}
