//! S3 event notifications as SQS delivers them: the wire types, and keys URL-decoded.
//!
//! A bucket sends `s3:TestEvent` once when its notification configuration is set, then one
//! message per event with a `Records` list. Behind an SNS topic (fan-out to several queues)
//! the same JSON arrives as the `Message` string of an SNS envelope; both are accepted.
//!
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>

use serde::Deserialize;

/// What one SQS message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Sent once when the bucket's notification configuration is saved; carries nothing.
    TestEvent {
        /// The bucket, when the message names it; empty otherwise.
        bucket: String,
    },
    /// One or more events on objects.
    Records(Vec<ObjectEvent>),
}

/// One record of an S3 event notification, key decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// `ObjectCreated:Put`, `ObjectRemoved:Delete`, ...
    pub event_name: String,
    /// The bucket holding the object.
    pub bucket: String,
    /// The object key, URL-decoded.
    pub key: String,
}

impl ObjectEvent {
    /// Whether the event announces a new object (`ObjectCreated:*`), the only kind collected.
    pub fn is_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
    }
}

/// Why an SQS message body is not an S3 event notification; the message is left for the queue's
/// redrive policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// The body is not JSON, or not of the notification's shape; says why.
    #[error("message body is not JSON of an S3 event notification: {0}")]
    NotJson(String),
    /// JSON, but neither `Records`, `s3:TestEvent`, nor an SNS envelope holding one of them.
    #[error("message is neither an S3 event notification (Records) nor s3:TestEvent")]
    UnknownShape,
    /// A key that is not valid URL encoding (a bad `%` escape, or bytes that are not UTF-8).
    #[error("object key {key:?} is not valid URL encoding: {reason}")]
    BadKey {
        /// The key as the notification wrote it.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Records")]
    records: Option<Vec<WireRecord>>,
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "Bucket")]
    bucket: Option<String>,
    /// SNS envelope: `Type` is `Notification` and `Message` the S3 notification as text.
    #[serde(rename = "Type")]
    sns_type: Option<String>,
    #[serde(rename = "Message")]
    sns_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord {
    event_name: String,
    s3: WireEntity,
}

#[derive(Deserialize)]
struct WireEntity {
    bucket: WireBucket,
    object: WireObject,
}

#[derive(Deserialize)]
struct WireBucket {
    name: String,
}

#[derive(Deserialize)]
struct WireObject {
    key: String,
}

/// Reads an SQS message body.
pub fn parse(body: &str) -> Result<Notification, NotificationError> {
    let parsed: Body =
        serde_json::from_str(body).map_err(|e| NotificationError::NotJson(e.to_string()))?;
    match parsed {
        Body {
            records: Some(records),
            ..
        } => records
            .into_iter()
            .map(|r| {
                Ok(ObjectEvent {
                    event_name: r.event_name,
                    bucket: r.s3.bucket.name,
                    key: decode_key(&r.s3.object.key)?,
                })
            })
            .collect::<Result<_, _>>()
            .map(Notification::Records),
        Body {
            event: Some(event),
            bucket,
            ..
        } if event == "s3:TestEvent" => Ok(Notification::TestEvent {
            bucket: bucket.unwrap_or_default(),
        }),
        Body {
            sns_type: Some(kind),
            sns_message: Some(message),
            ..
        } if kind == "Notification" => parse(&message),
        _ => Err(NotificationError::UnknownShape),
    }
}

/// Decodes a key as S3 writes it in notifications: URL (form) encoding, `+` for a space.
pub fn decode_key(key: &str) -> Result<String, NotificationError> {
    let bad = |reason: &str| NotificationError::BadKey {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let mut bytes = Vec::with_capacity(key.len());
    let mut input = key.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next(), input.next()];
                let digit = |d: Option<u8>| d.and_then(|d| char::from(d).to_digit(16));
                match hex.map(digit) {
                    [Some(high), Some(low)] => bytes.push((high * 16 + low) as u8),
                    _ => return Err(bad("% is not followed by two hex digits")),
                }
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| bad("decodes to bytes that are not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(
            decode_key("eks-audit/cluster%3Dprod-east/dt%3D2024-05-21/hour%3D13/a.json.gz")
                .unwrap(),
            "eks-audit/cluster=prod-east/dt=2024-05-21/hour=13/a.json.gz"
        );
        assert_eq!(decode_key("a+b%2Bc%C3%A9").unwrap(), "a b+cé");
        assert!(matches!(
            decode_key("a%2"),
            Err(NotificationError::BadKey { .. })
        ));
        assert!(matches!(
            decode_key("a%zz"),
            Err(NotificationError::BadKey { .. })
        ));
        assert!(matches!(
            decode_key("%ff"),
            Err(NotificationError::BadKey { .. })
        ));
    }

    #[test]
    fn object_created_records_are_read() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
            "eventTime":"2024-05-21T13:00:00.000Z","eventName":"ObjectCreated:Put",
            "s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"audit","arn":"arn:aws:s3:::audit"},
            "object":{"key":"eks-audit/cluster%3Dprod-east/x.json.gz","size":123,"eTag":"e"}}}]}"#;
        let Notification::Records(records) = parse(body).unwrap() else {
            panic!("records")
        };
        assert_eq!(records.len(), 1);
        assert!(records[0].is_created());
        assert_eq!(records[0].bucket, "audit");
        assert_eq!(records[0].key, "eks-audit/cluster=prod-east/x.json.gz");
    }

    #[test]
    fn test_event_is_recognized() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-21T13:00:00.000Z","Bucket":"audit","RequestId":"r","HostId":"h"}"#;
        assert_eq!(
            parse(body).unwrap(),
            Notification::TestEvent {
                bucket: "audit".into()
            }
        );
    }

    #[test]
    fn sns_envelopes_are_unwrapped() {
        let inner = r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        let body = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": inner})
            .to_string();
        let Notification::Records(records) = parse(&body).unwrap() else {
            panic!("records")
        };
        assert!(!records[0].is_created());
    }

    #[test]
    fn other_messages_are_not_notifications() {
        assert!(matches!(parse("hello"), Err(NotificationError::NotJson(_))));
        assert_eq!(parse(r#"{"foo":1}"#), Err(NotificationError::UnknownShape));
    }
}
