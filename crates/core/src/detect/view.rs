//! The audit event as Sigma rules see it: the fields the engine asks for most are answered from
//! the parsed [`AuditEvent`], which borrows from the message. A path into `requestObject` or
//! `responseObject` parses that body alone into a JSON tree, once, from the text the event
//! kept unread; anything else (`user.extra`, annotations by key, a body as a whole) parses the
//! whole event, once. Events without bodies, most of a cluster's log, build no tree at all.

use std::borrow::Cow;
use std::cell::OnceCell;

use rsigma_eval::event::{Event, EventValue, JsonEvent};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::audit::{AuditEvent, Text, Texts, UserInfo};

/// One audit event for the Sigma engine. Field paths are the event's own JSON paths, dotted
/// (`objectRef.resource`); a path through an array matches any of its items.
pub struct AuditView<'e, 'a> {
    event: &'e AuditEvent<'a>,
    /// The event's JSON text (for a salvaged event, the members before the cut).
    text: &'e str,
    tree: OnceCell<JsonEvent<'static>>,
    request: OnceCell<JsonEvent<'static>>,
    response: OnceCell<JsonEvent<'static>>,
}

impl<'e, 'a> AuditView<'e, 'a> {
    /// A view of `event`, whose JSON text is `text`.
    pub fn new(event: &'e AuditEvent<'a>, text: &'e str) -> Self {
        AuditView {
            event,
            text,
            tree: OnceCell::new(),
            request: OnceCell::new(),
            response: OnceCell::new(),
        }
    }

    /// Whether a JSON tree was built, of the event or of a body (for the profile: it should be
    /// rare).
    pub fn parsed_tree(&self) -> bool {
        self.tree.get().is_some() || self.request.get().is_some() || self.response.get().is_some()
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
        cell: &'s OnceCell<JsonEvent<'static>>,
        body: Option<&RawValue>,
        rest: &str,
    ) -> Option<EventValue<'s>> {
        let body = body?;
        if let Some(tree) = cell.get() {
            return tree.get_field(rest);
        }
        match scalar_in_place(body.get(), rest) {
            Ok(value) => value,
            Err(NeedsTree) => cell.get_or_init(|| parse(body.get())).get_field(rest),
        }
    }

    /// The fields the parsed event answers; `Err(())` for any other path.
    fn fast_field(&self, path: &str) -> Result<Option<EventValue<'_>>, ()> {
        let event = self.event;
        let value = match path {
            "verb" => text(&event.verb),
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
                let (head, rest) = path.split_once('.').ok_or(())?;
                match head {
                    "requestObject" => self.body_field(&self.request, event.request_object, rest),
                    "responseObject" => {
                        self.body_field(&self.response, event.response_object, rest)
                    }
                    "user" => user_field(event.user(), rest)?,
                    "impersonatedUser" => user_field(event.impersonated_user.as_ref(), rest)?,
                    "objectRef" => {
                        let Some(object) = event.object_ref() else {
                            return Ok(None);
                        };
                        match rest {
                            "resource" => text(&object.resource),
                            "subresource" => text(&object.subresource),
                            "namespace" => text(&object.namespace),
                            "name" => text(&object.name),
                            "apiGroup" => text(&object.api_group),
                            "apiVersion" => text(&object.api_version),
                            "uid" => text(&object.uid),
                            _ => return Err(()),
                        }
                    }
                    "responseStatus" => {
                        let Some(status) = event.response_status.as_ref() else {
                            return Ok(None);
                        };
                        match rest {
                            "code" => status.code.0.map(EventValue::Int),
                            "reason" => text(&status.reason),
                            "status" => text(&status.status),
                            _ => return Err(()),
                        }
                    }
                    _ => return Err(()),
                }
            }
        };
        Ok(value)
    }
}

/// A path [`scalar_in_place`] cannot follow without a tree.
struct NeedsTree;

/// The scalar at dotted `path` in the JSON object `json`, read with sonic-rs's lazy getter: the
/// members off the path are skipped, not parsed. Answers as [`JsonEvent`] would: `None` when a
/// key is missing or a scalar stands where the path goes on.
fn scalar_in_place(json: &str, path: &str) -> Result<Option<EventValue<'static>>, NeedsTree> {
    use sonic_rs::{JsonType, JsonValueTrait};
    if path.contains(['[', '\\']) {
        return Err(NeedsTree);
    }
    let keys: Vec<&str> = path.split('.').collect();
    // Each prefix from the top: a LazyValue borrows itself, so the walk cannot step down in
    // place; paths are a few keys deep and each lookup skips at SIMD speed.
    let mut current = None;
    for depth in 1..=keys.len() {
        let value = match sonic_rs::get_from_str(json, &keys[..depth]) {
            Ok(value) => value,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(_) => return Err(NeedsTree),
        };
        if depth < keys.len() {
            match value.get_type() {
                JsonType::Object => {}
                JsonType::Array => return Err(NeedsTree),
                _ => return Ok(None),
            }
        }
        current = Some(value);
    }
    let current = current.ok_or(NeedsTree)?;
    let raw = current.as_raw_str();
    Ok(Some(match current.get_type() {
        JsonType::String => {
            EventValue::Str(Cow::Owned(current.as_str().ok_or(NeedsTree)?.to_owned()))
        }
        JsonType::Number => match raw.parse::<i64>() {
            Ok(int) => EventValue::Int(int),
            Err(_) => EventValue::Float(raw.parse().map_err(|_| NeedsTree)?),
        },
        JsonType::Boolean => EventValue::Bool(raw == "true"),
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

fn user_field<'t>(
    user: Option<&'t UserInfo<'_>>,
    field: &str,
) -> Result<Option<EventValue<'t>>, ()> {
    let Some(user) = user else {
        return Ok(None);
    };
    Ok(match field {
        "username" => text(&user.username),
        "uid" => text(&user.uid),
        "groups" => texts(&user.groups),
        _ => return Err(()),
    })
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
