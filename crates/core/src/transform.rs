//! `eks-audit transform`: any supported input to normalized NDJSON, for people looking at a
//! saved payload. Accepts, gzip or not, a Lambda event (Firehose or `awslogs`), CloudWatch Logs
//! subscription messages, and audit events as JSON, NDJSON, arrays or an `EventList`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::detect::{Correlations, Finding};
use crate::envelope::models::IncomingEvent;
use crate::envelope::{DecodeError, decode_base64, decompress, is_gzip};
use crate::options::ProcessOptions;
use crate::pipeline::{EventFate, Origin, process_event_correlating, process_payload_correlating};
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
    /// What the rules of `options.detector` found in the kept events, in input order. The
    /// whole input is one invocation for the correlation rules.
    pub findings: Vec<Finding>,
    /// The correlation state of the input.
    correlations: Option<Correlations>,
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
    let mut out = Transformed {
        correlations: options.detector.as_ref().and_then(|d| d.correlations()),
        ..Transformed::default()
    };
    match json_values(text) {
        Ok(values) => {
            for value in values {
                transform_value(value, 0, options, region, &mut out);
            }
        }
        // One bad line of NDJSON must not cost every good one: line by line, the bad ones are
        // reported and the rest go through as usual.
        Err(_) if is_line_oriented(text) => transform_lines(text, options, region, &mut out),
        Err(e) => return Err(TransformError::NotJson(e.to_string())),
    }
    Ok(out)
}

/// Every JSON value of `text` in order (JSON texts separated by whitespace, as NDJSON is), or
/// the first syntax error.
fn json_values(text: &str) -> Result<Vec<&RawValue>, serde_json::Error> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<&RawValue>()
        .collect()
}

/// Whether `text`, which does not parse as a whole, is NDJSON with bad lines rather than one
/// broken document: it has more than one non-blank line, and one of them is on its own a JSON
/// object or array with content, as an NDJSON line of events, messages or Lambda events is.
/// Pretty-printed JSON has no such line (its objects and arrays open on one line and close on
/// another, and `{}` or `[]` hold nothing), so a broken document is still refused whole, with
/// the parser's position, as before.
fn is_line_oriented(text: &str) -> bool {
    let mut non_blank = text.lines().filter(|line| !line.trim().is_empty());
    let first = non_blank.next();
    let second = non_blank.next();
    if second.is_none() {
        return false;
    }
    first
        .into_iter()
        .chain(second)
        .chain(non_blank)
        .any(|line| {
            let line = line.trim();
            // Parsed whole, a line starting with `{` or `[` ends with `}` or `]`: ASCII both.
            matches!(line.as_bytes().first(), Some(b'{' | b'['))
                && serde_json::from_str::<&RawValue>(line).is_ok()
                && !line[1..line.len() - 1].trim().is_empty()
        })
}

/// NDJSON line by line: each line's values are processed as a whole input's would be (same
/// shapes, same depth limit); a line that is not JSON is reported with its number (1-based,
/// blank lines counted) and counted as a quarantined event, and the next line goes on.
fn transform_lines(
    text: &str,
    options: &ProcessOptions,
    region: Option<&str>,
    out: &mut Transformed,
) {
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match json_values(line) {
            Ok(values) => {
                for value in values {
                    transform_value(value, 0, options, region, out);
                }
            }
            Err(e) => {
                out.tally.events += 1;
                out.tally.bytes_in += line.len() as u64;
                out.tally.quarantined += 1;
                // serde_json ends its message with " at line 1 column N": the line is ours.
                let message = e.to_string();
                let position = format!(" at line {} column {}", e.line(), e.column());
                let reason = message.strip_suffix(&position).unwrap_or(&message);
                out.problems.push(format!(
                    "line {}, column {}: not JSON: {reason}",
                    index + 1,
                    e.column()
                ));
            }
        }
    }
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
    let correlations = out.correlations.as_mut();
    match process_payload_correlating(bytes.to_vec(), Origin { region }, options, correlations) {
        Ok(outcome) => {
            for q in &outcome.quarantined {
                out.problems.push(format!("{what}: {}", q.reason));
            }
            out.ndjson.extend_from_slice(&outcome.ndjson);
            out.tally.merge(&outcome.tally);
            out.findings
                .extend(outcome.findings.into_iter().map(|f| f.finding));
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
    let fate = process_event_correlating(
        text,
        &context,
        options,
        &mut out.ndjson,
        &mut out.findings,
        out.correlations.as_mut(),
    );
    match fate {
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"kind":"Event","stage":"ResponseComplete","verb":"get","auditID":"a"}"#;
    const OTHER: &str =
        r#"{"kind":"Event","stage":"ResponseComplete","verb":"list","auditID":"b"}"#;

    fn run(input: &str) -> Result<Transformed, TransformError> {
        transform(input.as_bytes().to_vec(), &ProcessOptions::default(), None)
    }

    fn verbs(out: &Transformed) -> Vec<String> {
        std::str::from_utf8(&out.ndjson)
            .unwrap()
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["Verb"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn a_bad_ndjson_line_is_reported_and_the_good_ones_are_kept() {
        // Line 2 is not JSON; lines 1 and 3 are events. The stream parser stops at line 2, so
        // before the fallback nothing came out at all.
        let input = format!("{GOOD}\nnot json at all\n{OTHER}\n");
        let out = run(&input).unwrap();
        assert_eq!(verbs(&out), ["get", "list"]);
        assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
        assert!(
            out.problems[0].starts_with("line 2, column 2: not JSON: "),
            "{}",
            out.problems[0]
        );
        assert_eq!(
            (out.tally.events, out.tally.kept, out.tally.quarantined),
            (3, 2, 1),
            "every line ends in one state"
        );
    }

    #[test]
    fn bad_first_and_last_lines_count_blank_lines_in_their_numbers() {
        // A cut line (`{"kind":"Ev`) would swallow the next line in a stream parse; line by line
        // it is one bad line. Blank lines count in the numbers but are not events.
        let input = format!("{{\"kind\":\"Ev\n\n{GOOD}\r\n{OTHER}\n[1,\n");
        let out = run(&input).unwrap();
        assert_eq!(verbs(&out), ["get", "list"]);
        let numbers: Vec<&str> = out
            .problems
            .iter()
            .map(|p| p.split(',').next().unwrap())
            .collect();
        assert_eq!(numbers, ["line 1", "line 5"], "{:?}", out.problems);
        assert_eq!(out.tally.events, 4);
    }

    #[test]
    fn good_input_takes_the_stream_path_unchanged() {
        // Two values on one line and one spread over lines: only a stream parser reads these,
        // and with no error there is no line-by-line pass.
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(OTHER).unwrap(),
        )
        .unwrap();
        let out = run(&format!("{GOOD} {GOOD}\n{pretty}\n")).unwrap();
        assert_eq!(verbs(&out), ["get", "get", "list"]);
        assert!(out.problems.is_empty());
    }

    #[test]
    fn a_broken_document_is_still_refused_whole() {
        // Pretty-printed, so no line is an object on its own: not NDJSON, one error as before.
        let broken = "{\n  \"kind\": \"Event\",\n  \"items\": [\n    {},\n    []\n  ]\n  \"verb\": \"get\"\n}\n";
        match run(broken) {
            Err(TransformError::NotJson(reason)) => {
                assert!(reason.contains("line 7"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // A single line stays a single input too.
        assert!(matches!(
            run(&format!("{GOOD} trailing")),
            Err(TransformError::NotJson(_))
        ));
    }

    #[test]
    fn lines_keep_the_depth_limit_of_nested_arrays() {
        // With max_depth 3 the fourth array level is taken as one event (and quarantined as not
        // an object) in line mode exactly as in a whole-input parse.
        let mut options = ProcessOptions::default();
        options.limits.max_depth = 3;
        let nested = format!("[[[[{GOOD}]]]]");
        let whole = transform(nested.clone().into_bytes(), &options, None).unwrap();
        let lines =
            transform(format!("{nested}\nnot json\n").into_bytes(), &options, None).unwrap();
        assert_eq!(whole.problems.len(), 1);
        assert_eq!(lines.problems[0], whole.problems[0]);
        assert_eq!(lines.problems.len(), 2);
        assert!(whole.ndjson.is_empty() && lines.ndjson.is_empty());
        // One level shallower it is read as a list of inputs, in both modes.
        let shallow = format!("[[{GOOD}]]\nnot json\n");
        assert_eq!(
            verbs(&transform(shallow.into_bytes(), &options, None).unwrap()),
            ["get"]
        );
    }
}
