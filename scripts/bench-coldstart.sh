#!/usr/bin/env bash
# Cold start of the Lambda binary: process start to the first response, through a fake Lambda
# Runtime API (scripts/fake-lambda-runtime.py) serving one Firehose invocation
# (events/firehose-eks-audit.json), 20 runs after 2 warm-ups; reports the median.
# Target (README "Performance"): median <= 20 ms.
# Usage: scripts/bench-coldstart.sh [RUNS] [EVENT_FILE]
source "$(dirname "$0")/bench-lib.sh"
runs="${1:-20}"
event="${2:-events/firehose-eks-audit.json}"
build_release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
forwarder_env
python3 scripts/fake-lambda-runtime.py --event "$event" --runs "$runs" --json "$work/coldstart.json" \
    --env "EKS_AUDIT_OUT_DIR=$work/out" -- "$release/eks-audit-forwarder"
python3 - "$work/coldstart.json" <<'PY'
import json, sys
median = json.load(open(sys.argv[1]))["median_ms"]
print(f"median start-to-first-response {median:.2f} ms (target <= 20 ms)")
sys.exit(0 if median <= 20 else 1)
PY
