#!/usr/bin/env bash
# snap_ab_rounds.sh ROUNDS RATE OUT "label|binary|flags" ...: alternating snap_ab.sh runs
# (configs in turn, ROUNDS times); one line per run in OUT; medians of p50/p99 per label at the end.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=$1 RATE=$2 OUT=$3
shift 3
: >"$OUT"
for ((r = 1; r <= ROUNDS; r++)); do
    for cfg in "$@"; do
        IFS='|' read -r label bin flags <<<"$cfg"
        # shellcheck disable=SC2086
        res=$("$ROOT/bench/snap_ab.sh" "$bin" "$RATE" 10 $flags 2>/dev/null | grep -v '^\[')
        load=$(grep -o 'load average: [0-9.]*' <<<"$res" | cut -d' ' -f3)
        j=$(grep '^{' <<<"$res")
        echo "$label round=$r load1=$load $(jq -r '"p50=\(.p50_us) p99=\(.p99_us) p999=\(.p999_us) ops/s=\(.ops_per_sec|floor)"' <<<"$j") wal_fsync>10ms=$(grep -o '>10ms=[0-9]*' <<<"$res" | cut -d= -f2 | paste -sd+ | bc)" >>"$OUT"
    done
done
for cfg in "$@"; do
    label=${cfg%%|*}
    grep "^$label round" "$OUT" | python3 -c '
import sys, statistics as st, re
rows = [dict(re.findall(r"(\S+)=(\S+)", l)) for l in sys.stdin]
f = lambda k: st.median(float(r[k]) for r in rows)
print(sys.argv[1], "runs=%d" % len(rows), "median p50=%.1fms p99=%.1fms p999=%.1fms load1=%.1f" % (f("p50")/1000, f("p99")/1000, f("p999")/1000, f("load1")))
' "$label"
done
