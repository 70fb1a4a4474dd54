#!/usr/bin/env bash
# A panic in the deployed Lambda must fail only the invocation it happens in: lambda_runtime
# catches it and answers that invocation with an error (Firehose then retries the batch), and
# the same process serves the next one. That holds only with `panic = "unwind"`, and
# `cargo lambda build --release` (what `sam build` runs) passes
# `--config profile.release.panic="abort"` unless Cargo.toml's [profile.release] sets `panic`.
#
# So the Lambda is built here by that very command, plus the test-only `panic-probe` feature (the
# handler panics on an event holding "eks_audit_panic_probe"), and run as built under cargo
# lambda's runtime API emulator (`cargo lambda watch --only-lambda-apis` serves the API and leaves
# the process to us, so nothing is rebuilt in another profile). Then: a sample event (a normal
# answer), the probe (an error naming the panic, the process still alive), the sample again
# (the same answer, from the same process).
#
# Cost, and what it trades. Measured on a shared 2-core machine: as deployed (thin LTO, one
# codegen unit, opt-level 3) the build takes 10 min cold and 2 min 6 s after a change to the
# crates, too much for CI. Here the optimizer is off: opt-level 0, no LTO, 256 codegen units,
# set through CARGO_PROFILE_RELEASE_* (cargo-lambda leaves keys the manifest sets alone, and the
# environment overrides the manifest), so the build costs what a debug build does. None of these
# changes how a panic unwinds, and everything that does is as deployed: the release profile's
# panic strategy as cargo-lambda decides it (its own --config beats the environment, so a
# manifest without `panic` gets "abort" here too and this test fails), strip, target-cpu, the
# zig linker. What is given up: the binary is not byte for byte the deployed one, and a bug only
# the optimizer would expose is not looked for. The
# build has its own target directory (<target>/lambda-panic-test), so it neither undoes nor is
# undone by a real release build of the same target.
#
# Needs scripts/setup-tools.sh (cargo-lambda in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/lambda-panic-test"
bootstrap="$target_dir/lambda/eks-audit-forwarder/bootstrap"
event=events/firehose-eks-audit.json
marker=eks_audit_panic_probe

work=$(mktemp -d)
watch_pid= function_pid=
cleanup() {
    for pid in $function_pid $watch_pid; do
        kill "$pid" 2>/dev/null || true
        pkill -P "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL $*" >&2
    for log in "$work"/*.log; do echo "--- $log" >&2; tail -20 "$log" >&2; done
    exit 1
}

start=$(date +%s)
# RUST_LOG makes cargo-lambda print the profile settings it adds ("release optimizations").
CARGO_TARGET_DIR="$target_dir" CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 \
    RUST_LOG=cargo_lambda=debug cargo lambda build --release --locked --features panic-probe \
    --bin eks-audit-forwarder >"$work/build.log" 2>&1 || fail "cargo lambda build --release"
echo "built in $(( $(date +%s) - start )) s: $bootstrap"
added=$(grep -o 'release optimizations config=.*' "$work/build.log" | head -1)
echo "cargo-lambda: $added"
if [[ "$added" == *profile.release.panic* ]]; then
    fail "cargo lambda build --release overrides the panic strategy; set panic = \"unwind\" in [profile.release]"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$port" \
    >"$work/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 120); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
    kill -0 "$watch_pid" 2>/dev/null || fail "cargo lambda watch exited"
    sleep 0.5
done

# The variables `cargo lambda watch --only-lambda-apis` asks the function to run with.
env -u EKS_AUDIT_BUCKET -u EKS_AUDIT_PREFIX -u AWS_ENDPOINT_URL \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt" AWS_LAMBDA_FUNCTION_NAME=_ \
    AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 \
    AWS_REGION=eu-west-1 EKS_AUDIT_OUT_DIR="$work/out" RUST_LOG=warn \
    "$bootstrap" >"$work/function.log" 2>&1 &
function_pid=$!

invoke() { # OUTPUT-FILE cargo-lambda-invoke-args...
    local output=$1
    shift
    timeout 60 cargo lambda invoke _ --invoke-address 127.0.0.1 --invoke-port "$port" \
        --output-format json "$@" >"$output" 2>&1
}

invoke "$work/before.json" --data-file "$event" || fail "$event before the panic"
echo "ok   $event answered"

# With panic = "abort" the process dies here and the invocation is never answered: `invoke`
# gives up after its timeout (60 s), and the liveness check names the cause.
if invoke "$work/probe.out" --data-ascii "{\"$marker\": true}"; then
    fail "the probe event was answered as a success: is the panic-probe feature built in?"
fi
kill -0 "$function_pid" 2>/dev/null \
    || fail "the function process died on the panic (panic = abort?): no error answer, and the next invocation would be a cold start"
grep -q "Lambda panicked: panic probe" "$work/probe.out" \
    || fail "the probe invocation did not answer with the panic's error: $(head -c 300 "$work/probe.out")"
echo "ok   the probe's invocation failed with: $(grep -m1 -o 'Lambda panicked: .*' "$work/probe.out")"

invoke "$work/after.json" --data-file "$event" || fail "$event after the panic"
cmp -s "$work/before.json" "$work/after.json" || fail "the answer after the panic differs from the one before"
kill -0 "$function_pid" 2>/dev/null || fail "the function process is gone"
echo "ok   $event answered the same after the panic, by the same process (pid $function_pid)"
