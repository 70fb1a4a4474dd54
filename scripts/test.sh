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

# Clippy type-checks the dependencies in its own (metadata-only) mode, which cargo cannot share
# with the test build. With the security-lake feature on, one run covers every target and the
# Parquet code too.
echo "== cargo clippy --workspace --all-targets --features security-lake -- -D warnings"
cargo clippy --locked --workspace --all-targets --features security-lake -- -D warnings

echo "== cargo test (unit, integration, emulator, CLI; benches compiled in test mode)"
cargo test --locked --workspace --all-targets

echo "== Security Lake Parquet output (cargo feature security-lake; only its own test binary)"
cargo test --locked --features security-lake --test security_lake
# The golden comparison of the single-pass path ran in the stage above; the feature does not
# touch the per-event path it compares.
cargo test --locked -p eks-audit-core --features security-lake --lib -- --skip golden::

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
