//! S3 event notifications as SQS delivers them: the wire types, and keys URL-decoded.
//!
//! Every way a bucket's events reach a queue is accepted:
//!
//! | route | message body |
//! |---|---|
//! | S3 → SQS | the S3 notification: `Records`, or `s3:TestEvent` once when the configuration is saved |
//! | S3 → SNS → SQS, raw message delivery off | an SNS envelope (`"Type":"Notification"`) whose `Message` string is the S3 notification |
//! | S3 → SNS → SQS, raw message delivery on | the S3 notification itself, as S3 → SQS |
//! | S3 → EventBridge → SQS | an EventBridge event, `"source":"aws.s3"`, `detail-type` `Object Created`, `Object Deleted`, ...; one object per event, its key **not** URL-encoded |
//!
//! Each event carries the object's ETag and, in a versioned bucket, its version id.
//!
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>

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

/// One record of an S3 event notification (or one EventBridge S3 event), key decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// `ObjectCreated:Put`, `ObjectRemoved:Delete`, ... for S3 notifications; the
    /// `detail-type` (`Object Created`, `Object Deleted`, ...) for EventBridge events.
    pub event_name: String,
    /// The bucket holding the object.
    pub bucket: String,
    /// The object key, URL-decoded (EventBridge keys are not encoded: taken as they are).
    pub key: String,
    /// The object's ETag, without quotes, when the event carries one (S3 notifications:
    /// `s3.object.eTag`; EventBridge: `detail.object.etag`).
    pub etag: Option<String>,
    /// The object's version id, in a versioned bucket.
    pub version_id: Option<String>,
}

/// EventBridge's `detail-type` for a new object.
pub const EVENTBRIDGE_OBJECT_CREATED: &str = "Object Created";

impl ObjectEvent {
    /// Whether the event announces a new object (`ObjectCreated:*`, or EventBridge's
    /// `Object Created`), the only kind collected.
    pub fn is_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
            || self.event_name == EVENTBRIDGE_OBJECT_CREATED
    }
}

/// An ETag as S3 writes it in notifications: without the quotes `GetObject` puts around it.
pub fn normalize_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// Why an SQS message body is not an S3 event notification; the message is left for the queue's
/// redrive policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// The body is not JSON, or not of the notification's shape; says why.
    #[error("message body is not JSON of an S3 event notification: {0}")]
    NotJson(String),
    /// JSON, but neither `Records`, `s3:TestEvent`, an S3 event from EventBridge, nor an SNS
    /// envelope holding one of them.
    #[error(
        "message is neither an S3 event notification (Records), s3:TestEvent, nor an S3 event from EventBridge (source aws.s3)"
    )]
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
    /// EventBridge: `source` is `aws.s3`, `detail-type` what happened, `detail` the object.
    source: Option<String>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    detail: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireDetail {
    bucket: WireBucket,
    object: WireDetailObject,
}

#[derive(Deserialize)]
struct WireDetailObject {
    key: String,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
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
#[serde(rename_all = "camelCase")]
struct WireObject {
    key: String,
    e_tag: Option<String>,
    version_id: Option<String>,
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
                    etag: r.s3.object.e_tag.map(|e| normalize_etag(&e).to_owned()),
                    version_id: r.s3.object.version_id,
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
        Body {
            source: Some(source),
            detail_type: Some(detail_type),
            detail: Some(detail),
            ..
        } if source == "aws.s3" => {
            let detail: WireDetail = serde_json::from_value(detail)
                .map_err(|e| NotificationError::NotJson(format!("EventBridge detail: {e}")))?;
            Ok(Notification::Records(vec![ObjectEvent {
                event_name: detail_type,
                bucket: detail.bucket.name,
                key: detail.object.key,
                etag: detail.object.etag.map(|e| normalize_etag(&e).to_owned()),
                version_id: detail.object.version_id,
            }]))
        }
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
        assert_eq!(records[0].etag.as_deref(), Some("e"));
        assert_eq!(records[0].version_id, None);
    }

    /// The example of the S3 documentation's "Event message structure", versioned bucket.
    const DOCUMENTED_RECORD: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3",
        "awsRegion":"us-west-2","eventTime":"1970-01-01T00:00:00.000Z","eventName":"ObjectCreated:Put",
        "userIdentity":{"principalId":"AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters":{"sourceIPAddress":"127.0.0.1"},
        "responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3":{"s3SchemaVersion":"1.0","configurationId":"testConfigRule",
          "bucket":{"name":"amzn-s3-demo-bucket","ownerIdentity":{"principalId":"A3NL1KOZZKExample"},"arn":"arn:aws:s3:::amzn-s3-demo-bucket"},
          "object":{"key":"eks-audit/cluster%3Dprod/HappyFace+1.json.gz","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e",
            "versionId":"096fKKXTRTtl3on89fVO.nfljtsv6qko","sequencer":"0055AED6DCD90281E5"}}}]}"#;

    #[test]
    fn etag_and_version_id_are_read() {
        let Notification::Records(records) = parse(DOCUMENTED_RECORD).unwrap() else {
            panic!("records")
        };
        assert_eq!(
            records,
            [ObjectEvent {
                event_name: "ObjectCreated:Put".into(),
                bucket: "amzn-s3-demo-bucket".into(),
                key: "eks-audit/cluster=prod/HappyFace 1.json.gz".into(),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                version_id: Some("096fKKXTRTtl3on89fVO.nfljtsv6qko".into()),
            }]
        );
    }

    #[test]
    fn sns_raw_message_delivery_is_the_notification_itself() {
        // With raw message delivery on, SNS passes S3's JSON through unchanged: the body is
        // the S3 notification, test event included.
        assert_eq!(
            parse(DOCUMENTED_RECORD).unwrap(),
            parse(
                &serde_json::json!({"Type": "Notification", "Message": DOCUMENTED_RECORD})
                    .to_string()
            )
            .unwrap()
        );
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-21T13:00:00.000Z","Bucket":"audit","RequestId":"r","HostId":"h"}"#;
        let wrapped = serde_json::json!({"Type": "Notification", "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:audit", "Subject": "Amazon S3 Notification",
            "Message": test_event, "Timestamp": "2024-05-21T13:00:00.000Z", "SignatureVersion": "1"});
        assert_eq!(
            parse(test_event).unwrap(),
            parse(&wrapped.to_string()).unwrap()
        );
    }

    /// The example of the S3 documentation's "EventBridge message structure" (Object Created).
    fn eventbridge(detail_type: &str, key: &str) -> String {
        serde_json::json!({
            "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": detail_type, "source": "aws.s3", "account": "111122223333",
            "time": "2021-11-12T00:00:00Z", "region": "ca-central-1",
            "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
            "detail": {
                "version": "0", "bucket": {"name": "amzn-s3-demo-bucket1"},
                "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                    "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": "00617F08299329D189"},
                "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
                "source-ip-address": "1.2.3.4", "reason": "PutObject"
            }
        })
        .to_string()
    }

    #[test]
    fn eventbridge_object_created_is_read_with_its_key_as_is() {
        // EventBridge keys are not URL-encoded: `%3D` and `+` are the key's own characters.
        let Notification::Records(records) = parse(&eventbridge(
            "Object Created",
            "eks-audit/cluster=prod/a+b%3D.json.gz",
        ))
        .unwrap() else {
            panic!("records")
        };
        assert_eq!(
            records,
            [ObjectEvent {
                event_name: "Object Created".into(),
                bucket: "amzn-s3-demo-bucket1".into(),
                key: "eks-audit/cluster=prod/a+b%3D.json.gz".into(),
                etag: Some("b1946ac92492d2347c6235b4d2611184".into()),
                version_id: Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e".into()),
            }]
        );
        assert!(records[0].is_created());
    }

    #[test]
    fn other_eventbridge_s3_events_are_records_not_created() {
        let Notification::Records(records) = parse(&eventbridge("Object Deleted", "k")).unwrap()
        else {
            panic!("records")
        };
        assert!(!records[0].is_created());
        // Another source's event is not an S3 notification.
        let ec2 = serde_json::json!({"version": "0", "source": "aws.ec2",
            "detail-type": "EC2 Instance State-change Notification", "detail": {"state": "running"}});
        assert_eq!(
            parse(&ec2.to_string()),
            Err(NotificationError::UnknownShape)
        );
        // An S3 event without an object (a bucket-level event) is not collectable.
        let bucketless = serde_json::json!({"version": "0", "source": "aws.s3",
            "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}}});
        assert!(matches!(
            parse(&bucketless.to_string()),
            Err(NotificationError::NotJson(_))
        ));
    }

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
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
