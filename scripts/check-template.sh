#!/usr/bin/env bash
# Static checks of template.yaml and templates/member.yaml, offline:
#   1. cfn-lint template.yaml                         (no error, no warning)
#   2. checkov -f template.yaml --framework cloudformation --quiet --compact   (no failed check)
#   3. sam validate --lint --region eu-west-1         (dummy credentials, telemetry off)
#   4. the same for other deployment choices: checkov and cfn-lint only evaluate parameter
#      defaults, so variants of the template with other defaults (direct mode, SSE-KMS, an
#      existing bucket, reserved concurrency, cluster names with "-") are linted too, each both
#      as written and after the AWS::LanguageExtensions + SAM transforms (scripts/cfn_variants.py;
#      plain `sam validate` cannot expand Fn::ForEach, see there).
# Installs the tools first with scripts/setup-tools.sh (a no-op once done). The checks run in an
# empty network namespace when `unshare -n` works (root), so nothing can reach the internet;
# checkov also gets --skip-download (else it fetches guidelines from its vendor's API).
# Prints "N passed, M failed" last; exits 1 when a check failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/setup-tools.sh >/dev/null
VENV="$ROOT/.venv/bin"

export SAM_CLI_TELEMETRY=0 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_SESSION_TOKEN=testing AWS_DEFAULT_REGION=eu-west-1 AWS_REGION=eu-west-1 \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true

OFFLINE=()
if unshare -n true 2>/dev/null; then
  OFFLINE=(unshare -n)
else
  echo "note: unshare -n is not available; running without a network namespace" >&2
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0 failed=0

# run NAME CMD...: runs CMD offline, output to a log; prints it only when the check fails.
# A check fails on a non-zero exit or when its output is not what a clean run prints
# (each caller's verify function).
run() {
  local name="$1" verify="$2"; shift 2
  local log="$WORK/$name.log" rc=0
  "${OFFLINE[@]}" "$@" >"$log" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]] && "$verify" "$log"; then
    passed=$((passed + 1))
    printf 'ok    %s%s\n' "$name" "$(summary "$log")"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s (exit %d)\n' "$name" "$rc"
    # checkov's "enriched resources" warning is about SAM Globals (none here) and Fn::ForEach
    # entries, which it cannot read; it is noise, not a result.
    grep -v 'Failed to create a new template with enriched resources' "$log" | sed 's/^/      /'
  fi
}

summary() { # the checkov totals, when the log has them
  local line
  line="$(grep -E '^Passed checks: ' "$1" | tr '\n' ' ' || true)"
  [[ -n "$line" ]] && printf '   (%s)' "${line% }" || true
}

cfnlint_clean() { ! grep -qE '^[EWI][0-9]{4} ' "$1"; }
# checkov prints nothing useful when it cannot parse a file: insist on a scan with results.
checkov_clean() {
  grep -qE '^Passed checks: [1-9][0-9]*, Failed checks: 0,' "$1" &&
    ! grep -qE '^Passed checks: [0-9]+, Failed checks: [1-9]' "$1" &&
    ! grep -qE '^Check: CKV' "$1"
}
sam_clean() { grep -q 'is a valid SAM Template' "$1"; }

CHECKOV=("$VENV/checkov" --framework cloudformation --quiet --compact --skip-download)

# --- the template as written (parameter defaults) ---------------------------------------
run cfn-lint cfnlint_clean "$VENV/cfn-lint" template.yaml
run checkov checkov_clean "${CHECKOV[@]}" -f template.yaml
run sam-validate-lint sam_clean "$VENV/sam" validate --lint --region eu-west-1 -t template.yaml
run cfn-lint:member cfnlint_clean "$VENV/cfn-lint" templates/member.yaml
run checkov:member checkov_clean "${CHECKOV[@]}" -f templates/member.yaml
run sam-validate-lint:member sam_clean "$VENV/sam" validate --lint --region eu-west-1 -t templates/member.yaml

# --- other deployment choices ------------------------------------------------------------
KEY=arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
declare -A VARIANTS=(
  [firehose-sse-s3]="ClusterNames=prod-eu,dev"
  [firehose-kms-existing-bucket]="ClusterNames=prod-eu ExistingBucketName=existing-audit-bucket KmsKeyArn=$KEY Format=ocsf"
  [direct-kms-reserved]="Mode=direct ClusterNames=prod-eu,dev,staging_2 KmsKeyArn=$KEY ReservedConcurrency=10"
  [direct-existing-bucket]="Mode=direct ClusterNames=my_cluster ExistingBucketName=existing-audit-bucket"
  [firehose-findings-queue]="ClusterNames=prod-eu FindingsQueue=enabled"
  [direct-detections-off]="Mode=direct ClusterNames=prod-eu Detections=off FindingsQueue=enabled"
  # Fleets (docs/fleet.md): the central destination for listed accounts or an organization;
  # in direct mode the fleet parameters create nothing (a destination feeds Firehose or Kinesis).
  [firehose-fleet-accounts]="ClusterNames=prod-eu FleetAccountIds=111111111111,222222222222"
  [firehose-fleet-organization]="ClusterNames=prod-eu FleetOrganizationId=o-abcdefghij12 Format=ocsf KmsKeyArn=$KEY"
  [direct-fleet-ignored]="Mode=direct ClusterNames=prod-eu FleetAccountIds=111111111111"
  [firehose-fleet-no-clusters]="ClusterNames= FleetOrganizationId=o-abcdefghij12"
)
# templates/member.yaml: with and without clusters listed at deployment.
declare -A MEMBER_VARIANTS=(
  [member-clusters]="CentralAccountId=999999999999 ClusterNames=prod-eu,dev_2"
  [member-auto-only]="CentralAccountId=999999999999 DestinationName=audit-central-fleet"
)
files=()
for v in $(printf '%s\n' "${!VARIANTS[@]}" | sort); do
  # shellcheck disable=SC2086 # word splitting of the NAME=VALUE list is intended
  "$VENV/python" scripts/cfn_variants.py variant template.yaml "$WORK/$v.yaml" ${VARIANTS[$v]}
  run "translate:$v" true "$VENV/python" scripts/cfn_variants.py translate "$WORK/$v.yaml" "$WORK/$v.json"
  files+=("$WORK/$v.yaml")
  [[ -f "$WORK/$v.json" ]] && files+=("$WORK/$v.json")
done
for v in $(printf '%s\n' "${!MEMBER_VARIANTS[@]}" | sort); do
  # shellcheck disable=SC2086 # word splitting of the NAME=VALUE list is intended
  "$VENV/python" scripts/cfn_variants.py variant templates/member.yaml "$WORK/$v.yaml" ${MEMBER_VARIANTS[$v]}
  run "translate:$v" true "$VENV/python" scripts/cfn_variants.py translate "$WORK/$v.yaml" "$WORK/$v.json"
  files+=("$WORK/$v.yaml")
  [[ -f "$WORK/$v.json" ]] && files+=("$WORK/$v.json")
done
run cfn-lint:variants cfnlint_clean "$VENV/cfn-lint" -- "${files[@]}"
checkov_files=()
for f in "${files[@]}"; do checkov_files+=(-f "$f"); done
run checkov:variants checkov_clean "${CHECKOV[@]}" "${checkov_files[@]}"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
