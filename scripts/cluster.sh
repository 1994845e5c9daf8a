#!/usr/bin/env bash
# cluster.sh: `make cluster`: a 3-node metacenter cluster on 127.0.0.1 in the foreground.
# Client ports 7070/7170/7270, peer 7071/7171/7271, HTTP 7080/7180/7280; data in ./cluster-data/N.
# Ctrl-C (or SIGTERM) stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-./build/metacenter}
SPEC="1=127.0.0.1:7071,2=127.0.0.1:7171,3=127.0.0.1:7271"
pids=()
stop() {
    trap - INT TERM EXIT
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT
for i in 1 2 3; do
    base=$((7070 + (i - 1) * 100))
    "$BIN" serve --node-id "$i" --data-dir "cluster-data/$i" \
        --listen-client "127.0.0.1:$base" --listen-peer "127.0.0.1:$((base + 1))" \
        --listen-http "127.0.0.1:$((base + 10))" --initial-cluster "$SPEC" &
    pids+=($!)
done
echo "cluster: 3 nodes; try: $BIN --endpoints 127.0.0.1:7070,127.0.0.1:7170,127.0.0.1:7270 cluster status"
wait -n "${pids[@]}" || true
