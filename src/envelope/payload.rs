//! Record data to subscription messages: base64, then gzip (or plain JSON when Firehose's
//! Decompression option is on), then one or more concatenated JSON messages.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::models::SubscriptionMessage;

/// Why a record's data could not be read as subscription messages. The record is returned to
/// Firehose as `ProcessingFailed` with its original data, or fails a direct invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("data is not valid base64: {0}")]
    NotBase64(String),
    #[error("data is empty")]
    Empty,
    #[error("data is neither gzip nor JSON (starts with {0:02x?})")]
    NotGzipOrJson(Vec<u8>),
    #[error("gzip stream is corrupt or truncated: {0}")]
    CorruptGzip(String),
    #[error("decompressed data exceeds the {limit}-byte limit (EKS_AUDIT_MAX_PAYLOAD_BYTES)")]
    TooLarge { limit: usize },
    #[error("not a CloudWatch Logs subscription message: {0}")]
    NotSubscriptionMessage(String),
    #[error("unknown messageType {0:?}, expected DATA_MESSAGE or CONTROL_MESSAGE")]
    UnknownMessageType(String),
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub fn decode_base64(data: &str) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decode_base64_into(data, &mut out)?;
    Ok(out)
}

/// Appends the bytes of `data` to `out`. base64-simd decodes; when it refuses, the base64 crate
/// has the last word, so what is accepted never narrows and a refusal says what is wrong
/// ("Invalid symbol 42, offset 3.") instead of base64-simd's bare "Base64Error".
fn decode_base64_into(data: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let start = out.len();
    if base64_simd::STANDARD.decode_append(data, out).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode_vec(data, out)
        .map_err(|e| DecodeError::NotBase64(e.to_string()))
}

/// Buffers kept across the records of one invocation, so decoding a record allocates nothing
/// once they have grown to the largest record's size.
#[derive(Debug, Default)]
pub struct DecodeBuffers {
    compressed: Vec<u8>,
    payload: Vec<u8>,
}

impl DecodeBuffers {
    /// [`decode_base64`] then [`decompress`], into these buffers: the returned payload borrows them.
    pub fn decode(&mut self, data: &str, limit: usize) -> Result<&[u8], DecodeError> {
        self.compressed.clear();
        decode_base64_into(data, &mut self.compressed)?;
        let bytes = &self.compressed;
        if bytes.starts_with(&GZIP_MAGIC) {
            self.payload.clear();
            gunzip(bytes, limit, &mut self.payload)?;
            return Ok(&self.payload);
        }
        check_plain_json(bytes, limit)?;
        Ok(bytes)
    }
}

/// Gunzips `bytes` when they are gzip, reading at most `limit` bytes of output so a small bomb
/// cannot exhaust memory; returns plain JSON as it is.
pub fn decompress(bytes: Vec<u8>, limit: usize) -> Result<Vec<u8>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        gunzip(&bytes, limit, &mut out)?;
        return Ok(out);
    }
    check_plain_json(&bytes, limit)?;
    Ok(bytes)
}

/// Inflates every gzip member of `bytes` onto `out`, failing past `limit` bytes of output.
fn gunzip(bytes: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    out.reserve(bytes.len().saturating_mul(8).min(limit));
    let read = MultiGzDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(out)
        .map_err(|e| DecodeError::CorruptGzip(e.to_string()))?;
    if read > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(())
}

/// Data that is not gzip must be JSON already (Firehose's Decompression option).
fn check_plain_json(bytes: &[u8], limit: usize) -> Result<(), DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        None if bytes.is_empty() => Err(DecodeError::Empty),
        _ => Err(DecodeError::NotGzipOrJson(bytes.iter().take(4).copied().collect())),
    }
}

/// Parses the subscription messages of one payload: usually one, but a Firehose record may
/// hold several concatenated ones. Any part that is not a message fails the whole payload, so
/// the record is returned whole rather than partly lost.
///
/// The usual payload, exactly one message, is read by sonic-rs: every audit event inside is an
/// escaped JSON string, and unescaping them is most of the parsing; sonic-rs does it 1.8x faster
/// than serde_json on real-shaped payloads and reads them to the same values (benches/choices.rs
/// checks both). Anything else (several messages, or input that is not one valid message) is
/// read by serde_json's stream deserializer, which decides and explains.
pub fn parse_messages(json: &[u8]) -> Result<Vec<SubscriptionMessage<'_>>, DecodeError> {
    if let Ok(message) = sonic_rs::from_slice::<SubscriptionMessage>(json) {
        return match message.message_type.as_ref() {
            "DATA_MESSAGE" | "CONTROL_MESSAGE" => Ok(vec![message]),
            other => Err(DecodeError::UnknownMessageType(other.to_owned())),
        };
    }
    let mut messages = Vec::with_capacity(1);
    for message in serde_json::Deserializer::from_slice(json).into_iter::<SubscriptionMessage>() {
        let message = message.map_err(|e| DecodeError::NotSubscriptionMessage(e.to_string()))?;
        match message.message_type.as_ref() {
            "DATA_MESSAGE" | "CONTROL_MESSAGE" => messages.push(message),
            other => return Err(DecodeError::UnknownMessageType(other.to_owned())),
        }
    }
    if messages.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_and_plain_json_both_decode() {
        let json = br#"{"messageType":"CONTROL_MESSAGE","logEvents":[]}"#;
        assert_eq!(decompress(gzip(json), 1 << 20).unwrap(), json);
        assert_eq!(decompress(json.to_vec(), 1 << 20).unwrap(), json);
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b' '; 10 << 20]);
        assert!(bomb.len() < 64 << 10, "10 MiB of spaces compress to a few KB");
        assert_eq!(decompress(bomb, 1 << 20), Err(DecodeError::TooLarge { limit: 1 << 20 }));
    }

    #[test]
    fn reused_buffers_decode_each_record_alone() {
        let mut buffers = DecodeBuffers::default();
        let big = format!(r#"{{"messageType":"DATA_MESSAGE","pad":"{}"}}"#, "x".repeat(4096));
        let small = br#"{"messageType":"CONTROL_MESSAGE","logEvents":[]}"#;
        let encode = |bytes: &[u8]| STANDARD.encode(bytes);
        assert_eq!(buffers.decode(&encode(&gzip(big.as_bytes())), 1 << 20).unwrap(), big.as_bytes());
        assert_eq!(buffers.decode(&encode(&gzip(small)), 1 << 20).unwrap(), small);
        assert_eq!(buffers.decode(&encode(small), 1 << 20).unwrap(), small);
        assert_eq!(buffers.decode("", 1 << 20), Err(DecodeError::Empty));
        assert!(matches!(buffers.decode("not*base64!", 1 << 20), Err(DecodeError::NotBase64(_))));
        assert_eq!(buffers.decode(&encode(&gzip(big.as_bytes())), 1024), Err(DecodeError::TooLarge { limit: 1024 }));
    }

    #[test]
    fn only_padded_standard_base64_decodes() {
        for (text, bytes) in [("", &b""[..]), ("eyJ9", b"{\"}"), ("eyI=", b"{\""), ("eyJhIjoxfQ==", b"{\"a\":1}"), ("+/8=", b"\xfb\xff")] {
            assert_eq!(decode_base64(text).as_deref(), Ok(bytes), "{text}");
        }
        for text in ["not*base64!", "eyJ", "eyJhIjoxfQ", "eyJhIjoxfQ=", "ey J9", "eyJ9\n", "-_8=", "ab==cd=="] {
            assert!(matches!(decode_base64(text), Err(DecodeError::NotBase64(_))), "{text}");
        }
        assert_eq!(
            decode_base64("not*base64!").unwrap_err().to_string(),
            "data is not valid base64: Invalid symbol 42, offset 3."
        );
    }

    #[test]
    fn truncated_gzip_is_corrupt() {
        let whole = gzip(br#"{"messageType":"DATA_MESSAGE","logEvents":[]}"#);
        let cut = whole[..whole.len() - 6].to_vec();
        assert!(matches!(decompress(cut, 1 << 20), Err(DecodeError::CorruptGzip(_))));
    }

    #[test]
    fn text_that_is_neither_gzip_nor_json_is_rejected() {
        assert!(matches!(decompress(b"Hello World".to_vec(), 1 << 20), Err(DecodeError::NotGzipOrJson(_))));
        assert_eq!(decompress(Vec::new(), 1 << 20), Err(DecodeError::Empty));
    }

    #[test]
    fn concatenated_messages_are_all_read() {
        let two = br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[]}
{"messageType":"CONTROL_MESSAGE","logEvents":[]}"#;
        let messages = parse_messages(two).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].message_type, "CONTROL_MESSAGE");
    }

    #[test]
    fn unknown_message_type_and_missing_log_events_fail() {
        assert_eq!(
            parse_messages(br#"{"messageType":"SOMETHING","logEvents":[]}"#).unwrap_err(),
            DecodeError::UnknownMessageType("SOMETHING".into())
        );
        assert!(matches!(
            parse_messages(br#"{"messageType":"DATA_MESSAGE"}"#),
            Err(DecodeError::NotSubscriptionMessage(_))
        ));
    }

    #[test]
    fn messages_that_are_not_json_or_not_utf8_fail() {
        for bad in [&b"{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[]} trailing"[..], b"{\"messageType\":", b"\xff\xfe", b"{\"messageType\":\"DATA_\xffMESSAGE\",\"logEvents\":[]}", b"   "] {
            assert!(parse_messages(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn escaped_messages_are_unescaped() {
        let json = br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":1,"message":"{\"a\":\"caf\u00e9 \ud83d\ude80 \\u0026\"}"}]}"#;
        let messages = parse_messages(json).unwrap();
        assert_eq!(messages[0].log_events[0].message, "{\"a\":\"café 🚀 \\u0026\"}");
    }

    #[test]
    fn event_ids_may_be_integers() {
        let messages = parse_messages(
            br#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":42,"timestamp":1,"message":"{}"}]}"#,
        )
        .unwrap();
        assert_eq!(messages[0].log_events[0].id.as_str(), "42");
    }
}
