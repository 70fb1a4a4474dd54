//! The flat schema (contract §4): Microsoft Sentinel's `AWSEKSLogs_CL` columns, filled, then
//! extended columns. A field missing from the event is `null` (an empty list for lists).

use time::OffsetDateTime;

use super::json::ObjectWriter;
use super::time::rfc3339_utc;
use super::{EventContext, Raw};
use crate::audit::{AuditEvent, ObjectReference};

/// Appends `event` as one flat-schema object (no line break) to `out`; `time` fills
/// `TimeGenerated`. A whole event's `RawEvent` is its JSON text; a cut one's is the text
/// received as a JSON string, and a last column, `Truncated: true`, says so.
pub(crate) fn write(
    event: &AuditEvent<'_>,
    raw: Raw<'_>,
    time: Option<OffsetDateTime>,
    context: &EventContext<'_>,
    out: &mut Vec<u8>,
) {
    let user = event.user();
    let object_ref = event.object_ref();
    let annotations = event.annotations();
    let status = event.response_status.as_ref();

    let mut line = ObjectWriter::start(out);
    // The 13 columns of Sentinel's AWSEKSLogs_CL table, in its order.
    line.str_field("TimeGenerated", time.map(rfc3339_utc).as_deref())
        .str_field("AwsAccountId", context.account)
        .str_field("Region", context.region)
        .str_field("ClusterName", context.cluster)
        .str_field("Verb", event.verb.as_deref())
        .str_field("User", user.and_then(|u| u.username.as_deref()))
        .str_list_field("SourceIPs", &event.source_ips)
        .str_field("UserAgent", event.user_agent.as_deref())
        .path_field(
            "ObjectRef",
            object_ref.and_then(ObjectPath::of).map(ObjectPath::parts),
        )
        .int_field("ResponseCode", status.and_then(|s| s.code.0))
        .str_field("Stage", event.stage.as_deref())
        .str_field(
            "AuthDecision",
            annotations.and_then(|a| a.decision.as_deref()),
        );
    match raw {
        Raw::Whole(raw) => line.raw_field("RawEvent", raw),
        Raw::Cut { received, .. } => line.field("RawEvent", received),
    };
    // Extended columns.
    line.str_field("AuditId", event.audit_id.as_deref())
        .str_field("Level", event.level.as_deref())
        .str_field("RequestURI", event.request_uri.as_deref())
        .str_field("ApiGroup", object_ref.and_then(|o| o.api_group.as_deref()))
        .str_field(
            "ApiVersion",
            object_ref.and_then(|o| o.api_version.as_deref()),
        )
        .str_field("Namespace", object_ref.and_then(|o| o.namespace.as_deref()))
        .str_field("Resource", object_ref.and_then(|o| o.resource.as_deref()))
        .str_field(
            "Subresource",
            object_ref.and_then(|o| o.subresource.as_deref()),
        )
        .str_field("Name", object_ref.and_then(|o| o.name.as_deref()))
        .str_list_field("UserGroups", user.map(|u| &*u.groups).unwrap_or_default())
        .str_field("UserArn", user_arn(event))
        .str_field(
            "ImpersonatedUser",
            event
                .impersonated_user
                .as_ref()
                .and_then(|u| u.username.as_deref()),
        )
        .str_field("AuthReason", annotations.and_then(|a| a.reason.as_deref()))
        .str_field("ResponseReason", status.and_then(|s| s.reason.as_deref()))
        .str_field(
            "RequestReceivedTimestamp",
            event.request_received_timestamp.as_deref(),
        )
        .str_field("StageTimestamp", event.stage_timestamp.as_deref())
        .str_field("LogGroup", context.log_group)
        .str_field("LogStream", context.log_stream)
        .str_field("EventId", context.event_id);
    if let Raw::Cut { .. } = raw {
        line.field("Truncated", &true);
    }
    line.end();
}

/// Non-empty parts of namespace/resource/name/subresource joined by `/`, e.g.
/// `default/pods/nginx/exec`; `None` when all are empty.
pub fn object_path(object_ref: &ObjectReference<'_>) -> Option<String> {
    let parts = [
        &object_ref.namespace,
        &object_ref.resource,
        &object_ref.name,
        &object_ref.subresource,
    ];
    let path = parts
        .iter()
        .filter_map(|p| p.non_empty())
        .collect::<Vec<_>>()
        .join("/");
    (!path.is_empty()).then_some(path)
}

/// [`object_path`] written straight into the output line, without building a `String`.
struct ObjectPath<'e>([Option<&'e str>; 4]);

impl<'e> ObjectPath<'e> {
    fn of(object_ref: &'e ObjectReference<'_>) -> Option<ObjectPath<'e>> {
        let parts = [
            &object_ref.namespace,
            &object_ref.resource,
            &object_ref.name,
            &object_ref.subresource,
        ];
        let parts = parts.map(|p| p.non_empty());
        parts
            .iter()
            .any(Option::is_some)
            .then_some(ObjectPath(parts))
    }

    fn parts(self) -> impl Iterator<Item = &'e str> + Clone {
        self.0.into_iter().flatten()
    }
}

/// `user.extra.arn[0]`: on EKS, the IAM principal the Kubernetes user was mapped from.
pub fn user_arn<'e>(event: &'e AuditEvent<'_>) -> Option<&'e str> {
    event.user()?.extra.as_ref()?.arn.first().map(|arn| &**arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ref_column_joins_the_non_empty_parts() {
        for (json, expected) in [
            (
                r#"{"objectRef":{"namespace":"default","resource":"pods","name":"nginx","subresource":"exec"}}"#,
                Some(r#""default/pods/nginx/exec""#),
            ),
            (
                r#"{"objectRef":{"resource":"namespaces","name":"foo","namespace":""}}"#,
                Some(r#""namespaces/foo""#),
            ),
            (
                r#"{"objectRef":{"namespace":"caf\u00e9","resource":"pods"}}"#,
                Some("\"caf\u{e9}/pods\""),
            ),
            (r#"{"objectRef":{"apiGroup":"apps"}}"#, None),
        ] {
            let event = AuditEvent::parse(json).unwrap();
            let object_ref = event.object_ref().unwrap();
            let mut written = Vec::new();
            ObjectWriter::start(&mut written)
                .path_field("P", ObjectPath::of(object_ref).map(ObjectPath::parts))
                .end();
            let written = String::from_utf8(written).unwrap();
            let written = written.strip_prefix(r#"{"P":"#).unwrap().strip_suffix('}');
            assert_eq!(written, Some(expected.unwrap_or("null")), "{json}");
            let joined = object_path(object_ref).map(|p| serde_json::to_string(&p).unwrap());
            assert_eq!(joined.as_deref(), expected, "{json}");
        }
    }
}
