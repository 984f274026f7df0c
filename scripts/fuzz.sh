#!/usr/bin/env bash
# Fuzzes the gateway's request parser and planner (fuzz/fuzz_targets/parse.rs) with cargo fuzz (libFuzzer),
# which needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). Not part of CI: CI has only
# the stable toolchain. Usage: scripts/fuzz.sh [SECONDS, default 60]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
rustup toolchain list | grep -q nightly || { echo "error: a nightly toolchain is needed (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || { echo "error: cargo-fuzz is needed (cargo install cargo-fuzz)" >&2; exit 1; }
mkdir -p corpus/parse
# Seeds: the specification's examples and the shapes the gateway rewrites.
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xab","latest"]}' > corpus/parse/balance
printf '%s' '[{"jsonrpc":"2.0","id":"a","method":"eth_getLogs","params":[{"fromBlock":"0x1"}]},{"jsonrpc":"2.0","method":"x"},1]' > corpus/parse/batch
printf '%s' '{"jsonrpc":"2.0","id":null,"method":"eth_call","params":[{"to":"0x01"}]}' > corpus/parse/call
cargo +nightly fuzz run parse corpus/parse -- -max_total_time="$secs" -max_len=4096
