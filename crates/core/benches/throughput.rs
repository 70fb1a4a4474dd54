//! Throughput of each stage of the Firehose path on generated realistic events
//! (`benches/workload.rs`), from the whole handler down to the decode floor.
//!
//! ```sh
//! cargo bench -p eks-audit-core --bench throughput          # typical (1 MiB) and max (6 MB)
//! cargo bench -p eks-audit-core --bench throughput -- handler decode             # a subset, by name
//! ```
//!
//! Every benchmark counts the same two things per iteration, so their rates compare directly:
//! the bytes of **decompressed input** (the subscription messages inside the records) and the
//! **log events** in them. divan prints them as MB/s and item/s.
//!
//! - `firehose_handler`: the whole Firehose event as the Lambda handler answers it (parse, every
//!   record through the core, the response-size check), plus serializing the response to JSON
//!   bytes as the Lambda runtime does. Only the handler's S3 and Firehose calls are left out:
//!   this workload makes none.
//! - `firehose_handler_with_rules`: the same with the default Sigma rule pack on every kept
//!   event, findings objects built; `compile_default_rules`: the pack's compile at cold start.
//! - `decode`: base64 and gunzip of every record: the floor the handler cannot beat.
//! - `parse_filter`: subscription messages and audit events parsed, filter applied.
//! - `pipeline`: parse, filter and normalize every payload to NDJSON, per output format.
//! - `normalize`: only writing the lines of the kept events, per output format.
//! - `encode_base64`, `encode_response`, `encode_gzip_objects`: base64 of the records' NDJSON,
//!   the response's JSON, and the gzip objects of direct mode.
//! - `gzip_level`: the flat NDJSON of the typical workload (one body per payload) gzipped at
//!   each deflate level, MB/s of NDJSON; each level's compressed size is printed first. What
//!   `batch::gzip::EVENT_OBJECT_LEVEL` was chosen by.
//!
//! Formats are every [`Format::ALL`] variant, so a new one is benched without changes here.
//! Under `cargo test --all-targets` each benchmark runs once on a small event.

#[path = "workload.rs"]
mod workload;

use std::fmt;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use eks_audit_core::batch::reingest::{self, FirehoseLimits};
use eks_audit_core::batch::{firehose, gzip, objects};
use eks_audit_core::detect::{Detector, rules};
use eks_audit_core::eks::{cluster_from_log_group, is_audit_stream};
use eks_audit_core::envelope::models::{FirehoseResponse, IncomingEvent};
use eks_audit_core::envelope::{DecodeBuffers, SubscriptionMessage, parse_messages};
use eks_audit_core::schema::{self, time::event_time};
use eks_audit_core::{
    AuditEvent, EventContext, Format, Origin, Outcome, ProcessOptions, process_messages,
};
use workload::{Size, Workload};

fn main() {
    // As the Lambda and the CLI do at start, so that the handler is measured as it ships.
    eks_audit_core::allocator::configure();
    if bench_mode() {
        for size in sizes() {
            eprintln!("workload {size}: {}", workload(size).summary());
        }
    }
    divan::Divan::from_args()
        .bytes_format(divan::counter::BytesFormat::Decimal)
        .main();
}

/// Benchmarks run for real only under `cargo bench` (which passes `--bench`).
fn bench_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

fn sizes() -> Vec<&'static str> {
    if bench_mode() {
        vec!["typical", "max"]
    } else {
        vec!["small"]
    }
}

fn workload(size: &str) -> &'static Workload {
    static TYPICAL: OnceLock<Workload> = OnceLock::new();
    static MAX: OnceLock<Workload> = OnceLock::new();
    static SMALL: OnceLock<Workload> = OnceLock::new();
    let (cell, size) = match size {
        "typical" => (&TYPICAL, Size::TYPICAL),
        "max" => (&MAX, Size::MAX),
        _ => (&SMALL, Size::SMALL),
    };
    cell.get_or_init(|| workload::generate(size))
}

/// The two rates every benchmark reports.
fn counted<'a, 'b>(bencher: Bencher<'a, 'b>, workload: &Workload) -> Bencher<'a, 'b> {
    bencher
        .counter(BytesCount::new(workload.decompressed_bytes))
        .counter(ItemsCount::new(workload.log_events))
}

/// A workload size and an output format.
#[derive(Clone, Copy)]
struct Case {
    size: &'static str,
    format: Format,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.size, self.format.name())
    }
}

fn cases() -> Vec<Case> {
    let formats = Format::ALL;
    sizes()
        .into_iter()
        .flat_map(|size| formats.iter().map(move |&format| Case { size, format }))
        .collect()
}

fn settings(format: Format) -> ProcessOptions {
    ProcessOptions {
        format,
        ..ProcessOptions::default()
    }
}

/// What the Lambda handler answers to a Firehose event; with detection on, the findings objects
/// it writes are built too. When the response would pass 6 MB, the records that do not fit are
/// planned for re-ingestion as the handler does (the `PutRecordBatch` call itself is left out),
/// and the bench says so once.
fn firehose_response(event: &str, options: &ProcessOptions) -> FirehoseResponse {
    let incoming: IncomingEvent<'_> =
        serde_json::from_str(event).expect("the workload is a Firehose event");
    let records = incoming
        .records
        .as_deref()
        .expect("the workload has records");
    let findings_prefix = options.detector.as_ref().map(|_| "eks-audit");
    let mut processed = firehose::process_records_for_response(
        records,
        Origin::default(),
        options,
        None,
        findings_prefix,
        FirehoseLimits::default().max_response_bytes,
    );
    let plan = reingest::plan(
        records,
        &mut processed.entries,
        &processed.shed,
        Origin::default(),
        options,
        &FirehoseLimits::default(),
    )
    .expect("the response fits once records are re-ingested");
    if !plan.is_empty() {
        static NOTE: std::sync::Once = std::sync::Once::new();
        NOTE.call_once(|| {
            eprintln!(
                "note: {} of {} records re-ingested to keep the response within 6 MB",
                plan.reingested.len(),
                records.len()
            )
        });
    }
    FirehoseResponse {
        records: processed.entries,
    }
}

fn record_data(workload: &Workload) -> Vec<String> {
    workload
        .gzips
        .iter()
        .map(|gzip| STANDARD.encode(gzip))
        .collect()
}

#[divan::bench(args = sizes())]
fn firehose_handler(bencher: Bencher, size: &str) {
    bench_handler(bencher, workload(size), &settings(Format::default()));
}

/// The whole Firehose event answered and its response serialized, under `settings`.
fn bench_handler(bencher: Bencher, workload: &'static Workload, settings: &ProcessOptions) {
    counted(bencher, workload).bench_local(|| {
        let response = firehose_response(&workload.event, settings);
        serde_json::to_vec(&response)
            .expect("responses serialize")
            .len()
    });
}

/// `firehose_handler` with the default Sigma rule pack evaluated on every kept event
/// (contract §12): the cost of detection is the difference between the two rows.
#[divan::bench(args = sizes())]
fn firehose_handler_with_rules(bencher: Bencher, size: &str) {
    let settings = ProcessOptions {
        detector: Some(Arc::new(
            Detector::load(&rules::default_pack()).expect("the default pack loads"),
        )),
        ..settings(Format::default())
    };
    bench_handler(bencher, workload(size), &settings);
}

/// `firehose_handler_with_rules` without the pack's correlation rules: what counting over the
/// batch costs is the difference between the two rows.
#[divan::bench(args = sizes())]
fn firehose_handler_with_rules_no_correlations(bencher: Bencher, size: &str) {
    let detector = Detector::load(&without_correlations()).expect("the default pack loads");
    assert!(!detector.has_correlations());
    let settings = ProcessOptions {
        detector: Some(Arc::new(detector)),
        ..settings(Format::default())
    };
    bench_handler(bencher, workload(size), &settings);
}

/// The default pack without its files holding correlation rules.
fn without_correlations() -> Vec<rules::RuleFile> {
    rules::default_pack()
        .into_iter()
        .filter(|f| !f.text.contains("\ncorrelation:"))
        .collect()
}

/// Fresh correlation state for one invocation, as every invocation makes when correlation
/// rules are loaded.
#[divan::bench]
fn new_correlation_state(bencher: Bencher) {
    let detector = Detector::load(&rules::default_pack()).expect("the default pack loads");
    bencher.bench_local(|| detector.correlations().map(|c| c.groups()));
}

/// Compiling the default pack, as each cold start does.
#[divan::bench]
fn compile_default_rules() -> usize {
    Detector::load(&rules::default_pack())
        .expect("the default pack loads")
        .rule_count()
}

#[divan::bench(args = sizes())]
fn decode(bencher: Bencher, size: &str) {
    let workload = workload(size);
    let data = record_data(workload);
    let limit = eks_audit_core::InputLimits::default().max_payload_bytes;
    // The handler's own decoder, buffers kept across records as in one invocation.
    counted(bencher, workload).bench_local(|| {
        let mut buffers = DecodeBuffers::default();
        data.iter()
            .map(|d| {
                buffers
                    .decode(black_box(d), limit)
                    .expect("record data")
                    .len()
            })
            .sum::<usize>()
    });
}

#[divan::bench(args = sizes())]
fn parse_filter(bencher: Bencher, size: &str) {
    let workload = workload(size);
    let settings = settings(Format::default());
    // One unescape buffer for every payload, as the handler's `DecodeBuffers` keeps one.
    let mut unescaped = Vec::new();
    counted(bencher, workload).bench_local(|| {
        let mut kept = 0;
        for payload in &workload.payloads {
            for message in
                parse_messages(black_box(payload), &mut unescaped, usize::MAX).expect("messages")
            {
                if message.message_type != "DATA_MESSAGE" || !is_audit_stream(&message.log_stream) {
                    continue;
                }
                for event in &message.log_events {
                    let audit = AuditEvent::parse(&event.message).expect("audit event");
                    kept += usize::from(settings.filter.check(&audit).is_ok());
                }
            }
        }
        kept
    });
}

#[divan::bench(args = cases())]
fn pipeline(bencher: Bencher, case: Case) {
    let workload = workload(case.size);
    let settings = settings(case.format);
    let origin = Origin {
        region: Some(workload::REGION),
    };
    // One unescape buffer for every payload, as the handler's `DecodeBuffers` keeps one.
    let mut unescaped = Vec::new();
    counted(bencher, workload).bench_local(|| {
        let mut bytes = 0;
        for payload in &workload.payloads {
            let messages =
                parse_messages(black_box(payload), &mut unescaped, usize::MAX).expect("messages");
            bytes += process_messages(&messages, origin, &settings).ndjson.len();
        }
        bytes
    });
}

/// A kept event ready to be written: what `process_event` has after parsing and filtering.
struct Parsed {
    event: AuditEvent<'static>,
    raw: &'static str,
    context: EventContext<'static>,
}

/// Every kept event of `workload`, parsed once; leaked, as it lives as long as the process.
fn kept_events(workload: &'static Workload, settings: &ProcessOptions) -> Vec<Parsed> {
    let mut kept = Vec::new();
    for payload in &workload.payloads {
        let messages: &'static [SubscriptionMessage<'static>] = Box::leak(
            parse_messages(payload, Box::leak(Box::default()), usize::MAX)
                .expect("messages")
                .into_boxed_slice(),
        );
        for message in messages
            .iter()
            .filter(|m| m.message_type == "DATA_MESSAGE" && is_audit_stream(&m.log_stream))
        {
            for log_event in &message.log_events {
                let raw: &'static str = &log_event.message;
                let event = AuditEvent::parse(raw).expect("audit event");
                if settings.filter.check(&event).is_err() {
                    continue;
                }
                let context = EventContext {
                    account: Some(&message.owner),
                    region: Some(workload::REGION),
                    cluster: cluster_from_log_group(&message.log_group),
                    log_group: Some(&message.log_group),
                    log_stream: Some(&message.log_stream),
                    event_id: Some(log_event.id.as_str()),
                    cloudwatch_timestamp: Some(log_event.timestamp),
                };
                kept.push(Parsed {
                    event,
                    raw,
                    context,
                });
            }
        }
    }
    kept
}

#[divan::bench(args = cases())]
fn normalize(bencher: Bencher, case: Case) {
    let workload = workload(case.size);
    let settings = settings(case.format);
    let kept = kept_events(workload, &settings);
    let mut out = Vec::new();
    counted(bencher, workload).bench_local(|| {
        out.clear();
        for parsed in &kept {
            let time = event_time(&parsed.event, parsed.context.cloudwatch_timestamp);
            schema::write_line(
                case.format,
                &parsed.event,
                parsed.raw,
                time,
                &parsed.context,
                &mut out,
            )
            .expect("workload events map to every format");
        }
        out.len()
    });
}

/// Each record's outcome, as the handler has it before encoding.
fn outcomes(workload: &Workload) -> Vec<Outcome> {
    let settings = settings(Format::default());
    let origin = Origin {
        region: Some(workload::REGION),
    };
    workload
        .payloads
        .iter()
        .map(|payload| {
            process_messages(
                &parse_messages(payload, &mut Vec::new(), usize::MAX).expect("messages"),
                origin,
                &settings,
            )
        })
        .collect()
}

#[divan::bench(args = sizes())]
fn encode_base64(bencher: Bencher, size: &str) {
    let workload = workload(size);
    let outcomes = outcomes(workload);
    // What `RecordFate::into_response` does with each record's NDJSON.
    counted(bencher, workload).bench_local(|| {
        outcomes
            .iter()
            .map(|o| {
                base64_simd::STANDARD
                    .encode_to_string(black_box(&o.ndjson))
                    .len()
            })
            .sum::<usize>()
    });
}

#[divan::bench(args = sizes())]
fn encode_response(bencher: Bencher, size: &str) {
    let workload = workload(size);
    let response = firehose_response(&workload.event, &settings(Format::default()));
    counted(bencher, workload).bench_local(|| {
        serde_json::to_vec(black_box(&response))
            .expect("serializes")
            .len()
    });
}

#[divan::bench(args = sizes())]
fn encode_gzip_objects(bencher: Bencher, size: &str) {
    let workload = workload(size);
    let outcomes = outcomes(workload);
    counted(bencher, workload).bench_local(|| {
        outcomes
            .iter()
            .map(|o| objects::event_objects(black_box(o), "eks-audit").len())
            .sum::<usize>()
    });
}

fn levels() -> Vec<u32> {
    if bench_mode() {
        vec![1, 2, 4, 6, 7, 8, 9]
    } else {
        vec![1]
    }
}

#[divan::bench(args = levels())]
fn gzip_level(bencher: Bencher, level: u32) {
    let workload = workload(if bench_mode() { "typical" } else { "small" });
    let outcomes = outcomes(workload);
    let bodies: Vec<&[u8]> = outcomes.iter().map(|o| o.ndjson.as_slice()).collect();
    let ndjson: usize = bodies.iter().map(|b| b.len()).sum();
    let gzipped: usize = bodies
        .iter()
        .map(|b| gzip::gzip_at(level, &[b]).len())
        .sum();
    eprintln!(
        "gzip level {level}: {ndjson} bytes of NDJSON -> {gzipped} bytes ({:.1}%)",
        100.0 * gzipped as f64 / ndjson as f64
    );
    bencher.counter(BytesCount::new(ndjson)).bench_local(|| {
        bodies
            .iter()
            .map(|b| gzip::gzip_at(level, &[black_box(b)]).len())
            .sum::<usize>()
    });
}
