//! Sigma correlation rules (`event_count`, `value_count`, `temporal`, `temporal_ordered`,
//! `value_sum`, `value_avg`, `value_percentile`, `value_median`) over the events of one
//! invocation: one Firehose transformation batch, one direct `awslogs` event, one
//! `eks-audit detect` input (contract §12).
//!
//! The rules are checked and compiled once with the detector ([`Compiled`]); each invocation
//! asks the detector for a fresh [`Correlations`], whose state starts empty and is dropped with
//! it, so nothing carries from one invocation to the next. Every event is placed in time by its
//! own time (the one its output line has: `requestReceivedTimestamp`, else `stageTimestamp`),
//! never by the clock, so the same input gives the same findings. The detection rules run as
//! they always do; only their matches are handed to rsigma's correlation engine, with the
//! event for the `group-by` fields.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use rsigma_eval::event::{Event, EventValue};
use rsigma_eval::result::{DetectionBody, EvaluationResult, ResultBody, RuleHeader};
use rsigma_eval::{CorrelationConfig, CorrelationEngine, CorrelationEventMode, TimestampFallback};
use rsigma_parser::{CorrelationRule, CorrelationType};
use serde_json::{Value, json};

use rsigma_eval::pipeline::{Pipeline, apply_pipelines_to_correlation};

use super::rules::{RuleError, RuleFile, is_event_path, locate};
use super::{AuditView, RuleInfo};

/// At most this many contributing events are named in a correlation finding's
/// `related_events` (the latest ones of the window).
pub const MAX_RELATED_EVENTS: usize = 100;

/// The loaded correlation rules, mapped and with their rule references resolved to rule ids:
/// what every invocation's [`Correlations`] is built from.
#[derive(Debug, Clone, Default)]
pub(super) struct Compiled {
    pub(super) rules: Vec<CorrelationRule>,
}

impl Compiled {
    /// A correlation engine holding `rules`, with no state. Fails as rsigma's compiler does.
    pub(super) fn engine(rules: &[CorrelationRule]) -> rsigma_eval::Result<CorrelationEngine> {
        let mut engine = CorrelationEngine::new(config());
        for rule in rules {
            engine.add_correlation(rule)?;
        }
        Ok(engine)
    }

    /// Fresh state for one invocation.
    pub(super) fn session(&self) -> Correlations {
        Correlations {
            engine: Compiled::engine(&self.rules)
                .expect("correlation rules are compiled once at load, so they compile again"),
            fired: HashMap::new(),
        }
    }
}

/// A correlation rule as found in a file, before it is checked.
pub(super) struct Found<'f> {
    pub(super) file: &'f RuleFile,
    pub(super) rule: CorrelationRule,
}

/// Checks the correlation rules `found` against the detection rules already in `infos` (whose
/// `name:`s are `names`, name to key), adds them to `infos`, marks the rules they count, and
/// compiles them. Every problem goes to `errors`, with the file and line. `None` when there is
/// no correlation rule, or a problem.
pub(super) fn load(
    found: Vec<Found<'_>>,
    infos: &mut HashMap<String, RuleInfo>,
    names: &HashMap<String, String>,
    mapping: &Pipeline,
    errors: &mut Vec<RuleError>,
) -> Option<Compiled> {
    if found.is_empty() {
        return None;
    }
    let error = |file: &RuleFile, message: String| RuleError {
        file: file.name.clone(),
        line: locate(&file.text, &message),
        message,
    };
    // An error about `token` of the correlation titled `title`: at the line that names it.
    let error_at = |file: &RuleFile, title: &str, token: &str, message: String| RuleError {
        file: file.name.clone(),
        line: line_after(&file.text, title, token).or_else(|| locate(&file.text, &message)),
        message,
    };
    // The correlations' keys and names first: one may count another.
    let mut correlation_of: HashMap<String, usize> = HashMap::new();
    let mut keys = Vec::with_capacity(found.len());
    for (index, Found { file, rule }) in found.iter().enumerate() {
        let key = rule.id.clone().unwrap_or_else(|| rule.title.clone());
        if let Some(other) = infos.get(&key).map(|i| i.file.clone()).or_else(|| {
            correlation_of
                .get(&key)
                .map(|&i| found[i].file.name.clone())
        }) {
            errors.push(error(
                file,
                format!(
                    "correlation rule `{}`: id `{key}` is also the id of a rule in {other}",
                    rule.title
                ),
            ));
        }
        correlation_of.insert(key.clone(), index);
        if let Some(name) = &rule.name {
            correlation_of.entry(name.clone()).or_insert(index);
        }
        keys.push(key);
    }

    let mut rules = Vec::with_capacity(found.len());
    // For each detection rule counted: the references to it, and whether some correlation
    // makes findings of its own matches (`generate: true`) or only one of its own file counts
    // it (then it is silent).
    let mut counted: HashMap<String, (Vec<String>, bool, bool)> = HashMap::new();
    // Correlation to the correlations it counts, for the cycle check.
    let mut counts: Vec<Vec<usize>> = vec![Vec::new(); found.len()];
    for (index, Found { file, rule }) in found.iter().enumerate() {
        let title = &rule.title;
        let before = errors.len();
        for reference in &rule.rules {
            let detection = if infos.get(reference).is_some_and(|i| !i.correlation) {
                Some(reference.clone())
            } else {
                names.get(reference).cloned()
            };
            if let Some(key) = detection {
                let info = &infos[&key];
                let entry = counted.entry(key).or_default();
                if !entry.0.contains(reference) {
                    entry.0.push(reference.clone());
                }
                entry.1 |= rule.generate;
                entry.2 |= !rule.generate && info.file == file.name;
            } else if let Some(&other) = correlation_of.get(reference) {
                if found[other].rule.id.is_none() {
                    errors.push(error(
                        file,
                        format!(
                            "correlation rule `{title}`: counts correlation `{reference}`, which \
                             has no id (a correlation counted by another needs one)"
                        ),
                    ));
                }
                counts[index].push(other);
            } else {
                errors.push(error_at(
                    file,
                    title,
                    reference,
                    format!(
                        "correlation rule `{title}`: rule `{reference}` is not loaded (no rule \
                         or correlation has this id or name)"
                    ),
                ));
            }
        }
        let mut mapped = rule.clone();
        if let Err(e) = apply_pipelines_to_correlation(std::slice::from_ref(mapping), &mut mapped) {
            errors.push(error(file, format!("correlation rule `{title}`: {e}")));
            continue;
        }
        for field in fields(&mapped) {
            if !is_event_path(&field) {
                errors.push(error_at(
                    file,
                    title,
                    &field,
                    format!(
                        "correlation rule `{title}`: unknown field `{field}`: not a path of an \
                         audit.k8s.io Event (see docs/detections.md)"
                    ),
                ));
            }
        }
        if let Err(e) = Compiled::engine(std::slice::from_ref(&mapped)) {
            errors.push(error(file, format!("correlation rule `{title}`: {e}")));
        }
        if errors.len() == before {
            rules.push(mapped);
        }
    }
    if let Some(cycle) = cycle(&counts) {
        let (file, title) = (found[cycle].file, &found[cycle].rule.title);
        errors.push(error(
            file,
            format!(
                "correlation rule `{title}`: the correlations it counts count each other in a cycle"
            ),
        ));
    }

    for (key, (references, generated, silent)) in counted {
        if let Some(info) = infos.get_mut(&key) {
            info.counted_as = references;
            info.silent = silent && !generated;
        }
    }
    for (Found { file, rule }, key) in found.iter().zip(keys) {
        let silent = found.iter().any(|other| {
            !other.rule.generate
                && other.file.name == file.name
                && other
                    .rule
                    .rules
                    .iter()
                    .any(|r| Some(r) == rule.id.as_ref() || Some(r) == rule.name.as_ref())
        });
        infos.insert(
            key.clone(),
            RuleInfo {
                key,
                title: rule.title.clone(),
                description: rule.description.clone(),
                author: rule.author.clone(),
                level: rule.level,
                tags: rule.tags.clone(),
                references: rule.references.clone(),
                file: file.name.clone(),
                correlation: true,
                counted_as: Vec::new(),
                silent,
            },
        );
    }
    (!rules.is_empty()).then_some(Compiled { rules })
}

/// The first line holding `token` after the line titling the correlation `title` (1-based).
fn line_after(text: &str, title: &str, token: &str) -> Option<usize> {
    let start = text
        .lines()
        .position(|line| line.starts_with("title:") && line.contains(title))
        .unwrap_or(0);
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, line)| line.contains(token))
        .map(|(index, _)| index + 1)
}

/// The event fields a correlation rule reads: `group-by` (through its aliases) and the
/// condition's `field`.
fn fields(rule: &CorrelationRule) -> Vec<String> {
    let mut fields = Vec::new();
    for group in &rule.group_by {
        match rule.aliases.iter().find(|a| &a.alias == group) {
            Some(alias) => fields.extend(alias.mapping.values().cloned()),
            None => fields.push(group.clone()),
        }
    }
    if let rsigma_parser::CorrelationCondition::Threshold {
        field: Some(condition),
        ..
    } = &rule.condition
    {
        fields.extend(condition.iter().cloned());
    }
    fields
}

/// A correlation that counts itself through others (`counts[i]`: the correlations `i` counts).
fn cycle(counts: &[Vec<usize>]) -> Option<usize> {
    // 0 unvisited, 1 on the path, 2 done.
    fn visit(node: usize, counts: &[Vec<usize>], state: &mut [u8]) -> bool {
        state[node] = 1;
        for &next in &counts[node] {
            if state[next] == 1 || (state[next] == 0 && visit(next, counts, state)) {
                return true;
            }
        }
        state[node] = 2;
        false
    }
    let mut state = vec![0u8; counts.len()];
    (0..counts.len()).find(|&node| state[node] == 0 && visit(node, counts, &mut state))
}

/// The engine's settings: events without a time are left out (never the wall clock), and each
/// window remembers its events' auditIDs for the finding.
fn config() -> CorrelationConfig {
    CorrelationConfig {
        timestamp_fallback: TimestampFallback::Skip,
        correlation_event_mode: CorrelationEventMode::Refs,
        max_correlation_events: MAX_RELATED_EVENTS,
        ..CorrelationConfig::default()
    }
}

/// The correlation state of one invocation: counts by rule and group, within each rule's
/// timespan. Made by [`super::Detector::correlations`]; dropping it forgets everything.
pub struct Correlations {
    engine: CorrelationEngine,
    /// When each (correlation, group) last made a finding, in event seconds.
    fired: HashMap<(String, Vec<(String, String)>), i64>,
}

impl std::fmt::Debug for Correlations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Correlations")
            .field("groups", &self.engine.state_count())
            .finish()
    }
}

/// One correlation rule that fired on an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The correlation rule's key (its id, else its title).
    pub rule: String,
    /// `event_count`, `value_count`, ...
    pub kind: &'static str,
    /// The `group-by` fields and their values in this group.
    pub group: Vec<(String, String)>,
    /// What the condition was compared with: the count, the number of distinct values, ...
    pub value: f64,
    /// The rule's timespan, in seconds.
    pub timespan_secs: u64,
    /// The events in the window, oldest first: their time (epoch seconds) and auditID. At
    /// most [`MAX_RELATED_EVENTS`], the latest.
    pub events: Vec<(i64, Option<String>)>,
}

impl Correlations {
    /// Counts `event` (whose `auditID` is `audit_id`, at `seconds` since the epoch) for every
    /// correlation that refers to one of `rules` (keys of the detection rules it matched), and
    /// returns the correlations that fire. A correlation that fired for a group is quiet for that
    /// group for its timespan: one finding per burst, not one per event past the threshold.
    pub(super) fn observe(
        &mut self,
        view: &AuditView<'_, '_>,
        audit_id: Option<&str>,
        rules: &[&str],
        seconds: i64,
    ) -> Vec<Fired> {
        let detections = rules.iter().map(|key| detection(key)).collect();
        let event = Referenced { view, audit_id };
        let results = self
            .engine
            .process_with_detections(&event, detections, seconds);
        let mut fired = Vec::new();
        for result in results {
            let Some(body) = result.as_correlation() else {
                continue;
            };
            let rule = result
                .header
                .rule_id
                .clone()
                .unwrap_or_else(|| result.header.rule_title.clone());
            let key = (rule.clone(), body.group_key.clone());
            let quiet = self.fired.get(&key).is_some_and(|&last| {
                seconds.saturating_sub(last) < i64::try_from(body.timespan_secs).unwrap_or(i64::MAX)
            });
            if quiet {
                continue;
            }
            self.fired.insert(key, seconds);
            fired.push(Fired {
                rule,
                kind: kind(body.correlation_type),
                group: body.group_key.clone(),
                value: body.aggregated_value,
                timespan_secs: body.timespan_secs,
                events: body
                    .event_refs
                    .iter()
                    .flatten()
                    .map(|r| (r.timestamp, r.id.clone()))
                    .collect(),
            });
        }
        fired
    }

    /// How many (correlation, group) windows hold state.
    pub fn groups(&self) -> usize {
        self.engine.state_count()
    }
}

/// A detection result naming the rule `key`: all the correlation engine reads of a match.
fn detection(key: &str) -> EvaluationResult {
    EvaluationResult {
        header: RuleHeader {
            rule_title: key.to_owned(),
            rule_id: Some(key.to_owned()),
            level: None,
            tags: Vec::new(),
            custom_attributes: Arc::default(),
            enrichments: None,
        },
        body: ResultBody::Detection(DetectionBody {
            matched_selections: Vec::new(),
            matched_fields: Vec::new(),
            event: None,
        }),
    }
}

fn kind(kind: CorrelationType) -> &'static str {
    kind.as_str()
}

/// The event as the correlation engine sees it: fields from the view, and as its JSON (which
/// the engine keeps a reference of in each window) only `{"id": auditID}`, so no event is
/// parsed into a tree or copied for it.
struct Referenced<'v, 'e, 'a> {
    view: &'v AuditView<'e, 'a>,
    audit_id: Option<&'v str>,
}

impl Event for Referenced<'_, '_, '_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.view.get_field(path)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.view.any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.view.all_string_values()
    }

    fn to_json(&self) -> Value {
        match self.audit_id {
            Some(id) => json!({ "id": id }),
            None => json!({}),
        }
    }
}
