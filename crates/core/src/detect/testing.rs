//! `eks-audit rules test`: every rule file's test events, `rules/tests/<rule>/fires*.json` (the
//! rule must match) and `misses*.json` (a near miss it must not match).

use std::collections::BTreeMap;

use super::Detector;
use super::rules::RuleTest;
use crate::audit::AuditEvent;

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
    let mut rules_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for rule in detector.rules() {
        rules_of
            .entry(stem(&rule.file))
            .or_default()
            .push(rule.key.as_str());
    }
    let mut results = Vec::new();
    for test in tests {
        let failure = match rules_of.get(test.rule.as_str()) {
            None => Some(format!("no rule file `{}` is loaded", test.rule)),
            Some(keys) => verdict(detector, test, keys),
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
                    failure: Some(format!(
                        "no test event: add tests/{stem}/{kind}.json, an event the rule must {}",
                        if must_fire {
                            "match"
                        } else {
                            "not match (a near miss)"
                        }
                    )),
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
