#!/usr/bin/env bash
# Builds the deployable artifact with `sam build` (cargo-lambda + zig cross-compile the Lambda
# binary for arm64, as template.yaml asks). Not part of CI: a cold release cross-build of the
# AWS SDK crates takes minutes. Usage: scripts/sam-build.sh [extra sam build args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh >/dev/null
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu || {
        echo "cannot install the aarch64 Rust target; template.yaml deploys arm64" >&2
        exit 1
    }
fi
start=$(date +%s)
sam build --template-file template.yaml "$@"
echo "sam build took $(( $(date +%s) - start )) s; artifact: .aws-sam/build/ForwarderFunction/bootstrap"
