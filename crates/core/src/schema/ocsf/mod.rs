//! The OCSF schema (contract §5): one OCSF 1.1.0 API Activity (`class_uid` 6003) event per audit
//! event, with the `cloud` and `datetime` profiles, as Amazon Security Lake's own EKS source
//! emits it, with the public mapping's errors fixed.
//!
//! `docs/ocsf-mapping.md` has the table: every attribute, where it comes from, and what differs
//! from the public ocsf/examples mapping "AWS/v1.1.0/EKS Audit Logs". In short:
//!
//! - Attributes are written in a fixed order, and absent values are left out rather than
//!   written as `null`, which the OCSF JSON schema rejects for every typed attribute. Empty
//!   strings count as absent.
//! - OCSF requires an operation, an actor, a source endpoint and a time. An audit event that
//!   lacks the verb, a user name or uid, a valid IP address in `sourceIPs[0]`, or any time is
//!   not written: [`write()`] returns [`Unmappable`] naming what is missing and the pipeline
//!   quarantines the event with its original text, as it does for any message that is not a
//!   usable audit event. Nothing is invented to fill a required attribute.
//! - Request and response bodies are embedded as JSON text in `api.request.data` and
//!   `api.response.data`, never parsed. The original event is not repeated in `raw_data`.
//! - OCSF strings hold at most 65,535 characters. A longer value (a client can send a
//!   100 KB user agent) is moved to `unmapped` under its attribute's path, so the event stays
//!   valid and loses nothing.

pub mod activity;
#[cfg(feature = "security-lake")]
pub mod columns;

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::value::RawValue;
use time::OffsetDateTime;

use self::activity::{Activity, Status};
use super::EventContext;
use super::json::ObjectWriter;
use super::time::{epoch_millis, from_epoch_millis, is_beyond_utc_years, parse_utc, rfc3339_utc};
use crate::audit::{AuditEvent, Text, UserInfo};

/// The OCSF version written in `metadata.version`.
pub const OCSF_VERSION: &str = "1.1.0";
/// `metadata.profiles`: the OCSF profiles the events carry.
pub const PROFILES: [&str; 2] = ["cloud", "datetime"];
/// `metadata.product.name`.
pub const PRODUCT_NAME: &str = "Amazon EKS";
/// `metadata.product.feature.name`.
pub const PRODUCT_FEATURE: &str = "Elastic Kubernetes Service";
/// `metadata.product.vendor_name`.
pub const VENDOR_NAME: &str = "AWS";
/// `cloud.provider`.
pub const CLOUD_PROVIDER: &str = "AWS";
/// `metadata.log_provider` when the event came through a CloudWatch Logs subscription.
pub const LOG_PROVIDER: &str = "Amazon CloudWatch Logs";
/// `actor.user.type_id` 0, Unknown: audit events do not say whether a user is a person, an
/// admin or a system component (a `system:` prefix is a convention, not a guarantee).
const USER_TYPE_UNKNOWN: i64 = 0;
/// The `unmapped` key that flags an event cut by CloudWatch Logs (value `"true"`).
pub const TRUNCATED: &str = "truncated";
/// The longest text the OCSF `ip_t` type accepts.
const MAX_IP_LEN: usize = 40;
/// The longest string (in characters) any other OCSF string attribute accepts.
const MAX_STRING_CHARS: usize = 65_535;

/// Why an audit event cannot be an OCSF API Activity event: attributes OCSF requires that the
/// event has nothing to fill with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot be written as OCSF API Activity: {}", .missing.join("; "))]
pub struct Unmappable {
    /// What the event lacks, one phrase each, naming the OCSF attribute.
    pub missing: Vec<&'static str>,
}

/// What OCSF requires, taken from the event before anything is written.
struct Required<'e> {
    operation: &'e str,
    user: &'e UserInfo<'e>,
    src_ip: &'e str,
    time: OffsetDateTime,
    time_ms: i64,
}

impl<'e> Required<'e> {
    fn of(
        event: &'e AuditEvent<'e>,
        context: &EventContext<'_>,
    ) -> Result<Required<'e>, Unmappable> {
        let operation = event.verb.non_empty().filter(|v| fits(v));
        let named = |text: &Text<'_>| text.non_empty().is_some_and(fits);
        let user = event.user().filter(|u| named(&u.username) || named(&u.uid));
        let src_ip = event
            .source_ips
            .first()
            .map(|ip| &**ip)
            .filter(|ip| is_ip(ip));
        let time = ocsf_time(event, context.cloudwatch_timestamp)
            .and_then(|t| Some((t, epoch_millis(t)?)));
        // A time the event states but OCSF's datetime cannot hold is not replaced by another.
        let unwritable_time = [
            &event.stage_timestamp,
            &event.request_received_timestamp,
            &event.timestamp,
        ]
        .into_iter()
        .any(|t| is_beyond_utc_years(t.as_deref()));
        match (operation, user, src_ip, time) {
            (Some(operation), Some(user), Some(src_ip), Some((time, time_ms)))
                if !unwritable_time =>
            {
                Ok(Required {
                    operation,
                    user,
                    src_ip,
                    time,
                    time_ms,
                })
            }
            _ => {
                let mut missing = Vec::new();
                if operation.is_none() {
                    missing.push("no verb (api.operation), or one longer than OCSF allows");
                }
                if user.is_none() {
                    missing.push("no user.username or user.uid (actor.user), or only ones longer than OCSF allows");
                }
                if src_ip.is_none() {
                    missing.push("sourceIPs[0] is missing or not an IP address (src_endpoint.ip)");
                }
                if time.is_none() {
                    missing.push("no valid stageTimestamp, requestReceivedTimestamp, timestamp or CloudWatch timestamp (time)");
                }
                if unwritable_time {
                    missing.push("a timestamp whose UTC year is outside 0-9999, which RFC 3339 cannot write (time_dt)");
                }
                Err(Unmappable { missing })
            }
        }
    }
}

/// `time`: when the event was logged at its stage (`stageTimestamp`), as Security Lake's source
/// has it; else when the request was received; else the legacy `timestamp`; else the
/// CloudWatch Logs ingestion time.
pub fn ocsf_time(event: &AuditEvent<'_>, cloudwatch_ms: Option<i64>) -> Option<OffsetDateTime> {
    [
        &event.stage_timestamp,
        &event.request_received_timestamp,
        &event.timestamp,
    ]
    .into_iter()
    .find_map(|t| parse_utc(t.as_deref()))
    .or_else(|| cloudwatch_ms.and_then(from_epoch_millis))
}

/// Whether `text` is an IP address the OCSF `ip_t` type accepts.
fn is_ip(text: &str) -> bool {
    text.len() <= MAX_IP_LEN && text.parse::<IpAddr>().is_ok()
}

/// Whether an OCSF string attribute can hold `text` (characters, not bytes).
fn fits(text: &str) -> bool {
    text.len() <= MAX_STRING_CHARS || text.chars().count() <= MAX_STRING_CHARS
}

/// The request and response bodies as they leave the forwarder, read from `raw`: the event's
/// text as the flat schema's `RawEvent` carries it, after redaction when redaction is on. Never
/// from the parsed original, so a body removed from `raw` cannot reappear in OCSF. Text that
/// does not parse (it always should) gives no bodies rather than the original ones.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bodies<'r> {
    #[serde(borrow, default)]
    request_object: Option<&'r RawValue>,
    #[serde(borrow, default)]
    response_object: Option<&'r RawValue>,
}

impl<'r> Bodies<'r> {
    fn of(raw: &'r str) -> Bodies<'r> {
        serde_json::from_str(raw).unwrap_or_default()
    }
}

/// Appends `event` as one OCSF JSON object (no line break) to `out`, or, when OCSF's required
/// attributes cannot be filled, returns why and leaves `out` untouched. `raw` is the text the
/// event's bodies (`api.request.data`, `api.response.data`) are taken from: the event's text
/// after redaction, never the parsed original.
pub fn write(
    event: &AuditEvent<'_>,
    raw: &str,
    context: &EventContext<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Unmappable> {
    write_event(event, raw, false, context, out)
}

/// [`write()`] for an event cut by CloudWatch Logs: `event` holds what was read before the cut,
/// `members` is the JSON object of the members complete before it (after redaction when that
/// is on), where the bodies are found, and `unmapped.truncated` is `"true"`.
pub fn write_truncated(
    event: &AuditEvent<'_>,
    members: &str,
    context: &EventContext<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Unmappable> {
    write_event(event, members, true, context, out)
}

fn write_event(
    event: &AuditEvent<'_>,
    raw: &str,
    truncated: bool,
    context: &EventContext<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Unmappable> {
    let required = Required::of(event, context)?;
    let activity = Activity::from_verb(required.operation);
    let status_code = event.response_status.as_ref().and_then(|s| s.code.0);
    let status = Status::from_code(status_code);
    let start = parse_utc(event.request_received_timestamp.as_deref());
    let mut writer = Writer {
        event,
        context,
        bodies: Bodies::of(raw),
        spilled: Vec::new(),
        truncated,
    };

    let mut line = ObjectWriter::start(out);
    line.field("class_uid", &activity::CLASS_UID)
        .field("class_name", activity::CLASS_NAME)
        .field("category_uid", &activity::CATEGORY_UID)
        .field("category_name", activity::CATEGORY_NAME)
        .field("activity_id", &activity.id())
        .field("activity_name", activity.name())
        .field("type_uid", &activity.type_uid())
        .field("type_name", &activity.type_name())
        .field("severity_id", &activity::SEVERITY_ID)
        .field("severity", activity::SEVERITY)
        .field("status_id", &status.id())
        .field("status", status.name())
        .opt_field("status_code", status_code.map(|c| c.to_string()).as_ref())
        .field("time", &required.time_ms)
        .field("time_dt", &rfc3339_utc(required.time))
        .opt_field("start_time", start.and_then(epoch_millis).as_ref())
        .opt_field("start_time_dt", start.map(rfc3339_utc).as_ref())
        .opt_field("message", writer.fit("message", event.stage.non_empty()));
    writer.metadata(&mut line);
    writer.cloud(&mut line);
    writer.actor(&mut line, required.user);
    writer.api(&mut line, required.operation);
    writer.http_request(&mut line);
    writer.src_endpoint(&mut line, required.src_ip);
    writer.resources(&mut line);
    writer.unmapped(&mut line);
    line.end();
    Ok(())
}

/// Writes the attributes of one event, setting aside strings too long for OCSF.
struct Writer<'e> {
    event: &'e AuditEvent<'e>,
    context: &'e EventContext<'e>,
    bodies: Bodies<'e>,
    /// Values too long for their attribute, by attribute path, for `unmapped`.
    spilled: Vec<(Cow<'static, str>, Cow<'e, str>)>,
    /// Whether CloudWatch Logs cut the event: `unmapped.truncated`.
    truncated: bool,
}

impl<'e> Writer<'e> {
    /// `value` when OCSF can hold it; else `None`, and the value goes to `unmapped` under
    /// `attribute`. Empty strings count as absent.
    fn fit(&mut self, attribute: &'static str, value: Option<&'e str>) -> Option<&'e str> {
        let value = value.filter(|v| !v.is_empty())?;
        if fits(value) {
            return Some(value);
        }
        self.spilled
            .push((Cow::Borrowed(attribute), Cow::Borrowed(value)));
        None
    }

    fn metadata(&mut self, line: &mut ObjectWriter<'_>) {
        let (event, context) = (self.event, self.context);
        let logged = context.cloudwatch_timestamp.and_then(from_epoch_millis);
        let log_group = self.fit("metadata.log_name", context.log_group);
        let mut metadata = line.object("metadata");
        metadata
            .field("version", OCSF_VERSION)
            .field("profiles", &PROFILES);
        let mut product = metadata.object("product");
        product
            .field("name", PRODUCT_NAME)
            .field("vendor_name", VENDOR_NAME);
        product
            .object("feature")
            .field("name", PRODUCT_FEATURE)
            .end();
        product.opt_field(
            "version",
            self.fit("metadata.product.version", event.api_version.non_empty()),
        );
        product.end();
        metadata
            .opt_field("uid", self.fit("metadata.uid", event.audit_id.non_empty()))
            .opt_field(
                "log_level",
                self.fit("metadata.log_level", event.level.non_empty()),
            )
            .opt_field("log_name", log_group)
            .opt_field(
                "log_provider",
                context
                    .log_group
                    .filter(|g| !g.is_empty())
                    .map(|_| LOG_PROVIDER),
            )
            .opt_field("logged_time", context.cloudwatch_timestamp.as_ref())
            .opt_field("logged_time_dt", logged.map(rfc3339_utc).as_ref());
        metadata.end();
    }

    fn cloud(&mut self, line: &mut ObjectWriter<'_>) {
        let region = self.fit("cloud.region", self.context.region);
        let account = self.fit("cloud.account.uid", self.context.account);
        let mut cloud = line.object("cloud");
        cloud
            .field("provider", CLOUD_PROVIDER)
            .opt_field("region", region);
        if let Some(account) = account {
            cloud.object("account").field("uid", account).end();
        }
        cloud.end();
    }

    fn actor(&mut self, line: &mut ObjectWriter<'_>, user: &'e UserInfo<'e>) {
        let event = self.event;
        let extra = user.extra.as_ref();
        let mut actor = line.object("actor");
        {
            let mut ocsf_user = actor.object("user");
            ocsf_user
                .opt_field(
                    "name",
                    self.fit("actor.user.name", user.username.non_empty()),
                )
                .opt_field("uid", self.fit("actor.user.uid", user.uid.non_empty()))
                .opt_field(
                    "uid_alt",
                    self.fit("actor.user.uid_alt", first(extra.map(|e| &*e.principal_id))),
                )
                .field("type_id", &USER_TYPE_UNKNOWN);
            let groups: Vec<&str> = user
                .groups
                .iter()
                .filter_map(|g| self.fit("actor.user.groups[].name", Some(&**g)))
                .collect();
            if !groups.is_empty() {
                let mut list = ocsf_user.array("groups");
                for group in groups {
                    list.object().field("name", group).end();
                }
                list.end();
            }
            ocsf_user.end();
        }
        let session = [
            (
                "credential_uid",
                self.fit(
                    "actor.session.credential_uid",
                    first(extra.map(|e| &*e.access_key_id)),
                ),
            ),
            (
                "issuer",
                self.fit(
                    "actor.session.issuer",
                    first(extra.map(|e| &*e.canonical_arn)),
                ),
            ),
            (
                "uid",
                self.fit("actor.session.uid", first(extra.map(|e| &*e.session_name))),
            ),
        ];
        if session.iter().any(|(_, value)| value.is_some()) {
            let mut ocsf_session = actor.object("session");
            for (key, value) in session {
                ocsf_session.opt_field(key, value);
            }
            ocsf_session.end();
        }
        let annotations = event.annotations();
        let decision = self.fit(
            "actor.authorizations[].decision",
            annotations.and_then(|a| a.decision.non_empty()),
        );
        if let Some(decision) = decision {
            let reason = self.fit(
                "actor.authorizations[].policy.name",
                annotations.and_then(|a| a.reason.non_empty()),
            );
            let mut list = actor.array("authorizations");
            let mut authorization = list.object();
            authorization.field("decision", decision);
            if let Some(reason) = reason {
                authorization.object("policy").field("name", reason).end();
            }
            authorization.end();
            list.end();
        }
        actor.end();
    }

    fn api(&mut self, line: &mut ObjectWriter<'_>, operation: &str) {
        let event = self.event;
        let object_ref = event.object_ref();
        let status = event.response_status.as_ref();
        let version = self.fit(
            "api.version",
            object_ref.and_then(|o| o.api_version.non_empty()),
        );
        let group = self.fit(
            "api.group.name",
            object_ref.and_then(|o| o.api_group.non_empty()),
        );
        let audit_id = self.fit("api.request.uid", event.audit_id.non_empty());
        let response = [
            (
                "error",
                self.fit(
                    "api.response.error",
                    status.and_then(|s| s.reason.non_empty()),
                ),
            ),
            (
                "error_message",
                self.fit(
                    "api.response.error_message",
                    status.and_then(|s| s.status.non_empty()),
                ),
            ),
            (
                "message",
                self.fit(
                    "api.response.message",
                    status.and_then(|s| s.message.non_empty()),
                ),
            ),
            // json_t: no length limit.
            ("data", self.bodies.response_object.map(RawValue::get)),
        ];
        let code = status.and_then(|s| s.code.0);
        let mut api = line.object("api");
        api.field("operation", operation)
            .opt_field("version", version);
        if let Some(group) = group {
            api.object("group").field("name", group).end();
        }
        // `request.uid` is required when there is a request: without an audit ID the request (and
        // its body) cannot be written.
        if let Some(audit_id) = audit_id {
            let mut request = api.object("request");
            request
                .field("uid", audit_id)
                .opt_field("data", self.bodies.request_object.map(RawValue::get));
            request.end();
        }
        if code.is_some() || response.iter().any(|(_, value)| value.is_some()) {
            let mut ocsf_response = api.object("response");
            ocsf_response.opt_field("code", code.as_ref());
            for (key, value) in response {
                ocsf_response.opt_field(key, value);
            }
            ocsf_response.end();
        }
        api.end();
    }

    fn http_request(&mut self, line: &mut ObjectWriter<'_>) {
        let event = self.event;
        let (path, query) = match event.request_uri.non_empty() {
            Some(uri) => match uri.split_once('?') {
                Some((path, query)) => (Some(path), Some(query)),
                None => (Some(uri), None),
            },
            None => (None, None),
        };
        let path = self.fit("http_request.url.path", path);
        let query = self.fit("http_request.url.query_string", query);
        let user_agent = self.fit("http_request.user_agent", event.user_agent.non_empty());
        if path.is_none() && user_agent.is_none() {
            return;
        }
        let mut http_request = line.object("http_request");
        // `url` needs a path (or a full URL string, which audit events do not have).
        if let Some(path) = path {
            let mut url = http_request.object("url");
            url.field("path", path).opt_field("query_string", query);
            url.end();
        }
        http_request.opt_field("user_agent", user_agent);
        http_request.end();
    }

    fn src_endpoint(&mut self, line: &mut ObjectWriter<'_>, src_ip: &str) {
        let mut endpoint = line.object("src_endpoint");
        endpoint.field("ip", src_ip);
        let intermediate: Vec<&str> = self
            .event
            .source_ips
            .iter()
            .skip(1)
            .map(|ip| &**ip)
            .filter(|ip| is_ip(ip))
            .collect();
        if !intermediate.is_empty() {
            endpoint.field("intermediate_ips", &intermediate);
        }
        endpoint.end();
    }

    /// One resource: the object the request acted on. OCSF requires a resource to have a name
    /// or a uid; a request on a collection (`list`, `watch`, `deletecollection`, a `create`
    /// before the name is known) names none, so the collection is named by its resource, e.g.
    /// `pods`.
    fn resources(&mut self, line: &mut ObjectWriter<'_>) {
        let Some(object_ref) = self.event.object_ref() else {
            return;
        };
        let resource = object_ref.resource.non_empty();
        let name = self.fit("resources[].name", object_ref.name.non_empty().or(resource));
        let uid = self.fit("resources[].uid", object_ref.uid.non_empty());
        let kind = match (resource, object_ref.subresource.non_empty()) {
            (Some(resource), Some(sub)) => Some(format!("{resource}/{sub}")),
            (Some(resource), None) => Some(resource.to_owned()),
            (None, _) => None,
        };
        let kind = match kind {
            Some(kind) if !fits(&kind) => {
                self.spilled
                    .push((Cow::Borrowed("resources[].type"), Cow::Owned(kind)));
                None
            }
            kind => kind,
        };
        let namespace = self.fit("resources[].namespace", object_ref.namespace.non_empty());
        let version = self.fit(
            "resources[].version",
            object_ref.resource_version.non_empty(),
        );
        if name.is_none() && uid.is_none() {
            return;
        }
        let mut list = line.array("resources");
        let mut item = list.object();
        item.opt_field("name", name)
            .opt_field("uid", uid)
            .opt_field("type", kind.as_ref())
            .opt_field("namespace", namespace)
            .opt_field("version", version);
        item.end();
        list.end();
    }

    /// `unmapped`: a flat object of strings, keyed like Security Lake's source keys them
    /// (`annotations.<key>`, `sourceIPs[]`, `eks_cluster_name`), so it is also the
    /// `map<string,string>` column of the Parquet output. Left out when empty.
    fn unmapped(&mut self, line: &mut ObjectWriter<'_>) {
        let (event, context) = (self.event, self.context);
        let mut entries = std::mem::take(&mut self.spilled);
        if let Some(annotations) = event.annotations() {
            for (key, value) in &annotations.entries {
                entries.push((
                    Cow::Owned(format!("annotations.{key}")),
                    Cow::Borrowed(&**value),
                ));
            }
        }
        if let Some(impersonated) = event.impersonated_user.as_ref() {
            push_text(
                &mut entries,
                "impersonatedUser.username",
                &impersonated.username,
            );
            push_text(&mut entries, "impersonatedUser.uid", &impersonated.uid);
            push_list(
                &mut entries,
                "impersonatedUser.groups[]",
                &impersonated.groups,
            );
        }
        if let Some(extra) = event.user().and_then(|u| u.extra.as_ref()) {
            push_list(&mut entries, "user.extra.arn[]", &extra.arn);
        }
        // IPs OCSF could not take keep their place in the original list.
        if event.source_ips.iter().any(|ip| !is_ip(ip)) {
            push_list(&mut entries, "sourceIPs[]", &event.source_ips);
        }
        let envelope = [
            ("eks_cluster_name", context.cluster),
            ("cloudwatch.log_stream", context.log_stream),
            ("cloudwatch.event_id", context.event_id),
        ];
        for (key, value) in envelope {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                entries.push((Cow::Borrowed(key), Cow::Owned(value.to_owned())));
            }
        }
        // A string like every `unmapped` value, so the Parquet map<string,string> holds it.
        if self.truncated {
            entries.push((Cow::Borrowed(TRUNCATED), Cow::Borrowed("true")));
        }
        if entries.is_empty() {
            return;
        }
        let mut unmapped = line.object("unmapped");
        for (key, value) in &entries {
            unmapped.field_any_key(key, value);
        }
        unmapped.end();
    }
}

/// The first item of a `user.extra` list, when there is a non-empty one.
fn first<'l>(list: Option<&'l [Cow<'_, str>]>) -> Option<&'l str> {
    list?.first().map(|s| &**s).filter(|s| !s.is_empty())
}

type Entries<'e> = Vec<(Cow<'static, str>, Cow<'e, str>)>;

fn push_text<'e>(entries: &mut Entries<'e>, key: &'static str, value: &'e Text<'_>) {
    if let Some(value) = value.non_empty() {
        entries.push((Cow::Borrowed(key), Cow::Borrowed(value)));
    }
}

/// A list as one string, comma separated, the way Security Lake's source flattens lists.
fn push_list(entries: &mut Entries<'_>, key: &'static str, values: &[Cow<'_, str>]) {
    if !values.is_empty() {
        entries.push((Cow::Borrowed(key), Cow::Owned(values.join(","))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &str = r#"{"redacted":"eks-audit-forwarder","reason":"secrets"}"#;

    #[test]
    fn bodies_come_from_the_text_written_not_the_parsed_original() {
        let original = r#"{"verb":"get","auditID":"a","user":{"username":"u"},"sourceIPs":["10.0.0.1"],
            "stageTimestamp":"2024-05-21T10:00:00Z","requestObject":{"data":{"password":"hunter2"}},
            "responseObject":{"kind":"Secret","data":{"password":"hunter2"}}}"#;
        // What redaction hands the writers: the same text with both bodies replaced.
        let redacted = original
            .replace(r#"{"data":{"password":"hunter2"}}"#, MARKER)
            .replace(r#"{"kind":"Secret","data":{"password":"hunter2"}}"#, MARKER);
        let event = AuditEvent::parse(original).expect("an audit event");
        let mut out = Vec::new();
        write(&event, &redacted, &EventContext::default(), &mut out).expect("representable");
        let line = String::from_utf8(out).expect("UTF-8");
        assert!(!line.contains("hunter2"), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["api"]["request"]["data"], MARKER);
        assert_eq!(value["api"]["response"]["data"], MARKER);

        // Text that does not parse gives no bodies, never the original ones.
        let mut out = Vec::new();
        write(&event, "not JSON", &EventContext::default(), &mut out).expect("representable");
        let line = String::from_utf8(out).expect("UTF-8");
        assert!(
            !line.contains("hunter2") && !line.contains("\"data\""),
            "{line}"
        );
    }
}
