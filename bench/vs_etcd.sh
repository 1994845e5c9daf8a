#!/usr/bin/env bash
# vs_etcd.sh: etcd 3.4 (3 members) and metacenter (3 nodes) side by side on 127.0.0.1, both driven
# by wrk over HTTP/JSON at equal connections and durations: put of 128-byte values over 100K keys,
# linearizable get, serializable/stale get. Prints a table (ops/s, p50, p99, ratio ours/etcd) and
# writes bench/results/YYYY-MM-DD-vs-etcd.{md,json}; adds our native-protocol figures beside
# etcd's published ones.
#
# Usage: bench/vs_etcd.sh [--duration S] [--reps N] [--connections C] [--keys N] [--out DIR]
#                         [--http-pipeline N]
# --http-pipeline N: wrk sends N requests at once on each connection (HTTP/1.1 pipelining, both
# systems alike; default 1, the issue's measure). With N > 1 wrk's own CPU per request shrinks,
# so the rows show the servers rather than the client; results go to ...-vs-etcd-pipelineN.*.
# Every wait loop is bounded; every process started here is killed at exit (trap).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=10 REPS=3 CONNS=64 KEYS=100000 VALUE_BYTES=128 THREADS=2 PIPELINE=1
OUT=$ROOT/bench/results
while [ $# -gt 0 ]; do
    case $1 in
    --duration) DUR=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    --keys) KEYS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --http-pipeline) PIPELINE=$2; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "vs_etcd.sh: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $PIPELINE =~ ^[1-9][0-9]*$ && $PIPELINE -le 64 ]] || { echo "vs_etcd.sh: --http-pipeline wants 1..64" >&2; exit 2; }

WORK=$(mktemp -d /tmp/mcvsetcd.XXXXXX)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
cleanup() {
    kill_all
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/scripts/bench-deps.sh"
if [ -z "${MC_SKIP_MAKE:-}" ]; then
    make -C "$ROOT" -j2 >"$WORK/make.log" 2>&1 || { tail -30 "$WORK/make.log"; exit 1; }
fi
mkdir -p "$OUT"
ROWS=$WORK/rows.jsonl
: >"$ROWS"

# ---- etcd: 3 members ----
etcd_start() {
    local dir=$WORK/etcd ports ic="" i
    mkdir -p "$dir"
    read -r -a ports <<<"$(free_ports 6)"
    for i in 1 2 3; do ic+="${ic:+,}e$i=http://127.0.0.1:${ports[$((i * 2 - 1))]}"; done
    ETCD_EPS=""
    for i in 1 2 3; do
        local c=${ports[$((i * 2 - 2))]} p=${ports[$((i * 2 - 1))]}
        ETCD_EPS+="${ETCD_EPS:+,}127.0.0.1:$c"
        etcd --name "e$i" --data-dir "$dir/e$i" \
            --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
            --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
            --initial-cluster "$ic" --initial-cluster-state new --initial-cluster-token mcbench \
            --logger zap --log-level error >"$dir/e$i.log" 2>&1 &
        echo $! >"$dir/e$i.pid"
        disown $!
    done
    local deadline=$(($(now_ms) + 30000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        ETCD_LEADER=$(ETCDCTL_API=3 etcdctl --endpoints "$ETCD_EPS" endpoint status -w json 2>/dev/null |
            jq -r '.[] | select(.Status.leader == .Status.header.member_id) | .Endpoint' 2>/dev/null | head -1) || true
        [ -n "$ETCD_LEADER" ] && break
        sleep 0.2
    done
    [ -n "$ETCD_LEADER" ] || { echo "etcd: no leader within 30 s" >&2; exit 1; }
    ETCD_LEADER=${ETCD_LEADER#http://}
}

# wrk_row SYSTEM OP URL SCRIPT: REPS wrk runs, one JSON row each.
# CPU_PID (optional): a process whose CPU time each run records (cpu_s, cpu_s_per_100k).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
wrk_row() {
    local sys=$1 op=$2 url=$3 script=$4 r out c0=0 c1=0 hz
    hz=$(getconf CLK_TCK)
    for ((r = 1; r <= REPS; r++)); do
        [ -n "${CPU_PID:-}" ] && c0=$(cpu_ticks "$CPU_PID")
        # wrk runs under time(1): its own CPU per request bounds what the box can reach.
        out=$(WRK_OP=$op WRK_KEYS=$KEYS WRK_VALUE_BYTES=$VALUE_BYTES WRK_THREADS=$THREADS \
            WRK_PIPELINE=$PIPELINE timeout $((DUR + 30)) /usr/bin/time -f 'wrk_cpu_s %U %S' -o "$WORK/wrk.time" \
            wrk -t$THREADS -c"$CONNS" -d"${DUR}s" --timeout 10s -s "$script" "$url" |
            grep '^{"requests"' | tail -1) || { log "  $sys $op rep $r: wrk failed"; continue; }
        [ -n "${CPU_PID:-}" ] && c1=$(cpu_ticks "$CPU_PID")
        local wcpu
        wcpu=$(awk '/^wrk_cpu_s/ {print $2 + $3}' "$WORK/wrk.time" 2>/dev/null)
        out=$(jq -c --argjson t "$((c1 - c0))" --argjson hz "$hz" --argjson w "${wcpu:-0}" \
            'if $t > 0 then . + {cpu_s: ($t / $hz), cpu_s_per_100k: ($t / $hz * 100000 / .requests)} else . end
             | if $w > 0 then . + {wrk_cpu_s_per_100k: ($w * 100000 / .requests)} else . end' <<<"$out")
        jq -c --arg s "$sys" --arg o "$op" --argjson r "$r" '. + {system: $s, op: $o, rep: $r}' \
            <<<"$out" >>"$ROWS"
        log "  $sys $op: $(jq -r '"\(.rps|floor) req/s p50=\(.p50_us)us p99=\(.p99_us)us non2xx=\(.errors_status) cpu/100k=\(.cpu_s_per_100k // "-")s"' <<<"$out")"
    done
}

# wrk_load SYSTEM URL SCRIPT: writes every key once (so reads find them), bounded by 300 s. Each
# wrk thread leaves a marker file when it has sent its share (wrk itself would sleep out -d).
wrk_load() {
    local prefix=$WORK/load-$1 deadline=$(($(now_ms) + 300000)) wpid
    WRK_OP=load WRK_KEYS=$KEYS WRK_VALUE_BYTES=$VALUE_BYTES WRK_THREADS=$THREADS \
        WRK_DONE_PREFIX=$prefix wrk -t$THREADS -c"$CONNS" -d300s --timeout 10s -s "$3" "$2" \
        >/dev/null 2>&1 &
    wpid=$!
    echo $wpid >"$WORK/wrk.pid"
    while [ "$(now_ms)" -lt "$deadline" ] && kill -0 $wpid 2>/dev/null; do
        [ "$(ls "$prefix".* 2>/dev/null | wc -l)" -ge $THREADS ] && break
        sleep 0.2
    done
    kill $wpid 2>/dev/null || true
    wait $wpid 2>/dev/null || true
    rm -f "$WORK/wrk.pid"
}

# mc_http_front NAME LEADER: the HTTP URL to drive: the leader's own HTTP port; when the node
# binary serves no HTTP yet (API not merged into serve), build/http_testserver --client LEADER
# in front of it (one loopback hop more, noted in the output).
mc_http_front() {
    local name=$1 leader=$2 https url ep i deadline
    read -r -a https <<<"$(cat "$WORK/$name/http")"
    url=http://${https[$((leader - 1))]}
    deadline=$(($(now_ms) + 3000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        curl -sf -m 1 "$url/healthz" >/dev/null 2>&1 && { echo "$url"; return 0; }
        sleep 0.2
    done
    local ts
    ts=$(dirname "$MC")/http_testserver
    [ -x "$ts" ] || { echo "no HTTP API on $url and no $ts" >&2; return 1; }
    ep=$(cut -d, -f"$leader" <"$WORK/$name/endpoints")
    i=$(free_ports 1)
    "$ts" --client "$ep" --listen "127.0.0.1:$i" >"$WORK/$name/http_front.log" 2>&1 &
    echo $! >"$WORK/$name/http_front.pid"
    disown $!
    deadline=$(($(now_ms) + 10000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        curl -sf -m 1 "http://127.0.0.1:$i/healthz" >/dev/null 2>&1 && { echo "http://127.0.0.1:$i"; return 0; }
        sleep 0.2
    done
    echo "http_testserver did not come up" >&2
    return 1
}

# ---- etcd ----
log "etcd: starting 3 members"
etcd_start
log "etcd: leader at $ETCD_LEADER; loading $KEYS keys"
E_URL=http://$ETCD_LEADER
wrk_load etcd "$E_URL" "$ROOT/bench/wrk/etcd.lua"
log "etcd: ${REPS}x ${DUR}s per op, $CONNS connections"
wrk_row etcd put "$E_URL" "$ROOT/bench/wrk/etcd.lua"
wrk_row etcd get "$E_URL" "$ROOT/bench/wrk/etcd.lua"
wrk_row etcd stale "$E_URL" "$ROOT/bench/wrk/etcd.lua"
ETCD_VERSION=$(etcd --version | awk '/etcd Version/ {print $3}')
kill_all

# ---- metacenter ----
log "metacenter: starting 3 nodes"
mc_cluster_start mc 3
leader=$(mc_wait_leader mc 30)
HTTP_FRONT="the leader's --listen-http"
M_URL=$(mc_http_front mc "$leader")
[ -f "$WORK/mc/http_front.pid" ] && HTTP_FRONT="build/http_testserver --client LEADER (this build's serve has no HTTP API)"
curl -sf -X PUT "$M_URL/v1/buckets/bench" >/dev/null || true
log "metacenter: leader $leader at $M_URL; loading $KEYS keys"
wrk_load mc "$M_URL" "$ROOT/bench/wrk/metacenter.lua"
log "metacenter: ${REPS}x ${DUR}s per op, $CONNS connections"
CPU_PID=$(mc_node_pid mc "$leader")
wrk_row mc put "$M_URL" "$ROOT/bench/wrk/metacenter.lua"
wrk_row mc get "$M_URL" "$ROOT/bench/wrk/metacenter.lua"
wrk_row mc stale "$M_URL" "$ROOT/bench/wrk/metacenter.lua"

# Native protocol on the same cluster (beside etcd's published figures).
NATIVE=$WORK/native.jsonl
: >"$NATIVE"
for spec in "put 16 linearizable" "get 32 linearizable" "get 32 stale"; do
    read -r wl pl cons <<<"$spec"
    for ((r = 1; r <= REPS; r++)); do
        "$MC" bench --endpoints "$(cat "$WORK/mc/endpoints")" --bucket bench --workload "$wl" \
            --connections "$CONNS" --pipeline "$pl" --consistency "$cons" --keys "$KEYS" \
            --duration "$DUR" --json 2>/dev/null >>"$NATIVE" || true
    done
done
kill_all

python3 - "$ROWS" "$NATIVE" "$OUT" "$ETCD_VERSION" "$CONNS" "$DUR" "$REPS" "$HTTP_FRONT" \
    "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$KEYS" "$VALUE_BYTES" "$PIPELINE" <<'EOF'
import datetime, json, statistics, sys
rows_path, native_path, out, etcd_version, conns, dur, reps, front, nproc, load, keys, vbytes, pipeline = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
native = [json.loads(l) for l in open(native_path) if l.strip()]
def med(xs):
    return statistics.median(xs) if xs else None
s = {}
for sysname in ("etcd", "mc"):
    for op in ("put", "get", "stale"):
        rs = [r for r in rows if r["system"] == sysname and r["op"] == op]
        if rs:
            s[(sysname, op)] = {k: med([r[k] for r in rs]) for k in ("rps", "p50_us", "p99_us")}
            s[(sysname, op)]["non2xx"] = sum(r["errors_status"] for r in rs)
            cpu = [r["cpu_s_per_100k"] for r in rs if "cpu_s_per_100k" in r]
            s[(sysname, op)]["cpu_s_per_100k"] = med(cpu)
            wcpu = [r["wrk_cpu_s_per_100k"] for r in rs if "wrk_cpu_s_per_100k" in r]
            s[(sysname, op)]["wrk_cpu_s_per_100k"] = med(wcpu)
def ms(us):
    return "-" if us is None else f"{us / 1000:.2f} ms"
def http_ms(us):
    # Pipelined, wrk records one latency per bundle of requests (and printed p99 = 0): not shown.
    return "-" if pipeline != "1" else ms(us)
names = {"put": f"put {vbytes} B over {int(keys):,} keys", "get": "linearizable get", "stale": "serializable / stale get"}
L = [f"# metacenter vs etcd {etcd_version}, {datetime.date.today().isoformat()}\n",
     f"3 members each on 127.0.0.1, one 2-core machine shared by servers and wrk; wrk -t2 -c{conns} "
     f"-d{dur}s against the leader's HTTP port"
     + (f", **{pipeline} requests pipelined per connection (HTTP/1.1, both systems)**" if pipeline != "1" else "")
     + f"; median of {reps} runs. Our HTTP front: {front}. "
     f"nproc {nproc}, load average at the end {load}.\n",
     "| workload | etcd ops/s | etcd p50 | etcd p99 | ours ops/s | ours p50 | ours p99 | ours/etcd |",
     "|---|---:|---:|---:|---:|---:|---:|---:|"]
js = {"http_pipeline": int(pipeline), "http_front": front, "nproc": int(nproc), "loadavg_end": load, "etcd_version": etcd_version, "connections": int(conns), "duration_s": float(dur), "reps": int(reps), "rows": {}}
for op in ("put", "get", "stale"):
    e, m = s.get(("etcd", op)), s.get(("mc", op))
    ratio = m["rps"] / e["rps"] if e and m and e["rps"] else None
    L.append(f"| {names[op]} | {e['rps']:,.0f} | {http_ms(e['p50_us'])} | {http_ms(e['p99_us'])} | "
             f"{m['rps']:,.0f} | {http_ms(m['p50_us'])} | {http_ms(m['p99_us'])} | "
             + (f"{ratio:.2f}×" if ratio else "-") + " |" if e and m else f"| {names[op]} | missing |")
    js["rows"][op] = {"etcd": e, "ours": m, "ratio": ratio}
cpu = [(op, s[("mc", op)]["cpu_s_per_100k"]) for op in ("put", "get", "stale")
       if ("mc", op) in s and s[("mc", op)].get("cpu_s_per_100k") is not None]
if cpu:
    L.append("\nOur leader's CPU-seconds per 100K HTTP requests (user + system, /proc/PID/stat, median): "
             + ", ".join(f"{op} {v:.2f} s" for op, v in cpu) + ".")
# The ceiling wrk itself sets: its CPU per request against ours (the servers get what is left).
wrk_lines = []
for op, want in (("put", 5), ("get", 20), ("stale", 20)):
    e, m = s.get(("etcd", op)), s.get(("mc", op))
    if not (e and m and m.get("wrk_cpu_s_per_100k")):
        continue
    us = m["wrk_cpu_s_per_100k"] * 10  # CPU-s per 100K requests -> µs per request
    need = want * e["rps"]
    left = (int(nproc) * 1e6 / need - us) if need else 0  # µs of CPU per request left for the servers
    ours = (m.get("cpu_s_per_100k") or 0) * 10
    wrk_lines.append(f"{op}: wrk {us:.1f} µs/request; at {want}× etcd ({need:,.0f} req/s) wrk alone "
                     f"needs {need * us / 1e6:.2f} of the {nproc} cores, which leaves {left:.1f} µs of "
                     f"CPU per request for all three servers and the kernel's loopback TCP (our "
                     f"leader alone uses {ours:.1f} µs now)")
    js["rows"][op]["wrk_us_per_request"] = us
if wrk_lines:
    L.append("\nwrk's own CPU (user + system, time(1), median) against our servers: " + "; ".join(wrk_lines) + ".")
nat = {}
for wl, cons in (("put", "linearizable"), ("get", "linearizable"), ("get", "stale")):
    rs = [r for r in native if r["workload"] == wl and r["consistency"] == cons]
    if rs:
        nat[f"{wl}_{cons}"] = {k: med([r[k] for r in rs]) for k in ("ops_per_sec", "p50_us", "p99_us")}
js["native"] = nat
L += ["\nOur native protocol (same cluster, `metacenter bench`, C=" + conns + ", P=16 writes / 32 reads) "
      "beside etcd's published figures (etcd docs, 3 × 8 vCPU servers, benchmark tool over gRPC):\n",
      "| workload | ours native ops/s (this 2-core box) | p99 | etcd published ops/s |", "|---|---:|---:|---:|"]
pub = {"put_linearizable": "50,000 writes/s", "get_linearizable": "141,578 linearizable reads/s",
       "get_stale": "185,758 serializable reads/s"}
for k, v in nat.items():
    L.append(f"| {k} | {v['ops_per_sec']:,.0f} | {ms(v['p99_us'])} | {pub.get(k, '-')} |")
md = "\n".join(L) + "\n"
base = f"{out}/{datetime.date.today().isoformat()}-vs-etcd" + (f"-pipeline{pipeline}" if pipeline != "1" else "")
open(base + ".md", "w").write(md)
json.dump(js, open(base + ".json", "w"), indent=1)
print(md)
print("wrote", base + ".md", base + ".json")
EOF
