#!/usr/bin/env bash
# Peak memory (maximum resident set size, from GNU time) of `eks-audit invoke` on the largest
# Firehose request (6 MB) and on a typical one, against the decompressed size of their input.
# Target (README "Performance", issue 15): peak RSS <= 2x the decompressed input of the 6 MB event.
# Usage: scripts/bench-memory.sh [RUNS]   (default 3; the largest peak is reported)
source "$(dirname "$0")/bench-lib.sh"
runs="${1:-3}"
if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ]; then
    apt-get install -y time >&2 || { apt-get update >&2 && apt-get install -y time >&2; } || true
fi
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install -y time" >&2; exit 1; }
build_release
forwarder_env
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

status=0
for size in max typical; do
    decompressed=$(make_workload "$size" "$work/$size.json")
    peak=0
    for _ in $(seq "$runs"); do
        /usr/bin/time -v -o "$work/time.txt" "$release/eks-audit" invoke "$work/$size.json" --out "$work/out" >/dev/null
        kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")
        [ "$kb" -gt "$peak" ] && peak=$kb
    done
    python3 - "$size" "$peak" "$decompressed" "$(stat -c %s "$work/$size.json")" <<'PY' || status=1
import sys
size, peak_kb, decompressed, event = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
peak = peak_kb * 1024
ratio = peak / decompressed
print(f"{size}: peak RSS {peak / 1e6:.1f} MB for a {event / 1e6:.2f} MB event holding {decompressed / 1e6:.1f} MB "
      f"decompressed: {ratio:.2f}x the decompressed input (target <= 2x)")
sys.exit(0 if size != "max" or ratio <= 2 else 1)
PY
done
exit $status
