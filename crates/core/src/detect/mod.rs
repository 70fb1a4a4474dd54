//! Sigma detection rules on every kept audit event (contract §12): rules are parsed, mapped and
//! compiled once ([`Detector::load`]), then each event is matched through [`AuditView`], which
//! answers the common fields from the already parsed event and parses the rest only when a rule
//! reaches it. A match becomes an OCSF Detection Finding ([`finding`]).
//!
//! Sigma correlation rules ([`correlate`]) count the matches of detection rules over the events
//! of one invocation: each invocation asks for fresh state ([`Detector::correlations`]) and
//! hands it to [`Detector::findings_correlating`] with every event.

pub mod correlate;
pub mod finding;
mod gate;
pub mod ip_list;
pub mod rules;
pub mod testing;
mod view;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use rsigma_eval::Engine;
use rsigma_parser::Level;
use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::schema::EventContext;
use correlate::Compiled;
pub use correlate::{Correlations, Fired};
pub use rules::{RuleError, RuleFile, RuleTest};
pub use view::AuditView;

/// What a matched rule says about itself, for findings.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    /// The rule's `id`, else its title: what findings name it by.
    pub key: String,
    /// `title`.
    pub title: String,
    /// `description`.
    pub description: Option<String>,
    /// `author`: kept in every finding, as the Detection Rule License asks.
    pub author: Option<String>,
    /// `level`: the finding's severity.
    pub level: Option<Level>,
    /// `tags`: ATT&CK tactics and techniques among them.
    pub tags: Vec<String>,
    /// `references`.
    pub references: Vec<String>,
    /// The file the rule came from.
    pub file: String,
    /// A correlation rule, whose findings come from counting other rules' matches.
    pub correlation: bool,
    /// How correlation rules refer to this rule (its id, its name), when some count it.
    pub counted_as: Vec<String>,
    /// A rule that makes no finding of its own: one a correlation of its own file counts with
    /// `generate: false` (the Sigma default), and none with `generate: true`.
    pub silent: bool,
}

/// One rule that matched one event.
#[derive(Debug, Clone)]
pub struct Match<'d> {
    /// The rule.
    pub rule: &'d RuleInfo,
    /// The detections (`selection`, ...) that matched, when asked for ([`Detector::explain`]).
    pub selections: Vec<String>,
}

/// One finding: the OCSF JSON line and what the shells count it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The OCSF Detection Finding, one JSON line ending in `\n`.
    pub line: Vec<u8>,
    /// The rule's key ([`RuleInfo::key`]).
    pub rule: String,
    /// OCSF `severity` (`High`, ...), for metrics.
    pub severity: &'static str,
}

impl Finding {
    fn new(rule: &RuleInfo, value: &serde_json::Value) -> Finding {
        let mut line = serde_json::to_vec(value).expect("a JSON tree always serializes");
        line.push(b'\n');
        Finding {
            line,
            rule: rule.key.clone(),
            severity: finding::severity(rule.level).1,
        }
    }
}

/// Compiled rules, ready for every event of the process's life.
pub struct Detector {
    engine: Engine,
    gates: gate::Gates,
    rules: HashMap<String, RuleInfo>,
    /// The correlation rules; `None` when none is loaded, so that nothing is spent on them.
    correlations: Option<Compiled>,
    explain: bool,
    stats: Counters,
}

/// How much work detection did, for profiling: relaxed atomics, as the detector is shared.
#[derive(Debug, Default)]
struct Counters {
    events: AtomicU64,
    trees: AtomicU64,
    matches: AtomicU64,
}

/// What [`Detector::stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectStats {
    /// Events evaluated.
    pub events: u64,
    /// Events whose JSON had to be parsed into a tree, because a rule reached an open field.
    pub trees: u64,
    /// Rule matches.
    pub matches: u64,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("rules", &self.rules.len())
            .field("explain", &self.explain)
            .finish()
    }
}

impl Detector {
    /// Parses, checks and compiles `files`. Any error in any file fails the whole load, with
    /// every error found: a detector must not run with half its rules and say nothing.
    pub fn load(files: &[RuleFile]) -> Result<Detector, Vec<RuleError>> {
        let mapping = rules::field_mapping();
        let mut engine = Engine::new_with_pipeline(mapping.clone());
        let mut infos = HashMap::new();
        let mut names = HashMap::new();
        let mut correlations = Vec::new();
        let mut errors = Vec::new();
        for (file, parsed) in files.iter().zip(rules::parse_all(files, &mapping)) {
            let collection = match parsed {
                Ok(collection) => collection,
                Err(mut file_errors) => {
                    errors.append(&mut file_errors);
                    continue;
                }
            };
            let error = |message: String| RuleError {
                file: file.name.clone(),
                line: None,
                message,
            };
            // Checked once every file's detection rules are known: one may count another's.
            correlations.extend(collection.correlations.iter().map(|rule| correlate::Found {
                file,
                rule: rule.clone(),
            }));
            for rule in &collection.rules {
                let key = rule.id.clone().unwrap_or_else(|| rule.title.clone());
                if let Some(other) = infos.get(&key).map(|i: &RuleInfo| i.file.clone()) {
                    errors.push(error(format!(
                        "rule `{}`: id `{key}` is also the id of a rule in {other}",
                        rule.title
                    )));
                    continue;
                }
                if let Err(e) = engine.add_rule(rule) {
                    errors.push(error(format!("rule `{}`: {e}", rule.title)));
                    continue;
                }
                if let Some(name) = &rule.name {
                    names.entry(name.clone()).or_insert_with(|| key.clone());
                }
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
                        correlation: false,
                        counted_as: Vec::new(),
                        silent: false,
                    },
                );
            }
        }
        let correlations = correlate::load(correlations, &mut infos, &names, &mapping, &mut errors);
        if errors.is_empty() {
            Ok(Detector {
                gates: gate::Gates::new(engine.rules()),
                engine,
                rules: infos,
                correlations,
                explain: false,
                stats: Counters::default(),
            })
        } else {
            Err(errors)
        }
    }

    /// Records which detections matched, in [`Match::selections`] and the findings'
    /// `unmapped.matched_selections` (`eks-audit detect --explain`).
    pub fn explain(mut self) -> Detector {
        // The per-rule evaluator records the matched detections at every detail level.
        self.explain = true;
        self
    }

    /// How many rules are loaded.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The loaded rules, in no particular order.
    pub fn rules(&self) -> impl Iterator<Item = &RuleInfo> {
        self.rules.values()
    }

    /// Events evaluated, trees built and matches, since the detector was loaded.
    pub fn stats(&self) -> DetectStats {
        DetectStats {
            events: self.stats.events.load(Ordering::Relaxed),
            trees: self.stats.trees.load(Ordering::Relaxed),
            matches: self.stats.matches.load(Ordering::Relaxed),
        }
    }

    /// The rules that match `event`, whose JSON text is `text`.
    pub fn matches(&self, event: &AuditEvent<'_>, text: &str) -> Vec<Match<'_>> {
        let view = AuditView::new(event, text);
        // The engine's own per-rule evaluation, on the rules whose gate admits the event, in
        // the engine's order (`Engine::evaluate` answers in rule order too).
        let rules = self.engine.rules();
        let results: Vec<_> = self.gates.with_admitted(&view, |admitted| {
            admitted
                .iter()
                .filter_map(|index| rsigma_eval::evaluate_rule(&rules[index], &view))
                .collect()
        });
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        self.stats
            .trees
            .fetch_add(u64::from(view.parsed_tree()), Ordering::Relaxed);
        self.stats
            .matches
            .fetch_add(results.len() as u64, Ordering::Relaxed);
        results
            .into_iter()
            .filter_map(|result| {
                let key = result
                    .header
                    .rule_id
                    .clone()
                    .unwrap_or_else(|| result.header.rule_title.clone());
                let rule = self.rules.get(&key)?;
                let mut selections: Vec<String> = result
                    .as_detection()
                    .map(|d| d.matched_selections.clone())
                    .unwrap_or_default();
                if !self.explain {
                    selections.clear();
                }
                Some(Match { rule, selections })
            })
            .collect()
    }

    /// Whether correlation rules are loaded.
    pub fn has_correlations(&self) -> bool {
        self.correlations.is_some()
    }

    /// Fresh correlation state for one invocation, to hand to
    /// [`findings_correlating`](Self::findings_correlating) with each of its events; `None`
    /// when no correlation rule is loaded.
    pub fn correlations(&self) -> Option<Correlations> {
        self.correlations.as_ref().map(Compiled::session)
    }

    /// The findings of `event`, one per matching rule, as OCSF lines. Correlation rules are not
    /// evaluated: see [`findings_correlating`](Self::findings_correlating).
    pub fn findings(
        &self,
        event: &AuditEvent<'_>,
        text: &str,
        context: &EventContext<'_>,
        time: Option<OffsetDateTime>,
    ) -> Vec<Finding> {
        self.findings_correlating(None, event, text, context, time)
    }

    /// [`findings`](Self::findings), and with `correlations`, the event also counts for the
    /// correlation rules, at its `time` (an event without one is not counted), and a correlation
    /// that fires on it makes a finding whose evidence is this event.
    pub fn findings_correlating(
        &self,
        correlations: Option<&mut Correlations>,
        event: &AuditEvent<'_>,
        text: &str,
        context: &EventContext<'_>,
        time: Option<OffsetDateTime>,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut counted: Vec<&str> = Vec::new();
        for m in self.matches(event, text) {
            counted.extend(m.rule.counted_as.iter().map(String::as_str));
            if !m.rule.silent {
                let value = finding::render(m.rule, event, context, time, &m.selections);
                findings.push(Finding::new(m.rule, &value));
            }
        }
        let (Some(correlations), Some(time)) = (correlations, time) else {
            return findings;
        };
        if counted.is_empty() {
            return findings;
        }
        let view = AuditView::new(event, text);
        let audit_id = event.audit_id.non_empty();
        for fired in correlations.observe(&view, audit_id, &counted, time.unix_timestamp()) {
            let Some(rule) = self.rules.get(&fired.rule).filter(|r| !r.silent) else {
                continue;
            };
            let value = finding::render_correlation(rule, event, context, time, &fired);
            findings.push(Finding::new(rule, &value));
        }
        findings
    }
}
