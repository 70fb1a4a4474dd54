//! The usual gzip payload inflated by libdeflate: one member, no optional header fields, its
//! trailer giving a size within the limit. libdeflate inflates a whole buffer of known size
//! 1.4x faster than zlib-rs streams it (README "Choices"), but it cannot stop at a limit as it
//! goes, nor say why data is corrupt in flate2's words. So it is only a fast path: whatever it
//! does not inflate completely and exactly, [`inflate`] leaves to flate2's streaming decoder,
//! which reads the payload again from its start. Limits, refusals and their messages stay
//! flate2's.

use std::cell::RefCell;
use std::ptr::NonNull;

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_SUCCESS,
};

/// Inflates `gzip` into all of `out`, whose length is the size its trailer gives: `true` when
/// `gzip` is exactly one member whose header has no optional fields (`FLG` zero, as CloudWatch
/// Logs writes it) and which inflates to exactly `out.len()` bytes, its CRC-32 and size
/// checked. `false` otherwise, `out` then holding anything.
pub(super) fn inflate(gzip: &[u8], out: &mut [u8]) -> bool {
    // FLG: flate2 checks a header CRC (FHCRC) that libdeflate skips, so only a header without
    // optional fields is read here, and a refusal stays flate2's.
    const FLG: usize = 3;
    if gzip.get(FLG) != Some(&0) {
        return false;
    }
    // The reference path (the oracle of tests and fuzz targets) inflates with flate2 alone.
    #[cfg(any(test, feature = "oracle"))]
    if crate::oracle::on() {
        return false;
    }
    DECOMPRESSOR.with(|decompressor| {
        let Ok(decompressor) = decompressor.try_borrow_mut() else {
            return false;
        };
        let Some(decompressor) = decompressor.as_ref() else {
            return false;
        };
        let (mut read, mut written) = (0usize, 0usize);
        // SAFETY: the decompressor is this thread's own, borrowed mutably for this call only;
        // libdeflate reads at most `gzip.len()` bytes of `gzip` and writes at most `out.len()`
        // bytes of `out`, both live slices, and writes the two counts through valid pointers.
        #[allow(unsafe_code)]
        let result = unsafe {
            libdeflate_gzip_decompress_ex(
                decompressor.0.as_ptr(),
                gzip.as_ptr().cast(),
                gzip.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut read,
                &mut written,
            )
        };
        // A member shorter than the input means more members (or bytes after it): flate2
        // reads those, or refuses them.
        result == libdeflate_result_LIBDEFLATE_SUCCESS && read == gzip.len() && written == out.len()
    })
}

thread_local! {
    /// libdeflate's decompressor (its Huffman tables, ~10 KB), one per thread and kept:
    /// allocating it per record would cost more than some records take to inflate. `None`
    /// when libdeflate could not allocate one, and then every payload goes to flate2.
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = RefCell::new(Decompressor::new());
}

/// An owned libdeflate decompressor.
struct Decompressor(NonNull<libdeflate_decompressor>);

impl Decompressor {
    fn new() -> Option<Decompressor> {
        // SAFETY: allocates a decompressor, or returns null when out of memory.
        #[allow(unsafe_code)]
        let decompressor = unsafe { libdeflate_alloc_decompressor() };
        NonNull::new(decompressor).map(Decompressor)
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libdeflate_alloc_decompressor and is freed only here.
        #[allow(unsafe_code)]
        unsafe {
            libdeflate_free_decompressor(self.0.as_ptr())
        };
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{Compression, GzBuilder, write::GzEncoder};

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn text(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"audit events, "[i % 14]).collect()
    }

    #[test]
    fn one_member_inflates_to_its_bytes() {
        for len in [0, 1, 1000, 300_000] {
            let data = text(len);
            let mut out = vec![0xaa; len];
            assert!(inflate(&gzip(&data), &mut out), "{len} bytes");
            assert_eq!(out, data);
        }
    }

    /// Every case the fast path must leave to flate2, each of which it would otherwise get
    /// wrong or answer differently.
    #[test]
    fn anything_but_one_exact_member_is_left_to_flate2() {
        let data = text(5000);
        let member = gzip(&data);
        // Too small or too large a buffer: the trailer lied, or was not the one read.
        assert!(!inflate(&member, &mut vec![0; data.len() - 1]));
        assert!(!inflate(&member, &mut vec![0; data.len() + 1]));
        // Two members, even two alike: reading the first alone would lose the second.
        let twice = [member.clone(), member.clone()].concat();
        assert!(!inflate(&twice, &mut vec![0; data.len()]));
        assert!(!inflate(&twice, &mut vec![0; 2 * data.len()]));
        // Bytes after the member.
        assert!(!inflate(
            &[&member[..], b"\0"].concat(),
            &mut vec![0; data.len()]
        ));
        // A header with optional fields (here a file name), which flate2 reads itself.
        let mut named = GzBuilder::new()
            .filename("audit.json")
            .write(Vec::new(), Compression::default());
        named.write_all(&data).unwrap();
        assert!(!inflate(&named.finish().unwrap(), &mut vec![0; data.len()]));
        // Truncated, or a byte of the deflate stream or of the CRC-32 changed.
        assert!(!inflate(
            &member[..member.len() - 1],
            &mut vec![0; data.len()]
        ));
        for at in [12, member.len() - 6] {
            let mut corrupt = member.clone();
            corrupt[at] ^= 0x40;
            assert!(!inflate(&corrupt, &mut vec![0; data.len()]), "byte {at}");
        }
        assert!(!inflate(b"", &mut []));
    }
}
