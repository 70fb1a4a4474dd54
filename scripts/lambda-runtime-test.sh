#!/usr/bin/env bash
# Exercises the real Lambda runtime: `cargo lambda watch` serves the Lambda binary through the
# Lambda runtime interface, `cargo lambda invoke` sends it every event in events/, and each
# response must equal what `eks-audit invoke` prints for the same file.
# Needs scripts/setup-tools.sh (cargo-lambda in .venv) and a built target/debug/eks-audit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Clear AWS and forwarder settings from the caller's shell; both sides get the same ones.
unset EKS_AUDIT_BUCKET EKS_AUDIT_PREFIX EKS_AUDIT_STAGES EKS_AUDIT_EXCLUDE_URIS EKS_AUDIT_FORMAT AWS_ENDPOINT_URL
export AWS_REGION=eu-west-1 RUST_LOG=warn EKS_AUDIT_OUT_DIR="$work/out"

cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --ignore-changes \
    --bin eks-audit-forwarder --env-var "EKS_AUDIT_OUT_DIR=$work/out,AWS_REGION=eu-west-1" \
    >"$work/watch.log" 2>&1 &
watch_pid=$!
cleanup() {
    kill "$watch_pid" 2>/dev/null || true
    pkill -P "$watch_pid" 2>/dev/null || true
    wait "$watch_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 600); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
    kill -0 "$watch_pid" 2>/dev/null || { cat "$work/watch.log"; echo "cargo lambda watch exited" >&2; exit 1; }
    sleep 0.5
done

status=0
for event in events/*.json; do
    # The first invocation compiles the function if needed: allow it time.
    cargo lambda invoke eks-audit-forwarder --invoke-address 127.0.0.1 --invoke-port "$port" \
        --data-file "$event" --output-format json >"$work/runtime.json" 2>"$work/invoke.err" || {
        cat "$work/invoke.err" "$work/watch.log" >&2; echo "FAIL $event: cargo lambda invoke failed" >&2; status=1; continue; }
    "$target_dir/debug/eks-audit" invoke "$event" --out "$work/out" >"$work/cli.json"
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
