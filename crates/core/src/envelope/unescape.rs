//! JSON strings unescaped 64 bytes at a time, for the audit events that subscription messages
//! carry as escaped text. Every `"` of an audit event travels as `\"`: one escape every 14 bytes
//! of the typical workload, which a reader that stops at each escape (sonic-rs, serde_json, or
//! word-at-a-time code: README "Performance") pays for one by one. Here a block's escapes are
//! found with simdjson's odd-backslash-run arithmetic and removed together, eight bytes per
//! table shuffle: SSSE3 `pshufb` on x86_64, NEON `tbl` on aarch64 (the arm64 Lambda). Blocks
//! with a rarer escape (`\n`, `\u…`), and the last bytes of a string, go through the
//! byte-at-a-time reader, which is also the reference the tests hold the fast one to.

use crate::strict_json::hex4;

/// Reads the JSON string whose text starts at `text[0]`, just past its opening quote: appends
/// its value's bytes to `out` and returns the length of the text read, closing quote included.
/// `None` for a string this reader does not vouch for (unterminated, a raw control character,
/// an unknown escape, a `\u` escape of a lone surrogate), which the caller leaves to a full
/// parser to explain. The bytes appended are UTF-8 when `text` is.
pub(crate) fn unescape(text: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if in_blocks() {
        // SAFETY: `in_blocks` detected both target features on this CPU.
        #[allow(unsafe_code)]
        return unsafe { x86::unescape(text, out) };
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    return arm::unescape(text, out);
    #[allow(unreachable_code)]
    unescape_bytewise(text, out)
}

/// Whether [`unescape`] runs 64 bytes at a time on this CPU: on x86_64 with SSSE3 and POPCNT
/// (every x86_64 Lambda), and on aarch64, where NEON is always there. Elsewhere it goes a byte
/// at a time, slower than sonic-rs, which the caller then uses instead.
pub(crate) fn in_blocks() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("ssse3") && std::is_x86_feature_detected!("popcnt");
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    return true;
    #[allow(unreachable_code)]
    false
}

/// [`unescape`] a byte at a time: the fallback on other CPUs, and the reference.
pub(crate) fn unescape_bytewise(text: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    match until(text, 0, usize::MAX, out)? {
        Stop::Closed(read) => Some(read),
        Stop::Reached(_) => None,
    }
}

/// Where [`until`] stopped.
enum Stop {
    /// At the closing quote; the length read, quote included.
    Closed(usize),
    /// At this offset, on an escape's boundary, at or past the one asked for.
    Reached(usize),
}

/// Unescapes `text` from `at` until the closing quote, or until an escape's boundary at or past
/// `stop`.
fn until(text: &[u8], mut at: usize, stop: usize, out: &mut Vec<u8>) -> Option<Stop> {
    while at < stop {
        match *text.get(at)? {
            b'"' => return Some(Stop::Closed(at + 1)),
            b'\\' => at = escape(text, at + 1, out)?,
            0..=0x1f => return None,
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    Some(Stop::Reached(at))
}

/// Appends the character of the escape whose letter is at `text[at]`; returns where it ends.
fn escape(text: &[u8], at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let byte = match *text.get(at)? {
        b @ (b'"' | b'\\' | b'/') => b,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let unit = hex4(text, at + 1)?;
            let (code, end) = match unit {
                0xd800..=0xdbff => {
                    if text.get(at + 5..at + 7)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(text, at + 7)?;
                    if !(0xdc00..=0xdfff).contains(&low) {
                        return None;
                    }
                    let code =
                        0x10000 + ((u32::from(unit) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                    (code, at + 11)
                }
                0xdc00..=0xdfff => return None,
                _ => (u32::from(unit), at + 5),
            };
            let c = char::from_u32(code)?;
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            return Some(end);
        }
        _ => return None,
    };
    out.push(byte);
    Some(at + 1)
}

/// What the SIMD versions share: the plan for a block from its masks, and the block loop.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod blocks {
    use super::{Stop, until};

    /// The bytes of a 64-byte block that matter to a string, bit `i` for byte `i`.
    pub(super) struct Masks {
        pub backslash: u64,
        pub quote: u64,
        pub control: u64,
    }

    /// What to do with one 64-byte block of a string.
    enum Plan {
        /// No quote, backslash or control character: copy it whole.
        Copy,
        /// Append the bytes `keep` marks (all but the backslashes that start an escape, up to the
        /// string's end); the closing quote is at `end`, or the string goes on at `used`.
        Gather {
            keep: u64,
            end: Option<usize>,
            used: usize,
        },
        /// An escape other than `\"`, `\\` or `\/`: a byte at a time, to the block's end.
        Bytewise,
        /// A control character inside the string.
        Refuse,
    }

    /// simdjson's constant for telling backslash runs of odd length from even ones.
    const ODD_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;

    /// The plan for a block whose first byte is on an escape's boundary, from its masks;
    /// `slashes` gives its `/` bytes, read only for a block with escapes.
    #[inline(always)]
    fn plan(masks: Masks, slashes: impl FnOnce() -> u64) -> Plan {
        if masks.backslash | masks.quote | masks.control == 0 {
            return Plan::Copy;
        }
        // Backslashes that start an escape, and the bytes they escape. No escape runs in from the
        // block before.
        let backslash = masks.backslash;
        let code = ((backslash << 1 | ODD_BITS).wrapping_sub(backslash)) ^ ODD_BITS;
        let escaped = code ^ backslash;
        let starts = code & backslash;
        let quotes = masks.quote & !escaped;
        // The string's bytes in this block: up to its closing quote, or, when the last byte starts
        // an escape, up to that backslash, which the next block starts with.
        let (end, used) = if quotes != 0 {
            let end = quotes.trailing_zeros() as usize;
            (Some(end), end)
        } else if starts >> 63 == 1 {
            (None, 63)
        } else {
            (None, 64)
        };
        let inside = if used == 64 {
            u64::MAX
        } else {
            (1 << used) - 1
        };
        if masks.control & inside != 0 {
            return Plan::Refuse;
        }
        let plain_escapes = masks.backslash | masks.quote;
        if escaped & inside & !plain_escapes != 0
            && escaped & inside & !(plain_escapes | slashes()) != 0
        {
            return Plan::Bytewise;
        }
        Plan::Gather {
            keep: inside & !starts,
            end,
            used,
        }
    }

    /// For each mask of the bytes of an 8-byte group to keep, the table-shuffle indices that
    /// gather them to the front.
    pub(super) const GATHER: [[u8; 8]; 256] = {
        let mut table = [[0u8; 8]; 256];
        let mut mask = 0;
        while mask < 256 {
            let (mut from, mut to) = (0, 0);
            while from < 8 {
                if mask >> from & 1 == 1 {
                    table[mask][to] = from as u8;
                    to += 1;
                }
                from += 1;
            }
            mask += 1;
        }
        table
    };

    /// Appends the bytes of a block that `keep` marks, in order, eight-byte group by group:
    /// `pack(group, wanted, into)` shuffles the bytes of group `group` that `wanted` marks to
    /// the front of `into`, whose bytes past them are overwritten by the next group.
    #[inline(always)]
    pub(super) fn gather_groups(
        keep: u64,
        out: &mut Vec<u8>,
        mut pack: impl FnMut(usize, u8, &mut [u8; 8]),
    ) {
        // The last group's eight bytes end at most 8 past the 64 a block can keep.
        let mut gathered = [0u8; 72];
        let mut len = 0;
        for group in 0..8 {
            let wanted = (keep >> (8 * group)) as u8;
            // Always there: `len` is at most 56 before the last group.
            if let Some(into) = gathered[len..].first_chunk_mut::<8>() {
                pack(group, wanted, into);
            }
            len += wanted.count_ones() as usize;
        }
        // All 64 bytes, then cut back: a copy of a constant length is a few vector moves, where
        // one of `len` bytes was a call to memcpy per block (3% of the handler's time). It
        // needs no more room than the text: a block is read only where 64 bytes of it remain,
        // and what is written never outgrows what was read (both callers size `out` so).
        let kept = out.len() + len;
        if let Some(block) = gathered.first_chunk::<64>() {
            out.extend_from_slice(block);
        }
        out.truncate(kept);
    }

    /// The block loop of the SIMD versions, with their way of reading a block's masks and `/`
    /// bytes and of gathering its kept bytes.
    #[inline(always)]
    pub(super) fn in_blocks_with(
        text: &[u8],
        out: &mut Vec<u8>,
        masks: impl Fn(&[u8; 64]) -> Masks,
        slashes: impl Fn(&[u8; 64]) -> u64,
        gather: impl Fn(&[u8; 64], u64, &mut Vec<u8>),
    ) -> Option<usize> {
        let mut at = 0;
        while let Some(block) = text.get(at..at + 64) {
            let block: &[u8; 64] = block.try_into().ok()?;
            match plan(masks(block), || slashes(block)) {
                Plan::Copy => {
                    out.extend_from_slice(block);
                    at += 64;
                }
                Plan::Gather { keep, end, used } => {
                    gather(block, keep, out);
                    if let Some(end) = end {
                        return Some(at + end + 1);
                    }
                    at += used;
                }
                Plan::Bytewise => match until(text, at, at + 64, out)? {
                    Stop::Closed(read) => return Some(read),
                    Stop::Reached(next) => at = next,
                },
                Plan::Refuse => return None,
            }
        }
        match until(text, at, usize::MAX, out)? {
            Stop::Closed(read) => Some(read),
            Stop::Reached(_) => None,
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadl_epi64, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
        _mm_set1_epi8, _mm_shuffle_epi8, _mm_srli_si128, _mm_storel_epi64,
    };

    use super::blocks::{GATHER, Masks, gather_groups, in_blocks_with};

    /// [`super::unescape`] with SSSE3.
    ///
    /// # Safety
    /// The CPU must have SSSE3 and POPCNT.
    #[target_feature(enable = "ssse3,popcnt")]
    pub(super) unsafe fn unescape(text: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        in_blocks_with(
            text,
            out,
            |block| {
                let vectors = load(block);
                Masks {
                    backslash: bits(&vectors, b'\\'),
                    quote: bits(&vectors, b'"'),
                    control: controls(&vectors),
                }
            },
            |block| bits(&load(block), b'/'),
            |block, keep, out| gather(&load(block), keep, out),
        )
    }

    #[target_feature(enable = "ssse3")]
    fn load(block: &[u8; 64]) -> [__m128i; 4] {
        // SAFETY: each load reads 16 bytes at offset 0, 16, 32 or 48 of a 64-byte array.
        std::array::from_fn(|i| unsafe { _mm_loadu_si128(block.as_ptr().add(16 * i).cast()) })
    }

    /// The bytes equal to `byte`.
    #[target_feature(enable = "ssse3")]
    fn bits(vectors: &[__m128i; 4], byte: u8) -> u64 {
        let needle = _mm_set1_epi8(byte as i8);
        vectors.iter().enumerate().fold(0, |mask, (i, &v)| {
            let lanes = _mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)) as u16;
            mask | u64::from(lanes) << (16 * i)
        })
    }

    /// The bytes below 0x20.
    #[target_feature(enable = "ssse3")]
    fn controls(vectors: &[__m128i; 4]) -> u64 {
        let below_space = _mm_set1_epi8(0x1f);
        vectors.iter().enumerate().fold(0, |mask, (i, &v)| {
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, below_space), below_space);
            mask | u64::from(_mm_movemask_epi8(control) as u16) << (16 * i)
        })
    }

    /// Appends the bytes of the block that `keep` marks, in order.
    #[target_feature(enable = "ssse3,popcnt")]
    fn gather(vectors: &[__m128i; 4], keep: u64, out: &mut Vec<u8>) {
        gather_groups(keep, out, |group, wanted, into| {
            let vector = vectors[group / 2];
            let half = if group % 2 == 0 {
                vector
            } else {
                _mm_srli_si128::<8>(vector)
            };
            // SAFETY: the load reads the 8 bytes of the table row, the store writes the 8 of
            // `into`.
            unsafe {
                let indices = _mm_loadl_epi64(GATHER[usize::from(wanted)].as_ptr().cast());
                _mm_storel_epi64(into.as_mut_ptr().cast(), _mm_shuffle_epi8(half, indices));
            }
        });
    }
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[allow(unsafe_code)]
mod arm {
    use std::arch::aarch64::{
        uint8x16_t, vandq_u8, vceqq_u8, vcleq_u8, vdupq_n_u8, vget_high_u8, vget_low_u8,
        vgetq_lane_u64, vld1_u8, vld1q_u8, vpaddq_u8, vreinterpretq_u64_u8, vst1_u8, vtbl1_u8,
    };

    use super::blocks::{GATHER, Masks, gather_groups, in_blocks_with};

    /// [`super::unescape`] with NEON, which every aarch64 CPU has.
    pub(super) fn unescape(text: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        // SAFETY: this module is built only where the target has NEON.
        unsafe { unescape_neon(text, out) }
    }

    #[target_feature(enable = "neon")]
    fn unescape_neon(text: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        in_blocks_with(
            text,
            out,
            |block| {
                let vectors = load(block);
                Masks {
                    backslash: bits(&vectors, |v| vceqq_u8(v, vdupq_n_u8(b'\\'))),
                    quote: bits(&vectors, |v| vceqq_u8(v, vdupq_n_u8(b'"'))),
                    control: bits(&vectors, |v| vcleq_u8(v, vdupq_n_u8(0x1f))),
                }
            },
            |block| bits(&load(block), |v| vceqq_u8(v, vdupq_n_u8(b'/'))),
            |block, keep, out| gather(&load(block), keep, out),
        )
    }

    #[target_feature(enable = "neon")]
    fn load(block: &[u8; 64]) -> [uint8x16_t; 4] {
        // SAFETY: each load reads 16 bytes at offset 0, 16, 32 or 48 of a 64-byte array.
        std::array::from_fn(|i| unsafe { vld1q_u8(block.as_ptr().add(16 * i)) })
    }

    /// The 64-bit mask of the lanes `test` sets, bit `i` for byte `i`: simdjson's NEON
    /// movemask, weighting each lane by its bit and adding neighbours pairwise.
    #[target_feature(enable = "neon")]
    fn bits(vectors: &[uint8x16_t; 4], test: impl Fn(uint8x16_t) -> uint8x16_t) -> u64 {
        const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
        // SAFETY: reads the 16 bytes of `WEIGHTS`.
        let weights = unsafe { vld1q_u8(WEIGHTS.as_ptr()) };
        let [a, b, c, d] = vectors.map(|v| vandq_u8(test(v), weights));
        let sums = vpaddq_u8(vpaddq_u8(a, b), vpaddq_u8(c, d));
        vgetq_lane_u64::<0>(vreinterpretq_u64_u8(vpaddq_u8(sums, sums)))
    }

    /// Appends the bytes of the block that `keep` marks, in order.
    #[target_feature(enable = "neon")]
    fn gather(vectors: &[uint8x16_t; 4], keep: u64, out: &mut Vec<u8>) {
        gather_groups(keep, out, |group, wanted, into| {
            let vector = vectors[group / 2];
            let half = if group % 2 == 0 {
                vget_low_u8(vector)
            } else {
                vget_high_u8(vector)
            };
            // SAFETY: the load reads the 8 bytes of the table row, the store writes the 8 of
            // `into`.
            unsafe {
                let indices = vld1_u8(GATHER[usize::from(wanted)].as_ptr());
                vst1_u8(into.as_mut_ptr(), vtbl1_u8(half, indices));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(text: &[u8]) -> Option<(usize, Vec<u8>)> {
        let mut out = b"prefix".to_vec();
        let read = unescape(text, &mut out)?;
        Some((read, out.split_off(6)))
    }

    fn reference(text: &[u8]) -> Option<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        let read = unescape_bytewise(text, &mut out)?;
        Some((read, out))
    }

    /// What serde_json reads the same string as, with how much of `text` it spans.
    fn serde_json_reads(text: &[u8]) -> Option<(usize, Vec<u8>)> {
        let mut quoted = b"\"".to_vec();
        quoted.extend_from_slice(text);
        let mut stream = serde_json::Deserializer::from_slice(&quoted).into_iter::<String>();
        let value = stream.next()?.ok()?;
        Some((stream.byte_offset() - 1, value.into_bytes()))
    }

    #[test]
    fn reads_escapes_as_json_does() {
        let cases: [&[u8]; 12] = [
            br#"plain" tail"#,
            br#"{\"kind\":\"Event\"}""#,
            br#"a\\\"b\\" after"#,
            br#"\/\b\f\n\r\t""#,
            br#"\u00e9\u4e2d\ud83d\ude00""#,
            "r\u{e9}sum\u{e9} \u{1f600}\"".as_bytes(),
            br#"""#,
            br#"\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\"x"#,
            br#"................................................................\"......................................................\\""#,
            br#"...............................................................\"......................................................\\""#,
            br#"..............................................................\\\".....................................................\n\\\"""#,
            br#"........................................................\u00e9...................................................\ud83d\ude00""#,
        ];
        for text in cases {
            let expected = serde_json_reads(text);
            assert!(expected.is_some(), "{}", String::from_utf8_lossy(text));
            assert_eq!(fast(text), expected, "{}", String::from_utf8_lossy(text));
            assert_eq!(
                reference(text),
                expected,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn refuses_what_it_does_not_vouch_for() {
        let long = ".".repeat(100);
        let cases = [
            "unterminated".to_owned(),
            format!("{long}unterminated"),
            format!("{long}\\"),
            format!("{long}\\\""),
            "raw\ncontrol\"".to_owned(),
            format!("{long}raw\ttab{long}\""),
            "\\x unknown\"".to_owned(),
            format!("{long}\\a{long}\""),
            "\\ud83d lone high\"".to_owned(),
            "\\ude00 lone low\"".to_owned(),
            format!("{long}\\ud83d\\u0041{long}\""),
            "\\u12g4\"".to_owned(),
        ];
        for text in cases {
            assert_eq!(fast(text.as_bytes()), None, "{text}");
            assert_eq!(reference(text.as_bytes()), None, "{text}");
        }
    }

    /// Strings drawn from the bytes that matter, at every length across two blocks, against the
    /// byte-at-a-time reader and against serde_json.
    #[test]
    fn agrees_with_the_reference_on_generated_strings() {
        let alphabet: &[&[u8]] = &[
            b"\\",
            b"\"",
            b"\\\"",
            b"\\\\",
            b"/",
            b"a",
            b"\\n",
            b"\\u00e9",
            b"\xc3\xa9",
            b"\n",
            b"\\/",
            b"\\ud83d\\ude00",
            b"\\t",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut compared = 0;
        for _ in 0..20_000 {
            let len = (next() % 180) as usize;
            let mut text = Vec::new();
            while text.len() < len {
                // Mostly plain bytes, so blocks take the fast path as well as the slow one.
                let pick = next() as usize % (alphabet.len() * 3);
                text.extend_from_slice(alphabet.get(pick).copied().unwrap_or(b"abc"));
            }
            let expected = reference(&text);
            assert_eq!(fast(&text), expected, "{}", String::from_utf8_lossy(&text));
            if std::str::from_utf8(&text).is_ok() {
                assert_eq!(
                    expected,
                    serde_json_reads(&text),
                    "{}",
                    String::from_utf8_lossy(&text)
                );
                compared += usize::from(expected.is_some());
            }
        }
        // Enough of them are strings that end, not only refusals.
        assert!(compared > 2_000, "{compared}");
    }
}
