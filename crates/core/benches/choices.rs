//! The measurements behind two dependency choices (README "Performance"): which gunzip and
//! which JSON parser the hot path uses. Each candidate runs on the same generated event as
//! `benches/throughput.rs` and reports MB/s of decompressed input.
//!
//! - `gunzip/flate2`: `flate2::read::MultiGzDecoder`, with whichever backend flate2 is built
//!   with: miniz_oxide by default; run again with `--features flate2/zlib-rs` for zlib-rs.
//! - `gunzip/zlib_rs`: zlib-rs's inflate, the engine of flate2's `zlib-rs` backend.
//! - `gunzip/libdeflater`: libdeflate, whole buffer at once (the gzip trailer gives the size).
//! - `parse_audit_serde_json`: `AuditEvent::parse` on every event. sonic-rs no longer reads
//!   `AuditEvent`, whose bodies are kept as serde_json-validated text (`audit::JsonText`).
//! - `parse_messages/*`: serde_json against sonic-rs on the subscription message's shape
//!   (`Message` here: the core reads it with a seed that counts events, not a derived type), and
//!   `parse_messages_by_hand`, the core's own `parse_messages`. Before timing, all three must
//!   read every event of the workload to the same value.
//! - `gzip_objects/*`: the flat NDJSON of every payload gzipped at levels 6 and 8 by flate2's
//!   zlib-rs backend and by libdeflate (`batch::gzip`, what direct mode's objects use), MB/s of
//!   NDJSON; each candidate's compressed size is printed first, and checked to read back.

#[path = "workload.rs"]
mod workload;

use std::borrow::Cow;
use std::io::{Read, Write};
use std::sync::OnceLock;

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use eks_audit_core::batch::gzip;
use eks_audit_core::envelope::parse_messages;
use eks_audit_core::{AuditEvent, Origin, ProcessOptions, process_messages};
use workload::{Size, Workload};

/// A CloudWatch Logs subscription message, as serde_json and sonic-rs read it here.
#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    #[serde(borrow)]
    message_type: Cow<'a, str>,
    #[serde(borrow)]
    log_events: Vec<LogEvent<'a>>,
}

/// One log event of a [`Message`].
#[derive(Debug, PartialEq, serde::Deserialize)]
struct LogEvent<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    timestamp: i64,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

fn main() {
    divan::Divan::from_args()
        .bytes_format(divan::counter::BytesFormat::Decimal)
        .main();
}

fn workload() -> &'static Workload {
    static WORKLOAD: OnceLock<Workload> = OnceLock::new();
    WORKLOAD.get_or_init(|| {
        let bench = std::env::args().any(|a| a == "--bench");
        let workload = workload::generate(if bench { Size::TYPICAL } else { Size::SMALL });
        if bench {
            eprintln!("workload: {}", workload.summary());
        }
        workload
    })
}

fn counted<'a, 'b>(bencher: Bencher<'a, 'b>) -> Bencher<'a, 'b> {
    let w = workload();
    bencher
        .counter(BytesCount::new(w.decompressed_bytes))
        .counter(ItemsCount::new(w.log_events))
}

/// Every log event's audit JSON, unescaped from its subscription message.
fn audit_texts() -> &'static [String] {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    TEXTS.get_or_init(|| {
        let mut texts = Vec::new();
        for payload in &workload().payloads {
            let message: Message = serde_json::from_slice(payload).expect("message");
            if message.message_type == "DATA_MESSAGE" {
                texts.extend(message.log_events.iter().map(|e| e.message.to_string()));
            }
        }
        texts
    })
}

#[divan::bench]
fn gunzip_flate2(bencher: Bencher) {
    let mut out = Vec::with_capacity(8 << 20);
    counted(bencher).bench_local(|| {
        let mut total = 0;
        for gzip in &workload().gzips {
            out.clear();
            flate2::read::MultiGzDecoder::new(black_box(gzip.as_slice()))
                .read_to_end(&mut out)
                .expect("gzip");
            total += out.len();
        }
        total
    });
}

#[divan::bench]
fn gunzip_zlib_rs(bencher: Bencher) {
    // flate2's `zlib-rs` backend is this inflate; called directly here so that both backends
    // are measured from one build. Window bits 16 + 15: a gzip wrapper.
    let mut out = Vec::new();
    let config = zlib_rs::InflateConfig {
        window_bits: 16 + 15,
    };
    counted(bencher).bench_local(|| {
        let mut total = 0;
        for gzip in &workload().gzips {
            let size =
                u32::from_le_bytes(gzip[gzip.len() - 4..].try_into().expect("4 bytes")) as usize;
            out.resize(size, 0);
            let (inflated, code) = zlib_rs::decompress_slice(&mut out, black_box(gzip), config);
            assert_eq!(code, zlib_rs::ReturnCode::Ok);
            total += inflated.len();
        }
        total
    });
}

#[divan::bench]
fn gunzip_libdeflater(bencher: Bencher) {
    let mut decompressor = libdeflater::Decompressor::new();
    let mut out = Vec::new();
    counted(bencher).bench_local(|| {
        let mut total = 0;
        for gzip in &workload().gzips {
            // ISIZE, the size mod 2^32, ends a gzip member.
            let size =
                u32::from_le_bytes(gzip[gzip.len() - 4..].try_into().expect("4 bytes")) as usize;
            out.resize(size, 0);
            total += decompressor
                .gzip_decompress(black_box(gzip), &mut out)
                .expect("gzip");
        }
        total
    });
}

#[divan::bench]
fn parse_audit_serde_json(bencher: Bencher) {
    counted(bencher).bench_local(|| {
        audit_texts()
            .iter()
            .map(|t| usize::from(AuditEvent::parse(black_box(t)).is_ok()))
            .sum::<usize>()
    });
}

#[divan::bench]
fn parse_messages_serde_json(bencher: Bencher) {
    counted(bencher).bench_local(|| {
        workload()
            .payloads
            .iter()
            .map(|p| {
                serde_json::from_slice::<Message>(black_box(p))
                    .expect("message")
                    .log_events
                    .len()
            })
            .sum::<usize>()
    });
}

#[divan::bench]
fn parse_messages_sonic_rs(bencher: Bencher) {
    counted(bencher).bench_local(|| {
        workload()
            .payloads
            .iter()
            .map(|p| {
                sonic_rs::from_slice::<Message>(black_box(p))
                    .expect("message")
                    .log_events
                    .len()
            })
            .sum::<usize>()
    });
}

/// `envelope::parse_messages` as it runs: the hand reader with its block unescape where the CPU
/// has one (x86_64 with SSSE3, aarch64), sonic-rs elsewhere. The golden tests and the
/// subscription_decoder fuzz target hold it to sonic-rs's values.
#[divan::bench]
fn parse_messages_by_hand(bencher: Bencher) {
    check_parsers_agree();
    counted(bencher).bench_local(|| {
        workload()
            .payloads
            .iter()
            .map(|p| {
                parse_messages(black_box(p), &mut Vec::new(), usize::MAX)
                    .expect("message")
                    .iter()
                    .map(|m| m.log_events.len())
                    .sum::<usize>()
            })
            .sum::<usize>()
    });
}

/// Equal correctness first: serde_json, sonic-rs and the core's `parse_messages` read every
/// message of the workload to the same events.
fn check_parsers_agree() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        for payload in &workload().payloads {
            let serde = serde_json::from_slice::<Message>(payload).expect("a message");
            let sonic = sonic_rs::from_slice::<Message>(payload).expect("a message");
            assert_eq!(
                serde, sonic,
                "serde_json and sonic-rs disagree on a message"
            );
            let mut unescaped = Vec::new();
            let by_hand = parse_messages(payload, &mut unescaped, usize::MAX).expect("a message");
            let events = by_hand.iter().flat_map(|m| &m.log_events);
            let by_hand: Vec<_> = events
                .map(|e| (e.id.as_str(), e.timestamp, e.message.as_ref()))
                .collect();
            let serde: Vec<_> = serde
                .log_events
                .iter()
                .map(|e| (e.id.as_ref(), e.timestamp, e.message.as_ref()))
                .collect();
            assert_eq!(
                serde, by_hand,
                "serde_json and parse_messages disagree on a message"
            );
        }
    });
}

/// Each payload's flat NDJSON, as direct mode gzips it into objects.
fn ndjson_bodies() -> &'static [Vec<u8>] {
    static BODIES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BODIES.get_or_init(|| {
        let origin = Origin {
            region: Some(workload::REGION),
        };
        workload()
            .payloads
            .iter()
            .map(|payload| {
                let mut unescaped = Vec::new();
                let messages =
                    parse_messages(payload, &mut unescaped, usize::MAX).expect("messages");
                process_messages(&messages, origin, &ProcessOptions::default()).ndjson
            })
            .collect()
    })
}

fn gzip_flate2(level: u32, body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(body).expect("into a Vec");
    encoder.finish().expect("into a Vec")
}

fn gzip_libdeflate(level: u32, body: &[u8]) -> Vec<u8> {
    gzip::gzip_at(level, &[body])
}

#[divan::bench(
    name = "gzip_objects",
    args = [("zlib_rs", 6), ("zlib_rs", 8), ("libdeflate", 6), ("libdeflate", 8)]
)]
fn gzip_objects(bencher: Bencher, (engine, level): (&str, u32)) {
    let compress = if engine == "zlib_rs" {
        gzip_flate2
    } else {
        gzip_libdeflate
    };
    let bodies = ndjson_bodies();
    let ndjson: usize = bodies.iter().map(Vec::len).sum();
    let mut gzipped = 0;
    for body in bodies {
        let member = compress(level, body);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(member.as_slice())
            .read_to_end(&mut back)
            .expect("reads back");
        assert!(back == *body, "{engine} level {level} reads back");
        gzipped += member.len();
    }
    eprintln!(
        "{engine} level {level}: {ndjson} bytes of NDJSON -> {gzipped} bytes ({:.1}%)",
        100.0 * gzipped as f64 / ndjson as f64
    );
    bencher.counter(BytesCount::new(ndjson)).bench_local(|| {
        bodies
            .iter()
            .map(|b| compress(level, black_box(b)).len())
            .sum::<usize>()
    });
}
