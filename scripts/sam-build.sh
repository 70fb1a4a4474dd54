#!/usr/bin/env bash
# Builds the deployable stack with `sam build` (cargo-lambda + zig cross-compile the Lambda
# binary for arm64, as template.yaml asks). Not part of CI: a cold release cross-build of the
# AWS SDK crates takes minutes.
#
# Usage: scripts/sam-build.sh CLUSTER[,CLUSTER...] [extra sam build args]
#
# SAM CLI cannot parse the template's Fn::ForEach (aws/aws-sam-cli#5647: "'list' object has no
# attribute 'get'"), so the subscription filters are expanded here for the given clusters
# (template.expanded.json, next to template.yaml so that CodeUri stays right) and `sam build`
# reads that. Deploy the result with `sam deploy --guided`; to change the cluster list, build
# again with the new list.
set -euo pipefail
cd "$(dirname "$0")/.."
# An empty list ('') builds a stack without subscription filters (a fleet's central account).
clusters=${1?usage: scripts/sam-build.sh CLUSTER[,CLUSTER...] [sam build args]}
shift
scripts/setup-tools.sh >/dev/null
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu || {
        echo "cannot install the aarch64 Rust target; template.yaml deploys arm64" >&2
        exit 1
    }
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python scripts/cfn_variants.py variant template.yaml "$work/with-clusters.yaml" "ClusterNames=$clusters"
.venv/bin/python scripts/cfn_variants.py expand "$work/with-clusters.yaml" template.expanded.json
start=$(date +%s)
sam build --template-file template.expanded.json "$@"
echo "sam build took $(( $(date +%s) - start )) s; artifact: .aws-sam/build/ForwarderFunction/bootstrap"
