//! Wire types of the Lambda events and CloudWatch Logs subscription messages.
//!
//! `aws_lambda_events` has types for these, but its deserializers decode `data` (base64, and
//! gzip for `awslogs`) while parsing the event: one bad record would fail the whole batch, and
//! the original `data` could not be returned untouched. These types borrow the text as it came
//! and leave decoding to [`super::payload`], one record at a time. The tests check that
//! `aws_lambda_events` reads the sample events the same way.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::json::needs_no_escaping;

/// Any event the handler accepts, told apart by its fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingEvent<'a> {
    /// `records`: present for a Firehose data-transformation event (contract §1.1).
    #[serde(borrow, default)]
    pub records: Option<Vec<FirehoseRecord<'a>>>,
    /// `invocationId`: Firehose's id of this invocation.
    #[serde(borrow, default)]
    pub invocation_id: Option<Cow<'a, str>>,
    /// `deliveryStreamArn`: the delivery stream that invoked the function, where records are
    /// re-ingested (contract §2.3).
    #[serde(borrow, default)]
    pub delivery_stream_arn: Option<Cow<'a, str>>,
    /// `region`: the delivery stream's region, as Firehose sends it.
    #[serde(borrow, default)]
    pub region: Option<Cow<'a, str>>,
    /// `awslogs`: present for a CloudWatch Logs subscription event (direct mode).
    #[serde(borrow, default)]
    pub awslogs: Option<AwsLogs<'a>>,
}

/// A record of a Kinesis Data Firehose data-transformation invocation. Kinesis-sourced streams
/// add `kinesisRecordMetadata`, which is ignored.
///
/// <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRecord<'a> {
    /// `recordId`: Firehose's id of the record, repeated in its response entry.
    #[serde(borrow)]
    pub record_id: Cow<'a, str>,
    /// Base64, kept as received so a failed record can be returned byte for byte.
    #[serde(borrow)]
    pub data: Cow<'a, str>,
    /// `approximateArrivalTimestamp`: when Firehose received the record, epoch milliseconds; not
    /// read.
    #[serde(default)]
    pub approximate_arrival_timestamp: Option<i64>,
}

/// `{"awslogs":{"data":"<base64 gzip>"}}`, a CloudWatch Logs subscription delivered to Lambda.
///
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-cloudwatchlogs.html>
#[derive(Debug, Deserialize)]
pub struct AwsLogs<'a> {
    /// `data`: base64 of the gzip subscription message(s).
    #[serde(borrow)]
    pub data: Cow<'a, str>,
}

/// The JSON inside the gzip of every CloudWatch Logs subscription delivery: `messageType`,
/// `owner`, `logGroup`, `logStream`, `logEvents`. Read only by [`super::parse_messages`], which
/// bounds the number of log events while it reads them.
///
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/SubscriptionFilters.html>
#[derive(Debug)]
pub struct SubscriptionMessage<'a> {
    /// `messageType`: `DATA_MESSAGE`, or `CONTROL_MESSAGE` for CloudWatch's health check.
    pub message_type: Cow<'a, str>,
    /// `owner`: the AWS account id of the log group; empty when absent.
    pub owner: Cow<'a, str>,
    /// `logGroup`: the log group, `/aws/eks/<cluster>/cluster` for EKS; empty when absent.
    pub log_group: Cow<'a, str>,
    /// `logStream`: the log stream; audit events come from `kube-apiserver-audit-*`. Empty when
    /// absent.
    pub log_stream: Cow<'a, str>,
    /// `logEvents`: the log events, in order.
    pub log_events: Vec<LogEvent<'a>>,
}

/// One CloudWatch log event; `message` is the audit event's JSON text.
#[derive(Debug)]
pub struct LogEvent<'a> {
    /// `id`: CloudWatch's id of the event, unique in the log group.
    pub id: EventId<'a>,
    /// `timestamp`: the event's time as given to CloudWatch Logs, epoch milliseconds.
    pub timestamp: i64,
    /// `message`: the logged text, one audit event's JSON for an audit stream.
    pub message: Cow<'a, str>,
}

/// By hand rather than derived: a derived impl skips unknown fields with `IgnoredAny`, which
/// sonic-rs skips by recursing once per level of nesting, without a limit. [`Skipped`] goes
/// through the parsers' depth-limited path instead.
impl<'de: 'a, 'a> Deserialize<'de> for LogEvent<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Field {
            Id,
            Timestamp,
            Message,
            #[serde(other)]
            Other,
        }
        struct EventVisitor;
        impl<'de> serde::de::Visitor<'de> for EventVisitor {
            type Value = LogEvent<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a CloudWatch Logs log event")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let (mut id, mut timestamp, mut message) = (None, None, None);
                while let Some(field) = map.next_key()? {
                    match field {
                        Field::Id if id.is_some() => return Err(A::Error::duplicate_field("id")),
                        Field::Id => id = Some(map.next_value::<EventId<'de>>()?),
                        Field::Timestamp if timestamp.is_some() => {
                            return Err(A::Error::duplicate_field("timestamp"));
                        }
                        Field::Timestamp => timestamp = Some(map.next_value::<i64>()?),
                        Field::Message if message.is_some() => {
                            return Err(A::Error::duplicate_field("message"));
                        }
                        Field::Message => message = Some(map.next_value::<Cow<'de, str>>()?),
                        Field::Other => {
                            map.next_value::<Skipped>()?;
                        }
                    }
                }
                Ok(LogEvent {
                    id: id.ok_or_else(|| A::Error::missing_field("id"))?,
                    timestamp: timestamp.ok_or_else(|| A::Error::missing_field("timestamp"))?,
                    message: message.ok_or_else(|| A::Error::missing_field("message"))?,
                })
            }
        }
        deserializer.deserialize_struct("LogEvent", &["id", "timestamp", "message"], EventVisitor)
    }
}

/// CloudWatch sends event ids as strings of digits; some emulators send JSON integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for EventId<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl<'de> serde::de::Visitor<'de> for IdVisitor {
            type Value = EventId<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(EventId(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EventId(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(EventId(Cow::Owned(v.to_string())))
            }
            // Integers past u64 arrive as floats; the id stays unique enough for the emulator
            // that sends them, and AWS itself always sends strings.
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(EventId(Cow::Owned(format!("{v:.0}"))))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

impl EventId<'_> {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a transformation Lambda returns to Firehose.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct FirehoseResponse {
    /// One entry per input record, in input order (contract §2.1).
    pub records: Vec<FirehoseResponseRecord>,
}

impl FirehoseResponse {
    /// The response as `serde_json::to_writer_pretty` writes it, byte for byte, except that
    /// each record's `data`, megabytes of base64 this program produced, is copied as it is
    /// rather than checked again by serde_json on the way out (a `RawValue` is validated when
    /// made). `eks-audit invoke` prints with it; the Lambda runtime serializes the response
    /// itself.
    pub fn write_pretty(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        if self.records.is_empty() {
            return out.write_all(b"{\n  \"records\": []\n}");
        }
        out.write_all(b"{\n  \"records\": [")?;
        for (i, record) in self.records.iter().enumerate() {
            out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            out.write_all(b"    {\n      \"recordId\": ")?;
            serde_json::to_writer(&mut *out, &record.record_id)?;
            out.write_all(b",\n      \"result\": ")?;
            serde_json::to_writer(&mut *out, &record.result)?;
            out.write_all(b",\n      \"data\": ")?;
            if needs_no_escaping(&record.data) {
                out.write_all(b"\"")?;
                out.write_all(record.data.as_bytes())?;
                out.write_all(b"\"")?;
            } else {
                serde_json::to_writer(&mut *out, &record.data)?;
            }
            if let Some(metadata) = &record.metadata {
                out.write_all(b",\n      \"metadata\": {\n        \"partitionKeys\": ")?;
                let keys = &metadata.partition_keys;
                if keys.is_empty() {
                    out.write_all(b"{}")?;
                } else {
                    out.write_all(b"{")?;
                    for (j, (key, value)) in keys.iter().enumerate() {
                        out.write_all(if j == 0 { b"\n" } else { b",\n" })?;
                        out.write_all(b"          ")?;
                        serde_json::to_writer(&mut *out, key)?;
                        out.write_all(b": ")?;
                        serde_json::to_writer(&mut *out, value)?;
                    }
                    out.write_all(b"\n        }")?;
                }
                out.write_all(b"\n      }")?;
            }
            out.write_all(b"\n    }")?;
        }
        out.write_all(b"\n  ]\n}")
    }
}

/// One record's answer: its `recordId`, `result`, `data` and, for `Ok`, partition keys.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseResponseRecord {
    /// `recordId`: the input record's id.
    pub record_id: String,
    /// `result`: what became of the record.
    pub result: FirehoseResult,
    /// Base64 NDJSON for `Ok`, the original data for `ProcessingFailed`, empty for `Dropped`.
    #[serde(serialize_with = "plain_json_string")]
    pub data: String,
    /// `metadata`: partition keys for `Ok` records; `None` (not serialized) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ResponseMetadata>,
}

/// `result` of a response record (contract §2.1).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum FirehoseResult {
    /// Transformed: `data` holds the kept events.
    Ok,
    /// Nothing to deliver, on purpose (filtered, control message, re-ingested).
    Dropped,
    /// The record could not be transformed; Firehose writes its original data to the error output.
    ProcessingFailed,
}

/// Keys for Firehose dynamic partitioning, `!{partitionKeyFromLambda:cluster}` and `:account`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResponseMetadata {
    /// `partitionKeys`: `cluster` and `account`.
    pub partition_keys: BTreeMap<String, String>,
}

/// Serializes `data` (megabytes of base64 per response) without serde_json's byte-by-byte
/// escape scan, the largest single cost of answering Firehose. Text that needs no escaping is
/// quoted and written as it is ([`Verbatim`]); anything else (an original record's data may
/// hold any character) is serialized as usual. Either way the JSON value is the same string.
fn plain_json_string<S: serde::Serializer>(data: &str, serializer: S) -> Result<S::Ok, S::Error> {
    if !needs_no_escaping(data) {
        return serializer.serialize_str(data);
    }
    let mut quoted = String::with_capacity(data.len() + 2);
    quoted.push('"');
    quoted.push_str(data);
    quoted.push('"');
    Verbatim(&quoted).serialize(serializer)
}

/// JSON text that serde_json writes out as it is, as it writes a
/// [`RawValue`](serde_json::value::RawValue), without validating it again: a `RawValue` can
/// only be made by parsing its text, a pass over every byte of a response whose text this
/// program has just produced (half the time of serializing a typical response). This is how
/// `RawValue` itself serializes: a struct under serde_json's name for raw values, that text
/// its one field. The name is serde_json's, not a public API, so `data_is_written_verbatim`
/// checks that serde_json still writes the text as it is (a renamed token would make it an
/// object). Only for text known to be one valid JSON value.
struct Verbatim<'a>(&'a str);

/// serde_json's name for a raw value (`serde_json::raw::TOKEN`, which is private).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl Serialize for Verbatim<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut raw = serializer.serialize_struct(RAW_VALUE_TOKEN, 1)?;
        raw.serialize_field(RAW_VALUE_TOKEN, self.0)?;
        raw.end()
    }
}

/// A value read and thrown away, nested at most [`Skipped::MAX_DEPTH`] levels, instead of with
/// `IgnoredAny`. sonic-rs skips an ignored value by recursing once per level with no limit,
/// and its own limit for other values (255 levels) still takes megabytes of stack in a debug
/// build. No field of a real subscription message nests more than two levels.
pub(crate) struct Skipped;

impl Skipped {
    /// The deepest nesting accepted in a field the forwarder does not read.
    pub(crate) const MAX_DEPTH: usize = 16;
}

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::DeserializeSeed::deserialize(SkipSeed { depth: 0 }, deserializer)
    }
}

/// Skips one value `depth` levels below the field.
struct SkipSeed {
    depth: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for SkipSeed {
    type Value = Skipped;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Skipped, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl SkipSeed {
    fn deeper<E: serde::de::Error>(&self) -> Result<SkipSeed, E> {
        if self.depth >= Skipped::MAX_DEPTH {
            return Err(E::custom(format_args!(
                "a field the forwarder does not read nests more than {} levels",
                Skipped::MAX_DEPTH
            )));
        }
        Ok(SkipSeed {
            depth: self.depth + 1,
        })
    }
}

impl<'de> serde::de::Visitor<'de> for SkipSeed {
    type Value = Skipped;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_unit<E>(self) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skipped, A::Error> {
        let inner = self.deeper()?;
        while seq
            .next_element_seed(SkipSeed { depth: inner.depth })?
            .is_some()
        {}
        Ok(Skipped)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Skipped, A::Error> {
        let inner = self.deeper()?;
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(SkipSeed { depth: inner.depth })?;
        }
        Ok(Skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &str) -> FirehoseResponseRecord {
        FirehoseResponseRecord {
            record_id: "1".into(),
            result: FirehoseResult::ProcessingFailed,
            data: data.into(),
            metadata: None,
        }
    }

    /// `write_pretty` writes what `serde_json::to_writer_pretty` writes: no records, one, many,
    /// with and without partition keys, and strings that need escaping in every field.
    #[test]
    fn the_pretty_response_is_serde_jsons_byte_for_byte() {
        let keys = |pairs: &[(&str, &str)]| ResponseMetadata {
            partition_keys: pairs
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        let entry = |id: &str, result, data: &str, metadata| FirehoseResponseRecord {
            record_id: id.into(),
            result,
            data: data.into(),
            metadata,
        };
        let records = [
            entry(
                "49546986683135544286507457936321625675700192471156785154",
                FirehoseResult::Ok,
                "eyJhIjoxfQo=",
                Some(keys(&[
                    ("cluster", "prod-east"),
                    ("account", "123456789012"),
                ])),
            ),
            entry("2", FirehoseResult::Dropped, "", None),
            entry(
                "id \"3\"",
                FirehoseResult::ProcessingFailed,
                "not \"base64\"\n",
                None,
            ),
            entry("4", FirehoseResult::Ok, "", Some(keys(&[]))),
            entry(
                "5",
                FirehoseResult::Ok,
                "x",
                Some(keys(&[("k\\", "caf\u{e9}\u{1}")])),
            ),
        ];
        for n in [0, 1, 2, records.len()] {
            let response = FirehoseResponse {
                records: records
                    .iter()
                    .take(n)
                    .map(|r| entry(&r.record_id, r.result, &r.data, r.metadata.clone()))
                    .collect(),
            };
            let mut written = Vec::new();
            response.write_pretty(&mut written).unwrap();
            let expected = serde_json::to_vec_pretty(&response).unwrap();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(expected).unwrap(),
                "{n} records"
            );
        }
    }

    /// Plain data goes out through [`Verbatim`]: if serde_json stopped writing its raw-value
    /// token's text as it is, `data` would become an object holding the quoted text.
    #[test]
    fn data_is_written_verbatim() {
        let json = serde_json::to_string(&record("eyJhIjoxfQ==")).unwrap();
        assert_eq!(
            json,
            r#"{"recordId":"1","result":"ProcessingFailed","data":"eyJhIjoxfQ=="}"#
        );
        let value = serde_json::to_value(record("eyJhIjoxfQ==")).unwrap();
        assert_eq!(value["data"], "eyJhIjoxfQ==");
    }

    #[test]
    fn response_data_is_a_json_string_whatever_it_holds() {
        for data in [
            "",
            "eyJhIjoxfQ==",
            "not*base64!",
            "quote \" backslash \\ newline \n tab \t",
            "caf\u{e9} \u{1f680} \u{7f}",
        ] {
            let json = serde_json::to_string(&record(data)).unwrap();
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(value["data"], data, "{json}");
            let pretty = serde_json::to_string_pretty(&record(data)).unwrap();
            assert_eq!(
                serde_json::from_str::<FirehoseResponseRecord>(&pretty).unwrap(),
                record(data)
            );
        }
    }
}
