#!/usr/bin/env bash
# run.sh: the standard benchmark run: 1-node and 3-node clusters on 127.0.0.1, the standard
# workloads, a 3-node write rate sweep (plot), list pages at many objects, failover times;
# writes bench/results/YYYY-MM-DD.{md,json,png}.
#
# Usage: bench/run.sh [--quick] [--out DIR] [--reps N] [--duration S]
#   --quick      short runs, 1 repetition, fewer objects and kills (finishes within ~3 min)
#   --out DIR    results directory (default bench/results)
# Every wait loop is bounded; every process started here is killed at exit (trap).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
OUT=$ROOT/bench/results
REPS=""
DUR=""
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --duration) DUR=$2; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done

if [ $QUICK = 1 ]; then
    REPS=${REPS:-1} DUR=${DUR:-2} KEYS=20000 LIST_OBJECTS=50000 KILLS=5 SWEEP_DUR=2
else
    REPS=${REPS:-3} DUR=${DUR:-10} KEYS=100000 LIST_OBJECTS=1000000 KILLS=20 SWEEP_DUR=5
fi

WORK=$(mktemp -d /tmp/mcbench.XXXXXX)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
MC_ENGINE_ROOT="" # set only for the n3t cluster below (lib.sh: each engine under it)
cleanup() {
    kill_all
    rm -rf "$WORK"
    [ -z "$MC_ENGINE_ROOT" ] || rm -rf "$MC_ENGINE_ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


"$ROOT/scripts/bench-deps.sh"
log "building"
make -C "$ROOT" -j2 >"$WORK/make.log" 2>&1 || { tail -30 "$WORK/make.log"; exit 1; }
mkdir -p "$OUT"
RESULTS=$WORK/results.jsonl
META=$WORK/meta.json
: >"$RESULTS"

# ---- machine ----
PROBE=$("$ROOT/build/fsync_probe" "$WORK" 200)
jq -n --arg nproc "$(nproc)" \
    --arg cpu "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
    --arg kernel "$(uname -r)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --argjson fsync "$PROBE" --argjson quick "$QUICK" --argjson reps "$REPS" \
    --argjson duration "$DUR" \
    '{nproc: ($nproc|tonumber), cpu: $cpu, kernel: $kernel, loadavg_start: $load,
      commit: $commit, fdatasync: $fsync, quick: ($quick == 1), reps: $reps,
      duration_s: $duration}' >"$META"
log "machine: $(nproc) cores, fdatasync $PROBE, load $(cut -d' ' -f1-3 /proc/loadavg)"

# bench_row CLUSTER NAME bench-args...: REPS runs of `metacenter bench --json`, one row each.
bench_row() {
    local cluster=$1 name=$2 r out
    shift 2
    for ((r = 1; r <= REPS; r++)); do
        out=$(timeout $((${DUR%.*} + 60)) "$MC" bench --endpoints "$(cat "$WORK/$cluster/endpoints")" \
            --duration "$DUR" --json "$@" 2>>"$WORK/bench.err") || {
            log "  $cluster $name rep $r failed: $(tail -1 "$WORK/bench.err")"
            continue
        }
        jq -c --arg c "$cluster" --arg n "$name" --argjson r "$r" \
            '. + {cluster: $c, name: $n, rep: $r}' <<<"$out" >>"$RESULTS"
        log "  $cluster $name: $(jq -r '"\(.ops_per_sec|floor) ops/s p50=\(.p50_us)us p99=\(.p99_us)us errors=\(.errors)"' <<<"$out")"
    done
}

standard_set() {
    local cl=$1
    log "cluster $cl: standard workloads (${REPS}x ${DUR}s)"
    bench_row "$cl" put_c1 --workload put --connections 1 --pipeline 1 --keys $KEYS
    bench_row "$cl" put_c64_p16 --workload put --connections 64 --pipeline 16 --keys $KEYS
    "$MC" bench load --endpoints "$(cat "$WORK/$cl/endpoints")" --objects $KEYS \
        --connections 8 --pipeline 64 >/dev/null 2>>"$WORK/bench.err"
    bench_row "$cl" get_c1 --workload get --connections 1 --pipeline 1 --keys $KEYS
    bench_row "$cl" get_lin_c64_p32 --workload get --connections 64 --pipeline 32 --keys $KEYS
    bench_row "$cl" get_stale_c64_p32 --workload get --connections 64 --pipeline 32 --keys $KEYS \
        --consistency stale
    bench_row "$cl" mixed90_c64_p16 --workload mixed:90 --connections 64 --pipeline 16 --keys $KEYS
}

# The open-loop latency rows' flags, in one place for every cluster that runs a row (n3, n3l,
# n3t), so a row is the same row on each.
# - get_lin_open150k_*: 150K linearizable reads offered (the target's latency figure): the
#   throughput shape (C=64 P=32) and fewer, deeper connections (C=16, C=4), as gateways
#   multiplexing their requests would; the client library sends them to the leader.
# - _fr: with --follower-reads (rotated over every member, followers asking the leader for a read
#   index) for comparison.
# - _t100: the generator sending on a 100 µs grid (`--send-tick-us 100`: what falls due within a
#   tick leaves in one send per connection; the wait counts in the latency). On this shared box
#   the generator's sends are a third of the CPU at 150K/s (docs/benchmarks.md).
# - put_open40k_*: 40K writes offered (the target's latency figure) from fewer, deeper
#   connections, as the read rows; the sweep has the C=64 figure. _t500: sends on a 500 µs grid
#   (at 40K/s over 4 connections one put falls due per connection every 100 µs, so a 100 µs
#   tick would coalesce nothing); it takes the box from ~88% to ~82% busy (docs/benchmarks.md,
#   session 13).
declare -A LATENCY_ROW=(
    [get_lin_open150k_c64]="--workload get --connections 64 --pipeline 32 --keys $KEYS --rate 150000"
    [get_lin_open150k_c16]="--workload get --connections 16 --pipeline 128 --keys $KEYS --rate 150000"
    [get_lin_open150k_c4]="--workload get --connections 4 --pipeline 512 --keys $KEYS --rate 150000"
    [get_lin_open150k_c16_fr]="--workload get --connections 16 --pipeline 128 --keys $KEYS --rate 150000 --follower-reads"
    [get_lin_open150k_c4_t100]="--workload get --connections 4 --pipeline 512 --keys $KEYS --rate 150000 --send-tick-us 100"
    [put_open40k_c16]="--workload put --connections 16 --pipeline 256 --keys $KEYS --rate 40000"
    [put_open40k_c4]="--workload put --connections 4 --pipeline 1024 --keys $KEYS --rate 40000"
    [put_open40k_c4_t500]="--workload put --connections 4 --pipeline 1024 --keys $KEYS --rate 40000 --send-tick-us 500"
)

# latency_rows CLUSTER ROW...: those rows on CLUSTER, in the order given.
latency_rows() {
    local cl=$1 row flags
    shift
    for row in "$@"; do
        [ -n "${LATENCY_ROW[$row]-}" ] || { log "run.sh: no latency row $row"; exit 1; }
        read -ra flags <<<"${LATENCY_ROW[$row]}"
        bench_row "$cl" "$row" "${flags[@]}"
    done
}

# ---- 1 node ----
mc_cluster_start n1 1
standard_set n1
kill_all

# ---- 3 nodes ----
mc_cluster_start n3 3
standard_set n3

# Open-loop reads, then writes (latency_rows has each row's flags and why).
log "cluster n3: open-loop reads at 150K offered"
latency_rows n3 get_lin_open150k_c64 get_lin_open150k_c16 get_lin_open150k_c4 \
    get_lin_open150k_c16_fr get_lin_open150k_c4_t100
log "cluster n3: open-loop writes at 40K offered"
latency_rows n3 put_open40k_c16 put_open40k_c4 put_open40k_c4_t500

# Open-loop write sweep (p99 vs throughput): 2K, 5K, then 10K ops/s upward until the cluster
# saturates (the low rates show where the latency knee is).
log "cluster n3: open-loop write sweep (${SWEEP_DUR}s per rate)"
SAVE_DUR=$DUR
DUR=$SWEEP_DUR
for rate in 2000 5000 10000 20000 30000 40000 50000 60000 80000 100000 120000 150000; do
    bench_row n3 "sweep_put_$rate" --workload put --connections 64 --pipeline 64 --keys $KEYS \
        --rate $rate
    got=$(jq -s --arg n "sweep_put_$rate" '[.[] | select(.name == $n) | .ops_per_sec] | sort | .[length/2|floor] // 0' "$RESULTS")
    if awk -v g="$got" -v r="$rate" 'BEGIN { exit !(g < 0.85 * r) }'; then
        log "  saturated at offered $rate (achieved $got)"
        break
    fi
done
DUR=$SAVE_DUR

# List pages over many objects, with RSS and on-disk bytes per object.
log "cluster n3: loading $LIST_OBJECTS objects for listing"
# Blocks in use (the LMDB file is sparse: its apparent size is the grown map, not the data).
mdb_bytes() { du -B1 "$WORK/n3/n$1/engine/data.mdb" | cut -f1; }
declare -A RSS0 MDB0
for i in 1 2 3; do RSS0[$i]=$(rss_kib "$(mc_node_pid n3 $i)"); MDB0[$i]=$(mdb_bytes $i); done
t0=$(now_ms)
timeout 1800 "$MC" bench load --endpoints "$(cat "$WORK/n3/endpoints")" --bucket list \
    --objects $LIST_OBJECTS --connections 16 --pipeline 64 >/dev/null 2>>"$WORK/bench.err"
t1=$(now_ms)
mc_wait_leader n3 60 >/dev/null
NODES_JSON="[]"
for i in 1 2 3; do
    pid=$(mc_node_pid n3 $i)
    NODES_JSON=$(jq -c --argjson id $i --argjson rss "$(rss_kib "$pid")" --argjson rss0 "${RSS0[$i]}" \
        --argjson anon "$(rss_anon_kib "$pid")" \
        --argjson mdb "$(mdb_bytes $i)" --argjson mdb0 "${MDB0[$i]}" \
        --argjson dir "$(du -sB1 "$WORK/n3/n$i" | cut -f1)" \
        '. + [{id: $id, rss_kib: $rss, rss_kib_before: $rss0, rss_anon_kib: $anon, engine_bytes: $mdb,
               engine_bytes_before: $mdb0, data_dir_bytes: $dir}]' <<<"$NODES_JSON")
done
jq --argjson n $LIST_OBJECTS --argjson ms $((t1 - t0)) --argjson nodes "$NODES_JSON" \
    '. + {list_load: {objects: $n, load_ms: $ms, nodes: $nodes}}' "$META" >"$META.tmp" && mv "$META.tmp" "$META"
log "  loaded in $((t1 - t0)) ms; nodes: $NODES_JSON"
bench_row n3 list_page1000_lin --workload list --bucket list --keys $LIST_OBJECTS \
    --connections 4 --pipeline 1
bench_row n3 list_page1000_stale --workload list --bucket list --keys $LIST_OBJECTS \
    --connections 4 --pipeline 1 --consistency stale

# Failover: kill -9 the leader, time until the first write succeeds; restart it; repeat.
log "cluster n3: failover x$KILLS"
FO=$(mc_failover n3 $KILLS)
jq --argjson fo "$FO" '. + {failover: $fo}' "$META" >"$META.tmp" && mv "$META.tmp" "$META"
kill_all

# The same 150K read rows on a cluster serving linearizable reads under a leader lease
# (`serve --lease-reads`, off by default: docs/decisions.md): no follower round per batch.
mc_cluster_start n3l 3 --lease-reads
"$MC" bench load --endpoints "$(cat "$WORK/n3l/endpoints")" --objects $KEYS \
    --connections 8 --pipeline 64 >/dev/null 2>>"$WORK/bench.err"
log "cluster n3l (--lease-reads): open-loop reads at 150K offered"
latency_rows n3l get_lin_open150k_c16 get_lin_open150k_c4 get_lin_open150k_c4_t100
kill_all

# The write and read latency rows once more on a cluster whose engines live on tmpfs (`serve
# --engine-dir`, docs/operations.md): the kernel never writes an LMDB map back there. The
# throughput row first, so the latency rows follow sustained writes as on n3.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    MC_ENGINE_ROOT=$(mktemp -d /dev/shm/mcbench.XXXXXX)
    mc_cluster_start n3t 3
    "$MC" bench load --endpoints "$(cat "$WORK/n3t/endpoints")" --objects $KEYS \
        --connections 8 --pipeline 64 >/dev/null 2>>"$WORK/bench.err"
    log "cluster n3t (--engine-dir on tmpfs): writes, then the latency rows"
    bench_row n3t put_c64_p16 --workload put --connections 64 --pipeline 16 --keys $KEYS
    latency_rows n3t put_open40k_c16 put_open40k_c4 put_open40k_c4_t500 get_lin_open150k_c4 \
        get_lin_open150k_c4_t100
    kill_all
    rm -rf "$MC_ENGINE_ROOT"
    MC_ENGINE_ROOT=""
fi

jq --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {loadavg_end: $load}' "$META" >"$META.tmp" &&
    mv "$META.tmp" "$META"
python3 "$ROOT/bench/report.py" --results "$RESULTS" --meta "$META" --out "$OUT"
