#!/usr/bin/env bash
# The main job on a laptop: a local node (anvil) supervised by the ethnode agent, no AWS account needed.
# Installs anvil into .tools/ if missing, builds ethnode, runs `ethnode up --dev`. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/tools.sh node
cargo build --quiet --bin ethnode
exec target/debug/ethnode up --dev "$@"
