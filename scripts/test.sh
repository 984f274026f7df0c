#!/usr/bin/env bash
# Every test: installs the test tools (anvil/cast from npm, moto/awscli/cfn-lint/web3 from PyPI) into the
# project folder, then runs the whole workspace's unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/tools.sh all
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
