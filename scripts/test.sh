#!/usr/bin/env bash
# The project's one test command (README, .ci/run): installs the tools the tests need into
# .venv/, checks formatting and lints, then runs every test stage on one shared debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-tools.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== cargo fmt --check (workspace and the fuzz crate)"
cargo fmt --all --check
(cd fuzz && cargo fmt --check)

# A clean CI build gains nothing from incremental caches, which only take disk and time.
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi

# Every cargo command below builds the same feature set (the workspace, all targets, feature
# security-lake), so each dependency is compiled once for checking and once for testing, never
# again for another combination. Clippy type-checks in its own (metadata-only) mode, which cargo
# cannot share with the test build.
features=(--locked --workspace --all-targets --features security-lake)

echo "== cargo clippy ${features[*]} -- -D warnings"
cargo clippy "${features[@]}" -- -D warnings

echo "== cargo test ${features[*]} (unit, golden, integration, emulator, CLI, Security Lake Parquet; benches in test mode)"
cargo test "${features[@]}"

echo "== the Lambda binary under the real runtime interface (cargo lambda watch/invoke)"
scripts/lambda-runtime-test.sh

echo "== a panic in the deployable build (cargo lambda build --release) fails only its invocation"
scripts/lambda-panic-test.sh

if [ -x scripts/check-template.sh ]; then
    echo "== template.yaml: cfn-lint, checkov, sam validate --lint"
    scripts/check-template.sh
fi

echo "== sample events are up to date with scripts/make-events.py"
python3 scripts/make-events.py --check

echo "== Sigma rule pack: shape (scripts/check-rules.py), test events up to date (make-rule-tests.py)"
python scripts/check-rules.py
python scripts/make-rule-tests.py --check
