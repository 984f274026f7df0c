#!/usr/bin/env bash
# Installs the real software the tests and the dev stack run against, into the project folder:
#   .tools/  anvil, cast, @ethereumjs/client, viem (npm)   .venv/  moto[server], awscli, cfn-lint, web3 (PyPI)
#                                           .venv-judges/  parliament, checkov, cfn-lint (PyPI)
# Idempotent and quick when everything is there. Usage: scripts/tools.sh [node|python|all]
set -euo pipefail
cd "$(dirname "$0")/.."

ANVIL_VERSION=1.7.1
# A real execution client with a JWT-authenticated Engine API that installs from npm.
ETHEREUMJS_VERSION=0.10.5
# A real TypeScript client of the gateway (HTTP batches, WebSocket subscriptions).
VIEM_VERSION=2.57.20
what=${1:-all}

need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required: $2" >&2; exit 1; }; }

if [[ $what == node || $what == all ]]; then
  if [[ ! -x .tools/node_modules/.bin/anvil || ! -x .tools/node_modules/.bin/cast || ! -x .tools/node_modules/.bin/ethereumjs || ! -f .tools/node_modules/viem/package.json ]]; then
    need npm "install Node.js 20+ (Debian: apt-get install nodejs npm)"
    mkdir -p .tools
    [[ -f .tools/package.json ]] || echo '{"private": true}' > .tools/package.json
    echo "installing anvil and cast $ANVIL_VERSION, @ethereumjs/client $ETHEREUMJS_VERSION, viem $VIEM_VERSION into .tools/ ..."
    npm install --prefix .tools --no-audit --no-fund --loglevel=error \
      "@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION" "@foundry-rs/cast-linux-amd64@$ANVIL_VERSION" \
      "@ethereumjs/client@$ETHEREUMJS_VERSION" "viem@$VIEM_VERSION"
  fi
fi

if [[ $what == python || $what == all ]]; then
  if [[ ! -x .venv/bin/moto_server || ! -x .venv/bin/aws || ! -x .venv/bin/cfn-lint ]]; then
    need python3 "install Python 3.10+ (Debian: apt-get install python3 python3-venv)"
    echo "installing moto[server], awscli, cfn-lint, web3 into .venv/ ..."
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
  fi
  if [[ ! -x .venv-judges/bin/parliament || ! -x .venv-judges/bin/checkov ]]; then
    echo "installing parliament, checkov, cfn-lint into .venv-judges/ ..."
    python3 -m venv .venv-judges
    .venv-judges/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-judges.txt
  fi
fi
