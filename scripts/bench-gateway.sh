#!/usr/bin/env bash
# Gateway overhead, measured (not a test): the same fixed-answer upstream reached directly, through nginx
# (`proxy_pass` with upstream keepalive, Debian's package), through blutgang (crates.io) and through the
# ethnode gateway, loaded by wrk with a Lua POST script on loopback: 1 connection for latency, 32 for
# throughput, single requests, batches of 20, and a cacheable request (a final block by number) that the
# gateway and blutgang answer from their caches; each cell the median of ROUNDS runs. Then failover under load
# (two anvil upstreams, 200 req/s through the gateway, one anvil killed) and subscription fan-out (1,000
# WebSocket clients on newHeads through the gateway, an anvil mining every 250 ms).
# Needs wrk and nginx (apt-get install wrk nginx-light), anvil (scripts/tools.sh), and optionally
# blutgang (cargo install blutgang; or BLUTGANG=/path/to/blutgang).
# Usage: scripts/bench-gateway.sh [SECONDS per run, default 10] [ROUNDS, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
for t in wrk nginx; do command -v $t >/dev/null || { echo "error: $t is needed (apt-get install wrk nginx-light)" >&2; exit 1; }; done
blutgang=${BLUTGANG:-$(command -v blutgang || true)}
cargo build --release --quiet -p ethnode-gateway --example fixed_upstream --example gateway --example load --example fanout
bin=target/release/examples
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Ports above the tests' range (20000-31999) and below the ephemeral range.
up=32101 ngx=32102 gw=32103 bg=32104
"$bin/fixed_upstream" $up & pids+=($!)
cat > "$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  upstream node { server 127.0.0.1:$up; keepalive 64; }
  server {
    listen 127.0.0.1:$ngx;
    location / { proxy_pass http://node; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
"$bin/gateway" $gw "http://127.0.0.1:$up/" & pids+=($!)
targets="direct:$up nginx:$ngx"
if [[ -n $blutgang ]]; then
  # Its documented example config, pointed at the same upstream; health checks off (the fixed upstream's
  # head never moves) and its cache in the work directory.
  cat > "$work/blutgang.toml" <<CONF
[blutgang]
do_clear = true
address = "127.0.0.1:$bg"
ma_length = 100
sort_on_startup = false
health_check = false
header_check = true
ttl = 30000
max_retries = 2
expected_block_time = 13000
health_check_ttl = 400
supress_rpc_check = true
[admin]
enabled = false
address = "127.0.0.1:32105"
readonly = true
jwt = false
key = ""
[sled]
db_path = "$work/blutgang-cache"
mode = "HighThroughput"
cache_capacity = 100000000
compression = false
print_profile = false
flush_every_ms = 240
[fixed]
url = "http://127.0.0.1:$up/"
max_consecutive = 1000000
max_per_second = 0
CONF
  "$blutgang" -c "$work/blutgang.toml" >"$work/blutgang.log" 2>&1 & pids+=($!)
  targets="$targets blutgang:$bg"
fi
targets="$targets gateway:$gw"

single='{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
batch="[$(for i in $(seq 1 20); do printf '%s{"jsonrpc":"2.0","id":%d,"method":"eth_blockNumber","params":[]}' "$([ $i -gt 1 ] && echo ,)" $i; done)]"
lua() { # body file -> wrk script
  cat > "$work/$1.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
local f = io.open("$work/$1.json"); wrk.body = f:read("*a"); f:close()
LUA
}
printf '%s' "$single" > "$work/single.json"; lua single
printf '%s' "$batch" > "$work/batch.json"; lua batch
# A final block by number: what blutgang caches (a request with a block number) and the gateway too.
cached='{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x5",false]}'
printf '%s' "$cached" > "$work/cached.json"; lua cached

# Ready: each target answers (the gateway once its first head poll found the upstream).
for t in $targets; do
  port=${t##*:} ok=
  for _ in $(seq 1 100); do
    if curl -sf -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -d "$single" "http://127.0.0.1:$port/" | grep -q result; then ok=1; break; fi
    sleep 0.1
  done
  [[ -n $ok ]] || { echo "error: ${t%%:*} does not answer on $port" >&2; cat "$work/blutgang.log" >&2 2>/dev/null || true; exit 1; }
done

# wrk's latency distribution line for a percentile, in microseconds.
micro() { awk -v p="$1" '$1==p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}'; }
once() { # port body conns -> "p50 p99 rps"
  local out
  out=$(wrk -t "$([ "$3" -gt 1 ] && echo 2 || echo 1)" -c "$3" -d "${secs}s" --latency -s "$work/$2.lua" "http://127.0.0.1:$1/")
  echo "$(echo "$out" | micro 50%) $(echo "$out" | micro 99%) $(echo "$out" | awk '/Requests\/sec/ {print $2}')"
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# name port body -> "p50 p99 rps", each the median over the rounds (latency runs and throughput runs
# interleaved across targets by the caller, so that a noisy moment does not hit one target only).
declare -A P50 P99 RPS
for body in single batch cached; do
  for r in $(seq 1 "$rounds"); do
    for t in $targets; do
      name=${t%%:*} port=${t##*:}
      read -r p50 p99 _ <<<"$(once "$port" $body 1)"
      read -r _ _ rps <<<"$(once "$port" $body 32)"
      P50[$body,$name]+="$p50 " P99[$body,$name]+="$p99 " RPS[$body,$name]+="$rps "
    done
  done
done

echo "| request | target | p50 µs (1 conn) | p99 µs (1 conn) | added p50 | added p99 | req/s (32 conns) | × direct | × nginx | × blutgang |"
echo "|---|---|---|---|---|---|---|---|---|---|"
label() { case $1 in batch) echo 'batch of 20';; cached) echo 'cached (final block by number)';; *) echo single;; esac; }
for body in single batch cached; do
  med() { tr ' ' '\n' <<<"${1% }" | median; }
  d50=$(med "${P50[$body,direct]}") d99=$(med "${P99[$body,direct]}") drps=$(med "${RPS[$body,direct]}") nrps=$(med "${RPS[$body,nginx]}")
  brps=$([[ -n $blutgang ]] && med "${RPS[$body,blutgang]}" || echo 0)
  for t in $targets; do
    name=${t%%:*}
    p50=$(med "${P50[$body,$name]}") p99=$(med "${P99[$body,$name]}") rps=$(med "${RPS[$body,$name]}")
    # wrk counts any answer: a target that does not answer the body with 20 results is not timed.
    if [[ $body == batch ]] && [[ $(curl -s -m 5 -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -d "$batch" "http://127.0.0.1:${t##*:}/" | grep -o '"result"' | wc -l) -ne 20 ]] \
      || awk -v a="$p50" -v b="$rps" 'BEGIN { exit !(a + 0 == 0 || b + 0 == 0) }'; then
      echo "| $(label $body) | $name | does not answer it with results: not timed | | | | | | | |"
      continue
    fi
    awk -v b="$(label $body)" -v n="$name" -v p50="$p50" -v p99="$p99" -v d50="$d50" -v d99="$d99" -v rps="$rps" -v drps="$drps" -v nrps="$nrps" -v brps="$brps" \
      'BEGIN { printf "| %s | %s | %.0f | %.0f | %+.0f | %+.0f | %.0f | %.2f | %.2f | %s |\n", b, n, p50, p99, p50-d50, p99-d99, rps, rps/drps, rps/nrps, (brps+0 > 0 ? sprintf("%.2f", rps/brps) : "—") }'
  done
done
[[ -n $blutgang ]] || echo "| | blutgang | not installed (cargo install blutgang) | | | | | | | |"
# A cache answers without the upstream: how many of 200 cached requests reached it, per target.
count() { curl -s -H 'Content-Type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"bench_requests"}' "http://127.0.0.1:$up/" | grep -o '"result":[0-9]*' | cut -d: -f2; }
reached=""
for t in $targets; do
  [[ ${t%%:*} == direct || ${t%%:*} == nginx ]] && continue
  c0=$(count)
  for _ in $(seq 1 200); do curl -s -o /dev/null -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -d "$cached" "http://127.0.0.1:${t##*:}/"; done
  c1=$(count)
  reached+="${t%%:*} $((c1 - c0 - 1)), "
done
echo
echo "(cached requests that reached the upstream, of 200; head polls included: ${reached%, })"
echo
echo "($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m), ${secs}s per run, median of $rounds; wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(nginx -v 2>&1 | sed 's/.*\///')${blutgang:+, blutgang $("$blutgang" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1)})"

# Failover under load: two anvils (each answers eth_blockNumber), the gateway over both, 200 req/s for
# 6 s, the first anvil SIGKILLed after 2 s.
anvil=.tools/node_modules/.bin/anvil
if [[ -x $anvil ]]; then
  a1=32111 a2=32112 gw2=32113
  "$anvil" --port $a1 --block-time 1 >/dev/null & a1pid=$!; pids+=($a1pid); disown $a1pid
  "$anvil" --port $a2 --block-time 1 >/dev/null & pids+=($!)
  for port in $a1 $a2; do
    for _ in $(seq 1 100); do curl -sf -H 'Content-Type: application/json' -d "$single" "http://127.0.0.1:$port/" | grep -q result && break; sleep 0.1; done
  done
  "$bin/gateway" $gw2 "http://127.0.0.1:$a1/" "http://127.0.0.1:$a2/" & pids+=($!)
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$gw2/health" | grep -q '"eligible":2' && break; sleep 0.1
  done
  read -r _ sent _ failed _ out <<<"$("$bin/load" "http://127.0.0.1:$gw2/v1/bench" 200 6 $a1pid 2000 "http://127.0.0.1:$a1")"
  echo
  echo "| failover under load (200 req/s, one of two anvils SIGKILLed) | requests | failed | killed upstream out of rotation after |"
  echo "|---|---|---|---|"
  echo "| gateway | $sent | $failed | ${out} ms |"

  # Fan-out: 1,000 clients on newHeads through the gateway, 40 blocks mined 250 ms apart.
  a3=32121 gw3=32122
  "$anvil" --port $a3 --no-mining >/dev/null & pids+=($!)
  for _ in $(seq 1 100); do curl -sf -H 'Content-Type: application/json' -d "$single" "http://127.0.0.1:$a3/" | grep -q result && break; sleep 0.1; done
  "$bin/gateway" $gw3 "http://127.0.0.1:$a3/" & gwpid=$!; pids+=($gwpid)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$gw3/health" | grep -q '"eligible":1' && break; sleep 0.1; done
  read -r p50 p99 l50 l99 kib got want cpu <<<"$("$bin/fanout" "ws://127.0.0.1:$gw3/v1/bench" "ws://127.0.0.1:$a3/" $gwpid 1000 40)"
  echo
  echo "| fan-out: 1,000 clients on newHeads | delivered | p50 µs | p99 µs | to the last client p50 µs | p99 µs | memory per client | gateway CPU per delivery |"
  echo "|---|---|---|---|---|---|---|---|"
  echo "| gateway | $got of $want | $p50 | $p99 | $l50 | $l99 | ${kib} KiB | ${cpu} µs |"
fi
