//! A Kubernetes `audit.k8s.io` Event (v1 or v1beta1), borrowed from the message it came in.
//!
//! Only the fields the schemas read are parsed. Request and response bodies are not: they reach
//! the output from the event's text as written (`RawEvent` in the flat schema, `api.*.data` in
//! OCSF), which is where redaction, when on, has removed them; a parsed copy here could bring
//! them back. Real events are messy (missing `apiVersion`, missing annotations, `kind` of the
//! wrong type), so every field is lenient: a value of an unexpected type reads as absent
//! instead of failing the event. What does fail is text that is not a JSON object, an object
//! that says it is another `kind`, and duplicate fields, which would let two readers of the
//! same event see different values.
//!
//! Reference: <https://kubernetes.io/docs/reference/config-api/apiserver-audit.v1/#audit-k8s-io-v1-Event>

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Visitor methods answering `$absent` for every scalar.
macro_rules! scalars_are_absent {
    ($absent:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($absent)
        }
    };
}

/// Visitor methods answering `$absent` for numbers, booleans, null, lists and objects.
macro_rules! other_types_are_absent {
    ($absent:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($absent)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($absent)
        }
    };
}

/// An `audit.k8s.io` Event, with the fields the schemas read. Strings borrow from the message text
/// unless they hold escapes; every field reads as absent (`None`, or empty for lists) when it is
/// missing, `null` or of an unexpected type.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditEvent<'a> {
    /// `kind`: `Event`, or absent in some logs; [`AuditEvent::parse`] refuses any other string.
    #[serde(borrow)]
    pub kind: Text<'a>,
    /// `audit.k8s.io/v1`, `audit.k8s.io/v1beta1`, ...
    #[serde(borrow)]
    pub api_version: Text<'a>,
    /// `level`: how much the audit policy recorded: `Metadata`, `Request` or `RequestResponse`.
    #[serde(borrow)]
    pub level: Text<'a>,
    /// `auditID`: the unique id the API server gives each request; every stage of one request
    /// shares it.
    #[serde(rename = "auditID", borrow)]
    pub audit_id: Text<'a>,
    /// `stage`: the stage of request handling the event was logged at: `RequestReceived`,
    /// `ResponseStarted`, `ResponseComplete` or `Panic`. The stage filter reads it (contract §3).
    #[serde(borrow)]
    pub stage: Text<'a>,
    /// `requestURI`: the URI as the client sent it, query string included. The URI exclusions match
    /// it (contract §3).
    #[serde(rename = "requestURI", borrow)]
    pub request_uri: Text<'a>,
    /// `verb`: the Kubernetes verb (`get`, `list`, `watch`, `create`, `patch`, ...), or the
    /// lowercase HTTP method of a non-resource request.
    #[serde(borrow)]
    pub verb: Text<'a>,
    /// `user`: the authenticated user who made the request.
    #[serde(borrow)]
    pub user: Lenient<UserInfo<'a>>,
    /// `impersonatedUser`: the user the request acts as through impersonation; `None` when it does
    /// not impersonate.
    #[serde(borrow)]
    pub impersonated_user: Lenient<UserInfo<'a>>,
    /// `sourceIPs`: where the request came from: `X-Forwarded-For`, `X-Real-Ip`, then the
    /// connection's address. All but the last can be set by the client.
    #[serde(rename = "sourceIPs", borrow)]
    pub source_ips: Texts<'a>,
    /// `userAgent`: as the client reported it, so not to be trusted.
    #[serde(borrow)]
    pub user_agent: Text<'a>,
    /// `objectRef`: the object the request is about; `None` for non-resource requests such as
    /// `/healthz`.
    #[serde(borrow)]
    pub object_ref: Lenient<ObjectReference<'a>>,
    /// `responseStatus`: the API server's answer; `None` before there is one (stage
    /// `RequestReceived`).
    #[serde(borrow)]
    pub response_status: Lenient<Status<'a>>,
    /// `requestReceivedTimestamp`: when the request reached the API server, RFC 3339 as written
    /// (microseconds in practice). The first source of the event's time (contract §4).
    #[serde(borrow)]
    pub request_received_timestamp: Text<'a>,
    /// `stageTimestamp`: when the request reached this event's stage, RFC 3339 as written. OCSF's
    /// `time` (contract §5).
    #[serde(borrow)]
    pub stage_timestamp: Text<'a>,
    /// The single time of `audit.k8s.io/v1alpha1` events, still seen in old logs.
    #[serde(borrow)]
    pub timestamp: Text<'a>,
    /// `annotations`: what the API server's plugins noted about the request, such as the
    /// authorization decision and reason.
    #[serde(borrow)]
    pub annotations: Lenient<Annotations<'a>>,
    /// `requestObject`, unread: its JSON text, for the detection rules that look into it.
    #[serde(borrow)]
    pub request_object: Option<JsonText<'a>>,
    /// `responseObject`, unread, as [`request_object`](Self::request_object).
    #[serde(borrow)]
    pub response_object: Option<JsonText<'a>>,
}

/// The text of one JSON value as the event wrote it, known to be valid JSON: a body, which the
/// forwarder does not parse unless a detection rule looks into it. Read through serde as a
/// borrowed [`RawValue`], or found and validated by the single-pass scan without a second
/// parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonText<'a>(&'a str);

impl<'a> JsonText<'a> {
    /// The value's JSON text.
    pub fn get(self) -> &'a str {
        self.0
    }

    /// `text`, which the caller has checked is exactly one valid JSON value.
    pub(crate) fn validated(text: &'a str) -> JsonText<'a> {
        JsonText(text)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(|raw| JsonText(raw.get()))
    }
}

/// `user` and `impersonatedUser`: an `authentication.k8s.io/v1` UserInfo, as the authenticator
/// reported it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct UserInfo<'a> {
    /// `username`: the user's name (`kubernetes-admin`, `system:serviceaccount:<namespace>:<name>`,
    /// `system:node:<node>`).
    #[serde(borrow)]
    pub username: Text<'a>,
    /// `uid`: a stable id of the user, when the authenticator gives one.
    #[serde(borrow)]
    pub uid: Text<'a>,
    /// `groups`: the user's groups (`system:masters`, `system:authenticated`, ...); empty when
    /// absent.
    #[serde(borrow)]
    pub groups: Texts<'a>,
    /// `extra`: what the authenticator adds; on EKS, the IAM identity ([`UserExtra`]).
    #[serde(borrow)]
    pub extra: Lenient<UserExtra<'a>>,
}

/// `user.extra`: on EKS, the IAM identity behind the Kubernetes user.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct UserExtra<'a> {
    /// `arn`: the ARN the caller authenticated as (for a role, its `sts` assumed-role session ARN).
    /// The flat schema's `UserArn` is the first item.
    #[serde(borrow)]
    pub arn: Texts<'a>,
    /// `canonicalArn`: the IAM user or role behind [`arn`](Self::arn), without the session.
    #[serde(rename = "canonicalArn", borrow)]
    pub canonical_arn: Texts<'a>,
    /// `sessionName`: the role session's name, when the caller assumed a role.
    #[serde(rename = "sessionName", borrow)]
    pub session_name: Texts<'a>,
    /// `accessKeyId`: the access key id the request was signed with.
    #[serde(rename = "accessKeyId", borrow)]
    pub access_key_id: Texts<'a>,
    /// `principalId`: IAM's unique id of the caller (`AIDA…` for a user, `AROA…:<session>` for a
    /// role session).
    #[serde(rename = "principalId", borrow)]
    pub principal_id: Texts<'a>,
}

/// `objectRef`: the object a request is about. Every part is optional: a list request has no
/// `name`, a cluster-scoped resource no `namespace`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectReference<'a> {
    /// `resource`: the resource type, plural and lowercase (`pods`, `secrets`).
    #[serde(borrow)]
    pub resource: Text<'a>,
    /// `namespace`: the object's namespace; `None` for cluster-scoped resources and requests across
    /// namespaces.
    #[serde(borrow)]
    pub namespace: Text<'a>,
    /// `name`: the object's name; `None` when the request is about a collection (`list`,
    /// `watch`) or the name is not known yet.
    #[serde(borrow)]
    pub name: Text<'a>,
    /// `uid`: the object's unique id, when the request carries it.
    #[serde(borrow)]
    pub uid: Text<'a>,
    /// `apiGroup`: the API group of the resource (`apps`, `rbac.authorization.k8s.io`); empty or
    /// absent for the core group.
    #[serde(borrow)]
    pub api_group: Text<'a>,
    /// `apiVersion`: the version of the API group (`v1`).
    #[serde(borrow)]
    pub api_version: Text<'a>,
    /// `resourceVersion`: the object's resource version, when the request names one.
    #[serde(borrow)]
    pub resource_version: Text<'a>,
    /// `subresource`: the subresource addressed (`exec`, `log`, `status`, `token`), if any.
    #[serde(borrow)]
    pub subresource: Text<'a>,
}

/// `responseStatus`, a `meta/v1` Status.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Status<'a> {
    /// `code`: the HTTP status code of the response (200, 403, ...).
    pub code: Integer,
    /// `reason`: a machine-readable cause of a failure (`Forbidden`, `NotFound`, `AlreadyExists`);
    /// usually absent on success.
    #[serde(borrow)]
    pub reason: Text<'a>,
    /// `message`: a human-readable description of a failure.
    #[serde(borrow)]
    pub message: Text<'a>,
    /// `status`: `Success` or `Failure`, when set.
    #[serde(borrow)]
    pub status: Text<'a>,
}

/// `annotations`: the authorization decision and reason by name, and every string annotation
/// in order (the OCSF schema carries them all in `unmapped`). Values that are not strings read
/// as absent; a key given twice fails the event, like any duplicate field.
#[derive(Debug, Default)]
pub struct Annotations<'a> {
    /// The `authorization.k8s.io/decision` annotation: `allow` or `forbid`.
    pub decision: Text<'a>,
    /// The `authorization.k8s.io/reason` annotation: why the authorizer decided so (the RBAC
    /// binding that allowed the request, ...).
    pub reason: Text<'a>,
    /// Every annotation whose value is a string, as (key, value), in the order of the event.
    pub entries: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

pub(crate) const DECISION: &str = "authorization.k8s.io/decision";
pub(crate) const REASON: &str = "authorization.k8s.io/reason";

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnnotationsVisitor;
        impl<'de> Visitor<'de> for AnnotationsVisitor {
            type Value = Annotations<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of annotations")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut annotations = Annotations::default();
                // A set: an event may carry any number of annotations, and a scan per key made
                // 115,000 of them cost 12 s.
                let mut keys: HashSet<Cow<'de, str>> = HashSet::new();
                // JSON keys are always strings, so `Text` never reads one as absent.
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    let key = key.unwrap_or_default();
                    if !keys.insert(key.clone()) {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    let value: Text<'de> = map.next_value()?;
                    match &*key {
                        DECISION => annotations.decision = value.clone(),
                        REASON => annotations.reason = value.clone(),
                        _ => {}
                    }
                    if let Some(value) = value.0 {
                        annotations.entries.push((key, value));
                    }
                }
                Ok(annotations)
            }
        }
        deserializer.deserialize_map(AnnotationsVisitor)
    }
}

/// Why a message is not an audit event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAnAuditEvent {
    /// Not a JSON object, or one that cannot be read (a duplicate field, invalid JSON); says why.
    #[error("not a JSON audit event: {0}")]
    Json(String),
    /// A JSON object whose `kind` is another string than `Event`, named here.
    #[error("not an audit event: kind is {0:?}, expected \"Event\"")]
    OtherKind(String),
}

impl<'a> AuditEvent<'a> {
    /// Parses one audit event from its JSON text, borrowing strings from it.
    pub fn parse(text: &'a str) -> Result<AuditEvent<'a>, NotAnAuditEvent> {
        // Derived struct deserializers also accept a JSON array of field values.
        if !text.trim_start().starts_with('{') {
            return Err(NotAnAuditEvent::Json("expected a JSON object".to_owned()));
        }
        let event: AuditEvent<'a> =
            serde_json::from_str(text).map_err(|e| NotAnAuditEvent::Json(e.to_string()))?;
        event.of_kind_event()
    }

    /// The event, unless its `kind` names another kind than `Event`.
    pub(crate) fn of_kind_event(self) -> Result<AuditEvent<'a>, NotAnAuditEvent> {
        match self.kind.as_deref() {
            None | Some("Event") => Ok(self),
            Some(other) => Err(NotAnAuditEvent::OtherKind(other.to_owned())),
        }
    }

    /// `user`, when it is an object.
    pub fn user(&self) -> Option<&UserInfo<'a>> {
        self.user.as_ref()
    }

    /// `objectRef`, when it is an object.
    pub fn object_ref(&self) -> Option<&ObjectReference<'a>> {
        self.object_ref.as_ref()
    }

    /// `annotations`, when it is an object.
    pub fn annotations(&self) -> Option<&Annotations<'a>> {
        self.annotations.as_ref()
    }
}

/// A string field: `None` when absent, null or of another type.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> std::ops::Deref for Text<'a> {
    type Target = Option<Cow<'a, str>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Text<'_> {
    /// The string, treating `""` like a missing value.
    pub fn non_empty(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            other_types_are_absent!(Text(None));
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

/// A list of strings: empty when absent or not a list; items that are not strings are skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Texts<'a>(pub Vec<Cow<'a, str>>);

impl<'a> std::ops::Deref for Texts<'a> {
    type Target = [Cow<'a, str>];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Texts<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextsVisitor;
        impl<'de> Visitor<'de> for TextsVisitor {
            type Value = Texts<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let items = Vec::<Text<'de>>::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(Texts(items.into_iter().filter_map(|t| t.0).collect()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Texts(Vec::new()))
            }
            scalars_are_absent!(Texts(Vec::new()));
        }
        deserializer.deserialize_any(TextsVisitor)
    }
}

/// An integer field: `None` when absent, null, fractional, out of range or of another type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Integer(pub Option<i64>);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntegerVisitor;
        impl<'de> Visitor<'de> for IntegerVisitor {
            type Value = Integer;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Integer(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Integer(i64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Integer(None))
            }
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(Integer(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Integer(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Integer(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Integer(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Integer(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Integer(None))
            }
        }
        deserializer.deserialize_any(IntegerVisitor)
    }
}

/// A nested object: `None` when absent, null or not an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<T> std::ops::Deref for Lenient<T> {
    type Target = Option<T>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for LenientVisitor<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Ok(Lenient(Some(T::deserialize(MapAccessDeserializer::new(
                    map,
                ))?)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            scalars_are_absent!(Lenient(None));
        }
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_the_wrong_type_read_as_absent() {
        let event = AuditEvent::parse(
            r#"{"kind":0,"stage":"ResponseComplete","sourceIPs":"10.0.0.1","user":"alice",
                "responseStatus":{"code":"403"},"objectRef":{"resource":"pods","name":7}}"#,
        )
        .expect("lenient parse");
        assert_eq!(event.kind.0, None);
        assert_eq!(event.stage.as_deref(), Some("ResponseComplete"));
        assert!(event.source_ips.is_empty());
        assert!(event.user.is_none());
        assert_eq!(event.response_status.as_ref().map(|s| s.code.0), Some(None));
        let object_ref = event.object_ref().expect("objectRef is an object");
        assert_eq!(object_ref.resource.as_deref(), Some("pods"));
        assert_eq!(object_ref.name.0, None);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let event =
            AuditEvent::parse(r#"{"requestURI":"/api/v1/namespaces/caf\u00e9\/pods"}"#).unwrap();
        assert_eq!(
            event.request_uri.as_deref(),
            Some("/api/v1/namespaces/café/pods")
        );
    }

    #[test]
    fn not_an_object_is_not_an_audit_event() {
        assert!(matches!(
            AuditEvent::parse("[1,2]"),
            Err(NotAnAuditEvent::Json(_))
        ));
        assert!(matches!(
            AuditEvent::parse("plain text"),
            Err(NotAnAuditEvent::Json(_))
        ));
        assert!(matches!(
            AuditEvent::parse(r#"{"verb":"get"} trailing"#),
            Err(NotAnAuditEvent::Json(_))
        ));
    }

    #[test]
    fn another_kind_is_not_an_audit_event() {
        assert_eq!(
            AuditEvent::parse(r#"{"kind":"Pod","apiVersion":"v1"}"#).unwrap_err(),
            NotAnAuditEvent::OtherKind("Pod".into())
        );
    }

    #[test]
    fn annotations_keep_every_string_entry_and_name_the_authorization_ones() {
        let event = AuditEvent::parse(
            r#"{"annotations":{"k8s.io/deprecated":"true","authorization.k8s.io/decision":"forbid",
                "n":1,"authorization.k8s.io/reason":""}}"#,
        )
        .unwrap();
        let annotations = event.annotations().expect("an object");
        assert_eq!(annotations.decision.as_deref(), Some("forbid"));
        assert_eq!(annotations.reason.as_deref(), Some(""));
        let keys: Vec<&str> = annotations.entries.iter().map(|(k, _)| &**k).collect();
        assert_eq!(
            keys,
            [
                "k8s.io/deprecated",
                "authorization.k8s.io/decision",
                "authorization.k8s.io/reason"
            ]
        );
        let twice = AuditEvent::parse(r#"{"annotations":{"a":"1","a":"2"}}"#).unwrap_err();
        assert!(twice.to_string().contains("duplicate field `a`"), "{twice}");
    }

    #[test]
    fn duplicate_fields_are_rejected() {
        let err = AuditEvent::parse(r#"{"verb":"get","verb":"delete"}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field `verb`"), "{err}");
    }
}
