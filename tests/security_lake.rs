//! `--output parquet` (feature `security-lake`): Security Lake custom-source objects hold the
//! same OCSF events as `--format ocsf`, as zstd Parquet, sorted by time, one object per log
//! stream, account and day, under `ext/<source>/region=…/accountId=…/eventDay=…/`.
#![cfg(feature = "security-lake")]

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use eks_audit_core::Format;
use eks_audit_core::ProcessOptions;
use eks_audit_core::envelope::{decode_base64, decompress};
use eks_audit_core::transform::transform;
use eks_audit_forwarder::config::{Output, Settings};
use eks_audit_forwarder::handler::{Handler, Response};
use eks_audit_forwarder::sink::ObjectStore;
use eks_audit_forwarder::sink::local::LocalDir;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use serde_json::{Value, json};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name)
}

/// Runs the direct-mode handler with `--output parquet` on `event` (an `awslogs` Lambda event)
/// into a temporary directory; returns it and the paths of the objects, in the handler's order.
async fn run_parquet(event: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ObjectStore::Local(LocalDir::new(dir.path()));
    let handler = Handler::new(
        parquet_settings(dir.path()),
        store,
        Some("eu-west-1".to_owned()),
    );
    let Ok(Response::Direct(summary)) = handler.handle(event).await else {
        panic!("a direct-mode summary")
    };
    let paths = summary.objects.iter().map(PathBuf::from).collect();
    (dir, paths)
}

/// `{"awslogs":{"data": base64(gzip(message))}}`, as CloudWatch Logs invokes a function.
fn awslogs_event(message: &str) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(message.as_bytes())
        .expect("gzip into memory");
    let data =
        base64::engine::general_purpose::STANDARD.encode(gzip.finish().expect("gzip into memory"));
    json!({"awslogs": {"data": data}}).to_string()
}

/// The subscription message inside an `awslogs` event.
fn message_of(event: &str) -> Value {
    let wrapper: Value = serde_json::from_str(event).expect("JSON");
    let data = wrapper["awslogs"]["data"].as_str().expect("data");
    let payload = decompress(decode_base64(data).expect("base64"), 1 << 26).expect("gzip");
    serde_json::from_slice(&payload).expect("a subscription message")
}

fn parquet_settings(out_dir: &Path) -> Settings {
    let process = ProcessOptions {
        format: Format::Ocsf,
        ..ProcessOptions::default()
    };
    Settings {
        process,
        output: Output::Parquet,
        out_dir: out_dir.to_owned(),
        ..Settings::default()
    }
}

fn read_batches(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).expect("object was written");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a Parquet file")
        .build()
        .expect("reader");
    reader
        .map(|batch| batch.expect("a readable row group"))
        .collect()
}

/// Rows as JSON objects, the way arrow writes them (nulls left out, maps as objects).
fn rows_as_json(batches: &[RecordBatch]) -> Vec<Value> {
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    writer
        .write_batches(&batches.iter().collect::<Vec<_>>())
        .expect("rows encode as JSON");
    writer.finish().expect("finish");
    let text = String::from_utf8(writer.into_inner()).expect("UTF-8");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect()
}

/// `*_dt` values as instants: JSON has `…Z`, Arrow writes `…+00:00`; both are RFC 3339.
fn normalize_times(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if key.ends_with("_dt") {
                    let text = item.as_str().expect("a datetime string");
                    let instant = time::OffsetDateTime::parse(
                        text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap_or_else(|e| panic!("{key} {text}: {e}"));
                    *item = json!(instant.unix_timestamp_nanos().to_string());
                } else {
                    normalize_times(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_times),
        _ => {}
    }
}

#[tokio::test]
async fn parquet_rows_are_the_ocsf_events_sorted_by_time() {
    let event = std::fs::read_to_string(sample("awslogs-eks-audit.json")).expect("sample");
    let (dir, objects) = run_parquet(&event).await;

    // events/README.md: 5 events, the ResponseStarted watch filtered, 4 kept, all on
    // 2024-05-21 in one stream: one object, named after the stream and its first event id.
    let message = message_of(&event);
    let expected_key = format!(
        "ext/eks-audit/region=eu-west-1/accountId=111122223333/eventDay=20240521/{}-{}.parquet",
        message["logStream"].as_str().expect("logStream"),
        message["logEvents"][0]["id"].as_str().expect("id")
    );
    assert_eq!(objects, vec![dir.path().join(&expected_key)]);

    let batches = read_batches(&dir.path().join(&expected_key));
    let mut rows = rows_as_json(&batches);
    assert_eq!(rows.len(), 4);

    // The same input as OCSF NDJSON (default filters), sorted by `time` as the rows must be.
    let ocsf_settings = ProcessOptions {
        format: Format::Ocsf,
        ..ProcessOptions::default()
    };
    let transformed =
        transform(event.into_bytes(), &ocsf_settings, Some("eu-west-1")).expect("JSON");
    let mut events: Vec<Value> = std::str::from_utf8(&transformed.ndjson)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    events.sort_by_key(|e| e["time"].as_i64().expect("time"));
    // Event 4, the deprecated-API watch, was received at 13:50:41 but completed at 14:00:00:
    // by receipt it would come before the 13:59 create (event 3); by `time`, after it.
    let operations: Vec<&Value> = events.iter().map(|e| &e["api"]["operation"]).collect();
    assert_eq!(
        operations,
        [
            &json!("list"),
            &json!("create"),
            &json!("watch"),
            &json!("update")
        ]
    );

    for (row, event) in rows.iter_mut().zip(events.iter_mut()) {
        normalize_times(row);
        normalize_times(event);
        assert_eq!(row, event);
    }
}

/// What precedes the cut of a truncated event (contract §6.2) is a row like any other, flagged
/// in `unmapped`, whose values are all strings so that it stays a `map<string,string>`.
#[tokio::test]
async fn a_salvaged_truncated_event_is_a_row_flagged_in_unmapped() {
    // events/README.md: the good event and the truncated `get pod`, both in hour 15.
    let event = std::fs::read_to_string(sample("awslogs-malformed.json")).expect("sample");
    let (_dir, objects) = run_parquet(&event).await;
    let [object] = objects.as_slice() else {
        panic!("one object: {objects:?}")
    };
    let rows = rows_as_json(&read_batches(object));
    assert_eq!(rows.len(), 2);
    let flagged: Vec<&Value> = rows
        .iter()
        .filter(|row| row["unmapped"]["truncated"] == "true")
        .collect();
    let [flagged] = flagged.as_slice() else {
        panic!("one flagged row: {rows:?}")
    };
    assert_eq!(flagged["api"]["operation"], "get");
    assert_eq!(flagged["resources"][0]["name"], "kube-apiserver-oscar7");
}

#[tokio::test]
async fn objects_split_by_day_and_sort_rows_by_time() {
    // Three events of one stream around midnight UTC, out of order: 00:00:01, 23:59:59 the day
    // before, 00:00:00.5. 2024-05-21T00:00:00Z is 1,716,249,600,000 ms (19,864 days).
    let event = |time: &str| {
        format!(
            r#"{{"verb":"get","auditID":"a","stage":"ResponseComplete","requestURI":"/api","user":{{"username":"u"}},"sourceIPs":["10.0.0.1"],"stageTimestamp":"{time}"}}"#
        )
    };
    let message = json!({
        "messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "/aws/eks/prod-east/cluster",
        "logStream": "kube-apiserver-audit-0", "subscriptionFilters": ["f"],
        "logEvents": [
            {"id": "1", "timestamp": 1_716_249_601_100_i64, "message": event("2024-05-21T00:00:01Z")},
            {"id": "2", "timestamp": 1_716_249_601_200_i64, "message": event("2024-05-20T23:59:59Z")},
            {"id": "3", "timestamp": 1_716_249_601_300_i64, "message": event("2024-05-21T00:00:00.500Z")},
        ]
    })
    .to_string();
    let (dir, objects) = run_parquet(&awslogs_event(&message)).await;

    // The event time (request, else stage) puts events 1 and 3 in hour 00, first id 1, and
    // event 2 in hour 23 of the day before, first id 2; Parquet objects follow the OCSF
    // time's day, named after the first id of the events they hold.
    let base = dir
        .path()
        .join("ext/eks-audit/region=eu-west-1/accountId=111122223333");
    assert_eq!(
        objects,
        [
            base.join("eventDay=20240521/kube-apiserver-audit-0-1.parquet"),
            base.join("eventDay=20240520/kube-apiserver-audit-0-2.parquet"),
        ]
    );
    let times: Vec<Vec<i64>> = objects
        .iter()
        .map(|path| {
            read_batches(path)
                .iter()
                .flat_map(|batch| {
                    let column = batch.column_by_name("time").expect("a time column");
                    let times = column.as_any().downcast_ref::<Int64Array>().expect("int64");
                    (0..times.len()).map(|i| times.value(i)).collect::<Vec<_>>()
                })
                .collect()
        })
        .collect();
    // 00:00:00.5 → 1,716,249,600,500 before 00:00:01 → 1,716,249,601,000; 23:59:59 the day
    // before → 1,716,249,599,000.
    assert_eq!(
        times,
        [
            vec![1_716_249_600_500, 1_716_249_601_000],
            vec![1_716_249_599_000]
        ]
    );
}

#[tokio::test]
async fn objects_are_zstd_parquet_with_security_lake_column_types() {
    let event = std::fs::read_to_string(sample("awslogs-eks-audit.json")).expect("sample");
    let (_dir, objects) = run_parquet(&event).await;
    let path = &objects[0];

    let file = File::open(path).expect("file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("Parquet");
    let row_group = builder.metadata().row_group(0);
    for column in row_group.columns() {
        assert!(
            matches!(column.compression(), Compression::ZSTD(_)),
            "{:?}",
            column.column_path()
        );
    }
    let schema = builder.schema();
    let type_of = |name: &str| {
        schema
            .field_with_name(name)
            .expect(name)
            .data_type()
            .clone()
    };
    assert_eq!(type_of("time"), DataType::Int64);
    assert_eq!(type_of("type_uid"), DataType::Int64);
    assert_eq!(type_of("class_uid"), DataType::Int32);
    assert_eq!(
        type_of("time_dt"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
    );
    assert!(
        matches!(type_of("unmapped"), DataType::Map(..)),
        "{:?}",
        type_of("unmapped")
    );
    assert!(
        matches!(type_of("resources"), DataType::List(_)),
        "{:?}",
        type_of("resources")
    );

    // events/README.md: 4 of the 5 events are kept.
    pyarrow_reads(path, 4);
}

/// With a Python that has pyarrow (`PYARROW_PYTHON`, else `python3`), an independent reader
/// agrees on the rows and types. scripts/setup-tools.sh installs pyarrow into `.venv/`, which
/// scripts/test.sh puts first on `PATH`: under CI (`CI` set) a missing pyarrow or Python fails
/// the test; elsewhere the check is skipped, saying so.
fn pyarrow_reads(path: &Path, rows: usize) {
    let python = std::env::var("PYARROW_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned());
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let skip = |why: String| {
        assert!(
            !in_ci,
            "pyarrow check cannot run under CI: {why} (scripts/setup-tools.sh installs pyarrow into .venv/; put .venv/bin first on PATH or set PYARROW_PYTHON)"
        );
        eprintln!(
            "SKIPPED pyarrow check: {why} (run scripts/setup-tools.sh and put .venv/bin first on PATH, or set PYARROW_PYTHON)"
        );
    };
    let script = r#"
import sys
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
times = table.column("time").to_pylist()
assert times == sorted(times), times
unmapped = str(table.schema.field("unmapped").type)
print(table.num_rows, table.schema.field("time_dt").type, unmapped.startswith("map<string, string"))
"#;
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output();
    match output {
        Ok(output) if output.status.success() => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert_eq!(
                stdout.trim(),
                format!("{rows} timestamp[us, tz=+00:00] True")
            );
        }
        Ok(output)
            if String::from_utf8_lossy(&output.stderr).contains("No module named 'pyarrow'") =>
        {
            skip(format!("{python} has no pyarrow"));
        }
        Ok(output) => panic!(
            "pyarrow could not read the object: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => skip(format!("cannot run {python}: {e}")),
    }
}
