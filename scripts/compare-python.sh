#!/usr/bin/env bash
# eks-audit-forwarder against the Python reference transform (bench/reference_transform.py),
# whole process against whole process, on the same generated Firehose event on this machine.
# First checks that both keep the same events with the same column values, then times both
# with hyperfine (or a plain repeated timing when hyperfine is missing) and prints the ratio.
# Target (README "Performance"): Rust >= 8x faster.
# Usage: scripts/compare-python.sh [SIZE] [RUNS]   (SIZE: typical (default), max, <N>kb)
source "$(dirname "$0")/bench-lib.sh"
size="${1:-typical}"
runs="${2:-10}"
build_release
forwarder_env
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
make_workload "$size" "$work/event.json" >/dev/null

rust=("$release/eks-audit" invoke "$work/event.json" --out "$work/out")
python=(python3 bench/reference_transform.py "$work/event.json")
"${rust[@]}" >"$work/rust.json"
"${python[@]}" >"$work/python.json"

echo "== same kept events?"
# Records past Firehose's 6 MB response are re-ingested, here into $work/out/firehose/ (the
# Python reference has no such limit): they count as the next invocation would transform them.
region=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("region") or "")' "$work/event.json")
: >"$work/reingested.ndjson"
for piece in "$work"/out/firehose/*/*.json.gz; do
    [ -e "$piece" ] || continue
    AWS_REGION="$region" "$release/eks-audit" transform "$piece" >>"$work/reingested.ndjson"
done
python3 - "$work/rust.json" "$work/python.json" "$work/reingested.ndjson" <<'PY'
import base64, collections, json, sys
def rows(path):
    response = json.load(open(path))
    results = collections.Counter(r["result"] for r in response["records"])
    out = []
    for r in response["records"]:
        if r["result"] == "Ok":
            out += [json.loads(line) for line in base64.b64decode(r["data"]).decode().splitlines()]
    return results, out
(rust_results, rust_rows), (py_results, py_rows) = rows(sys.argv[1]), rows(sys.argv[2])
reingested = [json.loads(line) for line in open(sys.argv[3])]
print(f"rust:   {len(rust_rows)} events in the response and {len(reingested)} re-ingested, records {dict(rust_results)}")
print(f"python: {len(py_rows)} events kept, records {dict(py_results)}")
rust_rows += reingested
by_id = lambda rows: {r["AuditId"]: r for r in rows}
if collections.Counter(r["AuditId"] for r in rust_rows) != collections.Counter(r["AuditId"] for r in py_rows):
    sys.exit("FAIL: the two transforms keep different events")
if sum(rust_results.values()) != sum(py_results.values()) or set(rust_results) - {"Ok", "Dropped"}:
    sys.exit("FAIL: the two transforms answer the records differently")
rust_by_id, py_by_id = by_id(rust_rows), by_id(py_rows)
different = sum(rust_by_id[i] != py_by_id[i] for i in py_by_id)
if different:
    sys.exit(f"FAIL: {different} rows differ in some column value")
print("ok: same AuditIds, every record answered, every row has the same column values")
PY

echo "== timing (whole process, $runs runs each)"
# The forwarder with its default rule pack (as deployed) and without it, against both Python
# baselines: the reference transform (same events, same columns) and the plain Sentinel-style one.
names=(rust rust-no-rules python python-sentinel)
commands=("${rust[*]}" "env EKS_AUDIT_NO_DEFAULT_RULES=true ${rust[*]}" "${python[*]}"
    "python3 bench/sentinel_transform.py $work/event.json")
if command -v hyperfine >/dev/null; then
    args=()
    for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${commands[$i]}"); done
    hyperfine --warmup 2 --runs "$runs" -N --export-json "$work/times.json" "${args[@]}" >&2
    python3 - "$work/times.json" <<'PY' >"$work/medians"
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(r["command"], r["median"], min(r["times"]), max(r["times"]))
PY
else
    python3 - "$runs" "${names[@]}" -- "${commands[@]}" <<'PY' >"$work/medians"
import shlex, statistics, subprocess, sys, time
runs = int(sys.argv[1])
split = sys.argv.index("--")
for name, command in zip(sys.argv[2:split], sys.argv[split + 1:]):
    times = []
    for i in range(runs + 2):
        start = time.perf_counter()
        subprocess.run(shlex.split(command), stdout=subprocess.DEVNULL, check=True)
        if i >= 2:
            times.append(time.perf_counter() - start)
    print(name, statistics.median(times), min(times), max(times))
PY
fi
python3 - "$work/medians" <<'PY'
import sys
medians = {}
for line in open(sys.argv[1]):
    name, median, low, high = line.split()
    medians[name] = float(median)
    print(f"{name:16} median {float(median) * 1000:8.1f} ms (min {float(low) * 1000:.1f}, max {float(high) * 1000:.1f})")
met = True
for rust in ("rust", "rust-no-rules"):
    for py in ("python", "python-sentinel"):
        ratio = medians[py] / medians[rust]
        met &= ratio >= 8
        print(f"{rust} is {ratio:.1f}x faster than {py}, whole process (target >= 8x)")
sys.exit(0 if met else 1)
PY
