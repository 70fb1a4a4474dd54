#!/usr/bin/env bash
# Runs every fuzz target in turn for SECONDS each (default 60), on the corpora that
# scripts/fuzz-seeds.sh makes. Needs cargo-fuzz (`cargo install cargo-fuzz --locked`).
#
# The toolchain is stable; cargo-fuzz passes unstable compiler flags, which RUSTC_BOOTSTRAP=1
# allows on stable. AddressSanitizer for the two targets that hold the SIMD code to its scalar
# reference (subscription_decoder: envelope/unescape.rs; single_pass: string_stops.rs), the only
# unsafe code, whose loads and stores it checks. The other targets run the same code without
# it: ASan would halve their executions and find nothing a panic does not already report.
# Debug assertions and overflow checks are on (cargo-fuzz's default).
#
# A crash is saved under fuzz/artifacts/<target>/; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> fuzz/artifacts/<target>/<file>
# and turn it into a case of tests/regressions.rs.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(subscription_decoder audit_normalizer firehose_handler transform single_pass)

command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz not found (cargo install cargo-fuzz --locked)" >&2; exit 2; }
[ -d fuzz/corpus ] || scripts/fuzz-seeds.sh

export RUSTC_BOOTSTRAP=1
status=0
for target in "${TARGETS[@]}"; do
    echo "== fuzz $target for ${SECONDS_EACH}s"
    mkdir -p "fuzz/corpus/$target"
    # single_pass reads audit events, as audit_normalizer does: it starts from those seeds.
    if [ "$target" = single_pass ] && [ -d fuzz/corpus/audit_normalizer ]; then
        cp -n fuzz/corpus/audit_normalizer/* "fuzz/corpus/$target/" 2>/dev/null || true
    fi
    # -timeout: an input that takes over 10 s is a finding (default 20 min); -rss_limit_mb:
    # so is one that needs over 1 GiB (the Lambda's memory is the real bound).
    sanitizer=none
    case "$target" in subscription_decoder | single_pass) sanitizer=address ;; esac
    cargo fuzz run --sanitizer "$sanitizer" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
        -dict=fuzz/dict/hostile.dict \
        -print_final_stats=1 || status=$?
done
exit $status
