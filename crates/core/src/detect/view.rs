//! The audit event as Sigma rules see it: the fields the engine asks for most are answered from
//! the parsed [`AuditEvent`], which borrows from the message. A path into `requestObject` or
//! `responseObject` is read in place from the body's text, which the event kept unread; only a
//! path that crosses an array parses that body into a JSON tree, once. Anything else
//! (`user.extra`, annotations by key, a body as a whole) parses the whole event, once. On the
//! typical workload no event builds a tree.

use std::borrow::Cow;
use std::cell::OnceCell;

use rsigma_eval::event::{Event, EventValue, JsonEvent};
use serde_json::Value;

use crate::audit::{AuditEvent, JsonText, Text, Texts};

/// One audit event for the Sigma engine. Field paths are the event's own JSON paths, dotted
/// (`objectRef.resource`); a path through an array matches any of its items.
pub struct AuditView<'e, 'a> {
    event: &'e AuditEvent<'a>,
    /// The event's JSON text (for a salvaged event, the members before the cut).
    text: &'e str,
    tree: OnceCell<JsonEvent<'static>>,
    request: BodyCells,
    response: BodyCells,
}

/// What the view has learnt of one body: its tree, once a path needed one, and whether its text
/// holds a `\u` escape, searched for once (rules read a body several times, most often for keys
/// it does not have).
#[derive(Default)]
struct BodyCells {
    tree: OnceCell<JsonEvent<'static>>,
    escapes: OnceCell<bool>,
}

impl<'e, 'a> AuditView<'e, 'a> {
    /// A view of `event`, whose JSON text is `text`.
    pub fn new(event: &'e AuditEvent<'a>, text: &'e str) -> Self {
        AuditView {
            event,
            text,
            tree: OnceCell::new(),
            request: BodyCells::default(),
            response: BodyCells::default(),
        }
    }

    /// Whether a JSON tree was built, of the event or of a body (for the profile: it should be
    /// rare).
    pub fn parsed_tree(&self) -> bool {
        self.tree.get().is_some()
            || self.request.tree.get().is_some()
            || self.response.tree.get().is_some()
    }

    fn tree(&self) -> &JsonEvent<'static> {
        self.tree.get_or_init(|| parse(self.text))
    }

    /// `rest` of a path into a body: `None` when the event has no such body. A path through
    /// objects to a scalar is read in place, skipping what is not on the path; one that crosses
    /// an array (which matches any item) or ends on an object or array parses the body into a
    /// tree, once.
    fn body_field<'s>(
        &'s self,
        cells: &'s BodyCells,
        body: Option<JsonText<'s>>,
        rest: &str,
    ) -> Option<EventValue<'s>> {
        let body = body?;
        if let Some(tree) = cells.tree.get() {
            return tree.get_field(rest);
        }
        let escapes = *cells
            .escapes
            .get_or_init(|| memchr::memmem::find(body.get().as_bytes(), b"\\u").is_some());
        match scalar_in_place(body.get(), rest, escapes) {
            Ok(value) => value,
            Err(NeedsTree) => cells.tree.get_or_init(|| parse(body.get())).get_field(rest),
        }
    }

    /// The fields the parsed event answers; `Err(())` for any other path. One flat match on
    /// the whole path: the engine asks a few dozen times per event.
    fn fast_field(&self, path: &str) -> Result<Option<EventValue<'_>>, ()> {
        let event = self.event;
        let object = || event.object_ref();
        let status = || event.response_status.as_ref();
        let value = match path {
            "verb" => text(&event.verb),
            "objectRef.resource" => object().and_then(|o| text(&o.resource)),
            "objectRef.subresource" => object().and_then(|o| text(&o.subresource)),
            "objectRef.namespace" => object().and_then(|o| text(&o.namespace)),
            "objectRef.name" => object().and_then(|o| text(&o.name)),
            "objectRef.apiGroup" => object().and_then(|o| text(&o.api_group)),
            "objectRef.apiVersion" => object().and_then(|o| text(&o.api_version)),
            "objectRef.uid" => object().and_then(|o| text(&o.uid)),
            "responseStatus.code" => status().and_then(|s| s.code.0.map(EventValue::Int)),
            "responseStatus.reason" => status().and_then(|s| text(&s.reason)),
            "responseStatus.status" => status().and_then(|s| text(&s.status)),
            "user.username" => event.user().and_then(|u| text(&u.username)),
            "user.uid" => event.user().and_then(|u| text(&u.uid)),
            "user.groups" => event.user().and_then(|u| texts(&u.groups)),
            "impersonatedUser.username" => event
                .impersonated_user
                .as_ref()
                .and_then(|u| text(&u.username)),
            "impersonatedUser.uid" => event.impersonated_user.as_ref().and_then(|u| text(&u.uid)),
            "impersonatedUser.groups" => event
                .impersonated_user
                .as_ref()
                .and_then(|u| texts(&u.groups)),
            "stage" => text(&event.stage),
            "requestURI" => text(&event.request_uri),
            "auditID" => text(&event.audit_id),
            "level" => text(&event.level),
            "userAgent" => text(&event.user_agent),
            "sourceIPs" => texts(&event.source_ips),
            "requestReceivedTimestamp" => text(&event.request_received_timestamp),
            "stageTimestamp" => text(&event.stage_timestamp),
            "timestamp" => text(&event.timestamp),
            _ => {
                if let Some(rest) = path.strip_prefix("requestObject.") {
                    self.body_field(&self.request, event.request_object, rest)
                } else if let Some(rest) = path.strip_prefix("responseObject.") {
                    self.body_field(&self.response, event.response_object, rest)
                } else {
                    return Err(());
                }
            }
        };
        Ok(value)
    }
}

/// Whether [`AuditView`] answers `path` from the parsed event, without reading the JSON text:
/// the paths of its flat match, but not those into a body.
pub(super) fn is_parsed_field(path: &str) -> bool {
    matches!(
        path,
        "verb"
            | "objectRef.resource"
            | "objectRef.subresource"
            | "objectRef.namespace"
            | "objectRef.name"
            | "objectRef.apiGroup"
            | "objectRef.apiVersion"
            | "objectRef.uid"
            | "responseStatus.code"
            | "responseStatus.reason"
            | "responseStatus.status"
            | "user.username"
            | "user.uid"
            | "user.groups"
            | "impersonatedUser.username"
            | "impersonatedUser.uid"
            | "impersonatedUser.groups"
            | "stage"
            | "requestURI"
            | "auditID"
            | "level"
            | "userAgent"
            | "sourceIPs"
            | "requestReceivedTimestamp"
            | "stageTimestamp"
            | "timestamp"
    )
}

/// A path [`scalar_in_place`] cannot follow without a tree.
struct NeedsTree;

/// The scalar at dotted `path` in the JSON object `json`, read in place with sonic-rs's lazy
/// object iterator: the members off the path are skipped, not parsed. Answers as [`JsonEvent`]
/// would: `None` when a key is missing or a scalar stands where the path goes on; of duplicate
/// keys, the last (serde_json's map keeps the last). `escapes`: whether `json` holds a `\u`
/// escape.
///
/// Only iteration is used, never sonic-rs's `get`: a `get` that misses builds an error that
/// counts lines up to the miss, tens of microseconds on a large body.
fn scalar_in_place<'j>(
    json: &'j str,
    path: &str,
    escapes: bool,
) -> Result<Option<EventValue<'j>>, NeedsTree> {
    if path.contains(['[', '\\']) {
        return Err(NeedsTree);
    }
    // Most probes ask for keys the body does not have (the index probes every rule's fields on
    // every body): a key whose quoted name is nowhere in the text is not there. Only a `\u`
    // escape could spell a key otherwise.
    if !escapes && path.split('.').any(|key| !holds_quoted(json, key)) {
        return Ok(None);
    }
    // Not an object at the top: JsonEvent fans out over an array, and a scalar body has no
    // members.
    if json.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(NeedsTree);
    }
    let mut keys = path.split('.');
    let first = keys.next().ok_or(NeedsTree)?;
    let Some(mut value) = member(sonic_rs::to_object_iter(json), first)? else {
        return Ok(None);
    };
    for key in keys {
        use sonic_rs::JsonValueTrait;
        if value.is_array() {
            return Err(NeedsTree);
        }
        let Some(members) = value.into_object_iter() else {
            // A scalar where the path goes on.
            return Ok(None);
        };
        match member(members, key)? {
            Some(next) => value = next,
            None => return Ok(None),
        }
    }
    scalar(&value)
}

/// The value of the last member named `key`, if any.
fn member<'j>(
    members: sonic_rs::ObjectJsonIter<'j>,
    key: &str,
) -> Result<Option<sonic_rs::LazyValue<'j>>, NeedsTree> {
    let mut found = None;
    for entry in members {
        let (name, value) = entry.map_err(|_| NeedsTree)?;
        if name == key {
            found = Some(value);
        }
    }
    Ok(found)
}

/// Whether `key` is a member name somewhere in `json`: `"key"` then `:`, the opening quote not
/// escaped (inside a string value, a quote is `\"`).
fn holds_quoted(json: &str, key: &str) -> bool {
    let bytes = json.as_bytes();
    memchr::memmem::find_iter(bytes, key.as_bytes()).any(|at| {
        let end = at + key.len();
        at >= 1
            && bytes[at - 1] == b'"'
            && (at < 2 || bytes[at - 2] != b'\\')
            && bytes.get(end) == Some(&b'"')
            && bytes[end + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b':')
    })
}

/// A scalar as [`JsonEvent`] answers it; a string without escapes borrowed from the text.
fn scalar<'j>(value: &sonic_rs::LazyValue<'j>) -> Result<Option<EventValue<'j>>, NeedsTree> {
    use sonic_rs::{JsonType, JsonValueTrait};
    let raw = value.as_raw_cow();
    Ok(Some(match value.get_type() {
        JsonType::String => match raw {
            Cow::Borrowed(raw) if !raw.contains('\\') => {
                EventValue::Str(Cow::Borrowed(&raw[1..raw.len() - 1]))
            }
            _ => EventValue::Str(Cow::Owned(value.as_str().ok_or(NeedsTree)?.to_owned())),
        },
        // serde_json's own reading (`-0` is a float, past i64 a float), as the tree would.
        JsonType::Number => match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Number(n)) => match n.as_i64() {
                Some(int) => EventValue::Int(int),
                None => EventValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            _ => return Err(NeedsTree),
        },
        JsonType::Boolean => EventValue::Bool(&*raw == "true"),
        JsonType::Null => EventValue::Null,
        JsonType::Object | JsonType::Array => return Err(NeedsTree),
    }))
}

/// The tree of a JSON text. The pipeline only hands over text that passed strict_json, so this
/// succeeds; `Null` keeps a rule from failing the event if it ever did not.
fn parse(text: &str) -> JsonEvent<'static> {
    JsonEvent::owned(serde_json::from_str(text).unwrap_or(Value::Null))
}

fn text<'t>(text: &'t Text<'_>) -> Option<EventValue<'t>> {
    text.as_deref().map(|s| EventValue::Str(Cow::Borrowed(s)))
}

fn texts<'t>(texts: &'t Texts<'_>) -> Option<EventValue<'t>> {
    if texts.is_empty() {
        return None;
    }
    Some(EventValue::Array(
        texts
            .iter()
            .map(|s| EventValue::Str(Cow::Borrowed(&**s)))
            .collect(),
    ))
}

impl Event for AuditView<'_, '_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        match self.fast_field(path) {
            Ok(value) => value,
            Err(()) => self.tree().get_field(path),
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.tree().any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.tree().all_string_values()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.tree().visit_string_values(visit)
    }

    fn to_json(&self) -> Value {
        self.tree().to_json()
    }

    fn field_keys(&self) -> Vec<Cow<'_, str>> {
        self.tree().field_keys()
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        let mut keys = Vec::new();
        self.visit_top_level_keys(&mut |key| keys.push(Cow::Owned(key.to_owned())));
        Some(keys)
    }

    /// The engine's candidate index probes only the fields under these keys. They come from the
    /// parsed event, so that a `get` without a body never builds the tree; a member of an
    /// unexpected type is not named, which is what [`Event::get_field`] answers for it too.
    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        let event = self.event;
        let texts = [
            ("kind", &event.kind),
            ("apiVersion", &event.api_version),
            ("level", &event.level),
            ("auditID", &event.audit_id),
            ("stage", &event.stage),
            ("requestURI", &event.request_uri),
            ("verb", &event.verb),
            ("userAgent", &event.user_agent),
            (
                "requestReceivedTimestamp",
                &event.request_received_timestamp,
            ),
            ("stageTimestamp", &event.stage_timestamp),
            ("timestamp", &event.timestamp),
        ];
        for (key, text) in texts {
            if text.is_some() {
                visit(key);
            }
        }
        let present = [
            ("user", event.user.is_some()),
            ("impersonatedUser", event.impersonated_user.is_some()),
            ("sourceIPs", !event.source_ips.is_empty()),
            ("objectRef", event.object_ref.is_some()),
            ("responseStatus", event.response_status.is_some()),
            ("annotations", event.annotations.is_some()),
            ("requestObject", event.request_object.is_some()),
            ("responseObject", event.response_object.is_some()),
        ];
        for (key, is_present) in present {
            if is_present {
                visit(key);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::default_tests;

    /// What rsigma's own `JsonEvent` answers over the full tree: the reference the view must
    /// agree with, however it gets there.
    fn reference(text: &str, path: &str) -> Option<Value> {
        JsonEvent::owned(serde_json::from_str(text).unwrap())
            .get_field(path)
            .map(|v| v.to_json())
    }

    fn view_answer(text: &str, path: &str) -> Option<Value> {
        let event = AuditEvent::parse(text).unwrap();
        AuditView::new(&event, text)
            .get_field(path)
            .map(|v| v.to_json())
    }

    const PATHS: &[&str] = &[
        "verb",
        "objectRef.resource",
        "objectRef.subresource",
        "objectRef.namespace",
        "objectRef.name",
        "objectRef.apiGroup",
        "responseStatus.code",
        "user.username",
        "user.groups",
        "user.extra.arn",
        "sourceIPs",
        "requestURI",
        "annotations",
        "requestObject.roleRef.name",
        "requestObject.rules.resources",
        "requestObject.rules.verbs",
        "requestObject.spec.type",
        "requestObject.spec.hostNetwork",
        "requestObject.spec.containers.securityContext.privileged",
        "requestObject.spec.template.spec.containers.securityContext.capabilities.add",
        "requestObject.spec.volumes.hostPath.path",
        "requestObject.subjects.name",
        "requestObject.metadata.name",
        "requestObject.status.conditions.type",
        "requestObject.kind",
        "responseObject.metadata.name",
        "responseObject.spec",
    ];

    #[test]
    fn the_view_answers_as_the_full_tree_on_every_test_event() {
        let tests = default_tests();
        assert!(!tests.is_empty());
        for test in &tests {
            for text in test.events() {
                for path in PATHS {
                    assert_eq!(
                        view_answer(text, path),
                        reference(text, path),
                        "{}/{}: {path}",
                        test.rule,
                        test.file
                    );
                }
            }
        }
    }

    #[test]
    fn bodies_of_every_shape_answer_as_the_full_tree() {
        let bodies = [
            r#"{"roleRef":{"name":"cluster-admin"},"subjects":[{"name":"a"},{"name":"b"}]}"#,
            // The key spelled with an escape: the text search must not rule it out.
            r#"{"role\u0052ef":{"name":"cluster-admin"}}"#,
            // The key only inside a string value, and nested at another level.
            r#"{"data":{"x":"{\"roleRef\": {\"name\": 1}}"},"spec":{"roleRef":{"name":"n"}}}"#,
            r#"{"spec":{"type":"NodePort","hostNetwork":true,"ports":[{"port":80}]}}"#,
            r#"{"spec":{"containers":[{"securityContext":{"privileged":true}},{"securityContext":null}]}}"#,
            r#"{"spec":{"hostNetwork":null,"type":1.5,"replicas":-0,"big":18446744073709551615}}"#,
            r#"[{"roleRef":{"name":"in an array"}}]"#,
            r#""a string body""#,
            r#"null"#,
            r#"{"kind":"Role","rules":[{"verbs":["*"],"resources":["pods/exec"]}]}"#,
            r#"{"spec" : { "type" : "LoadBalancer" } }"#,
            // Duplicate keys: serde_json's map keeps the last.
            r#"{"spec":{"type":"first"},"spec":{"type":"last","type":"later"}}"#,
            // Strings with escapes, and one only borrowed.
            r#"{"spec":{"type":"a\"b\u00e9\\"},"metadata":{"name":"plain"}}"#,
            // The path's keys in the text, but not on the path.
            r#"{"metadata":{"roleRef":"x","name":{"roleRef":1}},"rules":"resources"}"#,
        ];
        let extra = [
            "requestObject.spec.ports.port",
            "requestObject.spec.replicas",
            "requestObject.spec.big",
            "requestObject.data.x",
            "requestObject.spec.roleRef.name",
        ];
        for body in bodies {
            let text = format!(
                r#"{{"kind":"Event","verb":"create","requestObject":{body},"responseObject":{body}}}"#
            );
            for path in PATHS.iter().chain(&extra) {
                assert_eq!(
                    view_answer(&text, path),
                    reference(&text, path),
                    "{body}: {path}"
                );
            }
        }
    }
}
