//! `eks-audit rules test`: every rule file's test events, `rules/tests/<rule>/fires*.json` (the
//! rule must match) and `misses*.json` (a near miss it must not match).
//!
//! A file holding a correlation rule is tested by sequences: each test file holds a JSON array
//! of audit events, counted in order as one invocation; `fires*.json` must make one of the
//! file's correlation rules fire, `misses*.json` none of them.

use std::collections::BTreeMap;

use super::rules::RuleTest;
use super::{Detector, RuleInfo};
use crate::audit::AuditEvent;
use crate::schema::EventContext;
use crate::schema::time::event_time;

/// The verdict on one test event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The rule file's stem.
    pub rule: String,
    /// The test file.
    pub file: String,
    /// `None` when the rule behaved as the file's name says; else what went wrong.
    pub failure: Option<String>,
}

/// The stem of a rule file name: `pod_exec` for `rules/pod_exec.yml` or `default:pod_exec.yml`.
pub fn stem(file: &str) -> &str {
    let name = file.rsplit(['/', '\\', ':']).next().unwrap_or(file);
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

/// Runs `tests` against `detector`, and reports each rule file of the detector that lacks a
/// test that fires or one that misses.
pub fn run(detector: &Detector, tests: &[RuleTest]) -> Vec<TestResult> {
    // The rules of each file, by stem.
    let mut rules_of: BTreeMap<&str, Vec<&RuleInfo>> = BTreeMap::new();
    for rule in detector.rules() {
        rules_of.entry(stem(&rule.file)).or_default().push(rule);
    }
    let mut results = Vec::new();
    for test in tests {
        let failure = match rules_of.get(test.rule.as_str()) {
            None => Some(format!("no rule file `{}` is loaded", test.rule)),
            Some(rules) if rules.iter().any(|r| r.correlation) => {
                let keys: Vec<&str> = rules
                    .iter()
                    .filter(|r| r.correlation)
                    .map(|r| r.key.as_str())
                    .collect();
                sequence_verdict(detector, test, &keys)
            }
            Some(rules) => {
                let keys: Vec<&str> = rules.iter().map(|r| r.key.as_str()).collect();
                verdict(detector, test, &keys)
            }
        };
        results.push(TestResult {
            rule: test.rule.clone(),
            file: test.file.clone(),
            failure,
        });
    }
    for stem in rules_of.keys() {
        for (kind, must_fire) in [("fires", true), ("misses", false)] {
            let has = tests
                .iter()
                .any(|t| t.rule == *stem && t.must_fire() == must_fire);
            if !has {
                results.push(TestResult {
                    rule: (*stem).to_owned(),
                    file: format!("{kind}*.json"),
                    failure: Some(if rules_of[stem].iter().any(|r| r.correlation) {
                        format!(
                            "no test: add tests/{stem}/{kind}.json, an array of events the \
                             correlation must {}",
                            if must_fire {
                                "fire on"
                            } else {
                                "not fire on (a near miss)"
                            }
                        )
                    } else {
                        format!(
                            "no test event: add tests/{stem}/{kind}.json, an event the rule must {}",
                            if must_fire {
                                "match"
                            } else {
                                "not match (a near miss)"
                            }
                        )
                    }),
                });
            }
        }
    }
    results
}

fn verdict(detector: &Detector, test: &RuleTest, keys: &[&str]) -> Option<String> {
    let event = match AuditEvent::parse(&test.text) {
        Ok(event) => event,
        Err(e) => return Some(format!("the test event cannot be read: {e}")),
    };
    let fired = detector
        .matches(&event, &test.text)
        .iter()
        .any(|m| keys.contains(&m.rule.key.as_str()));
    match (test.must_fire(), fired) {
        (true, false) => Some("the rule did not match an event it must match".to_owned()),
        (false, true) => Some("the rule matched a near miss it must not match".to_owned()),
        _ => None,
    }
}

/// A correlation's test: the events of the file, in order, as one invocation.
fn sequence_verdict(detector: &Detector, test: &RuleTest, keys: &[&str]) -> Option<String> {
    let texts: Vec<&serde_json::value::RawValue> = match serde_json::from_str(&test.text) {
        Ok(texts) => texts,
        Err(e) => {
            return Some(format!(
                "the test of a correlation rule is a JSON array of audit events: {e}"
            ));
        }
    };
    let mut correlations = detector.correlations();
    let mut fired = 0;
    for (index, text) in texts.iter().enumerate() {
        let text = text.get();
        let event = match AuditEvent::parse(text) {
            Ok(event) => event,
            Err(e) => return Some(format!("event {index} cannot be read: {e}")),
        };
        let time = event_time(&event, None);
        if time.is_none() {
            return Some(format!("event {index} has no time"));
        }
        let context = EventContext::default();
        fired += detector
            .findings_correlating(correlations.as_mut(), &event, text, &context, time)
            .iter()
            .filter(|f| keys.contains(&f.rule.as_str()))
            .count();
    }
    match (test.must_fire(), fired) {
        (true, 0) => Some(format!(
            "the correlation did not fire on the {} events it must fire on",
            texts.len()
        )),
        (false, n) if n > 0 => Some(format!(
            "the correlation fired {n} time(s) on a near miss of {} events",
            texts.len()
        )),
        _ => None,
    }
}
