#!/usr/bin/env bash
# Builds the lag monitor for AWS Lambda (provided.al2023, x86_64): the ethnode binary named `bootstrap`,
# zipped, ready for `aws s3 cp target/lambda/ethnode-monitor.zip s3://BUCKET/` and the stack's
# MonitorCodeBucket/MonitorCodeKey parameters (deploy.monitor_code_bucket in ethnode.toml).
#
# The binary must run on Amazon Linux 2023 (glibc 2.34). Build it on AL2023 itself (a CodeBuild image or
# an amazonlinux:2023 container), or with cargo-lambda, which links against an older glibc from any host:
#   cargo lambda build --release --bin ethnode && cp target/lambda/ethnode/bootstrap target/lambda/
# This script does the plain build and refuses a result that needs a newer glibc (built on Debian 12 it
# needed GLIBC_2.34, so it runs as is).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin ethnode
mkdir -p target/lambda
cp target/release/ethnode target/lambda/bootstrap
need=$(objdump -T target/lambda/bootstrap 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1 || true)
echo "bootstrap needs ${need:-an unknown glibc}; provided.al2023 has GLIBC_2.34"
if [ -n "$need" ] && [ "$(printf '%s\nGLIBC_2.34\n' "$need" | sort -V | tail -1)" != GLIBC_2.34 ]; then
  echo "error: $need is newer than Amazon Linux 2023's glibc: build on AL2023 or with cargo-lambda" >&2
  exit 1
fi
(cd target/lambda && rm -f ethnode-monitor.zip && python3 -m zipfile -c ethnode-monitor.zip bootstrap)
echo "target/lambda/ethnode-monitor.zip"
