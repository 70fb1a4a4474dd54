//! Properties over generated audit events and subscription messages (proptest): normalization
//! keeps every event verbatim, the filter agrees with a plain reading of CloudWatch's `*`
//! wildcard, an event cut by CloudWatch Logs is never kept whole, and Firehose responses account
//! for every record.

mod common;

use std::sync::LazyLock;

use common::*;
use eks_audit_core::envelope::models::FirehoseResult;
use eks_audit_core::filter::{DEFAULT_SUBSCRIPTION_PATTERN, Filter, UriPattern};
use eks_audit_core::pipeline::{EventFate, process_event};
use eks_audit_core::tally::DropReason;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::Response;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{
    FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};
use serde_json::{Map, Value, json};

/// CloudWatch filter-pattern matching, read straight from its definition: `*` matches any run of
/// characters (none included), every other character matches itself.
fn reference_matches(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| reference_matches(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && reference_matches(rest, &text[1..]),
    }
}

/// Contract §3's default URI exclusions, written out (not read from the crate).
const CONTRACT_DEFAULT_EXCLUSIONS: [&str; 10] = [
    "/version",
    "/version?*",
    "/metrics",
    "/metrics?*",
    "/logs",
    "/logs?*",
    "/swagger*",
    "/livez*",
    "/readyz*",
    "/healthz*",
];

/// What the default filter (contract §3) does with an event, by the reference matcher.
fn reference_decision(event: &Value) -> Option<DropReason> {
    if event.get("stage").and_then(Value::as_str) != Some("ResponseComplete") {
        return Some(DropReason::Stage);
    }
    let uri: Vec<char> = match event.get("requestURI").and_then(Value::as_str) {
        Some(uri) => uri.chars().collect(),
        None => return None,
    };
    let excluded = CONTRACT_DEFAULT_EXCLUSIONS
        .iter()
        .any(|p| reference_matches(&p.chars().collect::<Vec<_>>(), &uri));
    excluded.then_some(DropReason::ExcludedUri)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e300..1e300f64).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

/// Any JSON value, a few levels deep, with any text in keys and strings.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A field's value: absent, one of `typical`, any string, or any JSON value.
fn field(typical: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        6 => prop::sample::select(typical).prop_map(|s| Some(Value::from(s))),
        1 => any::<String>().prop_map(|s| Some(Value::from(s))),
        1 => json_value().prop_map(Some),
    ]
}

const STAGES: &[&str] = &[
    "ResponseComplete",
    "RequestReceived",
    "ResponseStarted",
    "Panic",
    "",
];
const URIS: &[&str] = &[
    "/api/v1/namespaces/default/pods",
    "/apis/apps/v1/deployments?watch=true",
    "/healthz",
    "/healthz/etcd",
    "/readyz?verbose",
    "/livez",
    "/version",
    "/version?timeout=32s",
    "/versions",
    "/metrics",
    "/metricsx",
    "/logs?x",
    "/logsearch",
    "/swagger-2.0.0.pb-v1",
    "/openapi/v2",
];

/// An audit event: the fields the forwarder reads, of the right type or not, and unknown
/// fields of any value. `kind` is never a string other than `Event` (that is another object).
fn audit_event() -> impl Strategy<Value = Value> {
    let known = (
        field(STAGES),
        field(URIS),
        field(&["get", "list", "create", "delete", "watch"]),
        field(&["10.0.0.1"]),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::option::of(prop_oneof![
            Just(json!("Event")),
            any::<i64>().prop_map(Value::from)
        ]),
        prop::option::of((any::<i64>(), any::<String>())),
    );
    let unknown = prop::collection::vec(("x-[a-zA-Z]{0,8}", json_value()), 0..4);
    (known, unknown).prop_map(
        |((stage, uri, verb, ip, user, object_ref, kind, status), unknown)| {
            let mut event = Map::new();
            let mut put = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    event.insert(key.to_owned(), value);
                }
            };
            put("kind", kind);
            put("stage", stage);
            put("requestURI", uri);
            put("verb", verb);
            put(
                "sourceIPs",
                ip.map(|ip| if ip.is_string() { json!([ip]) } else { ip }),
            );
            put("user", user);
            put("objectRef", object_ref);
            put(
                "responseStatus",
                status.map(|(code, reason)| json!({"code": code, "reason": reason})),
            );
            for (key, value) in unknown {
                event.insert(key, value);
            }
            Value::Object(event)
        },
    )
}

/// An event's text, compact or pretty-printed.
fn event_text() -> impl Strategy<Value = (Value, String)> {
    (audit_event(), any::<bool>()).prop_map(|(event, pretty)| {
        let text = if pretty {
            serde_json::to_string_pretty(&event)
        } else {
            serde_json::to_string(&event)
        };
        (event, text.unwrap())
    })
}

/// The committed regressions file. Every property below replays its seeds before any new case,
/// and a new failure is appended to it (commit the line proptest adds).
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/properties.proptest-regressions"
);

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..ProptestConfig::default()
    }
}

/// Normalization keeps `text` as one NDJSON line whose `RawEvent` is the event as read.
fn normalization_keeps_the_event(event: &Value, text: &str) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let fate = process_event(text, &CONTEXT, &keep_all().process, &mut out);
    let EventFate::Kept { bytes, .. } = fate else {
        return Err(TestCaseError::fail(format!("{fate:?} for {text}")));
    };
    prop_assert_eq!(bytes, 0..out.len());
    let line = String::from_utf8(out).unwrap();
    prop_assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    let line: Value = serde_json::from_str(&line).unwrap();
    // Against the text as read, not `event`: serde_json reads some floats back one ulp off
    // what it wrote (without its float_roundtrip feature), on both sides alike.
    prop_assert_eq!(
        &line["RawEvent"],
        &serde_json::from_str::<Value>(text).unwrap()
    );
    prop_assert_eq!(
        line["RawEvent"].as_object().map(|o| o.len()),
        event.as_object().map(|o| o.len())
    );
    Ok(())
}

/// The default filter keeps or drops `text` as [`reference_decision`] does.
fn the_default_filter_agrees(event: &Value, text: &str) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let fate = process_event(
        text,
        &CONTEXT,
        &eks_audit_core::ProcessOptions::default(),
        &mut out,
    );
    match reference_decision(event) {
        None => prop_assert!(
            matches!(fate, EventFate::Kept { .. }),
            "{:?} for {}",
            fate,
            text
        ),
        Some(reason) => prop_assert_eq!(fate, EventFate::Dropped(reason)),
    }
    Ok(())
}

/// The event cut after `at` bytes (at a character boundary) by CloudWatch Logs (contract
/// §6.2): never kept as a whole event; written only flagged, with the text received as
/// `RawEvent`; dropped only for the reason the whole event would be; otherwise quarantined.
fn a_cut_event_is_flagged_dropped_or_quarantined(
    event: &Value,
    text: &str,
    at: usize,
) -> Result<(), TestCaseError> {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let message = format!("{}[Truncated...]", &text[..at]);
    let mut out = Vec::new();
    let options = eks_audit_core::ProcessOptions::default();
    match process_event(&message, &CONTEXT, &options, &mut out) {
        EventFate::Kept { .. } => {
            return Err(TestCaseError::fail(format!("kept whole: {message}")));
        }
        EventFate::Dropped(reason) => {
            prop_assert_eq!(Some(reason), reference_decision(event), "{}", message);
            prop_assert!(out.is_empty());
        }
        EventFate::Quarantined(reason) => {
            prop_assert!(reason.contains("[Truncated...]"), "{}", reason);
            prop_assert!(out.is_empty());
        }
        EventFate::Salvaged { bytes, reason, .. } => {
            prop_assert_eq!(reference_decision(event), None, "{}", message);
            prop_assert!(reason.contains("[Truncated...]"), "{}", reason);
            prop_assert_eq!(bytes, 0..out.len());
            let line: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&line["RawEvent"], &Value::from(message.as_str()));
            prop_assert_eq!(&line["Truncated"], &Value::Bool(true));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn a_cut_event_is_flagged_dropped_or_quarantined_never_kept_whole((event, text) in event_text(), at in any::<usize>()) {
        a_cut_event_is_flagged_dropped_or_quarantined(&event, &text, at)?;
    }

    #[test]
    fn normalization_keeps_every_event_as_one_line_with_raw_event_equal_to_the_input((event, text) in event_text()) {
        normalization_keeps_the_event(&event, &text)?;
    }

    #[test]
    fn the_default_filter_decides_as_the_reference_does((event, text) in event_text()) {
        the_default_filter_agrees(&event, &text)?;
    }

    #[test]
    fn uri_patterns_match_as_cloudwatch_wildcards_do(pattern in "[ab/?*]{0,8}", text in "[ab/?*]{0,12}") {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        prop_assert_eq!(UriPattern::new(&pattern).matches(&text), reference_matches(&chars(&pattern), &chars(&text)));
    }
}

#[test]
fn the_default_exclusions_are_the_contracts_list() {
    let filter = Filter::default();
    let patterns: Vec<&str> = filter.exclude_uris.iter().map(UriPattern::as_str).collect();
    assert_eq!(patterns, CONTRACT_DEFAULT_EXCLUSIONS);
    // The CloudWatch filter pattern of contract §3, the default of template.yaml's
    // FilterPattern and of `eks-audit subscribe --filter-pattern`, written out.
    assert_eq!(
        DEFAULT_SUBSCRIPTION_PATTERN,
        r#"{ $.stage = "ResponseComplete" && $.requestURI != "/version" && $.requestURI != "/version?*" && $.requestURI != "/metrics" && $.requestURI != "/metrics?*" && $.requestURI != "/logs" && $.requestURI != "/logs?*" && $.requestURI != "/swagger*" && $.requestURI != "/livez*" && $.requestURI != "/readyz*" && $.requestURI != "/healthz*" }"#
    );
}

#[test]
fn the_default_exclusions_drop_and_keep_what_the_wildcards_say() {
    // `*` matches any run of characters (none included); every other character, `?` too,
    // matches itself; the whole URI must match (contract §3).
    let dropped = [
        "/version",
        "/version?",            // `/version?*`, `*` matching nothing
        "/version?timeout=32s", // `/version?*`
        "/metrics",
        "/metrics?x", // `/metrics?*`
        "/logs",
        "/logs?",   // `/logs?*`, `*` matching nothing
        "/logs?x",  // `/logs?*`
        "/swagger", // `/swagger*`, `*` matching nothing
        "/swagger-2.0.0.pb-v1",
        "/swagger.json",
        "/livez",
        "/livez/ping",
        "/readyz?verbose",
        "/readyzx",
        "/healthz",
        "/healthz/etcd",
    ];
    let kept = [
        "/versions", // `/version` is exact; `/version?*` needs a `?` after it
        "/version/", // likewise: `/` is not `?`
        "/Version",  // every character matches itself: case counts
        "/metricsx",
        "/metrics/cadvisor", // `/metrics?*` needs a literal `?`, not any character
        "/logsx",
        "/logsearch",
        "/logs/kube-apiserver.log",
        "/apis/metrics.k8s.io/v1beta1/nodes",
        "/api/v1/namespaces/default/pods?watch=true",
        "/openapi/v2",
        "/x/healthz", // the whole URI must match: no pattern starts with `*`
    ];
    let fate = |uri: &str| {
        let text =
            json!({"kind": "Event", "stage": "ResponseComplete", "requestURI": uri}).to_string();
        process_event(
            &text,
            &CONTEXT,
            &eks_audit_core::ProcessOptions::default(),
            &mut Vec::new(),
        )
    };
    for uri in dropped {
        assert_eq!(
            fate(uri),
            EventFate::Dropped(DropReason::ExcludedUri),
            "{uri}"
        );
    }
    for uri in kept {
        assert!(
            matches!(fate(uri), EventFate::Kept { .. }),
            "{uri}: {:?}",
            fate(uri)
        );
    }
}

/// The one seed of tests/properties.proptest-regressions, as proptest wrote it: a failure of
/// the event properties, shrunk to `{"requestURI":{"":3.694674109405645e+299}}`.
const REGRESSION_SEED: &str = "cc 4fd79f351d5b1e0b6adad41840fb34693db17be0fa4c7174becd947c2d220467";

#[test]
fn the_properties_load_the_committed_regression_seed() {
    // Through the very persistence the properties are configured with: proptest replays
    // whatever this returns before generating new cases.
    let persistence = config(1)
        .failure_persistence
        .expect("failure persistence is on");
    let seeds: Vec<String> = persistence
        .load_persisted_failures2(Some(file!()))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(seeds, [REGRESSION_SEED]);
}

#[test]
fn the_committed_regression_seed_replays_and_holds() {
    // The case proptest generates from the seed when it replays it (the seed fixes the RNG,
    // and generation depends on nothing else).
    let hex = REGRESSION_SEED.strip_prefix("cc ").expect("a ChaCha seed");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let mut runner =
        TestRunner::new_with_rng(config(1), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let (event, text) = event_text()
        .new_tree(&mut runner)
        .expect("a case")
        .current();
    normalization_keeps_the_event(&event, &text).unwrap();
    the_default_filter_agrees(&event, &text).unwrap();
}

#[test]
fn the_shrunk_regression_keeps_a_huge_float_in_raw_event() {
    // The committed failure, shrunk: `requestURI` is an object (read as absent, §1.3) holding
    // a float near the top of f64's range, which must come back in RawEvent as written.
    let text = r#"{"requestURI":{"":3.694674109405645e+299}}"#;
    let event: Value = serde_json::from_str(text).unwrap();
    normalization_keeps_the_event(&event, text).unwrap();
    let mut out = Vec::new();
    process_event(text, &CONTEXT, &keep_all().process, &mut out);
    let line: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        line["RawEvent"]["requestURI"][""].as_f64(),
        Some(3.694674109405645e299)
    );
    assert_eq!(line["RequestURI"], Value::Null);
    // No `stage`: the default filter drops it for its stage (§3: in no list).
    the_default_filter_agrees(&event, text).unwrap();
    assert_eq!(
        process_event(
            text,
            &CONTEXT,
            &eks_audit_core::ProcessOptions::default(),
            &mut Vec::new()
        ),
        EventFate::Dropped(DropReason::Stage)
    );
}

/// One generated Firehose record.
#[derive(Debug, Clone)]
enum RecordSpec {
    Message {
        control: bool,
        audit_stream: bool,
        gzip: bool,
        events: Vec<Value>,
    },
    Bytes(Vec<u8>),
    NotBase64(String),
}

fn record() -> impl Strategy<Value = RecordSpec> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>(), any::<bool>(), prop::collection::vec(audit_event(), 0..4))
            .prop_map(|(control, audit_stream, gzip, events)| RecordSpec::Message { control: control && events.is_empty(), audit_stream, gzip, events }),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(RecordSpec::Bytes),
        1 => "[^A-Za-z0-9+/=]{1,12}".prop_map(RecordSpec::NotBase64),
    ]
}

impl RecordSpec {
    fn data(&self) -> String {
        match self {
            RecordSpec::Message {
                control: true,
                gzip,
                ..
            } => encode(&control_message(), *gzip),
            RecordSpec::Message {
                audit_stream,
                gzip,
                events,
                ..
            } => {
                let texts: Vec<String> = events.iter().map(Value::to_string).collect();
                let stream = if *audit_stream {
                    STREAM
                } else {
                    "kube-scheduler-0123456789abcdef"
                };
                encode(
                    &data_message(
                        GROUP,
                        stream,
                        &texts.iter().map(String::as_str).collect::<Vec<_>>(),
                    ),
                    *gzip,
                )
            }
            RecordSpec::Bytes(bytes) => b64(bytes),
            RecordSpec::NotBase64(text) => text.clone(),
        }
    }

    /// The CloudWatch event ids (`id-<i>`) the reference filter keeps, or `None` when the
    /// record's fate does not depend on the filter (undecodable input).
    fn kept_ids(&self) -> Option<Vec<String>> {
        match self {
            RecordSpec::Message { control: true, .. }
            | RecordSpec::Message {
                audit_stream: false,
                ..
            } => Some(Vec::new()),
            RecordSpec::Message { events, .. } => Some(
                events
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| reference_decision(e).is_none())
                    .map(|(i, _)| format!("id-{i}"))
                    .collect(),
            ),
            _ => None,
        }
    }
}

fn encode(message: &Value, compress: bool) -> String {
    if compress {
        gzip_record(message)
    } else {
        b64(message.to_string().as_bytes())
    }
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
});

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn every_firehose_record_comes_back_once_in_order_and_accounted_for(specs in prop::collection::vec(record(), 0..6)) {
        let datas: Vec<String> = specs.iter().map(RecordSpec::data).collect();
        let test = handler(Settings::default());
        let response = match RUNTIME.block_on(test.handler.handle(&firehose_event(&datas))) {
            Ok(Response::Firehose(response)) => response,
            other => panic!("a Firehose event is answered: {other:?}"),
        };
        prop_assert_eq!(response.records.len(), specs.len());
        for (i, ((spec, data), record)) in specs.iter().zip(&datas).zip(&response.records).enumerate() {
            prop_assert_eq!(&record.record_id, &format!("r{i}"));
            match (spec.kept_ids(), record.result) {
                (_, FirehoseResult::ProcessingFailed) => {
                    prop_assert!(spec.kept_ids().is_none(), "a valid record failed: {:?}", spec);
                    prop_assert_eq!(&record.data, data);
                }
                (Some(ids), FirehoseResult::Dropped) => {
                    prop_assert!(ids.is_empty(), "{:?} kept by the reference", ids);
                    prop_assert!(record.data.is_empty());
                }
                (Some(ids), FirehoseResult::Ok) => {
                    let lines = ok_lines(&record.data);
                    let got: Vec<&str> = lines.iter().map(|l| l["EventId"].as_str().unwrap()).collect();
                    prop_assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
                }
                (None, result) => prop_assert!(false, "undecodable {:?} answered {:?}", spec, result),
            }
        }
    }
}
