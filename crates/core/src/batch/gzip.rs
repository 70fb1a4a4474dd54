//! gzip bodies of objects. Small ones reuse one deflate state per thread: setting up a fresh
//! state (some 300 KB allocated and zeroed) cost more than compressing the few findings of a
//! record, and a Firehose invocation builds one findings object per record that has any.

use std::cell::RefCell;
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// A gzip member's header as RFC 1952 lays it out: magic, deflate, no flags, no time, no
/// extra flags, "unknown" operating system (what `flate2`'s encoder writes too).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

thread_local! {
    /// Raw deflate at level 1, reset before each use.
    static FAST: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

/// `parts` concatenated, as one gzip member at the default level: for event objects, where
/// the ratio matters and the setup is small against the data.
pub(crate) fn gzip(parts: &[&[u8]]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    for part in parts {
        encoder
            .write_all(part)
            .expect("writing into a Vec cannot fail");
    }
    encoder.finish().expect("writing into a Vec cannot fail")
}

/// `parts` concatenated, as one gzip member at level 1, with this thread's reused deflate
/// state.
pub(crate) fn gzip_small(parts: &[&[u8]]) -> Vec<u8> {
    FAST.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compress = slot.get_or_insert_with(|| Compress::new(Compression::fast(), false));
        compress.reset();
        let size: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(HEADER.len() + size / 2 + 64);
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
    fn small_gzip_reads_back_as_its_parts_concatenated_and_the_state_carries_nothing_over() {
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
            }
        }
    }
}
