//! One forwarder object, checked before a single line of it is passed on: gzip (whole, CRC
//! verified, within a size cap), then NDJSON whose every line is a JSON object.

use eks_audit_core::envelope::{DecodeError, GZIP_MAGIC, decompress};

/// A verified object's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    /// The object's NDJSON, every line ending in `\n`.
    pub ndjson: Vec<u8>,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("not gzip (starts with {0:02x?}); forwarder objects are gzip NDJSON")]
    NotGzip(Vec<u8>),
    #[error(transparent)]
    Gzip(DecodeError),
    #[error("line {line} is not a JSON object: {reason}")]
    BadLine { line: usize, reason: String },
    #[error("the last line has no newline: the object is cut short")]
    Unterminated,
}

/// Gunzips and checks `body`, reading at most `limit` decompressed bytes.
pub fn decode(body: Vec<u8>, limit: usize) -> Result<Events, ObjectError> {
    if !body.starts_with(&GZIP_MAGIC) {
        return Err(ObjectError::NotGzip(body.iter().take(4).copied().collect()));
    }
    let ndjson = decompress(body, limit).map_err(ObjectError::Gzip)?;
    if ndjson.last().is_some_and(|&b| b != b'\n') {
        return Err(ObjectError::Unterminated);
    }
    let body = ndjson.strip_suffix(b"\n").unwrap_or_default();
    let mut count = 0;
    if !ndjson.is_empty() {
        for (index, line) in body.split(|&b| b == b'\n').enumerate() {
            check_line(line).map_err(|reason| ObjectError::BadLine {
                line: index + 1,
                reason,
            })?;
            count += 1;
        }
    }
    Ok(Events { ndjson, count })
}

/// A line is one JSON object and nothing else.
fn check_line(line: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(line).map_err(|e| e.to_string())?;
    match line.first() {
        Some(b'{') => Ok(()),
        _ => Err("a JSON value other than an object".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_good_object_gives_its_lines() {
        let ndjson = b"{\"Verb\":\"get\"}\n{\"Verb\":\"list\"}\n";
        let events = decode(gzip(ndjson), 1 << 20).unwrap();
        assert_eq!(events.count, 2);
        assert_eq!(events.ndjson, ndjson);
        assert_eq!(decode(gzip(b""), 1 << 20).unwrap().count, 0);
    }

    #[test]
    fn damaged_objects_are_rejected_with_the_reason() {
        assert!(matches!(
            decode(b"{\"a\":1}\n".to_vec(), 1 << 20),
            Err(ObjectError::NotGzip(_))
        ));
        let whole = gzip(b"{\"a\":1}\n");
        let cut = whole[..whole.len() - 4].to_vec();
        assert!(matches!(
            decode(cut, 1 << 20),
            Err(ObjectError::Gzip(DecodeError::CorruptGzip(_)))
        ));
        let mut flipped = whole.clone();
        let crc = flipped.len() - 8;
        flipped[crc] ^= 0xff;
        assert!(matches!(
            decode(flipped, 1 << 20),
            Err(ObjectError::Gzip(DecodeError::CorruptGzip(_)))
        ));
        assert_eq!(
            decode(gzip(&[b' '; 2048]), 1024),
            Err(ObjectError::Gzip(DecodeError::TooLarge { limit: 1024 }))
        );
        assert_eq!(
            decode(gzip(b"{\"a\":1}"), 1 << 20),
            Err(ObjectError::Unterminated)
        );
        assert!(matches!(
            decode(gzip(b"{\"a\":1}\nnot json\n"), 1 << 20),
            Err(ObjectError::BadLine { line: 2, .. })
        ));
        assert!(matches!(
            decode(gzip(b"[1]\n"), 1 << 20),
            Err(ObjectError::BadLine { line: 1, .. })
        ));
        assert!(matches!(
            decode(gzip(b"{}\n\n{}\n"), 1 << 20),
            Err(ObjectError::BadLine { line: 2, .. })
        ));
    }
}
