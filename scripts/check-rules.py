#!/usr/bin/env python3
"""Check the project's Sigma rule pack for shape, not for matching.

    .venv/bin/python scripts/check-rules.py [rules-dir]    # default: rules/

For every rules/<stem>.yml (one rule per file):
  * the keys title, id, status, description, references, author, date, tags, logsource,
    detection, falsepositives and level are present, and nothing else at the top level
    but the optional Sigma keys (related, fields, modified, name, scope, license);
  * id is a UUID version 4, unique across the pack;
  * status and level are Sigma values; date is YYYY-MM-DD;
  * tags hold at least one ATT&CK tactic (attack.<name>) and one technique
    (attack.tNNNN or attack.tNNNN.NNN), all lower case and without duplicates;
  * logsource is product: kubernetes, service: audit;
  * falsepositives and references are non-empty lists of strings;
  * detection has a condition, every identifier the condition names exists (or, for
    `1 of x_*`, at least one detection starts with x_), no modifier outside the standard set
    the pack allows, and no selection on `stage` (only ResponseComplete events are evaluated);
  * the file name is the snake_case stem of a lower-case name;
  * rules/tests/<stem>/ has fires*.json and misses*.json files, each one JSON object shaped
    like an audit.k8s.io/v1 Event at stage ResponseComplete, with auditIDs unique across all
    the test events.
A file with a Sigma correlation rule holds the detection rules it counts and then the
correlation (YAML documents separated by ---): each detection rule has a `name` the correlation
refers to, the correlation has `correlation` (type, rules, group-by, timespan, condition) where
a detection rule has logsource and detection, its rules are the file's detection rules, and its
tests are sequences: each test file holds a JSON array of at least two such events, in time
order.
Also: every directory under rules/tests/ belongs to a rule, and the events under
tests/fixtures/sigma-tests/ (if present) pass the same event checks.

Matching itself is checked by `eks-audit rules test rules/`. Needs PyYAML.
Exit status 0 if everything passes, 1 otherwise (each problem is printed).
"""

import json
import re
import sys
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ["title", "id", "status", "description", "references", "author", "date", "tags",
            "logsource", "detection", "falsepositives", "level"]
OPTIONAL = {"related", "fields", "modified", "name", "scope", "license", "taxonomy"}
STATUSES = {"stable", "test", "experimental", "deprecated", "unsupported"}
LEVELS = {"informational", "low", "medium", "high", "critical"}
MODIFIERS = {"contains", "startswith", "endswith", "all", "re", "cidr", "exists"}
TACTIC = re.compile(r"^attack\.[a-z]+(-[a-z]+)*$")
TECHNIQUE = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")
STEM = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")
CONDITION_WORDS = {"and", "or", "not", "of", "them", "all", "1", "any"}
CORRELATION_REQUIRED = ["title", "id", "status", "description", "references", "author", "date",
                        "tags", "correlation", "falsepositives", "level"]
CORRELATION_TYPES = {"event_count", "value_count", "temporal", "temporal_ordered", "value_sum",
                     "value_avg", "value_percentile", "value_median"}
TIMESPAN = re.compile(r"^\d+[smhdwMy]$")
EVENT_KEYS = ["kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user",
              "sourceIPs", "responseStatus", "requestReceivedTimestamp", "stageTimestamp"]


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, what):
        self.items.append(f"{where}: {what}")


def check_detection(where, detection, problems):
    if not isinstance(detection, dict) or "condition" not in detection:
        problems.add(where, "detection has no condition")
        return
    names = [k for k in detection if k != "condition"]
    if not names:
        problems.add(where, "detection has no selections")
    for name in names:
        body = detection[name]
        maps = body if isinstance(body, list) else [body]
        for m in maps:
            if not isinstance(m, dict):
                problems.add(where, f"detection {name!r}: keyword lists are not used in this pack")
                continue
            for key in m:
                field, *mods = str(key).split("|")
                if field == "stage":
                    problems.add(where, f"detection {name!r} selects on stage (only ResponseComplete is evaluated)")
                for mod in mods:
                    if mod not in MODIFIERS:
                        problems.add(where, f"detection {name!r}: modifier {mod!r} outside {sorted(MODIFIERS)}")
    conditions = detection["condition"]
    for cond in conditions if isinstance(conditions, list) else [conditions]:
        for token in re.findall(r"[A-Za-z0-9_*]+", str(cond)):
            if token in CONDITION_WORDS:
                continue
            if token.endswith("*"):
                if not any(n.startswith(token[:-1]) for n in names):
                    problems.add(where, f"condition pattern {token!r} matches no detection")
            elif token not in names:
                problems.add(where, f"condition names {token!r}, which is not a detection")


def check_event(where, path, ids, problems, sequence=False):
    try:
        ev = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        problems.add(where, f"{path.name} is not JSON: {e}")
        return
    if sequence:
        if not isinstance(ev, list) or len(ev) < 2:
            problems.add(where, f"{path.name} is not a JSON array of two or more events")
            return
        times = [e.get("requestReceivedTimestamp", "") if isinstance(e, dict) else "" for e in ev]
        if times != sorted(times):
            problems.add(where, f"{path.name}: the events are not in time order")
        for index, item in enumerate(ev):
            check_one(where, f"{path.name}[{index}]", item, str(path), ids, problems)
        return
    check_one(where, path.name, ev, str(path), ids, problems)


def check_one(where, name, ev, path, ids, problems):
    if not isinstance(ev, dict):
        problems.add(where, f"{name} is not a JSON object")
        return
    missing = [k for k in EVENT_KEYS if k not in ev]
    if missing:
        problems.add(where, f"{name} lacks {missing}")
    if ev.get("kind") != "Event" or ev.get("apiVersion") != "audit.k8s.io/v1":
        problems.add(where, f"{name} is not an audit.k8s.io/v1 Event")
    if ev.get("stage") != "ResponseComplete":
        problems.add(where, f"{name} is at stage {ev.get('stage')!r}, not ResponseComplete")
    if not isinstance(ev.get("responseStatus", {}).get("code"), int):
        problems.add(where, f"{name} has no numeric responseStatus.code")
    audit_id = ev.get("auditID")
    try:
        uuid.UUID(str(audit_id))
    except ValueError:
        problems.add(where, f"{name} auditID {audit_id!r} is not a UUID")
    if audit_id in ids:
        problems.add(where, f"{name} repeats the auditID of {ids[audit_id]}")
    ids[audit_id] = path


def check_rule(path, seen_ids, event_ids, problems):
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as e:
        problems.add(where, f"YAML error: {e}")
        return
    if not docs or not all(isinstance(d, dict) for d in docs):
        problems.add(where, "must hold one rule, or rules and a correlation (YAML mappings)")
        return
    if not STEM.match(path.stem):
        problems.add(where, "file name is not snake_case")
    correlation = "correlation" in docs[-1]
    if len(docs) > 1 and not correlation:
        problems.add(where, "holds more than one rule and no correlation: one rule per file")
        return
    names = []
    for index, rule in enumerate(docs):
        doc_where = where if len(docs) == 1 else f"{where} (document {index + 1})"
        is_correlation = "correlation" in rule
        if is_correlation and index != len(docs) - 1:
            problems.add(doc_where, "a correlation comes last in its file")
        required = CORRELATION_REQUIRED if is_correlation else REQUIRED
        for key in required:
            if key not in rule:
                problems.add(doc_where, f"missing {key}")
        for key in rule:
            if key not in required and key not in OPTIONAL:
                problems.add(doc_where, f"unexpected top-level key {key!r}")
        check_metadata(doc_where, rule, seen_ids, problems)
        if is_correlation:
            check_correlation(doc_where, rule.get("correlation"), names, problems)
        else:
            check_detection(doc_where, rule.get("detection"), problems)
            if correlation:
                if not isinstance(rule.get("name"), str) or not rule["name"]:
                    problems.add(doc_where, "a rule a correlation counts needs a name")
                else:
                    names.append(rule["name"])

    tests = path.parent / "tests" / path.stem
    fires = sorted(tests.glob("fires*.json"))
    misses = sorted(tests.glob("misses*.json"))
    if not fires:
        problems.add(where, f"no {tests.relative_to(ROOT) if tests.is_relative_to(ROOT) else tests}/fires*.json")
    if not misses:
        problems.add(where, f"no {tests.relative_to(ROOT) if tests.is_relative_to(ROOT) else tests}/misses*.json")
    for f in fires + misses:
        check_event(where, f, event_ids, problems, sequence=correlation)
    for f in tests.glob("*"):
        if f not in fires and f not in misses:
            problems.add(where, f"{f.name} in the tests directory is neither fires*.json nor misses*.json")


def check_correlation(where, body, names, problems):
    if not isinstance(body, dict):
        problems.add(where, "correlation is not a mapping")
        return
    if body.get("type") not in CORRELATION_TYPES:
        problems.add(where, f"correlation type {body.get('type')!r} is not one of {sorted(CORRELATION_TYPES)}")
    rules = body.get("rules")
    if not isinstance(rules, list) or not rules:
        problems.add(where, "correlation rules is not a non-empty list")
        rules = []
    for r in rules:
        if r not in names:
            problems.add(where, f"correlation counts {r!r}, which is not a rule of this file")
    if not isinstance(body.get("group-by"), list) or not body.get("group-by"):
        problems.add(where, "correlation has no group-by (the pack counts per principal or object)")
    if not TIMESPAN.match(str(body.get("timespan", ""))):
        problems.add(where, f"correlation timespan {body.get('timespan')!r} is not like 10m")
    if body.get("type") not in ("temporal", "temporal_ordered") and not isinstance(body.get("condition"), dict):
        problems.add(where, "correlation has no condition")


def check_metadata(where, rule, seen_ids, problems):
    rid = str(rule.get("id", ""))
    try:
        if uuid.UUID(rid).version != 4 or str(uuid.UUID(rid)) != rid:
            problems.add(where, f"id {rid} is not a lower-case UUID v4")
    except ValueError:
        problems.add(where, f"id {rid!r} is not a UUID")
    if rid in seen_ids:
        problems.add(where, f"id {rid} is also used by {seen_ids[rid]}")
    seen_ids[rid] = where

    if rule.get("status") not in STATUSES:
        problems.add(where, f"status {rule.get('status')!r} is not one of {sorted(STATUSES)}")
    if rule.get("level") not in LEVELS:
        problems.add(where, f"level {rule.get('level')!r} is not one of {sorted(LEVELS)}")
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", str(rule.get("date", ""))):
        problems.add(where, "date is not YYYY-MM-DD")
    for key in ("title", "description", "author"):
        if not isinstance(rule.get(key), str) or not rule.get(key, "").strip():
            problems.add(where, f"{key} is empty")

    tags = rule.get("tags") or []
    if not isinstance(tags, list):
        problems.add(where, "tags is not a list")
        tags = []
    if len(set(tags)) != len(tags):
        problems.add(where, "duplicate tags")
    if not any(TECHNIQUE.match(str(t)) for t in tags):
        problems.add(where, "no ATT&CK technique tag (attack.tNNNN[.NNN])")
    if not any(TACTIC.match(str(t)) and not TECHNIQUE.match(str(t)) for t in tags):
        problems.add(where, "no ATT&CK tactic tag (attack.<tactic>)")
    for t in tags:
        if not (TACTIC.match(str(t)) or TECHNIQUE.match(str(t))):
            problems.add(where, f"tag {t!r} is not an ATT&CK tactic or technique")

    if "correlation" not in rule:
        logsource = rule.get("logsource") or {}
        if logsource != {"product": "kubernetes", "service": "audit"}:
            problems.add(where, f"logsource is {logsource}, not product: kubernetes, service: audit")
    for key in ("falsepositives", "references"):
        value = rule.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and len(v) > 2 for v in value):
            problems.add(where, f"{key} is not a non-empty list of strings")


def main():
    rules_dir = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "rules"
    problems = Problems()
    seen_ids, event_ids = {}, {}
    rules = sorted(rules_dir.glob("*.yml")) + sorted(rules_dir.glob("*.yaml"))
    if not rules:
        problems.add(str(rules_dir), "no rules")
    for path in rules:
        check_rule(path, seen_ids, event_ids, problems)
    stems = {p.stem for p in rules}
    tests_root = rules_dir / "tests"
    if tests_root.is_dir():
        for d in sorted(tests_root.iterdir()):
            if d.name not in stems:
                problems.add(str(d), "test directory without a rule")
    sigma_tests = ROOT / "tests" / "fixtures" / "sigma-tests"
    n_sigma = 0
    if sigma_tests.is_dir() and rules_dir == ROOT / "rules":
        for d in sorted(p for p in sigma_tests.iterdir() if p.is_dir()):
            for name in ("fires.json", "misses.json"):
                if not (d / name).exists():
                    problems.add(str(d.relative_to(ROOT)), f"no {name}")
            for f in sorted(d.glob("*.json")):
                check_event(str(d.relative_to(ROOT)), f, event_ids, problems)
                n_sigma += 1
    for p in problems.items:
        print(p)
    print(f"{len(rules)} rules, {len(event_ids)} test events ({n_sigma} SigmaHQ fixtures): "
          f"{len(problems.items)} problem(s)")
    sys.exit(1 if problems.items else 0)


if __name__ == "__main__":
    main()
