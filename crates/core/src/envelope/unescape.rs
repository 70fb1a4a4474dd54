//! JSON strings unescaped 64 bytes at a time, for the audit events that subscription messages
//! carry as escaped text. Every `"` of an audit event travels as `\"`: one escape every 14 bytes
//! of the typical workload, which a reader that stops at each escape (sonic-rs, serde_json, or
//! word-at-a-time code: README "Performance") pays for one by one. Here a block's escapes are
//! found with simdjson's odd-backslash-run arithmetic and removed together, eight bytes per
//! shuffle. Blocks with a rarer escape (`\n`, `\u…`), and the last bytes of a string, go
//! through the byte-at-a-time reader, which is also the reference the tests hold the fast one
//! to.

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
    unescape_bytewise(text, out)
}

/// Whether [`unescape`] runs 64 bytes at a time on this CPU: on x86_64 with SSSE3 and POPCNT
/// (every x86_64 Lambda). Elsewhere it goes a byte at a time, slower than sonic-rs's own SIMD
/// (NEON on the arm64 Lambda), which the caller then uses instead.
pub(crate) fn in_blocks() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("ssse3") && std::is_x86_feature_detected!("popcnt");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
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

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadl_epi64, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
        _mm_set1_epi8, _mm_shuffle_epi8, _mm_srli_si128, _mm_storel_epi64,
    };

    use super::{Stop, until};

    /// For each mask of the bytes of an 8-byte group to keep, the `pshufb` indices that gather
    /// them to the front.
    const GATHER: [[u8; 8]; 256] = {
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

    /// Bit `i` set for the odd positions: simdjson's constant for telling apart the backslash
    /// runs of odd length.
    const ODD_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;

    /// The bytes of a block that are `\`, `"`, control characters, and the three whose escape
    /// only drops the backslash (`"`, `\`, `/`).
    struct Masks {
        backslash: u64,
        quote: u64,
        control: u64,
        plain_escape: u64,
    }

    /// [`super::unescape`] with SSSE3.
    ///
    /// # Safety
    /// The CPU must have SSSE3 and POPCNT.
    #[target_feature(enable = "ssse3,popcnt")]
    pub(super) unsafe fn unescape(text: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut at = 0;
        while let Some(block) = text.get(at..at + 64) {
            let block: &[u8; 64] = block.try_into().ok()?;
            let vectors = load(block);
            let masks = masks(&vectors);
            if masks.backslash | masks.quote | masks.control == 0 {
                out.extend_from_slice(block);
                at += 64;
                continue;
            }
            // Backslashes that start an escape, and the bytes they escape. A block starts on an
            // escape's boundary, so no escape runs in from the one before.
            let backslash = masks.backslash;
            let code = ((backslash << 1 | ODD_BITS).wrapping_sub(backslash)) ^ ODD_BITS;
            let escaped = code ^ backslash;
            let starts = code & backslash;
            let quotes = masks.quote & !escaped;
            // The bytes of the string in this block: up to its closing quote, or, when the last
            // byte starts an escape, up to that backslash, which the next block starts with.
            let (end, used) = if quotes != 0 {
                (
                    Some(quotes.trailing_zeros() as usize),
                    quotes.trailing_zeros(),
                )
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
                return None;
            }
            if escaped & inside & !masks.plain_escape != 0 {
                match until(text, at, at + 64, out)? {
                    Stop::Closed(read) => return Some(read),
                    Stop::Reached(next) => {
                        at = next;
                        continue;
                    }
                }
            }
            gather(&vectors, inside & !starts, out);
            if let Some(end) = end {
                return Some(at + end + 1);
            }
            at += used as usize;
        }
        match until(text, at, usize::MAX, out)? {
            Stop::Closed(read) => Some(read),
            Stop::Reached(_) => None,
        }
    }

    #[target_feature(enable = "ssse3")]
    fn load(block: &[u8; 64]) -> [__m128i; 4] {
        // SAFETY: each load reads 16 bytes at offset 0, 16, 32 or 48 of a 64-byte array.
        std::array::from_fn(|i| unsafe { _mm_loadu_si128(block.as_ptr().add(16 * i).cast()) })
    }

    #[target_feature(enable = "ssse3")]
    fn masks(vectors: &[__m128i; 4]) -> Masks {
        let mask = |byte: u8| {
            let needle = _mm_set1_epi8(byte as i8);
            bits(vectors, |v| _mm_cmpeq_epi8(v, needle))
        };
        let below_space = _mm_set1_epi8(0x1f);
        let control = bits(vectors, |v| {
            _mm_cmpeq_epi8(_mm_max_epu8(v, below_space), below_space)
        });
        let backslash = mask(b'\\');
        let quote = mask(b'"');
        Masks {
            backslash,
            quote,
            control,
            plain_escape: backslash | quote | mask(b'/'),
        }
    }

    /// The 64-bit mask of the bytes for which `test` sets a vector lane.
    #[target_feature(enable = "ssse3")]
    fn bits(vectors: &[__m128i; 4], test: impl Fn(__m128i) -> __m128i) -> u64 {
        vectors.iter().enumerate().fold(0, |mask, (i, &v)| {
            let lanes = _mm_movemask_epi8(test(v)) as u32 as u64;
            mask | lanes << (16 * i)
        })
    }

    /// Appends the bytes of the block that `keep` marks, in order.
    #[target_feature(enable = "ssse3,popcnt")]
    fn gather(vectors: &[__m128i; 4], keep: u64, out: &mut Vec<u8>) {
        // Eight bytes per group are written, of which the kept ones count: the last group's
        // writes end at most 8 bytes past the 64 a block can keep.
        let mut gathered = [0u8; 72];
        let mut len = 0;
        for group in 0..8 {
            let wanted = (keep >> (8 * group)) as u8;
            let vector = vectors[group / 2];
            let half = if group % 2 == 0 {
                vector
            } else {
                _mm_srli_si128::<8>(vector)
            };
            // SAFETY: the table row is 8 bytes, which `_mm_loadl_epi64` reads; the store writes 8
            // bytes at `len` ≤ 56 of a 72-byte array, since each earlier group adds at most 8.
            unsafe {
                let indices = _mm_loadl_epi64(GATHER[usize::from(wanted)].as_ptr().cast());
                let packed = _mm_shuffle_epi8(half, indices);
                _mm_storel_epi64(gathered.as_mut_ptr().add(len).cast(), packed);
            }
            len += wanted.count_ones() as usize;
        }
        out.extend_from_slice(&gathered[..len]);
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
