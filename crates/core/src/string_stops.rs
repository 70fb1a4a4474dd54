//! Where a run of plain bytes inside a JSON string stops: at a quote, a backslash or a control
//! character, sixteen bytes at a time. Audit events are mostly short strings (keys, UIDs,
//! timestamps), where one SSE2 comparison finds the end that eight-byte words took several
//! rounds to reach.

/// Bit `i` set when `block[i]` is `"`, `\` or below 0x20.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) fn string_stops(block: &[u8; 16]) -> u32 {
    // SAFETY: SSE2 is part of every x86_64 CPU.
    unsafe { sse2(block) }
}

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

/// Bit `i` set when `block[i]` is `"`, `\` or below 0x20.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn string_stops(block: &[u8; 16]) -> u32 {
    block.iter().enumerate().fold(0, |stops, (i, &b)| {
        stops | u32::from(b == b'"' || b == b'\\' || b < 0x20) << i
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_quotes_backslashes_and_control_characters_only() {
        for byte in 0..=255u8 {
            for at in [0, 7, 15] {
                let mut block = *b"abcdefghijklmnop";
                block[at] = byte;
                let stop = byte == b'"' || byte == b'\\' || byte < 0x20;
                assert_eq!(
                    string_stops(&block),
                    u32::from(stop) << at,
                    "{byte:#x} at {at}"
                );
            }
        }
        assert_eq!(
            string_stops(b"\x00\x1f\"\\ \x7f\x80\xff\xc3\xa9!#~\x20\x21\x01"),
            0b1000_0000_0000_1111
        );
    }
}
