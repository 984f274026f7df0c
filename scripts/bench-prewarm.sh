#!/usr/bin/env bash
# Pre-warm read throughput on a local file, against dd and fio on the same file, page cache dropped
# before every run (needs root for /proc/sys/vm/drop_caches). Prints a markdown table.
# Usage: scripts/bench-prewarm.sh [size-GiB] [dir]     (defaults: 2 GiB in target/bench)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-2}
dir=${2:-target/bench}
command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
cargo build --quiet --release --bin ethnode 2>/dev/null || cargo build --quiet --bin ethnode
bin=target/release/ethnode; [ -x "$bin" ] || bin=target/debug/ethnode
mkdir -p "$dir"; f="$dir/prewarm.img"
[ "$(stat -c %s "$f" 2>/dev/null || echo 0)" = $((size << 30)) ] || head -c $((size << 30)) /dev/urandom > "$f"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mbps() { awk -v b=$((size << 30)) -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
timed() { local t0 t1; drop; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }
echo "| reader | reads in flight | MB/s |"
echo "|---|---|---|"
echo "| dd bs=1M | 1 | $(mbps "$(timed dd if="$f" of=/dev/null bs=1M)") |"
echo "| fio psync bs=1M | 1 | $(mbps "$(timed fio --name=r --filename="$f" --rw=read --bs=1M --ioengine=psync --numjobs=1)") |"
echo "| fio libaio direct bs=1M | 16 | $(mbps "$(timed fio --name=r --filename="$f" --rw=read --bs=1M --ioengine=libaio --direct=1 --iodepth=16)") |"
for p in 1 4 16; do
  echo "| ethnode prewarm 1 MiB blocks (${bin#target/}) | $p | $(mbps "$(timed "$bin" prewarm "$f" --parallelism "$p" --block-kib 1024)") |"
done
