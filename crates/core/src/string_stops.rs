//! Where a run of plain bytes inside a JSON string stops: at a quote, a backslash or a control
//! character, sixteen bytes at a time. Audit events are mostly short strings (keys, UIDs,
//! timestamps), where one SSE2 comparison finds the end that eight-byte words took several
//! rounds to reach: SSE2 on x86_64, NEON on aarch64 (the arm64 Lambda). Other architectures
//! read the block as two eight-byte words, as every architecture did before.

/// The index of the first byte of `block` that is `"`, `\` or below 0x20.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) fn first_string_stop(block: &[u8; 16]) -> Option<usize> {
    // SAFETY: SSE2 is part of every x86_64 CPU.
    let stops = unsafe { sse2(block) };
    (stops != 0).then(|| stops.trailing_zeros() as usize)
}

/// Bit `i` set when `block[i]` is `"`, `\` or below 0x20.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[allow(unsafe_code)]
fn sse2(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: reads the 16 bytes of `block`, unaligned.
    let bytes = unsafe { _mm_loadu_si128(block.as_ptr().cast()) };
    let below_space = _mm_set1_epi8(0x1f);
    let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
    let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
    let control = _mm_cmpeq_epi8(_mm_max_epu8(bytes, below_space), below_space);
    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
}

/// The index of the first byte of `block` that is `"`, `\` or below 0x20.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[allow(unsafe_code)]
pub(crate) fn first_string_stop(block: &[u8; 16]) -> Option<usize> {
    // SAFETY: this version is built only where the target has NEON.
    let stops = unsafe { neon(block) };
    (stops != 0).then(|| stops.trailing_zeros() as usize / 4)
}

/// Four bits per byte of `block`, set when it is `"`, `\` or below 0x20: NEON has no
/// movemask, so each comparison lane is narrowed to a nibble.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[target_feature(enable = "neon")]
#[allow(unsafe_code)]
fn neon(block: &[u8; 16]) -> u64 {
    use std::arch::aarch64::{
        vceqq_u8, vcleq_u8, vdupq_n_u8, vget_lane_u64, vld1q_u8, vorrq_u8, vreinterpret_u64_u8,
        vreinterpretq_u16_u8, vshrn_n_u16,
    };
    // SAFETY: reads the 16 bytes of `block`.
    let bytes = unsafe { vld1q_u8(block.as_ptr()) };
    let quote = vceqq_u8(bytes, vdupq_n_u8(b'"'));
    let backslash = vceqq_u8(bytes, vdupq_n_u8(b'\\'));
    let control = vcleq_u8(bytes, vdupq_n_u8(0x1f));
    let stops = vorrq_u8(vorrq_u8(quote, backslash), control);
    vget_lane_u64::<0>(vreinterpret_u64_u8(vshrn_n_u16::<4>(vreinterpretq_u16_u8(
        stops,
    ))))
}

/// The index of the first byte of `block` that is `"`, `\` or below 0x20.
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
)))]
pub(crate) fn first_string_stop(block: &[u8; 16]) -> Option<usize> {
    first_string_stop_in_words(block)
}

/// [`first_string_stop`] with two eight-byte words: portable, and what the SIMD versions are
/// tested against.
#[cfg_attr(
    any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    ),
    allow(dead_code)
)]
fn first_string_stop_in_words(block: &[u8; 16]) -> Option<usize> {
    let (low, high) = block.split_at(8);
    let word = |bytes: &[u8]| bytes.try_into().ok().map(u64::from_le_bytes);
    [(word(low)?, 0), (word(high)?, 8)]
        .into_iter()
        .find_map(|(word, base)| {
            let special = special_bytes(word);
            (special != 0).then(|| base + special.trailing_zeros() as usize / 8)
        })
}

/// The high bit of each byte of `word` that is a quote, a backslash or a control character.
/// Only the lowest flagged byte is exact (borrows can flag bytes above it).
#[cfg_attr(
    any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    ),
    allow(dead_code)
)]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    // Below 0x20: only for bytes under 0x80, whose high bit `!word` keeps.
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\'))) | control
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_stop(byte: u8) -> bool {
        byte == b'"' || byte == b'\\' || byte < 0x20
    }

    /// Blocks of plain bytes with one or two bytes set to every value, the first stop found by
    /// both versions as a byte-at-a-time search finds it.
    #[test]
    fn both_versions_find_the_first_quote_backslash_or_control_character() {
        for byte in 0..=255u8 {
            for (first, second) in [(0, 15), (7, 8), (8, 9), (15, 15), (3, 12)] {
                for other in [b'a', b'"', 0x01, 0xff] {
                    let mut block = *b"abcdefghijklmnop";
                    block[second] = other;
                    block[first] = byte;
                    let expected = block.iter().position(|&b| is_stop(b));
                    assert_eq!(first_string_stop(&block), expected, "{block:?}");
                    assert_eq!(first_string_stop_in_words(&block), expected, "{block:?}");
                }
            }
        }
    }
}
