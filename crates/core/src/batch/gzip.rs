//! gzip bodies of objects, each level with one deflate state per thread, reset before each
//! use: setting up a fresh state (some 300 KB allocated and zeroed) cost more than compressing
//! the few findings of a record, and a Firehose invocation builds one findings object per
//! record that has any.

use std::cell::RefCell;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The deflate level of event and quarantine objects (direct mode, contract §6): zlib's
/// default. Measured on the typical workload's 5.85 MB of flat NDJSON (`cargo bench --bench
/// throughput -- gzip_level`): level 1 compresses at 461 MB/s to 25.2%, 2 at 268 MB/s to 19.5%,
/// 4 at 148 MB/s to 17.2%, 6 at 104 MB/s to 16.4%, 9 at 69 MB/s to 16.7%. Level 1 would save
/// 7.4 ms of Lambda time per MB of NDJSON, but the objects are kept (365 days by default in
/// template.yaml) and Sentinel reads them across the internet: at list prices, storing and
/// sending 54% more bytes costs several hundred times what that time saves (README
/// "Performance").
pub const EVENT_OBJECT_LEVEL: u32 = 6;

/// A gzip member's header as RFC 1952 lays it out: magic, deflate, no flags, no time, no
/// extra flags, "unknown" operating system (what `flate2`'s encoder writes too).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

thread_local! {
    /// Raw deflate states by level, each set up on first use.
    static STATES: RefCell<[Option<Compress>; 10]> = const { RefCell::new([const { None }; 10]) };
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

/// `parts` concatenated, as one gzip member at deflate `level` (0 to 9, higher is clamped),
/// with this thread's reused state for that level. Each part is compressed where it is: the
/// lines of an object are never copied into one buffer first.
pub fn gzip_at(level: u32, parts: &[&[u8]]) -> Vec<u8> {
    let level = level.min(9);
    STATES.with(|cell| {
        let mut states = cell.borrow_mut();
        let compress = states[level as usize]
            .get_or_insert_with(|| Compress::new(Compression::new(level), false));
        compress.reset();
        let size: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(HEADER.len() + size / 4 + 64);
        out.extend_from_slice(&HEADER);
        let mut crc = Crc::new();
        for part in parts {
            crc.update(part);
            let mut input = *part;
            while !input.is_empty() {
                make_room(&mut out);
                let before = compress.total_in();
                compress
                    .compress_vec(input, &mut out, FlushCompress::None)
                    .expect("deflate into a Vec with room cannot fail");
                // Bounded by `input.len()`, so the cast cannot truncate.
                input = &input[(compress.total_in() - before) as usize..];
            }
        }
        loop {
            make_room(&mut out);
            let status = compress
                .compress_vec(&[], &mut out, FlushCompress::Finish)
                .expect("deflate into a Vec with room cannot fail");
            if status == Status::StreamEnd {
                break;
            }
        }
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the input's length modulo 2^32, as RFC 1952 says.
        out.extend_from_slice(&crc.amount().to_le_bytes());
        out
    })
}

/// `compress_vec` writes only into spare capacity: keep some, so every call makes progress.
fn make_room(out: &mut Vec<u8>) {
    if out.capacity() - out.len() < 4096 {
        out.reserve(out.capacity().max(4096));
    }
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
                for level in [0, 2, 6, 9, 12] {
                    assert_eq!(gunzip(&gzip_at(level, parts)), parts.concat(), "{level}");
                }
            }
        }
    }
}
