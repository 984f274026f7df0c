#!/usr/bin/env bash
# Measures the agent's own footprint while idle on the dev profile: RSS and CPU over a window.
# Usage: scripts/measure-idle.sh [seconds] [ethnode binary]   (prints a table)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
bin=${2:-target/debug/ethnode}
bash scripts/tools.sh node >/dev/null
dir=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ETHNODE_PORTS_HTTP=$(port) ETHNODE_PORTS_AGENT=$(port) \
  ETHNODE_EXECUTION_BINARY="$PWD/.tools/node_modules/.bin/anvil" \
  "$bin" up --dev --data-dir "$dir/data" >"$dir/out" 2>"$dir/err" &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
sleep 5  # past start-up: measure the steady state
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$pid/stat"; }
c0=$(cpu); t0=$(date +%s.%N)
sleep "$secs"
c1=$(cpu); t1=$(date +%s.%N)
rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
threads=$(awk '/Threads/{print $2}' "/proc/$pid/status")
printf '| binary | window s | agent RSS MiB | peak RSS MiB | CPU %% of one core | threads |\n|---|---|---|---|---|---|\n'
awk -v b="$bin" -v s="$secs" -v r="$rss" -v h="$hwm" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v tk="$tick" -v th="$threads" \
  'BEGIN { printf "| %s | %d | %.1f | %.1f | %.3f | %d |\n", b, s, r/1024, h/1024, 100*(c1-c0)/tk/(t1-t0), th }'
