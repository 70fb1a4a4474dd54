//! The audit event as Sigma rules see it: the fields the engine asks for most are answered from
//! the parsed [`AuditEvent`], which borrows from the message; anything else (`requestObject`,
//! `responseObject`, `user.extra`, annotations by key) parses the event's text into a JSON tree,
//! once, and only for the events where a rule gets that far.

use std::borrow::Cow;
use std::cell::OnceCell;

use rsigma_eval::event::{Event, EventValue, JsonEvent};
use serde_json::Value;

use crate::audit::{AuditEvent, Text, Texts, UserInfo};

/// One audit event for the Sigma engine. Field paths are the event's own JSON paths, dotted
/// (`objectRef.resource`); a path through an array matches any of its items.
pub struct AuditView<'e, 'a> {
    event: &'e AuditEvent<'a>,
    /// The event's JSON text (for a salvaged event, the members before the cut).
    text: &'e str,
    tree: OnceCell<JsonEvent<'static>>,
}

impl<'e, 'a> AuditView<'e, 'a> {
    /// A view of `event`, whose JSON text is `text`.
    pub fn new(event: &'e AuditEvent<'a>, text: &'e str) -> Self {
        AuditView {
            event,
            text,
            tree: OnceCell::new(),
        }
    }

    /// Whether the full JSON tree was built (for tests and the bench: it should be rare).
    pub fn parsed_tree(&self) -> bool {
        self.tree.get().is_some()
    }

    fn tree(&self) -> &JsonEvent<'static> {
        self.tree.get_or_init(|| {
            // The pipeline only hands over text that passed strict_json, so this succeeds;
            // `Null` keeps a rule from failing the event if it ever did not.
            JsonEvent::owned(serde_json::from_str(self.text).unwrap_or(Value::Null))
        })
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
            ("requestObject", event.request_object.0),
            ("responseObject", event.response_object.0),
        ];
        for (key, is_present) in present {
            if is_present {
                visit(key);
            }
        }
        true
    }
}
