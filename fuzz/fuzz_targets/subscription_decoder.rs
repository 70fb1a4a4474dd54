//! The subscription-message decoder on arbitrary bytes: `envelope::decompress` then
//! `envelope::parse_messages`, gzip or not, under small and default payload limits.
//!
//! Holds: no panic; decompressed output never exceeds the limit; plain (non-gzip) input comes
//! back unchanged; a successful parse yields at least one message, each a DATA_MESSAGE or a
//! CONTROL_MESSAGE, and no more log events than the limit; the libdeflate fast path for
//! single-member gzip inflates to what flate2 alone does, or to the same error, also on members
//! with one byte changed; and the hand reader of the usual message (with its SIMD unescape)
//! gives the same answer as the reference path's full parsers, error included.
#![no_main]

use std::io::Write;

use eks_audit_core::envelope::{decompress, parse_messages};
use eks_audit_core::oracle::with_reference;
use flate2::Compression;
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    // Bit 0: wrap the rest in gzip (so the parser sees decompressed fuzz data) or not.
    // Bits 4-5: the log-event limit. Bits 6-7: the payload limit, tiny to exercise the bomb
    // guard, or the default 64 MiB.
    // Bit 1, with bit 0: one byte of the member changed, at the position and by the bits the
    // next two bytes give, so that both inflaters meet corrupt streams with a gzip frame.
    let bytes = match mode & 3 {
        1 => gzip(rest),
        3 => match rest {
            [at, flip, rest @ ..] => {
                let mut member = gzip(rest);
                let at = usize::from(*at) % member.len();
                member[at] ^= flip | 1;
                member
            }
            _ => return,
        },
        _ => rest.to_vec(),
    };
    let max_events = match (mode >> 4) & 3 {
        0 => 0,
        1 => 1,
        2 => 3,
        _ => 50_000,
    };
    let limit = match mode >> 6 {
        0 => 16,
        1 => 256,
        2 => 4096,
        _ => 64 << 20,
    };
    let was_gzip = bytes.starts_with(&[0x1f, 0x8b]);
    let original = bytes.clone();
    let decoded = decompress(bytes, limit);
    let reference = with_reference(|| decompress(original.clone(), limit));
    assert_eq!(decoded, reference, "libdeflate and flate2 inflate alike");
    let Ok(payload) = decoded else {
        return;
    };
    assert!(
        payload.len() <= limit,
        "decompressed {} bytes past the {limit}-byte limit",
        payload.len()
    );
    if !was_gzip {
        assert_eq!(payload, original, "plain JSON is passed through untouched");
    }
    let (mut unescaped, mut reference_unescaped) = (Vec::new(), Vec::new());
    let parsed = parse_messages(&payload, &mut unescaped, max_events);
    let (json, buffer) = (&payload, &mut reference_unescaped);
    let reference = with_reference(move || parse_messages(json, buffer, max_events));
    assert_eq!(format!("{parsed:?}"), format!("{reference:?}"));
    if let Ok(messages) = parsed {
        assert!(!messages.is_empty());
        for message in &messages {
            assert!(matches!(
                message.message_type.as_ref(),
                "DATA_MESSAGE" | "CONTROL_MESSAGE"
            ));
        }
        let events: usize = messages.iter().map(|m| m.log_events.len()).sum();
        assert!(
            events <= max_events,
            "{events} log events past the limit of {max_events}"
        );
    }
});

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder
        .write_all(bytes)
        .expect("writing into a Vec cannot fail");
    encoder.finish().expect("writing into a Vec cannot fail")
}
