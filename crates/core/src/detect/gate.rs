//! Which rules are worth evaluating on an event, decided from the fields the parsed event
//! answers for free (`verb`, `objectRef.resource`, ...), before the engine is asked.
//!
//! At load, each compiled rule yields its *gate*: detection items that every match of the rule
//! must satisfy (an item of a selection the condition requires, such as the `verb` of a `write`
//! selection ANDed with the rest). Only items on the parsed event's own fields are taken, never
//! a body. Per event, each distinct gate item is evaluated at most once, exactly as the engine
//! evaluates it (the same matcher, on the same answer), and a rule with a false gate item is
//! skipped: it cannot match. The rest are evaluated by the engine's own per-rule evaluator.
//!
//! The gate only skips rules that could not match, so findings are those of a full scan. It
//! replaces rsigma's candidate index on this path: on the typical workload most events are
//! reads that no rule's gate admits, and the index probed a few dozen fields to find that out.

use std::collections::HashMap;

use rsigma_eval::event::{Event, EventValue};
use rsigma_eval::matcher::ascii_lowercase_cow;
use rsigma_eval::{CompiledDetection, CompiledDetectionItem, CompiledMatcher, CompiledRule};
use rsigma_parser::{ConditionExpr, Quantifier, SelectorPattern};

use super::view::is_parsed_field;

/// The gates of every rule, in the engine's rule order.
#[derive(Debug, Default)]
pub(super) struct Gates {
    /// Distinct gate items, shared by the rules that require them.
    items: Vec<CompiledDetectionItem>,
    /// For each rule, its clauses: each a set of literals (an index into `items`, and whether
    /// the item holds or fails), one of which is true on every event the rule matches.
    rules: Vec<Vec<Vec<(usize, bool)>>>,
}

/// One event's verdicts on the gate items, each computed at most once.
pub(super) struct Verdicts {
    known: u64,
    value: u64,
}

/// Literals (an item, and whether it must hold or fail) of which at least one is true on every
/// match.
type Clause<'r> = Vec<(&'r CompiledDetectionItem, bool)>;

impl Gates {
    /// The gates of `rules`.
    pub(super) fn new(rules: &[CompiledRule]) -> Gates {
        let mut gates = Gates::default();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for rule in rules {
            let mut clauses: Vec<Vec<(usize, bool)>> = Vec::new();
            for clause in necessary_clauses(rule) {
                let mut indices: Vec<(usize, bool)> = clause
                    .into_iter()
                    .map(|(item, holds)| {
                        let key =
                            format!("{:?}\0{:?}\0{:?}", item.field, item.exists, item.matcher);
                        let index = *by_key.entry(key).or_insert_with(|| {
                            gates.items.push(item.clone());
                            gates.items.len() - 1
                        });
                        (index, holds)
                    })
                    .collect();
                indices.sort_unstable();
                indices.dedup();
                if !clauses.contains(&indices) {
                    clauses.push(indices);
                }
            }
            // Single items first: they are the cheapest to refute.
            clauses.sort_by_key(Vec::len);
            gates.rules.push(clauses);
        }
        gates
    }

    /// A blank slate for one event.
    pub(super) fn verdicts(&self) -> Verdicts {
        Verdicts { known: 0, value: 0 }
    }

    /// Whether rule `rule` (its index in the engine) may match `event`: false only when one of
    /// its clauses has no true literal.
    pub(super) fn admits(&self, rule: usize, event: &impl Event, verdicts: &mut Verdicts) -> bool {
        let Some(clauses) = self.rules.get(rule) else {
            return true;
        };
        clauses.iter().all(|clause| {
            clause
                .iter()
                .any(|&(index, holds)| self.holds(index, event, verdicts) == holds)
        })
    }

    fn holds(&self, index: usize, event: &impl Event, verdicts: &mut Verdicts) -> bool {
        let bit = 1u64.checked_shl(index as u32).unwrap_or(0);
        if verdicts.known & bit != 0 {
            return verdicts.value & bit != 0;
        }
        let holds = item_matches(&self.items[index], event);
        verdicts.known |= bit;
        if holds {
            verdicts.value |= bit;
        }
        holds
    }
}

/// A detection item as rsigma evaluates it (`eval_detection_item_with_bloom` without a bloom).
fn item_matches(item: &CompiledDetectionItem, event: &impl Event) -> bool {
    let Some(field) = &item.field else {
        // Never a gate item; a keyword item would need every string of the event.
        return true;
    };
    if let Some(expect_exists) = item.exists {
        let exists = event.get_field(field).is_some_and(|v| !v.is_null());
        return exists == expect_exists;
    }
    match event.get_field(field) {
        // rsigma's case-insensitive `Exact` lowercases into a new `String` for every
        // comparison; `ascii_lowercase_cow` lowercases the same way (`to_lowercase`, which is
        // ASCII lowercasing on ASCII) and borrows a string that is already lowercase, as the
        // parsed fields the gates read almost always are.
        Some(EventValue::Str(text)) => match &item.matcher {
            CompiledMatcher::Exact {
                value,
                case_insensitive: true,
            } => ascii_lowercase_cow(&text) == value.as_str(),
            matcher => matcher.matches(&EventValue::Str(text), event),
        },
        Some(value) => item.matcher.matches(&value, event),
        None => matches!(item.matcher, CompiledMatcher::Null),
    }
}

/// Clauses every match of `rule` satisfies, on parsed fields. A rule matches when any of its
/// conditions does.
fn necessary_clauses(rule: &CompiledRule) -> Vec<Clause<'_>> {
    any_of(
        rule.conditions
            .iter()
            .map(|condition| of_condition(condition, rule))
            .collect(),
    )
}

/// The clauses of a disjunction of branches, given each branch's clauses: a single branch's
/// own; else one clause, the union of one clause of each branch (its shortest), or none when a
/// branch has none.
fn any_of(mut branches: Vec<Vec<Clause<'_>>>) -> Vec<Clause<'_>> {
    if branches.len() == 1 {
        return branches.pop().unwrap_or_default();
    }
    let mut union = Vec::new();
    for branch in branches {
        let Some(shortest) = branch.into_iter().min_by_key(Vec::len) else {
            return Vec::new();
        };
        union.extend(shortest);
    }
    if union.is_empty() {
        Vec::new()
    } else {
        vec![union]
    }
}

fn of_condition<'r>(expr: &ConditionExpr, rule: &'r CompiledRule) -> Vec<Clause<'r>> {
    let selected = |pattern: &SelectorPattern| {
        rule.detections
            .iter()
            .filter(|(name, _)| pattern.matches_detection_name(name))
            .map(|(_, detection)| of_detection(detection))
            .collect::<Vec<_>>()
    };
    match expr {
        ConditionExpr::Identifier(name) => rule
            .detections
            .get(name)
            .map(of_detection)
            .unwrap_or_default(),
        ConditionExpr::And(exprs) => exprs.iter().flat_map(|e| of_condition(e, rule)).collect(),
        ConditionExpr::Or(exprs) => any_of(exprs.iter().map(|e| of_condition(e, rule)).collect()),
        ConditionExpr::Selector {
            quantifier: Quantifier::All,
            pattern,
        } => selected(pattern).into_iter().flatten().collect(),
        ConditionExpr::Selector {
            quantifier: Quantifier::Any,
            pattern,
        } => any_of(selected(pattern)),
        ConditionExpr::Selector {
            quantifier: Quantifier::Count(n),
            pattern,
        } if *n >= 1 => any_of(selected(pattern)),
        ConditionExpr::Not(inner) => of_negation(inner, rule),
        // `0 of x` requires nothing.
        ConditionExpr::Selector { .. } => Vec::new(),
    }
}

/// Clauses every event on which `expr` is false satisfies.
fn of_negation<'r>(expr: &ConditionExpr, rule: &'r CompiledRule) -> Vec<Clause<'r>> {
    match expr {
        ConditionExpr::Not(inner) => of_condition(inner, rule),
        ConditionExpr::Identifier(name) => rule
            .detections
            .get(name)
            .map(of_failed_detection)
            .unwrap_or_default(),
        // not (a or b) = not a and not b; `not 1 of filter_*`: no filter matches.
        ConditionExpr::Or(exprs) => exprs.iter().flat_map(|e| of_negation(e, rule)).collect(),
        ConditionExpr::Selector {
            quantifier: Quantifier::Any,
            pattern,
        } => rule
            .detections
            .iter()
            .filter(|(name, _)| pattern.matches_detection_name(name))
            .flat_map(|(_, detection)| of_failed_detection(detection))
            .collect(),
        ConditionExpr::And(_) | ConditionExpr::Selector { .. } => Vec::new(),
    }
}

/// Clauses every event on which `detection` does not match satisfies: a mapping fails when one
/// of its items fails, which can be told only when every item is on a parsed field.
fn of_failed_detection(detection: &CompiledDetection) -> Vec<Clause<'_>> {
    match detection {
        CompiledDetection::AllOf(items)
            if !items.is_empty()
                && items
                    .iter()
                    .all(|item| item.field.as_deref().is_some_and(is_parsed_field)) =>
        {
            vec![items.iter().map(|item| (item, false)).collect()]
        }
        // A list of mappings fails when each of them does.
        CompiledDetection::AnyOf(detections) => {
            detections.iter().flat_map(of_failed_detection).collect()
        }
        _ => Vec::new(),
    }
}

fn of_detection(detection: &CompiledDetection) -> Vec<Clause<'_>> {
    match detection {
        CompiledDetection::AllOf(items) => items
            .iter()
            .filter(|item| item.field.as_deref().is_some_and(is_parsed_field))
            .map(|item| vec![(item, true)])
            .collect(),
        CompiledDetection::AnyOf(detections) => {
            any_of(detections.iter().map(of_detection).collect())
        }
        CompiledDetection::And(detections) => detections.iter().flat_map(of_detection).collect(),
        CompiledDetection::Keywords(_)
        | CompiledDetection::ArrayMatch { .. }
        | CompiledDetection::Conditional { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::audit::AuditEvent;
    use crate::detect::rules::{default_pack, default_tests};
    use crate::detect::{AuditView, Detector};

    /// The gated path finds what the engine's own `evaluate` (candidate index, every rule it
    /// admits) finds, with the same selections, on every test event of the pack and on each
    /// of them with every verb and with another resource and status: the gate may only skip
    /// rules that cannot match.
    #[test]
    fn gated_matches_are_the_engines_matches() {
        let detector = Detector::load(&default_pack()).unwrap().explain();
        assert!(
            detector
                .gates
                .rules
                .iter()
                .filter(|r| !r.is_empty())
                .count()
                > 20,
            "most rules have a gate"
        );
        let mut texts = Vec::new();
        let tests = default_tests();
        // A correlation's test is a sequence: each of its events is a case of its own.
        for text in tests.iter().flat_map(|test| test.events()) {
            let event: Value = serde_json::from_str(text).unwrap();
            texts.push(text.to_owned());
            let verbs = [
                "get", "list", "watch", "create", "update", "patch", "delete",
            ];
            for verb in verbs.iter().chain(&["deletecollection", "CREATE"]) {
                let mut variant = event.clone();
                variant["verb"] = Value::from(*verb);
                texts.push(variant.to_string());
            }
            for (pointer, value) in [
                ("/objectRef/resource", Value::from("configmaps")),
                ("/objectRef/subresource", Value::from("status")),
                ("/responseStatus/code", Value::from(403)),
                ("/user/username", Value::from("system:anonymous")),
            ] {
                let mut variant = event.clone();
                if let Some(slot) = variant.pointer_mut(pointer) {
                    *slot = value;
                    texts.push(variant.to_string());
                }
            }
        }
        let mut fired = 0;
        for text in &texts {
            let event = AuditEvent::parse(text).unwrap();
            let gated: Vec<(String, Vec<String>)> = detector
                .matches(&event, text)
                .into_iter()
                .map(|m| (m.rule.key.clone(), m.selections))
                .collect();
            let engine: Vec<(String, Vec<String>)> = detector
                .engine
                .evaluate(&AuditView::new(&event, text))
                .into_iter()
                .map(|r| {
                    let key = r
                        .header
                        .rule_id
                        .clone()
                        .unwrap_or(r.header.rule_title.clone());
                    let selections = r
                        .as_detection()
                        .map(|d| d.matched_selections.clone())
                        .unwrap_or_default();
                    (key, selections)
                })
                .collect();
            assert_eq!(gated, engine, "{text}");
            fired += gated.len();
        }
        assert!(fired > 30, "the variants fire rules: {fired}");
    }
}
