#!/usr/bin/env bash
# The monitor's cost per round with 10 nodes and 3 references (anvils on loopback): round time from the
# monitor's own duration_ms, and the process's peak RSS. Prints a table.
# Usage: scripts/bench-monitor.sh [rounds] [ethnode binary]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-30}
bin=${2:-target/release/ethnode}; [ -x "$bin" ] || bin=target/debug/ethnode
bash scripts/tools.sh node >/dev/null
anvil=.tools/node_modules/.bin/anvil
dir=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
args=()
for i in $(seq 0 12); do
  port=$((23400 + i))
  "$anvil" --host 127.0.0.1 --port "$port" --block-time 1 >/dev/null 2>&1 & pids+=($!)
  if [ "$i" -lt 10 ]; then args+=(--node "http://127.0.0.1:$port/"); else args+=(--reference "http://127.0.0.1:$port/"); fi
done
sleep 2
ETHNODE_MONITOR_INTERVAL_SECS=1 ETHNODE_MONITOR_LISTEN=127.0.0.1:23499 \
  "$bin" monitor --json --rounds "$rounds" "${args[@]}" > "$dir/rounds.jsonl" 2>/dev/null & mon=$!
peak=0
while kill -0 "$mon" 2>/dev/null; do
  hwm=$(awk '/VmHWM/{print $2}' "/proc/$mon/status" 2>/dev/null || echo 0)
  [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm
  sleep 0.2
done
python3 - "$dir/rounds.jsonl" "$peak" "$bin" <<'PY'
import json, sys, statistics
d = [json.loads(l)["duration_ms"] for l in open(sys.argv[1]) if l.strip()]
d.sort()
print("| binary | nodes | references | rounds | round ms p50 | p95 | max | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
print(f"| {sys.argv[3]} | 10 | 3 | {len(d)} | {statistics.median(d):.1f} | {d[int(0.95*(len(d)-1))]:.1f} | {d[-1]:.1f} | {int(sys.argv[2])/1024:.1f} |")
PY
