//! Events cut by CloudWatch Logs (`[Truncated...]`), salvaged (contract §6.2): real events cut
//! at every character boundary, each cut held against what serde_json reads from the whole
//! event.
//!
//! For every cut: nothing panics; the event is accounted exactly once; the salvaged fields are
//! the whole event's values for every top-level field that ends before the cut, and absent for
//! every other; the event is kept flagged and quarantined, dropped, or only quarantined, as the
//! contract says for what the cut left. The events hold cuts inside strings, inside escapes
//! (`\"`, `\u0026`, `\u00e9`), next to multi-byte characters, inside nested objects and lists,
//! inside numbers, and at every field boundary.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_core::pipeline::process_payload;
use eks_audit_core::salvage::{self, MARKER};
use eks_audit_core::tally::DropReason;
use eks_audit_core::{
    AuditEvent, EventContext, EventFate, Format, Origin, ProcessOptions, Redaction, process_event,
};

const CONTEXT: EventContext<'static> = EventContext {
    account: Some("111122223333"),
    region: Some("eu-west-1"),
    cluster: Some("prod-east"),
    log_group: Some("/aws/eks/prod-east/cluster"),
    log_stream: Some("kube-apiserver-audit-0123456789abcdef"),
    event_id: Some("37446480926402052183949474339138577925447582474154713088"),
    cloudwatch_timestamp: Some(1_716_285_600_000),
};

fn corpus(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/third-party/audit-events")
        .join(path);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim_end()
        .to_owned()
}

const OPENSHIFT_AUDIT: &str = "openshift-cluster-logging-operator/test__functional__filters__apiaudit__vrl__testdata__audit_in.log";

fn corpus_line(path: &str, number: usize) -> String {
    corpus(path)
        .lines()
        .nth(number - 1)
        .expect("the line exists")
        .to_owned()
}

fn openshift_line(number: usize) -> String {
    corpus_line(OPENSHIFT_AUDIT, number)
}

/// Line 19 of the OpenShift log (a `watch` whose URI holds `\u0026` escapes and whose
/// authorization reason holds `\"`), adapted: its user agent made non-ASCII, with two-, three-
/// and four-byte characters, an escaped quote and a `\u00e9` escape.
fn non_ascii_event() -> String {
    let line = openshift_line(19);
    let agent = r#""userAgent":"kube-scheduler/v1.25.8+27e744f (linux/amd64) kubernetes/df8a1b9/scheduler""#;
    assert!(line.contains(agent));
    line.replace(
        agent,
        r#""userAgent":"NetLock Arany (Class Gold) Főtanúsítvány \"ügynök\" caf\u00e9 ✓ 🙂""#,
    )
}

/// The whole events cut at every character boundary: kube-apiserver's field order and the
/// alphabetical order of the Falco samples, compact and with escapes, kept and filtered out by
/// stage or URI.
fn events() -> Vec<(String, String)> {
    let mut events: Vec<(String, String)> = [
        "falco-k8s_audit/create_service_account_token_secret.json",
        "falco-k8s_audit/create_configmap_no_sensitive_values.json",
        "falco-k8s_audit/create_nginx_pod_privileged.json",
        "falco-k8s_audit/exec_pod.json",
        "falco-k8s_audit/attach_cluster_admin_role.json",
    ]
    .into_iter()
    .map(|path| (path.to_owned(), corpus(path)))
    .collect();
    for line in [14, 19] {
        events.push((format!("audit_in.log line {line}"), openshift_line(line)));
    }
    events.push(("audit_in.log line 19, non-ASCII".into(), non_ascii_event()));
    events.push((
        "exporter line 3 (/livez)".into(),
        corpus_line(
            "kube-apiserver-audit-exporter/audit_test.go.exampleLines.ndjson",
            3,
        ),
    ));
    events
}

/// A top-level member of a whole event as serde_json reads it: its key, its value, and where
/// the value ends in the text.
struct Member {
    key: String,
    value: Value,
    end: usize,
    is_number: bool,
}

/// The top-level members of `text`, in order, with the places of their values.
fn members(text: &str) -> Vec<Member> {
    struct Members<'t>(Vec<(String, &'t RawValue)>);
    impl<'de> de::Deserialize<'de> for Members<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct MembersVisitor;
            impl<'de> Visitor<'de> for MembersVisitor {
                type Value = Members<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut members = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        members.push((key, map.next_value::<&'de RawValue>()?));
                    }
                    Ok(Members(members))
                }
            }
            deserializer.deserialize_map(MembersVisitor)
        }
    }
    let Members(members) = serde_json::from_str(text).expect("a whole event is JSON");
    members
        .into_iter()
        .map(|(key, raw)| {
            let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
            Member {
                value: serde_json::from_str(raw.get()).unwrap(),
                is_number: raw
                    .get()
                    .starts_with(|c: char| c == '-' || c.is_ascii_digit()),
                end: start + raw.get().len(),
                key,
            }
        })
        .collect()
}

/// Whether the member lies entirely before a cut at `at`. A number that reaches the cut is not:
/// its digits may have gone on (`12` of `1234`).
fn before(member: &Member, at: usize) -> bool {
    member.end < at || (member.end == at && !member.is_number)
}

/// The fields of [`AuditEvent`] by their JSON names, as debug text (equal for borrowed and
/// owned strings).
fn typed_fields(event: &AuditEvent<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("kind", format!("{:?}", event.kind)),
        ("apiVersion", format!("{:?}", event.api_version)),
        ("level", format!("{:?}", event.level)),
        ("auditID", format!("{:?}", event.audit_id)),
        ("stage", format!("{:?}", event.stage)),
        ("requestURI", format!("{:?}", event.request_uri)),
        ("verb", format!("{:?}", event.verb)),
        ("user", format!("{:?}", event.user)),
        ("impersonatedUser", format!("{:?}", event.impersonated_user)),
        ("sourceIPs", format!("{:?}", event.source_ips)),
        ("userAgent", format!("{:?}", event.user_agent)),
        ("objectRef", format!("{:?}", event.object_ref)),
        ("responseStatus", format!("{:?}", event.response_status)),
        (
            "requestReceivedTimestamp",
            format!("{:?}", event.request_received_timestamp),
        ),
        ("stageTimestamp", format!("{:?}", event.stage_timestamp)),
        ("timestamp", format!("{:?}", event.timestamp)),
        ("annotations", format!("{:?}", event.annotations)),
    ]
}

/// Every cut of `text` at a character boundary: CloudWatch's cut text stays valid UTF-8.
fn cuts(text: &str) -> impl Iterator<Item = usize> + '_ {
    (0..=text.len()).filter(|&at| text.is_char_boundary(at))
}

#[test]
fn the_fields_before_the_cut_are_read_as_the_whole_event_has_them() {
    let absent = typed_fields(&AuditEvent::default());
    for (name, text) in events() {
        let whole = AuditEvent::parse(&text).expect("a whole event");
        let whole_fields = typed_fields(&whole);
        let members = members(&text);
        for at in cuts(&text) {
            let cut = &text[..at];
            let complete: Vec<&Member> = members.iter().filter(|m| before(m, at)).collect();
            let Some(salvage) = salvage::read(cut) else {
                assert!(cut.trim().is_empty(), "{name} cut at {at}: nothing read");
                continue;
            };
            let read: Value = serde_json::from_str(salvage.json())
                .unwrap_or_else(|e| panic!("{name} cut at {at}: {e}: {}", salvage.json()));
            let read = read.as_object().expect("an object");
            assert_eq!(read.len(), complete.len(), "{name} cut at {at}");
            for member in &complete {
                assert_eq!(
                    read.get(&member.key),
                    Some(&member.value),
                    "{name} cut at {at}"
                );
            }
            for member in &members {
                assert_eq!(
                    salvage.knows(&member.key),
                    before(member, at),
                    "{name} cut at {at}: {}",
                    member.key
                );
            }
            let event = AuditEvent::parse(salvage.json()).expect("complete members parse");
            let complete_keys: BTreeSet<&str> = complete.iter().map(|m| m.key.as_str()).collect();
            for ((key, got), ((_, whole), (_, none))) in typed_fields(&event)
                .iter()
                .zip(whole_fields.iter().zip(&absent))
            {
                let expected = if complete_keys.contains(key) {
                    whole
                } else {
                    none
                };
                assert_eq!(got, expected, "{name} cut at {at}: {key}");
            }
        }
    }
}

/// What the contract says becomes of a cut event, from the whole event and what the cut left.
#[derive(Debug, PartialEq)]
enum Expected {
    Salvaged,
    Dropped(DropReason),
    Quarantined,
}

fn expected(
    options: &ProcessOptions,
    whole: &AuditEvent<'_>,
    known: &dyn Fn(&str) -> bool,
) -> Expected {
    if !known("stage") {
        return Expected::Quarantined;
    }
    match options.filter.check(whole) {
        Err(DropReason::ExcludedUri) if !known("requestURI") => return Expected::Quarantined,
        Err(reason) => return Expected::Dropped(reason),
        Ok(()) => {}
    }
    if !options.filter.exclude_uris.is_empty() && !known("requestURI") {
        return Expected::Quarantined;
    }
    // OCSF requires a verb, a user and a source IP (the CloudWatch timestamp gives a time).
    if options.format == Format::Ocsf && !["verb", "user", "sourceIPs"].iter().all(|k| known(k)) {
        return Expected::Quarantined;
    }
    Expected::Salvaged
}

/// Flat columns and the top-level fields they come from; `TimeGenerated` falls back through
/// several, so it is compared only when the first is known.
const COLUMNS: [(&str, &[&str]); 31] = [
    ("TimeGenerated", &["requestReceivedTimestamp"]),
    ("AwsAccountId", &[]),
    ("Region", &[]),
    ("ClusterName", &[]),
    ("Verb", &["verb"]),
    ("User", &["user"]),
    ("SourceIPs", &["sourceIPs"]),
    ("UserAgent", &["userAgent"]),
    ("ObjectRef", &["objectRef"]),
    ("ResponseCode", &["responseStatus"]),
    ("Stage", &["stage"]),
    ("AuthDecision", &["annotations"]),
    ("AuditId", &["auditID"]),
    ("Level", &["level"]),
    ("RequestURI", &["requestURI"]),
    ("ApiGroup", &["objectRef"]),
    ("ApiVersion", &["objectRef"]),
    ("Namespace", &["objectRef"]),
    ("Resource", &["objectRef"]),
    ("Subresource", &["objectRef"]),
    ("Name", &["objectRef"]),
    ("UserGroups", &["user"]),
    ("UserArn", &["user"]),
    ("ImpersonatedUser", &["impersonatedUser"]),
    ("AuthReason", &["annotations"]),
    ("ResponseReason", &["responseStatus"]),
    ("RequestReceivedTimestamp", &["requestReceivedTimestamp"]),
    ("StageTimestamp", &["stageTimestamp"]),
    ("LogGroup", &[]),
    ("LogStream", &[]),
    ("EventId", &[]),
];

fn line_of(text: &str, options: &ProcessOptions) -> (EventFate, Option<Value>) {
    let mut out = Vec::new();
    let fate = process_event(text, &CONTEXT, options, &mut out);
    let line = match &fate {
        EventFate::Kept { bytes, .. } | EventFate::Salvaged { bytes, .. } => {
            assert_eq!(*bytes, 0..out.len());
            let line = std::str::from_utf8(&out).expect("UTF-8");
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            if let (EventFate::Salvaged { .. }, Format::Flat) = (&fate, options.format) {
                assert!(
                    line.ends_with(",\"Truncated\":true}\n"),
                    "the last column: {line}"
                );
            }
            Some(serde_json::from_str(line).expect("a JSON line"))
        }
        _ => {
            assert!(out.is_empty(), "{fate:?} wrote {out:?}");
            None
        }
    };
    (fate, line)
}

fn settings() -> Vec<(&'static str, ProcessOptions)> {
    let keep_all = Filter {
        stages: StageFilter::All,
        exclude_uris: Vec::new(),
    };
    vec![
        ("flat, default filter", ProcessOptions::default()),
        (
            "flat, every event",
            ProcessOptions {
                filter: keep_all.clone(),
                ..ProcessOptions::default()
            },
        ),
        (
            "ocsf, default filter",
            ProcessOptions {
                format: Format::Ocsf,
                ..ProcessOptions::default()
            },
        ),
        (
            "ocsf, every event",
            ProcessOptions {
                format: Format::Ocsf,
                filter: keep_all,
                ..ProcessOptions::default()
            },
        ),
    ]
}

#[test]
fn every_cut_is_kept_flagged_dropped_or_quarantined_as_the_contract_says() {
    // The flat line of an event with none of the fields: what an unknown column holds.
    let every_event = &settings()[1].1;
    let (_, empty) = line_of("{}", every_event);
    let empty = empty.expect("an event without fields is kept by `*`");
    let mut seen = BTreeSet::new();
    for (name, text) in events() {
        let whole = AuditEvent::parse(&text).expect("a whole event");
        let members = members(&text);
        let (_, whole_flat) = line_of(&text, every_event);
        let whole_flat = whole_flat.expect("kept by `*`");
        for at in cuts(&text) {
            let message = format!("{}{MARKER}", &text[..at]);
            let known = |key: &str| members.iter().any(|m| m.key == key && before(m, at));
            for (setting, options) in settings() {
                let (fate, line) = line_of(&message, &options);
                let want = expected(&options, &whole, &known);
                let what = format!("{name} cut at {at}, {setting}");
                match (&fate, &want) {
                    (EventFate::Salvaged { reason, .. }, Expected::Salvaged) => {
                        assert!(reason.contains("[Truncated...]"), "{what}: {reason}");
                    }
                    (EventFate::Dropped(got), Expected::Dropped(reason)) => {
                        assert_eq!(got, reason, "{what}")
                    }
                    (EventFate::Quarantined(reason), Expected::Quarantined) => {
                        assert!(reason.contains("[Truncated...]"), "{what}: {reason}");
                    }
                    _ => panic!("{what}: expected {want:?}, got {fate:?}"),
                }
                seen.insert(format!("{want:?}"));
                let Some(line) = line else { continue };
                if options.format == Format::Ocsf {
                    assert_eq!(line["unmapped"]["truncated"], "true", "{what}");
                    continue;
                }
                assert_eq!(line["Truncated"], true, "{what}");
                assert_eq!(
                    line["RawEvent"],
                    message.as_str(),
                    "{what}: the text received"
                );
                for (column, sources) in COLUMNS {
                    let known_sources = sources.iter().all(|s| known(s));
                    let want = if known_sources {
                        &whole_flat[column]
                    } else if column == "TimeGenerated" {
                        continue;
                    } else {
                        &empty[column]
                    };
                    assert_eq!(&line[column], want, "{what}: {column}");
                }
                let mut columns = line.as_object().unwrap().clone();
                assert_eq!(columns.remove("Truncated"), Some(Value::Bool(true)));
                assert!(
                    columns.keys().eq(whole_flat.as_object().unwrap().keys()),
                    "{what}: the columns of a whole event, and Truncated"
                );
            }
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "Dropped(ExcludedUri)",
            "Dropped(Stage)",
            "Quarantined",
            "Salvaged"
        ],
        "the cuts reach every outcome"
    );
}

/// A subscription message holding one log event with `text` as its message.
fn payload(text: &str) -> Vec<u8> {
    serde_json::json!({
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "/aws/eks/prod-east/cluster",
        "logStream": "kube-apiserver-audit-0123456789abcdef",
        "subscriptionFilters": ["eks-audit"],
        "logEvents": [{"id": "e1", "timestamp": 1_716_285_600_000_i64, "message": text}],
    })
    .to_string()
    .into_bytes()
}

#[test]
fn every_cut_is_accounted_exactly_once_and_its_original_text_kept_when_not_dropped() {
    let options = ProcessOptions::default();
    for (name, text) in events() {
        for at in cuts(&text) {
            let message = format!("{}{MARKER}", &text[..at]);
            let outcome = process_payload(payload(&message), Origin::default(), &options)
                .expect("a readable payload");
            let tally = &outcome.tally;
            let what = format!("{name} cut at {at}: {tally:?}");
            assert_eq!(tally.events, 1, "{what}");
            assert_eq!(
                tally.kept + tally.dropped.total() + tally.quarantined,
                1,
                "{what}"
            );
            assert_eq!(tally.kept, 0, "{what}: a cut event is never whole");
            assert!(tally.salvaged <= tally.quarantined, "{what}");
            assert_eq!(outcome.kept.len() as u64, tally.salvaged, "{what}");
            assert_eq!(
                outcome.quarantined.len() as u64,
                tally.quarantined,
                "{what}"
            );
            assert_eq!(
                outcome.ndjson.iter().filter(|&&b| b == b'\n').count() as u64,
                tally.salvaged,
                "{what}"
            );
            for quarantined in &outcome.quarantined {
                let line: Value = serde_json::from_slice(&quarantined.line).unwrap();
                assert_eq!(line["message"], message.as_str(), "{what}: verbatim");
                assert_eq!(line["reason"], quarantined.reason.as_str());
            }
        }
    }
}

#[test]
fn the_events_hold_the_cuts_the_contract_names() {
    let events = events();
    let text = |name: &str| &events.iter().find(|(n, _)| n.contains(name)).unwrap().1;
    let line_19 = text("line 19");
    assert!(line_19.contains(r#"\u0026"#) && line_19.contains(r#"\""#));
    let non_ascii = text("non-ASCII");
    for needle in ["ő", "✓", "🙂", r#"\u00e9"#, r#"\"ügynök\""#] {
        assert!(non_ascii.contains(needle), "{needle}");
    }
    // The user agent comes before the cuts that keep the event: every cut inside it, multi-byte
    // characters and escapes included, leaves it out, and every cut after it keeps it whole.
    let start = non_ascii.find(r#""userAgent""#).unwrap();
    let end = non_ascii[start..].find(r#"","objectRef""#).unwrap() + start + 1;
    for at in cuts(non_ascii).filter(|&at| at > start && at <= end) {
        let salvage = salvage::read(&non_ascii[..at]).unwrap();
        assert_eq!(salvage.knows("userAgent"), at == end, "cut at {at}");
    }
    let salvage = salvage::read(&non_ascii[..end]).unwrap();
    let event = AuditEvent::parse(salvage.json()).unwrap();
    assert_eq!(
        event.user_agent.as_deref(),
        Some("NetLock Arany (Class Gold) Főtanúsítvány \"ügynök\" café ✓ 🙂")
    );
}

/// CloudWatch cuts bytes; where that splits a character, the message (a JSON string) can only
/// carry a replacement character. It ends an unfinished string, which is left out.
#[test]
fn a_character_split_by_the_cut_leaves_its_string_out() {
    let text = non_ascii_event();
    let at = text.find("🙂").unwrap();
    let message = format!("{}\u{fffd}{MARKER}", &text[..at]);
    let (fate, line) = line_of(&message, &ProcessOptions::default());
    assert!(matches!(fate, EventFate::Salvaged { .. }), "{fate:?}");
    let line = line.unwrap();
    assert_eq!(line["UserAgent"], Value::Null);
    assert_eq!(line["Verb"], "watch");
    assert_eq!(line["RawEvent"], message.as_str());
}

/// A large event of the OpenShift log (220 KB, a ConfigMap of CA certificates with Hungarian
/// names), cut at every boundary of its first 2,000 bytes and of 300 bytes around its first
/// non-ASCII character (134 KB in, inside the response body): what precedes the body is kept
/// from the body's start on.
#[test]
fn a_cut_inside_a_large_body_keeps_the_fields_before_it() {
    let text = openshift_line(97);
    let first = text.find('ő').expect("a non-ASCII character");
    let body = text.find(r#""responseObject":"#).expect("a response body");
    let options = ProcessOptions::default();
    let windows = cuts(&text).filter(|&at| at <= 2_000 || (first - 150..first + 150).contains(&at));
    let mut salvaged = 0;
    for at in windows {
        let message = format!("{}{MARKER}", &text[..at]);
        let (fate, line) = line_of(&message, &options);
        if at <= body {
            continue;
        }
        assert!(
            matches!(fate, EventFate::Salvaged { .. }),
            "cut at {at}: {fate:?}"
        );
        let line = line.unwrap();
        assert_eq!(line["Verb"], "get");
        assert_eq!(line["ResponseCode"], 200);
        assert_eq!(line["Resource"], "configmaps");
        assert_eq!(line["RawEvent"], message.as_str());
        assert_eq!(
            line["AuthDecision"],
            Value::Null,
            "annotations come after the body"
        );
        salvaged += 1;
    }
    assert!(salvaged > 1_000, "{salvaged}");
}

/// The CA bundle sample as a Secret with redaction of secrets on: the body is replaced by the
/// marker whether it is complete or cut, and the rest of the text received stays.
#[test]
fn redaction_replaces_bodies_whole_or_cut() {
    let text = openshift_line(97).replace(r#""resource":"configmaps""#, r#""resource":"secrets""#);
    let body = text.find(r#""responseObject":"#).unwrap() + r#""responseObject":"#.len();
    let options = ProcessOptions {
        redaction: Redaction::parse("secrets").unwrap(),
        ..ProcessOptions::default()
    };
    let marker = r#"{"redacted":"eks-audit-forwarder","reason":"secrets"}"#;
    let end = text.find(r#","requestReceivedTimestamp""#).unwrap();
    for at in [body, body + 1, body + 5_000, end - 10] {
        let message = format!("{}{MARKER}", &text[..at]);
        let (fate, line) = line_of(&message, &options);
        assert!(
            matches!(fate, EventFate::Salvaged { .. }),
            "cut at {at}: {fate:?}"
        );
        let raw = line.unwrap()["RawEvent"].as_str().unwrap().to_owned();
        assert_eq!(
            raw,
            format!("{}{marker}{MARKER}", &text[..body]),
            "cut at {at}"
        );
        let (_, ocsf) = line_of(
            &message,
            &ProcessOptions {
                format: Format::Ocsf,
                ..options.clone()
            },
        );
        let ocsf = ocsf.unwrap();
        assert!(
            ocsf["api"]["response"].get("data").is_none(),
            "the body was cut"
        );
    }
    // A complete body: redacted in RawEvent, and in OCSF, which finds it among the complete
    // members.
    let message = format!("{}{MARKER}", &text[..end + 1]);
    let (_, line) = line_of(&message, &options);
    let raw = line.unwrap()["RawEvent"].as_str().unwrap().to_owned();
    assert_eq!(raw, format!("{}{marker},{MARKER}", &text[..body]));
    let (_, ocsf) = line_of(
        &message,
        &ProcessOptions {
            format: Format::Ocsf,
            ..options.clone()
        },
    );
    assert_eq!(ocsf.unwrap()["api"]["response"]["data"], marker);
}

/// Without `objectRef`, no rule but `*` can say whether a body before the cut is covered: the
/// event is only quarantined, unless `*` redacts every body anyway.
#[test]
fn bodies_before_an_unknown_object_ref_are_not_forwarded_under_redaction() {
    let text = r#"{"kind":"Event","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/secrets","verb":"create","requestObject":{"data":{"k":"czNjcjN0"}},"objectRef":{"resource":"secrets"#;
    let message = format!("{text}{MARKER}");
    let run = |rules: &str| {
        line_of(
            &message,
            &ProcessOptions {
                redaction: Redaction::parse(rules).unwrap(),
                ..ProcessOptions::default()
            },
        )
    };
    let (fate, _) = run("secrets");
    let EventFate::Quarantined(reason) = fate else {
        panic!("{fate:?}")
    };
    assert!(reason.contains("before `objectRef`"), "{reason}");
    let (fate, line) = run("*");
    assert!(matches!(fate, EventFate::Salvaged { .. }), "{fate:?}");
    let raw = line.unwrap()["RawEvent"].as_str().unwrap().to_owned();
    assert!(!raw.contains("czNjcjN0"), "{raw}");
    let (fate, line) = run("none");
    assert!(matches!(fate, EventFate::Salvaged { .. }), "{fate:?}");
    assert_eq!(line.unwrap()["RawEvent"], message.as_str());
}

/// The filter decides on what was read: a stage it does not keep or an excluded URI drops the
/// event with nothing quarantined; a cut before the URI, when URIs are excluded, leaves the
/// event only quarantined.
#[test]
fn the_filter_decides_on_the_fields_it_reads() {
    let options = ProcessOptions::default();
    let run = |text: &str| line_of(&format!("{text}{MARKER}"), &options).0;
    assert_eq!(
        run(r#"{"kind":"Event","stage":"ResponseStarted","requestURI":"/api/v1/pods","verb":"wa"#),
        EventFate::Dropped(DropReason::Stage)
    );
    assert_eq!(
        run(
            r#"{"kind":"Event","stage":"ResponseComplete","requestURI":"/healthz","verb":"get","user":{"#
        ),
        EventFate::Dropped(DropReason::ExcludedUri)
    );
    let EventFate::Quarantined(reason) =
        run(r#"{"kind":"Event","stage":"ResponseComplete","requestURI":"/heal"#)
    else {
        panic!("a URI cut")
    };
    assert!(reason.contains("before `requestURI`"), "{reason}");
    let EventFate::Quarantined(reason) = run(r#"{"kind":"Event","level":"Metadata","sta"#) else {
        panic!("a stage cut")
    };
    assert!(reason.contains("before `stage`"), "{reason}");
    for not_an_object in ["", "E0521 10:00:00 apiserver", "[1,2", r#"{"a" "b""#] {
        let EventFate::Quarantined(reason) = run(not_an_object) else {
            panic!("{not_an_object}")
        };
        assert!(
            reason.contains("not the start of a JSON object"),
            "{reason}"
        );
    }
    // What the members hold is judged as for any event.
    let EventFate::Quarantined(reason) = run(
        r#"{"kind":"Event","verb":"get","verb":"list","stage":"ResponseComplete","requestURI":"/a","x"#,
    ) else {
        panic!("a duplicate field")
    };
    assert!(reason.contains("duplicate field `verb`"), "{reason}");
    let deep = format!(
        r#"{{"kind":"Event","stage":"ResponseComplete","requestURI":"/a","x":{}{},"y"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let EventFate::Quarantined(reason) = run(&deep) else {
        panic!("too deep")
    };
    assert!(reason.contains("EKS_AUDIT_MAX_DEPTH"), "{reason}");
    let EventFate::Quarantined(reason) =
        run(r#"{"kind":"Secret","stage":"ResponseComplete","requestURI":"/a","#)
    else {
        panic!("another kind")
    };
    assert!(reason.contains("kind is \"Secret\""), "{reason}");
}
