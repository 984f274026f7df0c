#!/usr/bin/env bash
# Gateway overhead, measured (not a test): the same fixed-answer upstream reached directly, through nginx
# (`proxy_pass` with upstream keepalive, Debian's package) and through the ethnode gateway, loaded by wrk
# with a Lua POST script on loopback: 1 connection for latency, 32 for throughput, single requests and
# batches of 20. Prints a Markdown table. Needs wrk and nginx (apt-get install wrk nginx-light).
# Usage: scripts/bench-gateway.sh [SECONDS per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
for t in wrk nginx; do command -v $t >/dev/null || { echo "error: $t is needed (apt-get install wrk nginx-light)" >&2; exit 1; }; done
cargo build --release --quiet -p ethnode-gateway --example fixed_upstream --example gateway
bin=target/release/examples
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Ports above the tests' range (20000-31999) and below the ephemeral range.
up=32101 ngx=32102 gw=32103
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

# Ready: each target answers (the gateway once its first head poll found the upstream).
for port in $up $ngx $gw; do
  for _ in $(seq 1 100); do
    if curl -sf -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -d "$single" "http://127.0.0.1:$port/" | grep -q result; then break; fi
    sleep 0.1
  done
done

# wrk's latency distribution line for a percentile, in microseconds.
micro() { awk -v p="$1" '$1==p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}'; }
run() { # name port body conns -> "p50 p99 rps"
  local out
  out=$(wrk -t "$([ "$4" -gt 1 ] && echo 2 || echo 1)" -c "$4" -d "${secs}s" --latency -s "$work/$3.lua" "http://127.0.0.1:$2/")
  echo "$(echo "$out" | micro 50%) $(echo "$out" | micro 99%) $(echo "$out" | awk '/Requests\/sec/ {print $2}')"
}

echo "| request | target | p50 µs (1 conn) | p99 µs (1 conn) | added p50 | added p99 | req/s (32 conns) | × direct |"
echo "|---|---|---|---|---|---|---|---|"
for body in single batch; do
  read -r d50 d99 _ <<<"$(run direct $up $body 1)"
  read -r _ _ drps <<<"$(run direct $up $body 32)"
  for t in direct:$up nginx:$ngx gateway:$gw; do
    name=${t%%:*} port=${t##*:}
    read -r p50 p99 _ <<<"$(run "$name" "$port" $body 1)"
    read -r _ _ rps <<<"$(run "$name" "$port" $body 32)"
    awk -v b="$body" -v n="$name" -v p50="$p50" -v p99="$p99" -v d50="$d50" -v d99="$d99" -v rps="$rps" -v drps="$drps" \
      'BEGIN { printf "| %s | %s | %.0f | %.0f | %+.0f | %+.0f | %.0f | %.2f |\n", (b=="batch"?"batch of 20":"single"), n, p50, p99, p50-d50, p99-d99, rps, rps/drps }'
  done
done
echo
echo "($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m), ${secs}s per run; wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(nginx -v 2>&1 | sed 's/.*\///'))"
