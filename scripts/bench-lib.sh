# Shared by scripts/bench-*.sh and scripts/compare-python.sh (sourced, not run).
# Builds the release binaries and the workload generator once, in one cargo invocation so they
# share one feature resolution (and so one build of the dependencies) with `cargo bench`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
release="$target_dir/release"

build_release() {
    echo "== cargo build --release --workspace --bins --examples" >&2
    cargo build --release --locked --workspace --bins --examples >&2
}

# make_workload SIZE FILE: writes a generated Firehose event, prints its decompressed bytes.
make_workload() {
    local summary
    summary=$("$release/examples/make-workload" --size "$1" "$2" 2>&1)
    echo "$summary" >&2
    sed -n 's/.*gzip -> \([0-9]*\) bytes decompressed.*/\1/p' <<<"$summary"
}

# A clean environment for the forwarder: the caller's EKS_AUDIT_* and AWS settings are dropped.
forwarder_env() {
    unset EKS_AUDIT_FORMAT EKS_AUDIT_STAGES EKS_AUDIT_EXCLUDE_URIS EKS_AUDIT_BUCKET EKS_AUDIT_PREFIX \
        EKS_AUDIT_CLUSTER_NAME EKS_AUDIT_MAX_EVENT_BYTES EKS_AUDIT_MAX_PAYLOAD_BYTES AWS_ENDPOINT_URL \
        AWS_REGION AWS_DEFAULT_REGION
    export RUST_LOG=warn
}
