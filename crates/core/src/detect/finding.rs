//! Findings as OCSF 1.1.0 Detection Findings (`class_uid` 2004) with the `cloud` and `datetime`
//! profiles. Where things go in 1.1.0: ATT&CK in `finding_info.attacks[]`, the evidence event in
//! `finding_info.related_events[]`, the actor and the API call in `evidences[]`, the Kubernetes
//! object and the cluster in `resources[]`. Findings are rare, so they are built as JSON trees.

use rsigma_parser::Level;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::RuleInfo;
use super::correlate::Fired;
use crate::audit::AuditEvent;
use crate::schema::EventContext;
use crate::schema::ocsf::{CLOUD_PROVIDER, OCSF_VERSION, PROFILES};
use crate::schema::time::{epoch_millis, rfc3339_utc};

/// `metadata.product.name` and `vendor_name` of findings: this project found them, not AWS.
pub const PRODUCT_NAME: &str = "eks-audit-forwarder";
/// `finding_info.related_events[].type_uid`: the evidence is an API Activity event (6003),
/// activity unknown.
const RELATED_EVENT_TYPE_UID: i64 = 600300;
/// The longest string OCSF accepts in a string attribute.
const MAX_STRING_CHARS: usize = 65_535;

/// OCSF `severity_id` and `severity` of a Sigma level.
pub fn severity(level: Option<Level>) -> (i64, &'static str) {
    match level {
        Some(Level::Informational) => (1, "Informational"),
        Some(Level::Low) => (2, "Low"),
        Some(Level::Medium) => (3, "Medium"),
        Some(Level::High) => (4, "High"),
        Some(Level::Critical) => (5, "Critical"),
        None => (0, "Unknown"),
    }
}

/// One finding's OCSF JSON, from the rule that matched and the evidence event. `time` is the
/// event's time ([`crate::schema::time::event_time`]); `selections` the detections that matched.
pub fn render(
    rule: &RuleInfo,
    event: &AuditEvent<'_>,
    context: &EventContext<'_>,
    time: Option<OffsetDateTime>,
    selections: &[String],
) -> Value {
    let (severity_id, severity) = severity(rule.level);
    let audit_id = event.audit_id.non_empty().filter(|id| fits(id));
    let time_ms = time.and_then(epoch_millis).unwrap_or(0);

    let mut finding = Map::new();
    finding.insert("title".into(), json!(clip(&rule.title)));
    // Deterministic: the same rule on the same event is the same finding, so a retry's copy
    // can be recognised downstream.
    let evidence_id = audit_id.or(context.event_id).unwrap_or("unknown-event");
    finding.insert(
        "uid".into(),
        json!(clip(&format!("{}:{evidence_id}", rule.key))),
    );
    if let Some(desc) = &rule.description {
        finding.insert("desc".into(), json!(clip(desc)));
    }
    finding.insert(
        "analytic".into(),
        json!({"uid": clip(&rule.key), "name": clip(&rule.title), "type_id": 1, "type": "Rule"}),
    );
    let attacks = attacks(&rule.tags);
    if !attacks.is_empty() {
        finding.insert("attacks".into(), Value::Array(attacks));
    }
    if let Some(id) = audit_id {
        finding.insert(
            "related_events".into(),
            json!([{"uid": id, "type_uid": RELATED_EVENT_TYPE_UID, "product_uid": "Amazon EKS"}]),
        );
    }
    finding.insert(
        "data_sources".into(),
        json!(["Amazon EKS audit logs (CloudWatch Logs)"]),
    );
    if time.is_some() {
        finding.insert("first_seen_time".into(), json!(time_ms));
        finding.insert("last_seen_time".into(), json!(time_ms));
    }
    if !rule.references.is_empty() {
        finding.insert("src_url".into(), json!(clip(&rule.references[0])));
    }

    let mut line = Map::new();
    line.insert("class_uid".into(), json!(2004));
    line.insert("class_name".into(), json!("Detection Finding"));
    line.insert("category_uid".into(), json!(2));
    line.insert("category_name".into(), json!("Findings"));
    line.insert("activity_id".into(), json!(1));
    line.insert("activity_name".into(), json!("Create"));
    line.insert("type_uid".into(), json!(200401));
    line.insert("type_name".into(), json!("Detection Finding: Create"));
    line.insert("severity_id".into(), json!(severity_id));
    line.insert("severity".into(), json!(severity));
    line.insert("status_id".into(), json!(1));
    line.insert("status".into(), json!("New"));
    line.insert("time".into(), json!(time_ms));
    if let Some(time) = time {
        line.insert("time_dt".into(), json!(rfc3339_utc(time)));
    }
    line.insert("message".into(), json!(clip(&rule.title)));
    line.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "profiles": PROFILES,
            "product": {
                "name": PRODUCT_NAME,
                "vendor_name": PRODUCT_NAME,
                "version": env!("CARGO_PKG_VERSION"),
            },
            "uid": clip(&format!("{}:{evidence_id}", rule.key)),
        }),
    );
    let mut cloud = json!({"provider": CLOUD_PROVIDER});
    if let Some(region) = context.region.filter(|r| !r.is_empty()) {
        cloud["region"] = json!(clip(region));
    }
    if let Some(account) = context.account.filter(|a| !a.is_empty()) {
        cloud["account"] = json!({"uid": clip(account)});
    }
    line.insert("cloud".into(), cloud);
    line.insert("finding_info".into(), Value::Object(finding));
    if let Some(evidence) = evidence(event, audit_id) {
        line.insert("evidences".into(), json!([evidence]));
    }
    let resources = resources(event, context);
    if !resources.is_empty() {
        line.insert("resources".into(), Value::Array(resources));
    }
    let mut unmapped = Map::new();
    // DRL 1.1 asks that a message based on a rule's match keep its author.
    if let Some(author) = &rule.author {
        unmapped.insert("rule_author".into(), json!(clip(author)));
    }
    unmapped.insert("rule_level".into(), json!(level_name(rule.level)));
    unmapped.insert("rule_source".into(), json!(clip(&rule.file)));
    if let Some(cluster) = context.cluster {
        unmapped.insert("cluster".into(), json!(clip(cluster)));
    }
    if !selections.is_empty() {
        unmapped.insert("matched_selections".into(), json!(selections));
    }
    line.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(line)
}

/// A correlation rule's finding: [`render`]'s, with the event it fired on as the evidence, and
/// besides: `finding_info.related_events` lists the auditIDs of the events in the window (at
/// most [`super::correlate::MAX_RELATED_EVENTS`], the latest), `first_seen_time` is the
/// earliest of their times, `count` (for `event_count`) the number of events counted, and `unmapped.correlation`
/// says what was counted: the type, the `group-by` values, the value compared with the
/// condition, and the timespan.
pub fn render_correlation(
    rule: &RuleInfo,
    event: &AuditEvent<'_>,
    context: &EventContext<'_>,
    time: OffsetDateTime,
    fired: &Fired,
) -> Value {
    let mut line = render(rule, event, context, Some(time), &[]);
    let mut ids: Vec<&str> = Vec::new();
    for id in fired.events.iter().filter_map(|(_, id)| id.as_deref()) {
        if fits(id) && !ids.contains(&id) {
            ids.push(id);
        }
    }
    let finding = &mut line["finding_info"];
    if !ids.is_empty() {
        finding["related_events"] = Value::Array(
            ids.iter()
                .map(|id| {
                    json!({"uid": id, "type_uid": RELATED_EVENT_TYPE_UID, "product_uid": "Amazon EKS"})
                })
                .collect(),
        );
    }
    if let Some(first) = fired.events.iter().map(|(seconds, _)| *seconds).min() {
        let first_ms = first.saturating_mul(1000);
        if finding["first_seen_time"]
            .as_i64()
            .is_some_and(|t| first_ms < t)
        {
            finding["first_seen_time"] = json!(first_ms);
        }
    }
    if fired.kind == "event_count" && fired.value >= 1.0 {
        // A count of events, so a whole number: exact far beyond any window's size.
        line["count"] = json!(fired.value as u64);
    }
    let group: Map<String, Value> = fired
        .group
        .iter()
        .map(|(field, value)| (clip(field), json!(clip(value))))
        .collect();
    line["unmapped"]["correlation"] = json!({
        "type": fired.kind,
        "group_by": group,
        "value": fired.value,
        "timespan_seconds": fired.timespan_secs,
        "events": fired.events.len(),
    });
    line
}

/// The Sigma level's name, as rules write it.
pub fn level_name(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Informational) => "informational",
        Some(Level::Low) => "low",
        Some(Level::Medium) => "medium",
        Some(Level::High) => "high",
        Some(Level::Critical) => "critical",
        None => "unknown",
    }
}

/// The actor (user, groups, IAM session) and the API call, from the evidence event.
fn evidence(event: &AuditEvent<'_>, audit_id: Option<&str>) -> Option<Value> {
    let mut evidence = Map::new();
    if let Some(user) = event.user() {
        let mut ocsf_user = Map::new();
        if let Some(name) = user.username.non_empty().filter(|n| fits(n)) {
            ocsf_user.insert("name".into(), json!(name));
        }
        if let Some(uid) = user.uid.non_empty().filter(|u| fits(u)) {
            ocsf_user.insert("uid".into(), json!(uid));
        }
        let groups: Vec<Value> = user
            .groups
            .iter()
            .filter(|g| !g.is_empty() && fits(g))
            .map(|g| json!({"name": &**g}))
            .collect();
        if !groups.is_empty() {
            ocsf_user.insert("groups".into(), Value::Array(groups));
        }
        if !ocsf_user.is_empty() {
            evidence.insert("actor".into(), json!({"user": ocsf_user}));
        }
    }
    if let Some(verb) = event.verb.non_empty().filter(|v| fits(v)) {
        let mut api = json!({"operation": verb});
        if let Some(id) = audit_id {
            api["request"] = json!({"uid": id});
        }
        if let Some(group) = event
            .object_ref()
            .and_then(|o| o.api_group.non_empty())
            .filter(|g| fits(g))
        {
            api["service"] = json!({"name": group});
        }
        evidence.insert("api".into(), api);
    }
    if let Some(ip) = event
        .source_ips
        .first()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
    {
        evidence.insert("src_endpoint".into(), json!({"ip": &**ip}));
    }
    (!evidence.is_empty()).then_some(Value::Object(evidence))
}

/// The Kubernetes object the request was about, and the EKS cluster.
fn resources(event: &AuditEvent<'_>, context: &EventContext<'_>) -> Vec<Value> {
    let mut resources = Vec::new();
    if let Some(object) = event.object_ref() {
        let resource = object.resource.non_empty().filter(|r| fits(r));
        let name = object.name.non_empty().filter(|n| fits(n)).or(resource);
        if let Some(name) = name {
            let mut item = json!({"name": name});
            if let Some(resource) = resource {
                let kind = match object.subresource.non_empty().filter(|s| fits(s)) {
                    Some(sub) => format!("{resource}/{sub}"),
                    None => resource.to_owned(),
                };
                item["type"] = json!(clip(&kind));
            }
            if let Some(namespace) = object.namespace.non_empty().filter(|n| fits(n)) {
                item["namespace"] = json!(namespace);
            }
            if let Some(uid) = object.uid.non_empty().filter(|u| fits(u)) {
                item["uid"] = json!(uid);
            }
            if let Some(group) = object.api_group.non_empty().filter(|g| fits(g)) {
                item["group"] = json!({"name": group});
            }
            if let Some(version) = object.api_version.non_empty().filter(|v| fits(v)) {
                item["version"] = json!(version);
            }
            resources.push(item);
        }
    }
    if let Some(cluster) = context.cluster.filter(|c| !c.is_empty() && fits(c)) {
        let mut item = json!({"name": cluster, "type": "AWS::EKS::Cluster"});
        if let Some(region) = context.region.filter(|r| !r.is_empty() && fits(r)) {
            item["region"] = json!(region);
        }
        resources.push(item);
    }
    resources
}

/// ATT&CK from Sigma tags: `attack.t1609` and `attack.t1611.001` are techniques, the tactic
/// tags (`attack.execution`) their tactics. One entry per technique.
fn attacks(tags: &[String]) -> Vec<Value> {
    let tactics: Vec<Value> = tags
        .iter()
        .filter_map(|tag| tactic(tag.strip_prefix("attack.")?))
        .map(|(uid, name)| json!({"uid": uid, "name": name}))
        .collect();
    tags.iter()
        .filter_map(|tag| technique(tag.strip_prefix("attack.")?))
        .map(|(technique, sub)| {
            let mut attack = json!({"technique": {"uid": technique}, "version": "14"});
            if let Some(sub) = sub {
                attack["sub_technique"] = json!({"uid": sub});
            }
            if let Some(first) = tactics.first() {
                attack["tactic"] = first.clone();
                attack["tactics"] = Value::Array(tactics.clone());
            }
            attack
        })
        .collect()
}

/// `t1611` → `T1611`; `t1611.001` → (`T1611`, `T1611.001`).
fn technique(tag: &str) -> Option<(String, Option<String>)> {
    let rest = tag.strip_prefix('t')?;
    let (main, sub) = match rest.split_once('.') {
        Some((main, sub)) => (main, Some(sub)),
        None => (rest, None),
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(main, 4) || !sub.is_none_or(|s| digits(s, 3)) {
        return None;
    }
    Some((format!("T{main}"), sub.map(|sub| format!("T{main}.{sub}"))))
}

/// The ATT&CK Enterprise tactics, by their Sigma tag.
fn tactic(tag: &str) -> Option<(&'static str, &'static str)> {
    Some(match tag.replace('_', "-").as_str() {
        "reconnaissance" => ("TA0043", "Reconnaissance"),
        "resource-development" => ("TA0042", "Resource Development"),
        "initial-access" => ("TA0001", "Initial Access"),
        "execution" => ("TA0002", "Execution"),
        "persistence" => ("TA0003", "Persistence"),
        "privilege-escalation" => ("TA0004", "Privilege Escalation"),
        "defense-evasion" => ("TA0005", "Defense Evasion"),
        "credential-access" => ("TA0006", "Credential Access"),
        "discovery" => ("TA0007", "Discovery"),
        "lateral-movement" => ("TA0008", "Lateral Movement"),
        "collection" => ("TA0009", "Collection"),
        "command-and-control" => ("TA0011", "Command and Control"),
        "exfiltration" => ("TA0010", "Exfiltration"),
        "impact" => ("TA0040", "Impact"),
        _ => return None,
    })
}

fn fits(text: &str) -> bool {
    text.chars().count() <= MAX_STRING_CHARS
}

/// Rule texts come from files the operator chose; a runaway one is cut rather than making the
/// finding invalid.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_STRING_CHARS) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn techniques_and_sub_techniques_come_from_attack_tags() {
        assert_eq!(technique("t1609"), Some(("T1609".into(), None)));
        assert_eq!(
            technique("t1611.001"),
            Some(("T1611".into(), Some("T1611.001".into())))
        );
        assert_eq!(technique("execution"), None);
        assert_eq!(technique("t16"), None);
        assert_eq!(
            tactic("privilege_escalation"),
            Some(("TA0004", "Privilege Escalation"))
        );
    }
}
