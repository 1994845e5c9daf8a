# lib.sh: shared shell helpers for bench/run.sh, bench/vs_etcd.sh, bench/read_ab.sh, the stall
# scripts (image_stall.sh, writeback_stall.sh) and memory.sh, catchup.sh, snap_send.sh: ports,
# metacenter clusters on 127.0.0.1, leader lookup, /metrics, cleanup. Sourced, not run. Every wait loop here is bounded.

# Needs: ROOT (repo root), WORK (scratch dir, removed at exit; bench_scratch sets it up).
MC=${MC:-$ROOT/build/metacenter}

# bench_scratch PREFIX: WORK = a fresh /tmp/PREFIX.XXXXXX; at exit every process recorded under
# it is killed (kill_all) and it is removed.
bench_scratch() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    trap 'kill_all; rm -rf "$WORK"' EXIT
    trap 'exit 130' INT TERM
}

# N free TCP ports on 127.0.0.1, space separated (the kernel picks them; a tiny race is accepted).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

now_ms() { date +%s%3N; }

# log MESSAGE...: a timestamped progress line on stderr.
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# Kill every process whose pid file lies under $WORK (nodes, etcd members); waits up to 5 s for
# them to be gone.
kill_all() {
    local f p pids=()
    for f in "$WORK"/*/*.pid "$WORK"/*.pid; do
        [ -f "$f" ] || continue
        p=$(cat "$f")
        rm -f "$f"
        [ -n "$p" ] || continue
        kill -9 "$p" 2>/dev/null && pids+=("$p")
    done
    wait_gone 5 "${pids[@]}"
}

# wait_gone TIMEOUT_S PID...: until none of the pids is alive (bounded).
wait_gone() {
    local deadline=$(($(now_ms) + $1 * 1000)) p alive
    shift
    while [ "$(now_ms)" -lt "$deadline" ]; do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && return 0
        sleep 0.05
    done
}

# mc_cluster_start NAME SIZE [extra serve flags...]: starts SIZE nodes in $WORK/NAME, records
# NAME's endpoints in $WORK/NAME/endpoints and HTTP addresses in $WORK/NAME/http.
mc_cluster_start() {
    local name=$1 size=$2
    shift 2
    local dir=$WORK/$name
    mkdir -p "$dir"
    local ports
    read -r -a ports <<<"$(free_ports $((size * 3)))"
    local ic="" eps="" https="" i
    for ((i = 1; i <= size; i++)); do
        ic+="${ic:+,}$i=127.0.0.1:${ports[$(((i - 1) * 3 + 1))]}"
        eps+="${eps:+,}127.0.0.1:${ports[$(((i - 1) * 3))]}"
        https+="${https:+ }127.0.0.1:${ports[$(((i - 1) * 3 + 2))]}"
    done
    echo "$eps" >"$dir/endpoints"
    echo "$https" >"$dir/http"
    for ((i = 1; i <= size; i++)); do
        local cmd=("$MC" serve --node-id "$i" --data-dir "$dir/n$i"
            --listen-client "127.0.0.1:${ports[$(((i - 1) * 3))]}"
            --listen-peer "127.0.0.1:${ports[$(((i - 1) * 3 + 1))]}"
            --listen-http "127.0.0.1:${ports[$(((i - 1) * 3 + 2))]}"
            --initial-cluster "$ic" --log-level warn "$@")
        # MC_ENGINE_ROOT (e.g. a dir on /dev/shm): each node's engine in a dir of its own there
        # (`serve --engine-dir`); the caller removes MC_ENGINE_ROOT at exit.
        if [ -n "${MC_ENGINE_ROOT:-}" ]; then
            mkdir -p "$MC_ENGINE_ROOT/$name"
            cmd+=(--engine-dir "$MC_ENGINE_ROOT/$name/n$i")
        fi
        printf '%q ' "${cmd[@]}" >"$dir/n$i.cmd"
        mc_node_start "$name" "$i"
    done
    mc_wait_leader "$name" 20 >/dev/null
}

# mc_node_start NAME ID: (re)starts node ID of cluster NAME with the command it was created with.
mc_node_start() {
    local dir=$WORK/$1
    # exec: the recorded pid is the node itself, not a subshell (kill -9 must reach the node).
    eval "exec $(cat "$dir/n$2.cmd")" >>"$dir/n$2.log" 2>&1 &
    echo $! >"$dir/n$2.pid"
    disown $! # no job notices when the run kills it
}

mc_node_pid() { cat "$WORK/$1/n$2.pid"; }

# mc_leader NAME: the leader id as the first answering node sees it ("" when none).
mc_leader() {
    local ep out
    for ep in $(tr ',' ' ' <"$WORK/$1/endpoints"); do
        out=$(timeout 3 "$MC" --endpoints "$ep" --json cluster status 2>/dev/null) || continue
        out=$(jq -r '.leader // 0' <<<"$out" 2>/dev/null) || continue
        if [ -n "$out" ] && [ "$out" != 0 ] && [ "$out" != null ]; then
            echo "$out"
            return 0
        fi
    done
    return 1
}

# mc_wait_leader NAME TIMEOUT_S: waits until every live node agrees on one leader and every
# member's applied index is within 100 of the commit index; prints the leader id.
mc_wait_leader() {
    local name=$1 deadline=$(($(now_ms) + $2 * 1000)) ep out ids lag
    while [ "$(now_ms)" -lt "$deadline" ]; do
        ids=""
        lag=0
        for ep in $(tr ',' ' ' <"$WORK/$name/endpoints"); do
            out=$(timeout 3 "$MC" --endpoints "$ep" --json cluster status 2>/dev/null) || {
                ids+=" x"
                continue
            }
            ids+=" $(jq -r '.leader // 0' <<<"$out")"
            lag=$(jq '[.members[] | ((.commit_index // 0) - (.applied_index // 0)) + (if .reachable then 0 else 1000 end)] | max // 0' <<<"$out")
        done
        local uniq
        uniq=$(tr ' ' '\n' <<<"$ids" | sed '/^$/d' | sort -u)
        if [ "$(wc -l <<<"$uniq")" = 1 ] && [ "$uniq" != 0 ] && [ "$uniq" != x ] && [ "$lag" -lt 100 ]; then
            echo "$uniq"
            return 0
        fi
        sleep 0.1
    done
    echo "cluster $name: no agreed leader within $2 s" >&2
    return 1
}

# mc_failover NAME KILLS: KILLS × (kill -9 the leader, time until a fresh client's first write
# succeeds, restart the killed node, wait until it has caught up). Progress on stderr; prints a
# JSON array [{"killed":ID,"ms":N|null}] (null: no successful write within 60 s).
mc_failover() {
    local name=$1 kills=$2 k leader pid t0 t1 fo="[]"
    for ((k = 1; k <= kills; k++)); do
        leader=$(mc_wait_leader "$name" 60) || break
        pid=$(mc_node_pid "$name" "$leader")
        t0=$(now_ms)
        kill -9 "$pid"
        # Backoff capped at 10 ms so the figure is the cluster's, not the client's retry timer.
        if timeout 60 "$MC" bench --endpoints "$(cat "$WORK/$name/endpoints")" --bucket failover \
            --workload put --connections 1 --pipeline 1 --count 1 --duration 55 \
            --backoff-max-ms 10 --request-timeout-ms 50000 >/dev/null 2>>"$WORK/failover.err"; then
            t1=$(now_ms)
            fo=$(jq -c --argjson ms $((t1 - t0)) --argjson l "$leader" '. + [{killed: $l, ms: $ms}]' <<<"$fo")
            echo "[$(date +%H:%M:%S)]   kill $k: leader $leader, first write after $((t1 - t0)) ms" >&2
        else
            echo "[$(date +%H:%M:%S)]   kill $k: leader $leader, no successful write within 60 s" >&2
            fo=$(jq -c --argjson l "$leader" '. + [{killed: $l, ms: null}]' <<<"$fo")
        fi
        wait_gone 5 "$pid"
        mc_node_start "$name" "$leader"
    done
    echo "$fo"
}

# RSS of a pid in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Its anonymous part (heap: mostly the Raft log held in memory); the rest is the engine's map.
rss_anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ticks PID: CPU ticks (utime + stime, 1/100 s) of a pid.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# mc_role_ticks NAME LEADER: "LEADER_TICKS FOLLOWER_TICKS": CPU ticks of node LEADER of cluster
# NAME, and of its other nodes together.
mc_role_ticks() {
    local f dir=$WORK/$1 l=0 o=0 id
    for f in "$dir"/n*.pid; do
        id=${f##*/n}
        id=${id%.pid}
        if [ "$id" = "$2" ]; then
            l=$(ticks "$(cat "$f")")
        else
            o=$((o + $(ticks "$(cat "$f")")))
        fi
    done
    echo "$l $o"
}

# mc_metric NAME ID METRIC: METRIC's value on node ID of cluster NAME (its /metrics, the series
# without labels); empty when the node does not answer within 2 s (e.g. stopped).
mc_metric() {
    mc_metric_dump "$1" "$2" | awk -v m="$3" '$1 == m {v = $2} END {print v}'
}

# mc_metric_dump NAME ID: node ID's whole /metrics text (empty when it does not answer in 2 s).
mc_metric_dump() {
    local h
    h=$(cut -d' ' -f"$2" "$WORK/$1/http")
    curl -s -m 2 "http://$h/metrics" 2>/dev/null || true
}

# mc_trio NAME [serve flags...]: a fresh 3-node cluster NAME (mc_cluster_start); sets L (its
# leader), F (a follower: the node after L) and EP (its endpoints).
mc_trio() {
    local name=$1
    shift
    mc_cluster_start "$name" 3 "$@" >/dev/null
    L=$(mc_wait_leader "$name" 30)
    F=$((L % 3 + 1))
    EP=$(cat "$WORK/$name/endpoints")
}

# result FORMAT JSON: one measurement, as a line for the reader (the jq string FORMAT applied to
# JSON), then as one JSON line.
result() {
    jq -r "$1" <<<"$2"
    jq -c . <<<"$2"
}

# ---- the stall scripts (bench/image_stall.sh, bench/writeback_stall.sh) and the scripts that
# share their flag loop (bench/memory.sh, bench/catchup.sh, bench/snap_send.sh) ----

# stall_flags HELP_LINES ARG...: their flag loop. -h/--help prints lines HELP_LINES (a sed range,
# e.g. 2,13) of the script and exits 0; `--` ends the flags: what follows goes to the array
# SERVE_FLAGS (extra `serve` flags, for scripts that take them); any other flag goes to the
# script's stall_flag FLAG [VALUE], which sets its variables, sets STALL_TOOK=2 when it used
# VALUE, and fails for a flag it does not know (exit 2).
stall_flags() {
    local help=$1 me=${0##*/}
    shift
    # shellcheck disable=SC2034
    SERVE_FLAGS=()
    while [ $# -gt 0 ]; do
        case $1 in
        -h | --help) sed -n "${help}p" "$0"; exit 0 ;;
        --)
            shift
            # shellcheck disable=SC2034 # the sourcing script reads it
            SERVE_FLAGS=("$@")
            return 0
            ;;
        esac
        STALL_TOOK=1
        stall_flag "$1" "${2-}" || { echo "$me: unknown flag $1" >&2; exit 2; }
        [ $# -ge "$STALL_TOOK" ] || { echo "$me: $1 wants a value" >&2; exit 2; }
        shift "$STALL_TOOK"
    done
}

# load_shape_flag FLAG VALUE: the flags of a script that drives open-loop puts on a stall_setup
# cluster (writeback_stall.sh, window_metrics.sh), for its stall_flag to fall back on: --pre S,
# --connections C, --pipeline P, --send-tick-us N (set PRE, CONN, PIPE, TICK; STALL_TOOK=2) and
# --engine-tmpfs (TMPFS=1); fails for any other flag. Then load_shape_tick sets TICK_FLAG: the
# generator's flag, only when asked (builds before session 13 may not know it).
load_shape_flag() {
    # shellcheck disable=SC2034 # the sourcing script reads them
    case $1 in
    --pre) PRE=$2 STALL_TOOK=2 ;;
    --connections) CONN=$2 STALL_TOOK=2 ;;
    --pipeline) PIPE=$2 STALL_TOOK=2 ;;
    --send-tick-us) TICK=$2 STALL_TOOK=2 ;;
    --engine-tmpfs) TMPFS=1 ;;
    *) return 1 ;;
    esac
}
load_shape_tick() {
    TICK_FLAG=()
    [ "${TICK:-0}" = 0 ] || TICK_FLAG=(--send-tick-us "$TICK")
}

# stall_scratch PREFIX: WORK = a fresh /tmp/PREFIX.XXXXXX and, with TMPFS=1, the engines in
# MC_ENGINE_ROOT = a fresh /dev/shm/PREFIX.XXXXXX (no map writeback); at exit (also on failure,
# Ctrl-C or TERM) the script's stall_on_exit (if it has one) runs, every node is killed and both
# are removed. Builds $MC when it is missing.
stall_scratch() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    MC_ENGINE_ROOT=""
    trap stall_cleanup EXIT
    trap 'exit 130' INT TERM
    if [ "${TMPFS:-0}" = 1 ]; then
        MC_ENGINE_ROOT=$(mktemp -d "/dev/shm/$1.XXXXXX")
    fi
    [ -x "$MC" ] || make -C "$ROOT" -j2 >/dev/null
    [ -x "$MC" ] || { echo "${0##*/}: $MC is not an executable" >&2; exit 2; }
}

# stall_setup PREFIX PRE_S [serve flags...]: stall_scratch PREFIX, then a 3-node cluster c
# (`--log-level info` and the serve flags) with leader L, follower F and endpoints EP (one JSON
# line: L and F), PRE_S s of C=64 P=16 puts (one JSON line) and `bench load --objects 100000`.
stall_setup() {
    local pre=$2
    stall_scratch "$1"
    shift 2
    mc_trio c --log-level info "$@"
    echo "{\"leader\": $L, \"follower\": $F}"
    "$MC" bench --endpoints "$EP" --workload put --connections 64 --pipeline 16 --keys 100000 \
        --duration "$pre" --json 2>/dev/null | tail -1 | jq -c '{phase: "puts C=64 P=16", ops_per_sec}'
    "$MC" bench load --endpoints "$EP" --objects 100000 --connections 8 --pipeline 64 >/dev/null 2>&1
}

stall_cleanup() {
    if declare -F stall_on_exit >/dev/null; then
        stall_on_exit
    fi
    kill_all
    rm -rf "$WORK"
    [ -z "$MC_ENGINE_ROOT" ] || rm -rf "$MC_ENGINE_ROOT"
}
