//! gzip bodies of objects, compressed by libdeflate with one compressor per level and thread:
//! setting up a fresh state (hundreds of KB allocated) cost more than compressing the few
//! findings of a record, and a Firehose invocation builds one findings object per record that
//! has any.

use std::cell::RefCell;

use libdeflater::{CompressionLvl, Compressor};

/// The deflate level of event and quarantine objects (direct mode, contract §6), libdeflate's
/// scale. Measured on the typical workload's 5.85 MB of flat NDJSON (`cargo bench --bench
/// throughput -- gzip_level`; zlib-rs's rows from `--bench choices`): libdeflate level 6
/// compresses to 16.4% at 124 MB/s where zlib-rs's level 6 reached the same 16.4% at 105 MB/s.
/// Lower levels are faster and larger (level 1: 19.1% at 331 MB/s), higher ones smaller and
/// slower (8: 16.0% at 69 MB/s). Objects are kept (365 days by default in template.yaml) and
/// Sentinel reads them across the internet, so bytes cost more than the Lambda time a low level
/// saves (README "Performance").
pub const EVENT_OBJECT_LEVEL: u32 = 6;

/// libdeflate's highest level: higher requests are clamped to it.
const MAX_LEVEL: u32 = 12;

thread_local! {
    /// Compressors by level, each set up on first use.
    static COMPRESSORS: RefCell<[Option<Compressor>; MAX_LEVEL as usize + 1]> =
        const { RefCell::new([const { None }; MAX_LEVEL as usize + 1]) };
    /// Where an object's lines are joined: libdeflate compresses one contiguous input.
    static JOINED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Where bodies are compressed before they are copied out at their size.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `parts` concatenated, as one gzip member at [`EVENT_OBJECT_LEVEL`]: event and quarantine
/// objects.
pub(crate) fn gzip(parts: &[&[u8]]) -> Vec<u8> {
    gzip_at(EVENT_OBJECT_LEVEL, parts)
}

/// `parts` concatenated, as one gzip member at level 1: findings objects, a few lines each.
pub(crate) fn gzip_small(parts: &[&[u8]]) -> Vec<u8> {
    gzip_at(1, parts)
}

/// `parts` concatenated, as one gzip member at deflate `level` (0 to 12, higher is clamped),
/// with this thread's compressor for that level. The parts are joined in a buffer the thread
/// keeps: copying is a hundredth of compressing them.
pub fn gzip_at(level: u32, parts: &[&[u8]]) -> Vec<u8> {
    let level = level.min(MAX_LEVEL);
    match parts {
        [one] => compress(level, one),
        _ => JOINED.with(|joined| {
            let mut joined = joined.borrow_mut();
            joined.clear();
            for part in parts {
                joined.extend_from_slice(part);
            }
            compress(level, &joined)
        }),
    }
}

/// `input` as one gzip member at `level` (at most [`MAX_LEVEL`]), compressed into a buffer the
/// thread keeps and copied out at its size: a body sized for libdeflate's bound would hold
/// about six times its bytes while it waits to be stored.
fn compress(level: u32, input: &[u8]) -> Vec<u8> {
    COMPRESSORS.with(|cell| {
        let mut compressors = cell.borrow_mut();
        let compressor = compressors[level as usize].get_or_insert_with(|| {
            let level =
                CompressionLvl::new(level as i32).expect("levels up to MAX_LEVEL are libdeflate's");
            Compressor::new(level)
        });
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let bound = compressor.gzip_compress_bound(input.len());
            if scratch.len() < bound {
                scratch.resize(bound, 0);
            }
            let size = compressor
                .gzip_compress(input, &mut scratch[..bound])
                .expect("the bound libdeflate gives always has room");
            scratch[..size].to_vec()
        })
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::MultiGzDecoder;

    use super::*;

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(body).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn gzip_reads_back_as_its_parts_concatenated_at_every_level_and_the_state_carries_nothing_over()
    {
        let line = b"{\"finding\":\"pod exec\"}\n".as_slice();
        // Incompressible bytes too, larger than the room kept, so output outgrows the buffer.
        let mut noise = Vec::new();
        let mut x: u32 = 2_463_534_242;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
        }
        let cases: [&[&[u8]]; 4] = [&[], &[line], &[line, line, line], &[line, &noise, line]];
        for _ in 0..2 {
            for parts in cases {
                let body = gzip_small(parts);
                assert_eq!(body[..2], [0x1f, 0x8b], "a gzip member");
                assert_eq!(gunzip(&body), parts.concat());
                assert_eq!(gunzip(&gzip(parts)), parts.concat());
                for level in [0, 2, 6, 9, 12, 13] {
                    assert_eq!(gunzip(&gzip_at(level, parts)), parts.concat(), "{level}");
                }
            }
        }
    }
}
