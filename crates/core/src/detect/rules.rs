//! Loading Sigma rule files: the default pack compiled into the binary, the user's own files,
//! and the field mapping that lets SigmaHQ's abstract Kubernetes fields match audit JSON. Every
//! error names the file and, where it can be found, the line.

use std::fmt;

use rsigma_eval::pipeline::{Pipeline, apply_pipelines, parse_pipeline};
use rsigma_parser::{Detection, SigmaCollection, SigmaRule, parse_sigma_yaml};

/// One rule file's text, with the name errors and findings cite.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// Where the text came from: a path, or `default:<file>` for the built-in pack.
    pub name: String,
    /// The YAML text (one or more Sigma documents).
    pub text: String,
}

/// A rule's test event from the pack: `rules/tests/<rule>/<fires|misses>*.json`.
#[derive(Debug, Clone)]
pub struct RuleTest {
    /// The rule file's stem (`pod_exec` for `rules/pod_exec.yml`).
    pub rule: String,
    /// The test file's name (`fires.json`, `misses-deployment.json`).
    pub file: String,
    /// The audit event, JSON.
    pub text: String,
}

impl RuleTest {
    /// Whether the rule must fire on this event (`fires*.json`) or stay silent (`misses*.json`).
    pub fn must_fire(&self) -> bool {
        self.file.starts_with("fires")
    }

    /// The JSON text of each audit event of the test: the one event, or each of a correlation
    /// rule's sequence (a JSON array). Empty when the text is neither.
    pub fn events(&self) -> Vec<&str> {
        if self.text.trim_start().starts_with('[') {
            serde_json::from_str::<Vec<&serde_json::value::RawValue>>(&self.text)
                .map(|events| events.into_iter().map(|e| e.get()).collect())
                .unwrap_or_default()
        } else {
            vec![self.text.as_str()]
        }
    }
}

mod pack {
    include!(concat!(env!("OUT_DIR"), "/default_rules.rs"));
}

/// The project's own rule pack (`rules/*.yml`), built into the binary.
pub fn default_pack() -> Vec<RuleFile> {
    pack::RULES
        .iter()
        .map(|(file, text)| RuleFile {
            name: format!("default:{file}"),
            text: (*text).to_owned(),
        })
        .collect()
}

/// The test events of the default pack.
pub fn default_tests() -> Vec<RuleTest> {
    pack::TESTS
        .iter()
        .map(|(rule, file, text)| RuleTest {
            rule: (*rule).to_owned(),
            file: (*file).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

/// The processing pipeline that maps SigmaHQ's abstract Kubernetes audit fields to audit JSON
/// paths (`rules/pipelines/sigmahq-kubernetes.yml`). Applied to every rule: the audit event's own
/// paths are not in it, so rules written against them are unchanged.
pub const FIELD_MAPPING: &str = pack::FIELD_MAPPING;

/// A rule file that cannot be used, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    /// The file, as [`RuleFile::name`].
    pub file: String,
    /// The 1-based line, when it could be found.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The SigmaHQ field mapping as a processing pipeline.
pub fn field_mapping() -> Pipeline {
    parse_pipeline(FIELD_MAPPING).expect("the built-in field mapping is tested to parse")
}

/// [`parse`] of every file, in order, the files shared out between the CPUs: reading the
/// YAML of the default pack is two thirds of compiling it, which a Lambda pays at each cold
/// start and `eks-audit invoke` at each run.
pub fn parse_all(
    files: &[RuleFile],
    mapping: &Pipeline,
) -> Vec<Result<SigmaCollection, Vec<RuleError>>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    parse_on_threads(files, mapping, threads)
}

/// [`parse_all`] on up to `threads` threads, this one included.
fn parse_on_threads(
    files: &[RuleFile],
    mapping: &Pipeline,
    threads: usize,
) -> Vec<Result<SigmaCollection, Vec<RuleError>>> {
    let per_thread = files.len().div_ceil(threads.max(1)).max(1);
    let parse_chunk = |chunk: &[RuleFile]| chunk.iter().map(|file| parse(file, mapping)).collect();
    let mut chunks = files.chunks(per_thread);
    let Some(first) = chunks.next() else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        // The other chunks on threads of their own (or here, should a thread not start).
        let others: Vec<_> = chunks
            .map(|chunk| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || parse_chunk(chunk))
                    .map_err(|_| chunk)
            })
            .collect();
        let mut parsed: Vec<_> = parse_chunk(first);
        for other in others {
            parsed.extend(match other {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(chunk) => parse_chunk(chunk),
            });
        }
        parsed
    })
}

/// Parses one rule file and checks that every rule in it can run on audit events: valid YAML
/// and Sigma, known modifiers, and field names (after `mapping`) that exist in an audit event.
/// All problems of the file are returned, not only the first.
pub fn parse(file: &RuleFile, mapping: &Pipeline) -> Result<SigmaCollection, Vec<RuleError>> {
    let error = |message: String| RuleError {
        file: file.name.clone(),
        line: locate(&file.text, &message),
        message,
    };
    let collection = match parse_sigma_yaml(&file.text) {
        Ok(collection) => collection,
        Err(e) => return Err(vec![error(e.to_string())]),
    };
    let mut errors: Vec<RuleError> = collection.errors.iter().cloned().map(error).collect();
    if collection.rules.is_empty() && collection.correlations.is_empty() && errors.is_empty() {
        errors.push(error("no Sigma rule in the file".to_owned()));
    }
    for rule in &collection.rules {
        let mut mapped = rule.clone();
        if let Err(e) = apply_pipelines(std::slice::from_ref(mapping), &mut mapped) {
            errors.push(error(format!("rule `{}`: {e}", rule.title)));
            continue;
        }
        for field in unknown_fields(&mapped) {
            errors.push(RuleError {
                file: file.name.clone(),
                line: locate_field(&file.text, &field),
                message: format!(
                    "rule `{}`: unknown field `{field}`: not a path of an audit.k8s.io Event \
                     (see docs/detections.md for the fields and the SigmaHQ field mapping)",
                    rule.title
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(collection)
    } else {
        Err(errors)
    }
}

/// The top-level members of an audit.k8s.io/v1 Event, and the known members of its typed parts.
/// `requestObject`, `responseObject`, `user.extra` and `annotations` hold anything.
const EVENT_FIELDS: &[&str] = &[
    "kind",
    "apiVersion",
    "level",
    "auditID",
    "stage",
    "requestURI",
    "verb",
    "user",
    "impersonatedUser",
    "sourceIPs",
    "userAgent",
    "objectRef",
    "responseStatus",
    "requestObject",
    "responseObject",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "annotations",
];
const USER_FIELDS: &[&str] = &["username", "uid", "groups", "extra"];
const OBJECT_REF_FIELDS: &[&str] = &[
    "resource",
    "namespace",
    "name",
    "uid",
    "apiGroup",
    "apiVersion",
    "resourceVersion",
    "subresource",
];
const STATUS_FIELDS: &[&str] = &["code", "status", "reason", "message", "metadata", "details"];

/// The fields of `rule` that no audit event has.
fn unknown_fields(rule: &SigmaRule) -> Vec<String> {
    let mut fields = Vec::new();
    for detection in rule.detection.named.values() {
        collect_fields(detection, "", &mut fields);
    }
    fields.retain(|field| !is_event_path(field));
    fields.sort();
    fields.dedup();
    fields
}

fn collect_fields(detection: &Detection, prefix: &str, out: &mut Vec<String>) {
    match detection {
        Detection::AllOf(items) => out.extend(
            items
                .iter()
                .filter_map(|item| item.field.name.as_ref())
                .map(|name| join(prefix, name)),
        ),
        Detection::AnyOf(list) | Detection::And(list) => {
            list.iter().for_each(|d| collect_fields(d, prefix, out))
        }
        Detection::Keywords(_) => {}
        Detection::ArrayMatch { field, body, .. } => {
            out.push(join(prefix, field));
            collect_fields(body, &join(prefix, field), out);
        }
        Detection::Conditional { named, .. } => {
            named.values().for_each(|d| collect_fields(d, prefix, out))
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

pub(super) fn is_event_path(path: &str) -> bool {
    let mut parts = path.split('.');
    let head = parts.next().unwrap_or_default();
    let head = head.split('[').next().unwrap_or_default();
    let next = parts
        .next()
        .map(|n| n.split('[').next().unwrap_or_default());
    if !EVENT_FIELDS.contains(&head) {
        return false;
    }
    let known = match head {
        "user" | "impersonatedUser" => USER_FIELDS,
        "objectRef" => OBJECT_REF_FIELDS,
        "responseStatus" => STATUS_FIELDS,
        _ => return true,
    };
    next.is_none_or(|n| known.contains(&n))
}

/// The line an error message points at: `line N` when the message gives it, else the first line
/// holding a token the message quotes.
pub(super) fn locate(text: &str, message: &str) -> Option<usize> {
    if let Some(at) = message.find("line ") {
        let digits: String = message[at + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(line) = digits.parse() {
            return Some(line);
        }
    }
    message
        .split(['\'', '`'])
        .skip(1)
        .step_by(2)
        .filter(|token| !token.is_empty())
        .find_map(|token| line_of(text, |line| line.contains(token)))
}

/// The line where `field` is used as a key (`field:` or `field|modifier:`).
fn locate_field(text: &str, field: &str) -> Option<usize> {
    let last = field.rsplit('.').next().unwrap_or(field);
    line_of(text, |line| {
        let line = line.trim_start().trim_start_matches("- ");
        line.starts_with(&format!("{field}:"))
            || line.starts_with(&format!("{field}|"))
            || line.starts_with(&format!("{last}:"))
            || line.starts_with(&format!("{last}|"))
    })
}

fn line_of(text: &str, matches: impl Fn(&str) -> bool) -> Option<usize> {
    text.lines().position(matches).map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However the files are shared out, each gets the answer it gets alone, in file order:
    /// errors are reported per file, in that order.
    #[test]
    fn files_parsed_on_threads_keep_their_answers_and_order() {
        let mapping = field_mapping();
        let mut files = default_pack();
        let bad = [
            (0, "title: [unclosed"),
            (5, "not: a rule"),
            (files.len(), "- a list"),
        ];
        for (at, text) in bad {
            let name = format!("bad-{at}.yml");
            files.insert(
                at,
                RuleFile {
                    name,
                    text: text.to_owned(),
                },
            );
        }
        // A parsed file by its rules' and correlations' titles (its maps print in any order).
        let answers = |parsed: Vec<Result<SigmaCollection, Vec<RuleError>>>| -> Vec<_> {
            let titles = |collection: SigmaCollection| {
                let rules = collection.rules.into_iter().map(|rule| rule.title);
                let correlations = collection.correlations.into_iter().map(|rule| rule.title);
                rules.chain(correlations).collect::<Vec<_>>()
            };
            parsed
                .into_iter()
                .map(|parsed| parsed.map(titles))
                .collect()
        };
        let alone = answers(files.iter().map(|file| parse(file, &mapping)).collect());
        assert_eq!(
            alone.iter().filter(|parsed| parsed.is_err()).count(),
            bad.len()
        );
        for threads in [1, 2, 3, 7, files.len() + 1] {
            for count in [0, 1, 2, files.len()] {
                let parsed = answers(parse_on_threads(&files[..count], &mapping, threads));
                assert_eq!(parsed, alone[..count], "{count} files on {threads} threads");
            }
        }
    }
}
