//! Helpers shared by the integration tests: the corpus, event builders, a handler on a
//! temporary directory.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use eks_audit_core::ProcessOptions;
use eks_audit_core::envelope::models::FirehoseResponse;
use eks_audit_core::filter::{Filter, StageFilter};
use eks_audit_core::schema::EventContext;
use eks_audit_forwarder::config::Settings;
use eks_audit_forwarder::handler::{Handler, Response};
use eks_audit_forwarder::sink::{ObjectStore, local::LocalDir};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

/// The third-party corpus, copied into the repository (see its `SOURCES.md`).
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/third-party")
}

pub fn corpus_file(relative: &str) -> String {
    let path = corpus().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The first line of an NDJSON corpus file, or a single-event JSON file compacted to one line.
pub fn corpus_event(relative: &str, line: usize) -> String {
    let text = corpus_file(relative);
    let value: Value = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .nth(line)
        .expect("corpus file has that many events")
        .expect("corpus event is JSON");
    value.to_string()
}

/// The rule tests that failed, as `rule/file: why`, for an assertion message.
pub fn failed_rule_tests(results: &[eks_audit_core::detect::testing::TestResult]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| {
            r.failure
                .as_ref()
                .map(|f| format!("{}/{}: {f}", r.rule, r.file))
        })
        .collect()
}

pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub const ACCOUNT: &str = "111122223333";
pub const GROUP: &str = "/aws/eks/prod-east/cluster";
pub const STREAM: &str = "kube-apiserver-audit-0123456789abcdef0123456789abcdef";

/// Where a single event is said to come from when it is processed on its own.
pub const CONTEXT: EventContext<'static> = EventContext {
    account: Some(ACCOUNT),
    region: Some("eu-west-1"),
    cluster: Some("prod-east"),
    log_group: Some(GROUP),
    log_stream: Some(STREAM),
    event_id: Some("1"),
    // 2024-05-21T10:00:00Z
    cloudwatch_timestamp: Some(1_716_285_600_000),
};

/// Settings that keep every event: every stage, no URI excluded.
pub fn keep_all() -> Settings {
    let filter = Filter {
        stages: StageFilter::All,
        exclude_uris: Vec::new(),
    };
    Settings {
        process: ProcessOptions {
            filter,
            ..ProcessOptions::default()
        },
        ..Settings::default()
    }
}

/// A DATA_MESSAGE from `log_group`/`log_stream` holding `messages` as log events with ids
/// `id-0`, `id-1`, ... and timestamps 1716285600000 + i (2024-05-21T10:00:00Z).
pub fn data_message(log_group: &str, log_stream: &str, messages: &[&str]) -> Value {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("id-{i}"), "timestamp": 1_716_285_600_000_i64 + i as i64, "message": m}))
        .collect();
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": ["eks-audit"],
        "logEvents": events,
    })
}

pub fn control_message() -> Value {
    json!({
        "messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1_716_285_600_000_i64, "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]
    })
}

/// A Firehose transformation event with one record per `data` (already base64), ids `r0`, `r1`, ...
pub fn firehose_event(datas: &[String]) -> String {
    firehose_event_for(
        "arn:aws:firehose:eu-west-1:111122223333:deliverystream/eks-audit",
        datas,
    )
}

/// [`firehose_event`] from the delivery stream `stream_arn`, in the ARN's region.
pub fn firehose_event_for(stream_arn: &str, datas: &[String]) -> String {
    let records: Vec<Value> = datas
        .iter()
        .enumerate()
        .map(|(i, d)| json!({"recordId": format!("r{i}"), "approximateArrivalTimestamp": 1_716_285_601_000_i64, "data": d}))
        .collect();
    json!({
        "invocationId": "00540a87-5050-496a-84e4-e7d92bbaf5e2",
        "deliveryStreamArn": stream_arn,
        "region": stream_arn.split(':').nth(3).unwrap_or_default(),
        "records": records,
    })
    .to_string()
}

/// Record data for a subscription message: base64 of its gzip.
pub fn gzip_record(message: &Value) -> String {
    b64(&gzip(message.to_string().as_bytes()))
}

pub fn awslogs_event(message: &Value) -> String {
    json!({"awslogs": {"data": gzip_record(message)}}).to_string()
}

/// A handler writing objects to a fresh temporary directory.
pub struct TestHandler {
    pub handler: Handler,
    pub dir: tempfile::TempDir,
}

pub fn handler(settings: Settings) -> TestHandler {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::Local(LocalDir::new(dir.path()));
    TestHandler {
        handler: Handler::new(settings, store, Some("us-west-2".into())),
        dir,
    }
}

impl TestHandler {
    pub async fn firehose(&self, event: &str) -> FirehoseResponse {
        match self.handler.handle(event).await.expect("handler succeeds") {
            Response::Firehose(response) => response,
            other => panic!("expected a Firehose response, got {other:?}"),
        }
    }

    /// Every file under the output directory, as (relative key, gunzipped text).
    pub fn objects(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut found);
        found.sort();
        found
    }
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, found);
        } else {
            let key = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let body =
                eks_audit_core::batch::objects::gunzip(&std::fs::read(&path).unwrap()).unwrap();
            found.push((key, String::from_utf8(body).unwrap()));
        }
    }
}

/// The NDJSON lines of an `Ok` record's data, parsed.
pub fn ok_lines(data: &str) -> Vec<Value> {
    let bytes = STANDARD.decode(data).expect("Ok data is base64");
    let text = String::from_utf8(bytes).expect("NDJSON is UTF-8");
    assert!(text.ends_with('\n'), "every line ends in a newline");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// The keys of a JSON object in the order they were written.
pub fn keys_in_order(json: &str) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                keys.push(key);
            }
            Ok(keys)
        }
    }
    use serde::Deserializer;
    serde_json::Deserializer::from_str(json)
        .deserialize_map(Keys)
        .expect("a JSON object")
}

/// The raw NDJSON lines of an `Ok` record's data.
pub fn ok_text(data: &str) -> String {
    String::from_utf8(STANDARD.decode(data).expect("Ok data is base64")).expect("UTF-8")
}
