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

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use rsigma_eval::event::{Event, EventValue};
use rsigma_eval::matcher::ascii_lowercase_cow;
use rsigma_eval::{CompiledDetection, CompiledDetectionItem, CompiledMatcher, CompiledRule};
use rsigma_parser::{ConditionExpr, Quantifier, SelectorPattern};

use super::view::is_parsed_field;

/// The gates of every rule, in the engine's rule order.
#[derive(Debug)]
pub(super) struct Gates {
    /// Distinct gate items, shared by the rules that require them.
    items: Vec<CompiledDetectionItem>,
    /// The items grouped by field, at most 64 a group: an event's field is read once for all
    /// of them, and their verdicts are the bits of one word.
    groups: Vec<Group>,
    /// How many rules the gates are for.
    rule_count: usize,
    /// For each group, the clauses of one literal on it, the usual kind (a rule's `verb`, its
    /// `objectRef.resource`): a group's word answers all of them, every rule at once.
    singles: Vec<Vec<(usize, Literal)>>,
    /// For each group, the rules with a clause of one literal on it: a group that no rule still
    /// admitted needs is not read.
    needed_by: Vec<RuleSet>,
    /// Clauses of literals on several groups, with their rule.
    compounds: Vec<(usize, Vec<Literal>)>,
    /// The order groups are tested in: the one with the most single clauses first, as it
    /// refutes most rules at once.
    order: Vec<usize>,
    /// Tells these gates' remembered verdicts ([`SEEN`]) from another detector's.
    id: u64,
}

/// Rules by their index in the engine, a bit each.
#[derive(Debug, Clone, Default)]
pub(super) struct RuleSet {
    words: Vec<u64>,
}

impl RuleSet {
    #[cfg(test)]
    fn all(rules: usize) -> RuleSet {
        let mut set = RuleSet::default();
        set.fill(rules);
        set
    }

    /// Every rule of `rules`, in the words already there.
    fn fill(&mut self, rules: usize) {
        self.words.clear();
        self.words.resize(rules.div_ceil(64), u64::MAX);
        if let Some(last) = self.words.last_mut()
            && !rules.is_multiple_of(64)
        {
            *last = (1 << (rules % 64)) - 1;
        }
    }

    fn empty(rules: usize) -> RuleSet {
        RuleSet {
            words: vec![0; rules.div_ceil(64)],
        }
    }

    fn insert(&mut self, rule: usize) {
        self.words[rule / 64] |= 1 << (rule % 64);
    }

    fn remove(&mut self, rule: usize) {
        self.words[rule / 64] &= !(1 << (rule % 64));
    }

    fn contains(&self, rule: usize) -> bool {
        self.words[rule / 64] & 1 << (rule % 64) != 0
    }

    fn intersects(&self, other: &RuleSet) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The rules, in ascending order.
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    i * 64 + bit
                })
            })
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    group: usize,
    bit: u64,
}

#[derive(Debug)]
struct Group {
    field: String,
    items: Vec<usize>,
    /// Whether the verdicts depend on the field's value alone, so that those on a value seen
    /// before can be reused (false when a matcher reads another field of the event).
    by_value: bool,
}

/// Items of one group of which one must hold (`holds`) or fail (`fails`): a clause's literals
/// on that group, tested with one word operation.
#[derive(Debug, Clone, Copy)]
struct Literal {
    group: usize,
    holds: u64,
    fails: u64,
}

impl Literal {
    /// Whether the literal holds, given its group's verdicts on the event.
    fn is_true(&self, bits: u64) -> bool {
        bits & self.holds != 0 || !bits & self.fails != 0
    }
}

/// One event's verdicts on the gate items, a group of them at a time, each computed at most
/// once.
#[derive(Default)]
struct Verdicts {
    groups: Vec<Option<u64>>,
}

/// What the gate works in for one event, kept per thread from one event to the next so that
/// nothing is allocated per event.
#[derive(Default)]
struct Scratch {
    verdicts: Verdicts,
    admitted: RuleSet,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Literals (an item, and whether it must hold or fail) of which at least one is true on every
/// match.
type Clause<'r> = Vec<(&'r CompiledDetectionItem, bool)>;

impl Gates {
    /// The gates of `rules`.
    pub(super) fn new(rules: &[CompiledRule]) -> Gates {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let mut items: Vec<CompiledDetectionItem> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut gate_rules = Vec::with_capacity(rules.len());
        for rule in rules {
            let mut clauses: Vec<Vec<(usize, bool)>> = Vec::new();
            for clause in necessary_clauses(rule) {
                let mut indices: Vec<(usize, bool)> = clause
                    .into_iter()
                    .map(|(item, holds)| {
                        let key =
                            format!("{:?}\0{:?}\0{:?}", item.field, item.exists, item.matcher);
                        let index = *by_key.entry(key).or_insert_with(|| {
                            items.push(item.clone());
                            items.len() - 1
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
            gate_rules.push(clauses);
        }
        let (slots, groups) = group_by_field(&items);
        let mut singles = vec![Vec::new(); groups.len()];
        let mut needed_by = vec![RuleSet::empty(rules.len()); groups.len()];
        let mut compounds = Vec::new();
        for (rule, clauses) in gate_rules.iter().enumerate() {
            for clause in clauses {
                match literals_by_group(clause, &slots).as_slice() {
                    [] => {}
                    &[literal] => {
                        singles[literal.group].push((rule, literal));
                        needed_by[literal.group].insert(rule);
                    }
                    literals => compounds.push((rule, literals.to_vec())),
                }
            }
        }
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by_key(|&group| std::cmp::Reverse(singles[group].len()));
        Gates {
            items,
            groups,
            rule_count: rules.len(),
            singles,
            needed_by,
            compounds,
            order,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// `then` of the rules (by index in the engine) that may match `event`: all but those with
    /// a clause of which no literal is true.
    pub(super) fn with_admitted<R>(
        &self,
        event: &impl Event,
        then: impl FnOnce(&RuleSet) -> R,
    ) -> R {
        SCRATCH.with(|scratch| {
            // Busy only if `then` asked again: that call works in a scratch of its own.
            let mut fresh = Scratch::default();
            let mut kept = scratch.try_borrow_mut().ok();
            let Scratch { verdicts, admitted } = kept.as_deref_mut().unwrap_or(&mut fresh);
            verdicts.groups.clear();
            verdicts.groups.resize(self.groups.len(), None);
            admitted.fill(self.rule_count);
            self.admit(event, verdicts, admitted);
            then(admitted)
        })
    }

    /// Removes from `admitted` the rules `event` refutes: a group at a time, every rule's single
    /// clauses on it with one word each, and no group read once no rule left needs it.
    fn admit(&self, event: &impl Event, verdicts: &mut Verdicts, admitted: &mut RuleSet) {
        for &group in &self.order {
            if !admitted.intersects(&self.needed_by[group]) {
                continue;
            }
            let bits = self.group_bits(group, event, verdicts);
            for &(rule, literal) in &self.singles[group] {
                if !literal.is_true(bits) {
                    admitted.remove(rule);
                }
            }
            if admitted.is_empty() {
                return;
            }
        }
        for (rule, literals) in &self.compounds {
            if admitted.contains(*rule)
                && !literals
                    .iter()
                    .any(|literal| literal.is_true(self.group_bits(literal.group, event, verdicts)))
            {
                admitted.remove(*rule);
            }
        }
    }

    fn group_bits(&self, group: usize, event: &impl Event, verdicts: &mut Verdicts) -> u64 {
        match verdicts.groups[group] {
            Some(bits) => bits,
            None => {
                let bits = self.group_verdicts(group, event);
                verdicts.groups[group] = Some(bits);
                bits
            }
        }
    }

    /// The verdicts of a group's items on `event`, a bit each: remembered for a value seen
    /// before, evaluated otherwise.
    fn group_verdicts(&self, group: usize, event: &impl Event) -> u64 {
        let Group {
            field,
            items,
            by_value,
        } = &self.groups[group];
        let value = event.get_field(field);
        let evaluate = || {
            items
                .iter()
                .enumerate()
                .filter(|&(_, &item)| item_holds(&self.items[item], value.as_ref(), event))
                .fold(0, |bits, (bit, _)| bits | 1 << bit)
        };
        if !by_value {
            return evaluate();
        }
        SEEN.with(|seen| {
            let mut seen = seen.borrow_mut();
            let (values, key) = seen.of(self.id, self.groups.len(), group);
            values.verdicts(value.as_ref(), key, evaluate)
        })
    }
}

/// Groups `items` by field, in order, 64 at most a group (a verdict is a bit of a `u64`).
fn group_by_field(items: &[CompiledDetectionItem]) -> (Vec<Slot>, Vec<Group>) {
    let mut slots = Vec::with_capacity(items.len());
    let mut groups: Vec<Group> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        // Gate items are on parsed fields (`of_detection`); a field-less one is never built.
        let field = item.field.clone().unwrap_or_default();
        let by_value = reads_only_its_value(&item.matcher);
        let open = groups
            .iter()
            .position(|g| g.field == field && g.by_value == by_value && g.items.len() < 64);
        let group = open.unwrap_or_else(|| {
            groups.push(Group {
                field,
                items: Vec::new(),
                by_value,
            });
            groups.len() - 1
        });
        slots.push(Slot {
            group,
            bit: 1 << groups[group].items.len(),
        });
        groups[group].items.push(index);
    }
    (slots, groups)
}

/// A clause's literals (item indices, and whether each must hold) as one [`Literal`] per group.
fn literals_by_group(clause: &[(usize, bool)], slots: &[Slot]) -> Vec<Literal> {
    let mut literals: Vec<Literal> = Vec::new();
    for &(item, holds) in clause {
        let Slot { group, bit } = slots[item];
        let literal = match literals.iter_mut().find(|l| l.group == group) {
            Some(literal) => literal,
            None => {
                literals.push(Literal {
                    group,
                    holds: 0,
                    fails: 0,
                });
                literals.last_mut().expect("just pushed")
            }
        };
        if holds {
            literal.holds |= bit;
        } else {
            literal.fails |= bit;
        }
    }
    literals
}

/// Whether `matcher`'s verdict depends on the value it is given alone: not on another field
/// (`fieldref`, placeholders).
fn reads_only_its_value(matcher: &CompiledMatcher) -> bool {
    match matcher {
        CompiledMatcher::FieldRef { .. } | CompiledMatcher::Expand { .. } => false,
        CompiledMatcher::Not(inner) | CompiledMatcher::TimestampPart { inner, .. } => {
            reads_only_its_value(inner)
        }
        CompiledMatcher::AnyOf(children)
        | CompiledMatcher::AllOf(children)
        | CompiledMatcher::CaseInsensitiveGroup { children, .. } => {
            children.iter().all(reads_only_its_value)
        }
        _ => true,
    }
}

/// A detection item as rsigma evaluates it (`eval_detection_item_with_bloom` without a bloom),
/// given the value of its field.
fn item_holds(
    item: &CompiledDetectionItem,
    value: Option<&EventValue<'_>>,
    event: &impl Event,
) -> bool {
    if let Some(expect_exists) = item.exists {
        return value.is_some_and(|v| !v.is_null()) == expect_exists;
    }
    match value {
        // rsigma's case-insensitive `Exact` lowercases into a new `String` for every
        // comparison; `ascii_lowercase_cow` lowercases the same way (`to_lowercase`, which is
        // ASCII lowercasing on ASCII) and borrows a string that is already lowercase, as the
        // parsed fields the gates read almost always are.
        Some(EventValue::Str(text)) => match &item.matcher {
            CompiledMatcher::Exact {
                value,
                case_insensitive: true,
            } => ascii_lowercase_cow(text) == value.as_str(),
            matcher => matcher.matches(&EventValue::Str(text.clone()), event),
        },
        Some(value) => item.matcher.matches(value, event),
        None => matches!(item.matcher, CompiledMatcher::Null),
    }
}

thread_local! {
    /// Verdicts of the gate groups on values already seen. A workload repeats a few verbs,
    /// resources and group lists thousands of times; evaluating a group's matchers costs tens
    /// of times a lookup. Per thread, so that the engine is shared without a lock; for one
    /// detector at a time (a second one's gates start afresh).
    static SEEN: RefCell<Seen> = RefCell::new(Seen::default());
}

/// The longest value remembered (a string, or a list of strings with a length each), in bytes,
/// and how many values a group remembers before it forgets them all: memory stays bounded
/// whatever the values (user names, say, can be many).
const SEEN_VALUE_MAX: usize = 512;
const SEEN_VALUES_MAX: usize = 1024;

/// foldhash rather than std's SipHash: a tenth of the cost on short keys, still seeded per
/// process, so the values an attacker chooses cannot be made to collide on purpose.
type Remembered<K> = HashMap<K, u64, foldhash::fast::RandomState>;

#[derive(Default)]
struct Seen {
    gates: Option<u64>,
    groups: Vec<SeenValues>,
    /// A list's key, built here to be looked up without an allocation.
    key: Vec<u8>,
}

#[derive(Default)]
struct SeenValues {
    strings: Remembered<Box<str>>,
    /// Lists of strings, by their items' lengths and bytes.
    lists: Remembered<Box<[u8]>>,
    integers: Remembered<i64>,
    /// Absent, null, false, true.
    others: [Option<u64>; 4],
}

impl Seen {
    fn of(&mut self, gates: u64, groups: usize, group: usize) -> (&mut SeenValues, &mut Vec<u8>) {
        if self.gates != Some(gates) {
            self.gates = Some(gates);
            self.groups.clear();
            self.groups.resize_with(groups, SeenValues::default);
        }
        (&mut self.groups[group], &mut self.key)
    }
}

impl SeenValues {
    /// The verdicts on `value`: remembered, or `evaluate`d (and remembered unless the value is
    /// a float, a map, or too long).
    fn verdicts(
        &mut self,
        value: Option<&EventValue<'_>>,
        key: &mut Vec<u8>,
        evaluate: impl FnOnce() -> u64,
    ) -> u64 {
        let slot = match value {
            None => &mut self.others[0],
            Some(EventValue::Null) => &mut self.others[1],
            Some(EventValue::Bool(b)) => &mut self.others[2 + usize::from(*b)],
            Some(EventValue::Int(n)) => return remember(&mut self.integers, n, evaluate),
            Some(EventValue::Str(text)) if text.len() <= SEEN_VALUE_MAX => {
                return remember(&mut self.strings, text.as_ref(), evaluate);
            }
            Some(EventValue::Array(items)) if list_key(items, key) => {
                return remember(&mut self.lists, key.as_slice(), evaluate);
            }
            Some(_) => return evaluate(),
        };
        *slot.get_or_insert_with(evaluate)
    }
}

/// The verdicts remembered for `key`, or `evaluate`d and remembered.
fn remember<K, Q>(seen: &mut Remembered<K>, key: &Q, evaluate: impl FnOnce() -> u64) -> u64
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq + From<Q::Owned>,
    Q: std::hash::Hash + Eq + ToOwned + ?Sized,
{
    if let Some(&bits) = seen.get(key) {
        return bits;
    }
    if seen.len() >= SEEN_VALUES_MAX {
        seen.clear();
    }
    let bits = evaluate();
    seen.insert(K::from(key.to_owned()), bits);
    bits
}

/// Writes into `key` a list of strings as a key no other list shares (each item's length,
/// then its bytes); false when the list holds anything else or is too long to remember.
fn list_key(items: &[EventValue<'_>], key: &mut Vec<u8>) -> bool {
    key.clear();
    for item in items {
        let EventValue::Str(text) = item else {
            return false;
        };
        if key.len() + 4 + text.len() > SEEN_VALUE_MAX {
            return false;
        }
        key.extend_from_slice(&(text.len() as u32).to_le_bytes());
        key.extend_from_slice(text.as_bytes());
    }
    true
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
    use crate::detect::rules::{RuleFile, default_pack, default_tests};
    use crate::detect::{AuditView, Detector};

    fn rule(title: &str, selection: &str) -> RuleFile {
        RuleFile {
            name: format!("{title}.yml"),
            text: format!(
                "title: {title}\nlogsource:\n  product: kubernetes\n  service: audit\n\
                 detection:\n  selection:\n{selection}  condition: selection\nlevel: high\n"
            ),
        }
    }

    fn fired(detector: &Detector, text: &str) -> Vec<String> {
        let event = AuditEvent::parse(text).unwrap();
        let mut keys: Vec<String> = detector
            .matches(&event, text)
            .into_iter()
            .map(|m| m.rule.key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// A verdict remembered for a value is the one evaluating it gives: the same event fires
    /// the same rules after other values were seen, and a gate item that compares with another
    /// field (`fieldref`) is evaluated again on each event, not reused for the same value.
    #[test]
    fn remembered_verdicts_depend_on_the_value_alone() {
        let detector = Detector::load(&[
            rule(
                "Verb Named Like The Resource",
                "    verb|fieldref: objectRef.resource\n",
            ),
            rule(
                "Secret Deleted",
                "    verb: delete\n    objectRef.resource: secrets\n",
            ),
        ])
        .unwrap();
        let event = |verb: &str, resource: &str| {
            format!(
                r#"{{"kind":"Event","verb":"{verb}","stage":"ResponseComplete","objectRef":{{"resource":"{resource}"}}}}"#
            )
        };
        let verb_named = "Verb Named Like The Resource";
        let deleted = "Secret Deleted";
        for _ in 0..2 {
            assert_eq!(fired(&detector, &event("delete", "delete")), [verb_named]);
            assert!(fired(&detector, &event("delete", "pods")).is_empty());
            assert_eq!(fired(&detector, &event("delete", "secrets")), [deleted]);
            assert!(fired(&detector, &event("get", "secrets")).is_empty());
            assert_eq!(fired(&detector, &event("get", "get")), [verb_named]);
        }
        // Another detector on the same thread starts from nothing it has not seen itself.
        let other = Detector::load(&[rule("Get", "    verb: get\n")]).unwrap();
        assert_eq!(fired(&other, &event("get", "pods")), ["Get"]);
        assert!(fired(&other, &event("delete", "pods")).is_empty());
        assert_eq!(fired(&detector, &event("delete", "secrets")), [deleted]);
    }

    /// Rule sets span words: with more than 64 rules, each still answers for itself.
    #[test]
    fn rule_sets_hold_any_number_of_rules() {
        let mut set = super::RuleSet::all(130);
        assert_eq!(set.iter().count(), 130);
        assert!(set.contains(129));
        set.remove(0);
        set.remove(64);
        set.remove(129);
        assert_eq!(set.iter().take(2).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(set.iter().count(), 127);
        assert!(!set.contains(64));
        let mut one = super::RuleSet::empty(130);
        assert!(one.is_empty() && !one.intersects(&set));
        one.insert(129);
        assert!(!one.intersects(&set));
        one.insert(65);
        assert!(one.intersects(&set));
        assert_eq!(one.iter().collect::<Vec<_>>(), [65, 129]);
        assert_eq!(super::RuleSet::all(64).iter().count(), 64);
    }

    /// A pack of more than 64 rules: the gate admits the one rule whose verb the event has,
    /// wherever it is in the pack.
    #[test]
    fn gates_admit_rules_past_the_first_word() {
        let files: Vec<RuleFile> = (0..70)
            .map(|i| rule(&format!("Verb {i:02}"), &format!("    verb: verb{i}\n")))
            .collect();
        let detector = Detector::load(&files).unwrap();
        for i in [0, 63, 64, 69] {
            let text = format!(r#"{{"kind":"Event","verb":"verb{i}","stage":"ResponseComplete"}}"#);
            assert_eq!(fired(&detector, &text), [format!("Verb {i:02}")]);
        }
        assert!(fired(&detector, r#"{"kind":"Event","verb":"verb70"}"#).is_empty());
    }

    /// Lists are remembered by their items, not by their text run together: `["a", "b"]` and
    /// `["ab"]` are told apart.
    #[test]
    fn remembered_lists_are_told_apart_by_their_items() {
        let detector = Detector::load(&[rule("Group AB", "    user.groups: ab\n")]).unwrap();
        let event = |groups: &str| {
            format!(r#"{{"kind":"Event","verb":"get","user":{{"groups":{groups}}}}}"#)
        };
        for _ in 0..2 {
            for (groups, fires) in [
                // A list the gate refuses first: were its key the same as the next one's, the
                // next would be refused too, and could not fire.
                (r#"["a","b"]"#, false),
                (r#"["ab"]"#, true),
                (r#"["a","b","ab"]"#, true),
                (r#"["aba"]"#, false),
                (r#"["ab","a"]"#, true),
                (r#"[]"#, false),
            ] {
                assert_eq!(
                    !fired(&detector, &event(groups)).is_empty(),
                    fires,
                    "{groups}"
                );
            }
        }
    }

    /// The gated path finds what the engine's own `evaluate` (candidate index, every rule it
    /// admits) finds, with the same selections, on every test event of the pack and on each
    /// of them with every verb and with another resource and status: the gate may only skip
    /// rules that cannot match.
    #[test]
    fn gated_matches_are_the_engines_matches() {
        let detector = Detector::load(&default_pack()).unwrap().explain();
        let gates = &detector.gates;
        let gated = (0..gates.rule_count)
            .filter(|&rule| {
                gates.needed_by.iter().any(|rules| rules.contains(rule))
                    || gates.compounds.iter().any(|(r, _)| *r == rule)
            })
            .count();
        assert!(gated > 20, "most rules have a gate: {gated}");
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
