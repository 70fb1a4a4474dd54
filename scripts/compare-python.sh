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
python3 - "$work/rust.json" "$work/python.json" <<'PY'
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
rust_ids = collections.Counter(r["AuditId"] for r in rust_rows)
py_ids = collections.Counter(r["AuditId"] for r in py_rows)
print(f"rust:   {len(rust_rows)} events kept, records {dict(rust_results)}")
print(f"python: {len(py_rows)} events kept, records {dict(py_results)}")
if rust_ids != py_ids or rust_results != py_results:
    sys.exit("FAIL: the two transforms keep different events")
different = sum(a != b for a, b in zip(rust_rows, py_rows))
if different:
    sys.exit(f"FAIL: {different} rows differ in some column value")
print("ok: same AuditIds, same record results, every row has the same column values")
PY

echo "== timing (whole process, $runs runs each)"
if command -v hyperfine >/dev/null; then
    hyperfine --warmup 2 --runs "$runs" -N --export-json "$work/times.json" \
        -n rust "${rust[*]}" -n python "${python[*]}" >&2
    python3 - "$work/times.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
rust, py = results["rust"], results["python"]
print(f"rust   median {rust['median'] * 1000:8.1f} ms  (mean {rust['mean'] * 1000:.1f} ± {rust['stddev'] * 1000:.1f} ms)")
print(f"python median {py['median'] * 1000:8.1f} ms  (mean {py['mean'] * 1000:.1f} ± {py['stddev'] * 1000:.1f} ms)")
ratio = py["median"] / rust["median"]
print(f"rust is {ratio:.1f}x faster than the Python reference, whole process (target >= 8x)")
sys.exit(0 if ratio >= 8 else 1)
PY
else
    python3 - "$runs" "${rust[*]}" "${python[*]}" <<'PY'
import statistics, subprocess, sys, time
runs, commands = int(sys.argv[1]), {"rust": sys.argv[2].split(), "python": sys.argv[3].split()}
medians = {}
for name, command in commands.items():
    times = []
    for i in range(runs + 2):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        if i >= 2:
            times.append(time.perf_counter() - start)
    medians[name] = statistics.median(times)
    print(f"{name:6} median {medians[name] * 1000:8.1f} ms (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")
ratio = medians["python"] / medians["rust"]
print(f"rust is {ratio:.1f}x faster than the Python reference, whole process (target >= 8x)")
sys.exit(0 if ratio >= 8 else 1)
PY
fi
