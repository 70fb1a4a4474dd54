//! Redaction of request and response bodies, off by default (`EKS_AUDIT_REDACT`).
//!
//! At the `Request` and `RequestResponse` audit levels an event carries the object sent and
//! returned: a Secret's data, a ConfigMap's keys, the bearer token of a TokenReview, the token a
//! TokenRequest (`serviceaccounts/token`) hands out. Redaction replaces the `requestObject` and
//! `responseObject` of events about chosen resources with a marker naming the rule, so a SIEM
//! still sees who touched which secret, but not what it holds:
//!
//! ```json
//! "requestObject": {"redacted": "eks-audit-forwarder", "reason": "secrets"}
//! ```
//!
//! The rest of `RawEvent` stays byte for byte as it came: the bodies are found as slices of the
//! original text and only those slices are replaced.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::audit::AuditEvent;

/// The list `default` stands for.
pub const DEFAULT_RULES: &str = "secrets,configmaps,tokenreviews,serviceaccounts/token";

/// The marker's `redacted` value: who removed the body.
pub const MARKER_AUTHOR: &str = "eks-audit-forwarder";

/// Which events lose their bodies: none when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redaction {
    rules: Vec<Rule>,
}

/// `resource` covers the resource and all its subresources; `resource/subresource` only that
/// subresource; `*` every event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    text: String,
    resource: String,
    subresource: Option<String>,
}

impl Redaction {
    /// Parses a comma list of rules: `resource`, `resource/subresource`, `*`, and `default`
    /// for [`DEFAULT_RULES`]; `none` turns redaction off.
    pub fn parse(list: &str) -> Result<Redaction, String> {
        if list.trim().eq_ignore_ascii_case("none") {
            return Ok(Redaction::default());
        }
        let mut rules: Vec<Rule> = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let expanded = if entry == "default" {
                DEFAULT_RULES
            } else {
                entry
            };
            for text in expanded.split(',') {
                let rule = Rule::parse(text)?;
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
        Ok(Redaction { rules })
    }

    /// Whether no rule is set (`none`, the default): events pass unchanged.
    pub fn is_off(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule covering an event about `resource`/`subresource`: the marker's reason.
    pub fn rule_for(&self, resource: Option<&str>, subresource: Option<&str>) -> Option<&str> {
        self.rules
            .iter()
            .find(|rule| rule.covers(resource, subresource))
            .map(|rule| rule.text.as_str())
    }
}

impl fmt::Display for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("none");
        }
        let texts: Vec<&str> = self.rules.iter().map(|r| r.text.as_str()).collect();
        f.write_str(&texts.join(","))
    }
}

impl Rule {
    fn parse(text: &str) -> Result<Rule, String> {
        let (resource, subresource) = match text.split_once('/') {
            Some((resource, subresource)) => (resource, Some(subresource)),
            None => (text, None),
        };
        let is_name = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        let valid = (resource == "*" && subresource.is_none())
            || (is_name(resource) && subresource.is_none_or(is_name));
        if !valid {
            return Err(format!(
                "invalid redaction rule {text:?}: expected `resource`, `resource/subresource` (lowercase, as in \
                 objectRef), `*`, `default` or `none`"
            ));
        }
        Ok(Rule {
            text: text.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.map(str::to_owned),
        })
    }

    fn covers(&self, resource: Option<&str>, subresource: Option<&str>) -> bool {
        if self.resource == "*" {
            return true;
        }
        resource == Some(self.resource.as_str())
            && self
                .subresource
                .as_deref()
                .is_none_or(|wanted| subresource == Some(wanted))
    }
}

/// The text to forward for `event`: `text` itself, or a copy with its bodies redacted when a
/// rule covers the event. An error means the bodies could not be found in text that parsed as
/// an event, which cannot happen; the caller quarantines rather than forward them.
pub fn apply<'t>(
    redaction: &Redaction,
    event: &AuditEvent<'_>,
    text: &'t str,
) -> Result<Cow<'t, str>, String> {
    let object_ref = event.object_ref();
    let resource = object_ref.and_then(|o| o.resource.as_deref());
    let subresource = object_ref.and_then(|o| o.subresource.as_deref());
    match redaction.rule_for(resource, subresource) {
        None => Ok(Cow::Borrowed(text)),
        Some(rule) => redact_bodies(text, rule)
            .map_err(|e| format!("cannot redact the bodies of the event ({rule}): {e}")),
    }
}

/// Top-level keys whose values are replaced.
const BODIES: [&str; 2] = ["requestObject", "responseObject"];

/// `text` (one JSON object) with the value of every top-level `requestObject` and
/// `responseObject` replaced by the marker; `null` bodies stay, as there is nothing to hide.
/// Every occurrence is replaced, duplicates included, so a second key cannot smuggle a body
/// past the first.
pub fn redact_bodies<'t>(text: &'t str, reason: &str) -> Result<Cow<'t, str>, serde_json::Error> {
    let Bodies(bodies) = serde_json::from_str(text)?;
    let bodies: Vec<&RawValue> = bodies.into_iter().filter(|b| b.get() != "null").collect();
    if bodies.is_empty() {
        return Ok(Cow::Borrowed(text));
    }
    let marker = marker(reason);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for body in bodies {
        // A borrowed RawValue is a slice of `text`: its address gives its place.
        let start = body.get().as_ptr() as usize - text.as_ptr() as usize;
        out.push_str(&text[copied..start]);
        out.push_str(&marker);
        copied = start + body.get().len();
    }
    out.push_str(&text[copied..]);
    Ok(Cow::Owned(out))
}

/// The JSON text a redacted body becomes: `{"redacted":"eks-audit-forwarder","reason":<rule>}`.
pub fn marker(reason: &str) -> String {
    format!(
        r#"{{"redacted":"{MARKER_AUTHOR}","reason":{}}}"#,
        serde_json::Value::from(reason)
    )
}

/// The raw values of the body keys of a top-level object, in text order.
struct Bodies<'t>(Vec<&'t RawValue>);

impl<'de> Deserialize<'de> for Bodies<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodiesVisitor;
        impl<'de> Visitor<'de> for BodiesVisitor {
            type Value = Bodies<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an audit event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut bodies = Vec::new();
                while let Some(BodyKey(is_body)) = map.next_key()? {
                    if is_body {
                        bodies.push(map.next_value::<&'de RawValue>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Bodies(bodies))
            }
        }
        deserializer.deserialize_map(BodiesVisitor)
    }
}

/// A key, reduced to whether it names a body (after unescaping: `"request\u004fbject"` does).
struct BodyKey(bool);

impl<'de> Deserialize<'de> for BodyKey {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = BodyKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<BodyKey, E> {
                Ok(BodyKey(BODIES.contains(&key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_expands_and_rules_match_resource_and_subresource() {
        let redaction = Redaction::parse("default, pods/exec").unwrap();
        assert_eq!(
            redaction.to_string(),
            "secrets,configmaps,tokenreviews,serviceaccounts/token,pods/exec"
        );
        assert_eq!(redaction.rule_for(Some("secrets"), None), Some("secrets"));
        assert_eq!(
            redaction.rule_for(Some("serviceaccounts"), Some("token")),
            Some("serviceaccounts/token")
        );
        assert_eq!(
            redaction.rule_for(Some("serviceaccounts"), None),
            None,
            "only the token subresource"
        );
        assert_eq!(redaction.rule_for(Some("pods"), None), None);
        assert_eq!(redaction.rule_for(None, None), None);
        assert_eq!(
            Redaction::parse("*").unwrap().rule_for(None, None),
            Some("*")
        );
    }

    #[test]
    fn none_and_empty_are_off_and_bad_rules_are_refused() {
        assert!(Redaction::parse("none").unwrap().is_off());
        assert!(Redaction::parse(" , ").unwrap().is_off());
        for bad in [
            "Secrets",
            "secrets/data/x",
            "/token",
            "secrets/",
            "*/token",
            "sec rets",
        ] {
            assert!(Redaction::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_bodies_change_and_every_other_byte_stays() {
        let text = r#"{"verb":"create", "requestObject" : {"data":{"k":"c2VjcmV0"}},"x":[1, 2],"responseObject":null}"#;
        let redacted = redact_bodies(text, "secrets").unwrap();
        assert_eq!(
            redacted,
            r#"{"verb":"create", "requestObject" : {"redacted":"eks-audit-forwarder","reason":"secrets"},"x":[1, 2],"responseObject":null}"#
        );
    }

    #[test]
    fn duplicate_and_escaped_body_keys_are_all_redacted() {
        let text =
            r#"{"requestObject":{"a":1},"request\u004fbject":"s3cr3t","responseObject":[1]}"#;
        let redacted = redact_bodies(text, "r").unwrap();
        assert!(
            !redacted.contains("s3cr3t")
                && !redacted.contains("{\"a\":1}")
                && !redacted.contains("[1]"),
            "{redacted}"
        );
        assert_eq!(redacted.matches("\"reason\":\"r\"").count(), 3);
    }

    #[test]
    fn without_bodies_the_text_is_borrowed_untouched() {
        assert!(matches!(
            redact_bodies(r#"{"verb":"get"}"#, "secrets"),
            Ok(Cow::Borrowed(_))
        ));
    }
}
