//! `eks-audit transform`: any supported input to normalized NDJSON, for people looking at a
//! saved payload. Accepts, gzip or not, a Lambda event (Firehose or `awslogs`), CloudWatch Logs
//! subscription messages, and audit events as JSON, NDJSON, arrays or an `EventList`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::envelope::models::IncomingEvent;
use crate::envelope::{DecodeError, decode_base64, decompress, is_gzip};
use crate::options::ProcessOptions;
use crate::pipeline::{EventFate, Origin, process_event, process_payload};
use crate::schema::EventContext;
use crate::tally::Tally;

/// What `eks-audit transform` made of its input.
#[derive(Debug, Default)]
pub struct Transformed {
    /// The kept events, one line each, in input order.
    pub ndjson: Vec<u8>,
    /// What became of every record and event.
    pub tally: Tally,
    /// One line per record or event that could not be processed, saying which and why.
    pub problems: Vec<String>,
}

/// Why the input as a whole could not be read; problems with single records or events go to
/// [`Transformed::problems`] instead.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// Not UTF-8 JSON text (after gunzip, when gzip).
    #[error("input is not JSON (or gzip of JSON): {0}")]
    NotJson(String),
    /// Gzip that does not inflate, input over the payload limit, or empty input.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Just enough of a top-level value to tell what it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape<'a> {
    #[serde(borrow, default)]
    records: Option<&'a RawValue>,
    #[serde(borrow, default)]
    awslogs: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
}

/// Reads `input` (gzip or not) as one or more JSON values: Lambda events, subscription messages,
/// audit events, arrays of these or an `EventList`, and normalizes every audit event with
/// `options`. `region` fills `Region` where the input does not name one.
pub fn transform(
    input: Vec<u8>,
    options: &ProcessOptions,
    region: Option<&str>,
) -> Result<Transformed, TransformError> {
    let limit = options.limits.max_payload_bytes;
    // Unlike a record's payload, plain input may be any JSON text: an array, NDJSON.
    let input = match input {
        gzip if is_gzip(&gzip) => decompress(gzip, limit)?,
        plain if plain.len() > limit => return Err(DecodeError::TooLarge { limit }.into()),
        plain => plain,
    };
    let text = std::str::from_utf8(&input).map_err(|e| TransformError::NotJson(e.to_string()))?;
    if text.trim().is_empty() {
        return Err(DecodeError::Empty.into());
    }
    let mut out = Transformed::default();
    for value in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        let value = value.map_err(|e| TransformError::NotJson(e.to_string()))?;
        transform_value(value, 0, options, region, &mut out);
    }
    Ok(out)
}

/// Arrays are read as lists of inputs, nested up to `max_depth`. A value that deep is taken as
/// one event (and quarantined for its depth), so hostile nesting cannot recurse without bound.
fn transform_value(
    value: &RawValue,
    depth: usize,
    options: &ProcessOptions,
    region: Option<&str>,
    out: &mut Transformed,
) {
    if depth >= options.limits.max_depth {
        return audit_event(value.get(), options, region, out);
    }
    if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(value.get()) {
        for item in items {
            transform_value(item, depth + 1, options, region, out);
        }
        return;
    }
    let shape = serde_json::from_str::<Shape>(value.get()).ok();
    match shape {
        Some(Shape {
            records: Some(_), ..
        })
        | Some(Shape {
            awslogs: Some(_), ..
        }) => lambda_event(value.get(), options, region, out),
        Some(Shape {
            message_type: Some(_),
            ..
        }) => {
            out.tally.records += 1;
            payload(
                value.get().as_bytes(),
                "subscription message",
                options,
                region,
                out,
            )
        }
        Some(Shape {
            items: Some(items), ..
        }) => {
            for item in items {
                audit_event(item.get(), options, region, out);
            }
        }
        _ => audit_event(value.get(), options, region, out),
    }
}

fn lambda_event(text: &str, options: &ProcessOptions, region: Option<&str>, out: &mut Transformed) {
    let event: IncomingEvent = match serde_json::from_str(text) {
        Ok(event) => event,
        Err(e) => return out.problems.push(format!("Lambda event: {e}")),
    };
    let region = event.region.as_deref().or(region);
    let payloads = event
        .records
        .iter()
        .flatten()
        .map(|r| (format!("record {}", r.record_id), &r.data));
    let payloads = payloads.chain(
        event
            .awslogs
            .iter()
            .map(|a| ("awslogs data".to_owned(), &a.data)),
    );
    for (what, data) in payloads {
        out.tally.records += 1;
        match decode_base64(data) {
            Ok(bytes) => payload(&bytes, &what, options, region, out),
            Err(e) => {
                out.tally.failed_records += 1;
                out.problems.push(format!("{what}: {e}"));
            }
        }
    }
}

fn payload(
    bytes: &[u8],
    what: &str,
    options: &ProcessOptions,
    region: Option<&str>,
    out: &mut Transformed,
) {
    match process_payload(bytes.to_vec(), Origin { region }, options) {
        Ok(outcome) => {
            for q in &outcome.quarantined {
                out.problems.push(format!("{what}: {}", q.reason));
            }
            out.ndjson.extend_from_slice(&outcome.ndjson);
            out.tally.merge(&outcome.tally);
        }
        Err(e) => {
            out.tally.failed_records += 1;
            out.problems.push(format!("{what}: {e}"));
        }
    }
}

fn audit_event(text: &str, options: &ProcessOptions, region: Option<&str>, out: &mut Transformed) {
    let context = EventContext {
        region,
        cluster: options.cluster_override.as_deref(),
        ..EventContext::default()
    };
    out.tally.events += 1;
    out.tally.bytes_in += text.len() as u64;
    match process_event(text, &context, options, &mut out.ndjson) {
        EventFate::Kept { .. } => out.tally.kept += 1,
        EventFate::Dropped(reason) => out.tally.dropped.add(reason, 1),
        EventFate::Quarantined(reason) => {
            out.tally.quarantined += 1;
            out.problems
                .push(format!("event {}: {reason}", out.tally.events));
        }
        EventFate::Salvaged { reason, .. } => {
            out.tally.quarantined += 1;
            out.tally.salvaged += 1;
            out.problems
                .push(format!("event {}: {reason}", out.tally.events));
        }
    }
}
