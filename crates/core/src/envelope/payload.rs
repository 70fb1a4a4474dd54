//! Record data to subscription messages: base64, then gzip (or plain JSON when Firehose's
//! Decompression option is on), then one or more concatenated JSON messages.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::models::{LogEvent, Skipped, SubscriptionMessage};
use super::one_member;

/// Why a record's data could not be read as subscription messages. The record is returned to
/// Firehose as `ProcessingFailed` with its original data, or fails a direct invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not padded standard base64 on one line; says what is wrong.
    #[error("data is not valid base64: {0}")]
    NotBase64(String),
    /// No data at all, or only whitespace where messages were expected.
    #[error("data is empty")]
    Empty,
    /// Neither the gzip magic nor a JSON object; holds the first bytes (up to 4).
    #[error("data is neither gzip nor JSON (starts with {0:02x?})")]
    NotGzipOrJson(Vec<u8>),
    /// Gzip that does not inflate, or ends early.
    #[error("gzip stream is corrupt or truncated: {0}")]
    CorruptGzip(String),
    /// Decompressed data over the payload limit (contract §8).
    #[error("decompressed data exceeds the {limit}-byte limit (EKS_AUDIT_MAX_PAYLOAD_BYTES)")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// JSON that is not a subscription message (missing `messageType` or `logEvents`, a duplicate
    /// field, trailing text); says why.
    #[error("not a CloudWatch Logs subscription message: {0}")]
    NotSubscriptionMessage(String),
    /// A `messageType` other than `DATA_MESSAGE` or `CONTROL_MESSAGE`.
    #[error("unknown messageType {0:?}, expected DATA_MESSAGE or CONTROL_MESSAGE")]
    UnknownMessageType(String),
    /// More log events than the per-record limit allows (contract §8).
    #[error("more than {limit} log events in one record (EKS_AUDIT_MAX_EVENTS_PER_RECORD)")]
    TooManyEvents {
        /// The limit, in log events.
        limit: usize,
    },
}

/// The first two bytes of every gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decodes a record's `data`: standard base64 with padding, on one line (contract §1.2).
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
    /// Inflated bytes at its start. All of it stays initialized from record to record:
    /// `read_to_end` zeroed its spare room on every call, 8 M instructions a typical payload.
    payload: Vec<u8>,
    /// The log event messages [`parse_messages`] unescaped.
    unescaped: Vec<u8>,
}

impl DecodeBuffers {
    /// [`decode_base64`] then [`decompress`], into these buffers: the returned payload borrows them.
    pub fn decode(&mut self, data: &str, limit: usize) -> Result<&[u8], DecodeError> {
        let inflated = self.inflate(data, limit)?;
        Ok(decoded(&self.compressed, &self.payload, inflated))
    }

    /// [`decode`](Self::decode) then [`parse_messages`], into these buffers: the size of the
    /// decoded payload, and its messages.
    pub fn decode_messages(
        &mut self,
        data: &str,
        limit: usize,
        max_events: usize,
    ) -> Result<(usize, Vec<SubscriptionMessage<'_>>), DecodeError> {
        let inflated = self.inflate(data, limit)?;
        let json = decoded(&self.compressed, &self.payload, inflated);
        let messages = parse_messages(json, &mut self.unescaped, max_events)?;
        Ok((json.len(), messages))
    }

    /// Decodes `data`'s base64 into `compressed`, then inflates it into `payload` when it is
    /// gzip (`Some` of the inflated size) or checks that it is plain JSON (`None`).
    fn inflate(&mut self, data: &str, limit: usize) -> Result<Option<usize>, DecodeError> {
        self.compressed.clear();
        decode_base64_into(data, &mut self.compressed)?;
        let bytes = &self.compressed;
        if bytes.starts_with(&GZIP_MAGIC) {
            return gunzip(bytes, limit, &mut self.payload).map(Some);
        }
        check_plain_json(bytes, limit)?;
        Ok(None)
    }
}

/// The decoded payload [`DecodeBuffers::inflate`] left: the inflated bytes, or the base64-decoded
/// ones when they were plain JSON.
fn decoded<'b>(compressed: &'b [u8], payload: &'b [u8], inflated: Option<usize>) -> &'b [u8] {
    inflated.map_or(compressed, |inflated| &payload[..inflated])
}

/// Whether `bytes` start like a gzip stream (RFC 1952 magic number).
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Gunzips `bytes` when they are gzip, reading at most `limit` bytes of output so a small bomb
/// cannot exhaust memory; returns plain JSON as it is.
pub fn decompress(bytes: Vec<u8>, limit: usize) -> Result<Vec<u8>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if is_gzip(&bytes) {
        let mut out = Vec::new();
        let inflated = gunzip(&bytes, limit, &mut out)?;
        out.truncate(inflated);
        return Ok(out);
    }
    check_plain_json(&bytes, limit)?;
    Ok(bytes)
}

/// Inflates every gzip member of `bytes` into `out` from its start, failing past `limit` bytes
/// of output; returns how many bytes it wrote. `out` is grown, zeroed, only where it is not
/// long enough yet, and never shortened, so buffers reused across records are zeroed once.
fn gunzip(bytes: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<usize, DecodeError> {
    let hint = inflated_size_hint(bytes);
    // The usual payload: one member, as large as its trailer says.
    if hint <= limit {
        grow_exactly(out, hint);
        if one_member::inflate(bytes, &mut out[..hint]) {
            return Ok(hint);
        }
    }
    // One byte past the limit tells a payload over it.
    let cap = limit.saturating_add(1);
    grow_exactly(out, hint.min(cap));
    let mut decoder = MultiGzDecoder::new(bytes);
    let read = |decoder: &mut MultiGzDecoder<&[u8]>, into: &mut [u8]| loop {
        match decoder.read(into) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            read => return read.map_err(|e| DecodeError::CorruptGzip(e.to_string())),
        }
    };
    let mut filled = 0;
    loop {
        let end = out.len().min(cap);
        if filled < end {
            match read(&mut decoder, &mut out[filled..end])? {
                0 => break,
                more => filled += more,
            }
            continue;
        }
        if end == cap {
            break;
        }
        // Full at the size expected: whether the data goes on is asked with a few bytes
        // first, so that a right hint never grows (and zeroes) the buffer.
        let mut probe = [0u8; 32];
        let room = probe.len().min(cap - filled);
        let more = read(&mut decoder, &mut probe[..room])?;
        if more == 0 {
            break;
        }
        grow_exactly(
            out,
            end.saturating_mul(2)
                .max(64 << 10)
                .min(cap)
                .max(filled + more),
        );
        out[filled..filled + more].copy_from_slice(&probe[..more]);
        filled += more;
    }
    if filled > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(filled)
}

/// `out` zero-filled to `len` when shorter, its capacity grown to exactly that: `resize` alone
/// would double it, and a payload one byte past a hint that was right would hold twice the
/// memory it needs.
fn grow_exactly(out: &mut Vec<u8>, len: usize) {
    if let Some(more) = len.checked_sub(out.len()).filter(|&more| more > 0) {
        out.reserve_exact(more);
        out.resize(len, 0);
    }
}

/// The inflated size of `bytes`' last gzip member, from its trailer (ISIZE, the size modulo
/// 2^32), or 0 when there is no trailer to read. Only a hint, for sizing the output once instead
/// of doubling it: a hostile trailer may say anything, so it is held to deflate's own ceiling of
/// about 1,032 bytes out per byte in.
fn inflated_size_hint(bytes: &[u8]) -> usize {
    const SMALLEST_MEMBER: usize = 18;
    const MAX_DEFLATE_RATIO: usize = 1032;
    let Some(trailer) = bytes
        .len()
        .checked_sub(4)
        .filter(|_| bytes.len() >= SMALLEST_MEMBER)
    else {
        return 0;
    };
    let isize = u32::from_le_bytes(bytes[trailer..].try_into().expect("four bytes"));
    (isize as usize).min(bytes.len().saturating_mul(MAX_DEFLATE_RATIO))
}

/// Data that is not gzip must be JSON already (Firehose's Decompression option).
fn check_plain_json(bytes: &[u8], limit: usize) -> Result<(), DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        None if bytes.is_empty() => Err(DecodeError::Empty),
        _ => Err(DecodeError::NotGzipOrJson(
            bytes.iter().take(4).copied().collect(),
        )),
    }
}

/// Parses the subscription messages of one payload: usually one, but a Firehose record may
/// hold several concatenated ones. Any part that is not a message fails the whole payload, so
/// the record is returned whole rather than partly lost. More than `max_events` log events in
/// all fail it too.
///
/// The usual payload, exactly one message, is read by hand (`usual_message`) where the CPU lets
/// it unescape 64 bytes at a time (x86_64 with SSSE3, aarch64): every audit event inside is an
/// escaped JSON string, and unescaping them is most of the parsing. One message of another
/// shape, or any message on other CPUs, is read by sonic-rs, 1.8x faster than serde_json on
/// real-shaped payloads and to the same values (benches/choices.rs checks all three), with the
/// same event budget. Anything else (several messages, or input that is not one valid message)
/// is read by serde_json's stream deserializer, which counts events while parsing, decides and
/// explains.
///
/// `unescaped` is the hand reader's buffer for escaped log event messages, which then borrow
/// from it; keep it across payloads so it is allocated once.
pub fn parse_messages<'a>(
    json: &'a [u8],
    unescaped: &'a mut Vec<u8>,
    max_events: usize,
) -> Result<Vec<SubscriptionMessage<'a>>, DecodeError> {
    if let Some(message) = parse_single_message_fast(json, unescaped, max_events) {
        return match message.message_type.as_ref() {
            "DATA_MESSAGE" | "CONTROL_MESSAGE" => Ok(vec![message]),
            other => Err(DecodeError::UnknownMessageType(other.to_owned())),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    if deserializer.end().is_ok() {
        return Err(DecodeError::Empty);
    }
    let mut budget = EventBudget {
        left: max_events,
        exceeded: false,
    };
    let mut messages = Vec::with_capacity(1);
    loop {
        let message = MessageSeed(&mut budget)
            .deserialize(&mut deserializer)
            .map_err(|e| {
                if budget.exceeded {
                    DecodeError::TooManyEvents { limit: max_events }
                } else {
                    DecodeError::NotSubscriptionMessage(e.to_string())
                }
            })?;
        match message.message_type.as_ref() {
            "DATA_MESSAGE" | "CONTROL_MESSAGE" => messages.push(message),
            other => return Err(DecodeError::UnknownMessageType(other.to_owned())),
        }
        // Only whitespace left: done. Anything else is read as the next message.
        if deserializer.end().is_ok() {
            return Ok(messages);
        }
    }
}

/// The usual payload, exactly one message within the event budget, read by hand or else by
/// sonic-rs; `None` for anything else, which the caller reads again with serde_json to decide
/// and explain.
fn parse_single_message_fast<'a>(
    json: &'a [u8],
    unescaped: &'a mut Vec<u8>,
    max_events: usize,
) -> Option<SubscriptionMessage<'a>> {
    #[cfg(any(test, feature = "oracle"))]
    let reference = crate::oracle::on();
    #[cfg(not(any(test, feature = "oracle")))]
    let reference = false;
    if !reference
        && super::unescape::in_blocks()
        && let Some(message) = super::usual_message::read(json, unescaped, max_events)
    {
        return Some(message);
    }
    let mut budget = EventBudget {
        left: max_events,
        exceeded: false,
    };
    let mut deserializer = sonic_rs::Deserializer::from_slice(json);
    let message = MessageSeed(&mut budget)
        .deserialize(&mut deserializer)
        .ok()?;
    deserializer.end().ok()?;
    Some(message)
}

/// How many more log events the payload may hold.
struct EventBudget {
    left: usize,
    exceeded: bool,
}

/// Reads one [`SubscriptionMessage`], spending the budget on its log events.
struct MessageSeed<'b>(&'b mut EventBudget);

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = SubscriptionMessage<'de>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    MessageType,
    Owner,
    LogGroup,
    LogStream,
    LogEvents,
    #[serde(other)]
    Other,
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = SubscriptionMessage<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CloudWatch Logs subscription message (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut message_type, mut owner, mut log_group, mut log_stream, mut log_events) =
            (None, None, None, None, None);
        while let Some(field) = map.next_key()? {
            match field {
                Field::MessageType => set_once(
                    &mut message_type,
                    map.next_value::<Text>()?.0,
                    "messageType",
                )?,
                Field::Owner => set_once(&mut owner, map.next_value::<Text>()?.0, "owner")?,
                Field::LogGroup => {
                    set_once(&mut log_group, map.next_value::<Text>()?.0, "logGroup")?
                }
                Field::LogStream => {
                    set_once(&mut log_stream, map.next_value::<Text>()?.0, "logStream")?
                }
                Field::LogEvents => set_once(
                    &mut log_events,
                    map.next_value_seed(EventsSeed(&mut *self.0))?,
                    "logEvents",
                )?,
                Field::Other => {
                    map.next_value::<Skipped>()?;
                }
            }
        }
        Ok(SubscriptionMessage {
            message_type: message_type.ok_or_else(|| de::Error::missing_field("messageType"))?,
            owner: owner.unwrap_or_default(),
            log_group: log_group.unwrap_or_default(),
            log_stream: log_stream.unwrap_or_default(),
            log_events: log_events.ok_or_else(|| de::Error::missing_field("logEvents"))?,
        })
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(E::duplicate_field(name)),
    }
}

/// A string field, borrowed from the payload unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The `logEvents` list, failing as soon as it would go over the budget.
struct EventsSeed<'b>(&'b mut EventBudget);

impl<'de> DeserializeSeed<'de> for EventsSeed<'_> {
    type Value = Vec<LogEvent<'de>>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_> {
    type Value = Vec<LogEvent<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of log events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut events = Vec::new();
        while let Some(event) = seq.next_element()? {
            if self.0.left == 0 {
                self.0.exceeded = true;
                return Err(de::Error::custom("too many log events"));
            }
            self.0.left -= 1;
            events.push(event);
        }
        Ok(events)
    }
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
        assert!(
            bomb.len() < 64 << 10,
            "10 MiB of spaces compress to a few KB"
        );
        assert_eq!(
            decompress(bomb, 1 << 20),
            Err(DecodeError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn reused_buffers_decode_each_record_alone() {
        let mut buffers = DecodeBuffers::default();
        let big = format!(
            r#"{{"messageType":"DATA_MESSAGE","pad":"{}"}}"#,
            "x".repeat(4096)
        );
        let small = br#"{"messageType":"CONTROL_MESSAGE","logEvents":[]}"#;
        let encode = |bytes: &[u8]| STANDARD.encode(bytes);
        assert_eq!(
            buffers
                .decode(&encode(&gzip(big.as_bytes())), 1 << 20)
                .unwrap(),
            big.as_bytes()
        );
        assert_eq!(
            buffers.decode(&encode(&gzip(small)), 1 << 20).unwrap(),
            small
        );
        assert_eq!(buffers.decode(&encode(small), 1 << 20).unwrap(), small);
        assert_eq!(buffers.decode("", 1 << 20), Err(DecodeError::Empty));
        assert!(matches!(
            buffers.decode("not*base64!", 1 << 20),
            Err(DecodeError::NotBase64(_))
        ));
        assert_eq!(
            buffers.decode(&encode(&gzip(big.as_bytes())), 1024),
            Err(DecodeError::TooLarge { limit: 1024 })
        );
    }

    /// The trailer's size only sizes the buffer: a member that lies about it, several members,
    /// or a record after a larger one still decode to exactly their bytes.
    #[test]
    fn the_gzip_trailer_is_a_hint_not_a_promise() {
        let json = br#"{"messageType":"CONTROL_MESSAGE","logEvents":[]}"#;
        let lying = |isize: u32| {
            let mut bytes = gzip(json);
            let trailer = bytes.len() - 4;
            bytes[trailer..].copy_from_slice(&isize.to_le_bytes());
            bytes
        };
        // flate2 checks ISIZE against what it inflated, so a lie is corruption, caught.
        for isize in [0, 1, u32::MAX] {
            assert!(
                matches!(
                    decompress(lying(isize), 1 << 20),
                    Err(DecodeError::CorruptGzip(_))
                ),
                "ISIZE {isize}"
            );
        }
        let mut two = gzip(&json[..20]);
        two.extend(gzip(&json[20..]));
        assert_eq!(decompress(two, 1 << 20).unwrap(), json);

        let mut buffers = DecodeBuffers::default();
        let encode = |bytes: &[u8]| STANDARD.encode(bytes);
        let big = vec![b'{'; 300 << 10];
        assert_eq!(
            buffers.decode(&encode(&gzip(&big)), 1 << 20).unwrap(),
            &big[..]
        );
        assert_eq!(buffers.decode(&encode(&gzip(json)), 1 << 20).unwrap(), json);
        // A right hint is the buffer's whole size: nothing grows to find where the data ends,
        // not even for a payload of exactly the limit, and one byte past it costs one byte.
        let mut exact = DecodeBuffers::default();
        let one_mib = vec![b' '; 1 << 20];
        assert_eq!(
            exact
                .decode(&encode(&gzip(&one_mib)), 1 << 20)
                .unwrap()
                .len(),
            1 << 20
        );
        assert_eq!(exact.payload.capacity(), 1 << 20);
        let mut over = DecodeBuffers::default();
        assert_eq!(
            over.decode(&encode(&gzip(&one_mib)), (1 << 20) - 1),
            Err(DecodeError::TooLarge {
                limit: (1 << 20) - 1
            })
        );
        assert_eq!(over.payload.capacity(), 1 << 20);
        // Past the 64 KiB first growth, with no trailer hint: grows until the data ends.
        let mut no_hint = gzip(&big);
        no_hint.extend(gzip(b""));
        assert_eq!(decompress(no_hint, 1 << 20).unwrap(), big);
    }

    #[test]
    fn only_padded_standard_base64_decodes() {
        for (text, bytes) in [
            ("", &b""[..]),
            ("eyJ9", b"{\"}"),
            ("eyI=", b"{\""),
            ("eyJhIjoxfQ==", b"{\"a\":1}"),
            ("+/8=", b"\xfb\xff"),
        ] {
            assert_eq!(decode_base64(text).as_deref(), Ok(bytes), "{text}");
        }
        for text in [
            "not*base64!",
            "eyJ",
            "eyJhIjoxfQ",
            "eyJhIjoxfQ=",
            "ey J9",
            "eyJ9\n",
            "-_8=",
            "ab==cd==",
        ] {
            assert!(
                matches!(decode_base64(text), Err(DecodeError::NotBase64(_))),
                "{text}"
            );
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
        assert!(matches!(
            decompress(cut, 1 << 20),
            Err(DecodeError::CorruptGzip(_))
        ));
    }

    #[test]
    fn text_that_is_neither_gzip_nor_json_is_rejected() {
        assert!(matches!(
            decompress(b"Hello World".to_vec(), 1 << 20),
            Err(DecodeError::NotGzipOrJson(_))
        ));
        assert_eq!(decompress(Vec::new(), 1 << 20), Err(DecodeError::Empty));
    }

    #[test]
    fn concatenated_messages_are_all_read() {
        let two = br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[]}
{"messageType":"CONTROL_MESSAGE","logEvents":[]}"#;
        let mut unescaped = Vec::new();
        let messages = parse_messages(two, &mut unescaped, 10).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].message_type, "CONTROL_MESSAGE");
    }

    #[test]
    fn unknown_message_type_and_missing_log_events_fail() {
        assert_eq!(
            parse_messages(
                br#"{"messageType":"SOMETHING","logEvents":[]}"#,
                &mut Vec::new(),
                10
            )
            .unwrap_err(),
            DecodeError::UnknownMessageType("SOMETHING".into())
        );
        assert!(matches!(
            parse_messages(br#"{"messageType":"DATA_MESSAGE"}"#, &mut Vec::new(), 10),
            Err(DecodeError::NotSubscriptionMessage(_))
        ));
    }

    #[test]
    fn messages_that_are_not_json_or_not_utf8_fail() {
        for bad in [
            &b"{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[]} trailing"[..],
            b"{\"messageType\":",
            b"\xff\xfe",
            b"{\"messageType\":\"DATA_\xffMESSAGE\",\"logEvents\":[]}",
            b"   ",
        ] {
            assert!(
                parse_messages(bad, &mut Vec::new(), usize::MAX).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn escaped_messages_are_unescaped() {
        let json = br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":1,"message":"{\"a\":\"caf\u00e9 \ud83d\ude80 \\u0026\"}"}]}"#;
        let mut unescaped = Vec::new();
        let messages = parse_messages(json, &mut unescaped, usize::MAX).unwrap();
        assert_eq!(
            messages[0].log_events[0].message,
            "{\"a\":\"café 🚀 \\u0026\"}"
        );
    }

    #[test]
    fn event_ids_may_be_integers() {
        let mut unescaped = Vec::new();
        let messages = parse_messages(
            br#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":42,"timestamp":1,"message":"{}"}]}"#,
            &mut unescaped,
            10,
        )
        .unwrap();
        assert_eq!(messages[0].log_events[0].id.as_str(), "42");
    }

    #[test]
    fn log_events_past_the_limit_fail_the_payload_across_messages() {
        let message = br#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"{}"},{"id":"2","timestamp":1,"message":"{}"}]}"#;
        assert_eq!(
            parse_messages(message, &mut Vec::new(), 2).unwrap()[0]
                .log_events
                .len(),
            2
        );
        assert_eq!(
            parse_messages(message, &mut Vec::new(), 1).unwrap_err(),
            DecodeError::TooManyEvents { limit: 1 }
        );
        let twice = [message.as_slice(), message.as_slice()].concat();
        assert_eq!(
            parse_messages(&twice, &mut Vec::new(), 3).unwrap_err(),
            DecodeError::TooManyEvents { limit: 3 },
            "the budget spans messages"
        );
        assert_eq!(parse_messages(&twice, &mut Vec::new(), 4).unwrap().len(), 2);
    }

    #[test]
    fn messages_are_objects_with_each_field_once() {
        assert!(matches!(
            parse_messages(br#"["DATA_MESSAGE","o","g","s",[]]"#, &mut Vec::new(), 10),
            Err(DecodeError::NotSubscriptionMessage(_))
        ));
        let twice =
            br#"{"messageType":"DATA_MESSAGE","logStream":"a","logStream":"b","logEvents":[]}"#;
        let mut unescaped = Vec::new();
        let error = parse_messages(twice, &mut unescaped, 10)
            .unwrap_err()
            .to_string();
        assert!(error.contains("duplicate field `logStream`"), "{error}");
        assert_eq!(
            parse_messages(b"  \n", &mut Vec::new(), 10).unwrap_err(),
            DecodeError::Empty
        );
        assert!(matches!(
            parse_messages(
                br#"{"messageType":"CONTROL_MESSAGE","logEvents":[]} x"#,
                &mut Vec::new(),
                10
            ),
            Err(DecodeError::NotSubscriptionMessage(_))
        ));
    }

    /// A message whose unknown field (or a log event's) nests `depth` arrays.
    fn deeply_nested(field_in_event: bool, depth: usize) -> Vec<u8> {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let (message_field, event_field) = if field_in_event {
            (String::new(), format!(r#","extra":{nested}"#))
        } else {
            (format!(r#""subscriptionFilters":{nested},"#), String::new())
        };
        format!(
            r#"{{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s",{message_field}"logEvents":[{{"id":"1","timestamp":1,"message":"{{}}"{event_field}}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn nesting_beyond_any_real_message_is_refused_without_recursing() {
        // On a quarter of a tokio worker's stack: recursing once per level would overflow it.
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(|| {
                for field_in_event in [false, true] {
                    let message = deeply_nested(field_in_event, 100_000);
                    let mut unescaped = Vec::new();
                    let error = parse_messages(&message, &mut unescaped, 10).unwrap_err();
                    assert!(
                        matches!(error, DecodeError::NotSubscriptionMessage(_)),
                        "{error}"
                    );
                    let twice = [message.as_slice(), message.as_slice()].concat();
                    assert!(parse_messages(&twice, &mut Vec::new(), 10).is_err());
                }
                // Nesting real messages never reach is read as before.
                assert_eq!(
                    parse_messages(&deeply_nested(false, 3), &mut Vec::new(), 10)
                        .unwrap()
                        .len(),
                    1
                );
                assert_eq!(
                    parse_messages(&deeply_nested(true, 3), &mut Vec::new(), 10)
                        .unwrap()
                        .len(),
                    1
                );
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
    }
}
