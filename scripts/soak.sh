#!/usr/bin/env bash
# The soak test under faults (tests/soak/): Firehose and direct (awslogs) invocations of
# realistic audit events through the handler against moto, a fault proxy injecting throttling,
# HTTP 500s, timeouts and partial PutRecordBatch failures into every S3, Firehose and SQS call,
# `eks-audit collect` polling all along through the same faults, then `eks-audit reconcile`.
# Prints events in, delivered, quarantined, duplicated (allowed, counted) and lost, per mode,
# with the faults injected and the wall time; exits non-zero when a single event is lost (or
# anything else the test checks fails).
#
# The short form (1,000 invocations) is also part of `cargo test` (scripts/test.sh);
# --long runs 20,000 (README "Soak test" has its figures).
#
# Usage: scripts/soak.sh [--long] [--invocations N] [--fault-rate R] [--seed S] [--workers W]
#   --fault-rate  of every call through the proxy, 0 to 1 (default 0.1; retries of a failed
#                 call fail again one time in two, so the rate seen is higher)
# CARGO_TARGET_DIR is honoured. Needs moto (scripts/setup-tools.sh, run here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

INVOCATIONS=1000
usage() { sed -n '2,17p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --long) INVOCATIONS=20000 ;;
        --invocations) INVOCATIONS="${2:?}"; shift ;;
        --fault-rate) export EKS_AUDIT_SOAK_FAULT_RATE="${2:?}"; shift ;;
        --seed) export EKS_AUDIT_SOAK_SEED="${2:?}"; shift ;;
        --workers) export EKS_AUDIT_SOAK_WORKERS="${2:?}"; shift ;;
        -h|--help) usage 0 ;;
        *) echo "soak: unknown argument $1" >&2; usage ;;
    esac
    shift
done
export EKS_AUDIT_SOAK_INVOCATIONS="$INVOCATIONS"

[ -x .venv/bin/moto_server ] || scripts/setup-tools.sh

cargo test --locked --test soak -- --nocapture --test-threads 1
