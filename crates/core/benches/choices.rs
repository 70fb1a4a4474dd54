//! The measurements behind two dependency choices (README "Performance"): which gunzip and
//! which JSON parser the hot path uses. Each candidate runs on the same generated event as
//! `benches/throughput.rs` and reports MB/s of decompressed input.
//!
//! - `gunzip/flate2`: `flate2::read::MultiGzDecoder`, with whichever backend flate2 is built
//!   with: miniz_oxide by default; run again with `--features flate2/zlib-rs` for zlib-rs.
//! - `gunzip/zlib_rs`: zlib-rs's inflate, the engine of flate2's `zlib-rs` backend.
//! - `gunzip/libdeflater`: libdeflate, whole buffer at once (the gzip trailer gives the size).
//! - `parse_audit/*` and `parse_messages/*`: serde_json against sonic-rs on the very serde types
//!   the forwarder uses (`AuditEvent`, `SubscriptionMessage`). Before timing, both parsers must
//!   read every event of the workload to the same value.

#[path = "workload.rs"]
mod workload;

use std::io::Read;
use std::sync::OnceLock;

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use eks_audit_core::AuditEvent;
use eks_audit_core::envelope::SubscriptionMessage;
use workload::{Size, Workload};

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
            let message: SubscriptionMessage = serde_json::from_slice(payload).expect("message");
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
    check_parsers_agree();
    counted(bencher).bench_local(|| {
        audit_texts()
            .iter()
            .map(|t| usize::from(AuditEvent::parse(black_box(t)).is_ok()))
            .sum::<usize>()
    });
}

#[divan::bench]
fn parse_audit_sonic_rs(bencher: Bencher) {
    check_parsers_agree();
    counted(bencher).bench_local(|| {
        audit_texts()
            .iter()
            .map(|t| usize::from(sonic_rs::from_str::<AuditEvent>(black_box(t)).is_ok()))
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
                serde_json::from_slice::<SubscriptionMessage>(black_box(p))
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
                sonic_rs::from_slice::<SubscriptionMessage>(black_box(p))
                    .expect("message")
                    .log_events
                    .len()
            })
            .sum::<usize>()
    });
}

/// Equal correctness first: both parsers read every event (and the two classic traps,
/// duplicate keys and escaped text) to the same value.
fn check_parsers_agree() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let traps = [
            r#"{"verb":"get","verb":"delete"}"#,
            r#"{"requestURI":"/api?a=1\u0026b=\u00e9\"x\""}"#,
            "[1,2]",
        ];
        for text in audit_texts().iter().map(String::as_str).chain(traps) {
            let serde = serde_json::from_str::<AuditEvent>(text)
                .map(|e| format!("{e:?}"))
                .map_err(|_| ());
            let sonic = sonic_rs::from_str::<AuditEvent>(text)
                .map(|e| format!("{e:?}"))
                .map_err(|_| ());
            assert_eq!(
                serde,
                sonic,
                "serde_json and sonic-rs disagree on {}",
                &text[..text.len().min(200)]
            );
        }
        for payload in &workload().payloads {
            let serde =
                serde_json::from_slice::<SubscriptionMessage>(payload).map(|m| format!("{m:?}"));
            let sonic =
                sonic_rs::from_slice::<SubscriptionMessage>(payload).map(|m| format!("{m:?}"));
            assert_eq!(
                serde.ok(),
                sonic.ok(),
                "serde_json and sonic-rs disagree on a subscription message"
            );
        }
    });
}
