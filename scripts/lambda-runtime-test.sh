#!/usr/bin/env bash
# Exercises the real Lambda runtime: `cargo lambda watch --only-lambda-apis` serves the Lambda
# runtime API, the Lambda binary that `cargo test` built (target/debug/eks-audit-forwarder) runs
# against it as Lambda runs a bootstrap, `cargo lambda invoke` sends it every event in events/,
# and each response must equal what `eks-audit invoke` prints for the same file.
# Running the test build's binary, rather than letting `cargo lambda watch` build its own, keeps
# CI to one build: a plain `cargo build` leaves out the dev-dependencies' features (tokio's, for
# one), so it would compile tokio and the whole AWS SDK a second time.
# Needs scripts/setup-tools.sh (cargo-lambda in .venv) and the debug build of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
function_bin="$target_dir/debug/eks-audit-forwarder"
cli_bin="$target_dir/debug/eks-audit"
for bin in "$function_bin" "$cli_bin"; do
    [ -x "$bin" ] || { echo "$bin is missing: run cargo test first" >&2; exit 1; }
done

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Clear AWS and forwarder settings from the caller's shell; both sides get the same ones.
unset EKS_AUDIT_BUCKET EKS_AUDIT_PREFIX EKS_AUDIT_STAGES EKS_AUDIT_EXCLUDE_URIS EKS_AUDIT_FORMAT AWS_ENDPOINT_URL
export AWS_REGION=eu-west-1 RUST_LOG=warn EKS_AUDIT_OUT_DIR="$work/out"

cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$port" \
    >"$work/watch.log" 2>&1 &
watch_pid=$!
function_pid=
cleanup() {
    [ -n "$function_pid" ] && kill "$function_pid" 2>/dev/null || true
    kill "$watch_pid" 2>/dev/null || true
    pkill -P "$watch_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 120); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
    kill -0 "$watch_pid" 2>/dev/null || { cat "$work/watch.log"; echo "cargo lambda watch exited" >&2; exit 1; }
    sleep 0.5
done

# The variables `cargo lambda watch --only-lambda-apis` asks the function to run with.
AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt" AWS_LAMBDA_FUNCTION_NAME=_ \
    AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 \
    "$function_bin" >"$work/function.log" 2>&1 &
function_pid=$!

status=0
for event in events/*.json; do
    timeout 60 cargo lambda invoke _ --invoke-address 127.0.0.1 --invoke-port "$port" \
        --data-file "$event" --output-format json >"$work/runtime.json" 2>"$work/invoke.err" || {
        cat "$work/invoke.err" "$work/watch.log" "$work/function.log" >&2; echo "FAIL $event: cargo lambda invoke failed" >&2; status=1; continue; }
    "$cli_bin" invoke "$event" --out "$work/out" >"$work/cli.json"
    if python3 - "$work/runtime.json" "$work/cli.json" <<'PY'
import json, sys
runtime, cli = (json.load(open(p)) for p in sys.argv[1:3])
sys.exit(0 if runtime == cli else 1)
PY
    then
        echo "ok   $event: Lambda runtime response equals eks-audit invoke"
    else
        echo "FAIL $event: responses differ" >&2
        diff <(python3 -m json.tool --sort-keys "$work/runtime.json") <(python3 -m json.tool --sort-keys "$work/cli.json") | head -20 >&2
        status=1
    fi
done
exit $status
