#!/usr/bin/env bash
# Real-AWS smoke test of ethnode, run by a user with their own account (it cannot run in ethnode's CI).
# It COSTS MONEY (a Hoodi node for a few hours: roughly $1-3 plus snapshot storage) and refuses to run
# without --i-understand-this-costs-money.
#
#   ETHNODE_SMOKE_VPC=vpc-… ETHNODE_SMOKE_SUBNETS=subnet-a,subnet-b ETHNODE_SMOKE_IMAGE=<uri from `ethnode image push`> \
#     bash scripts/aws-smoke.sh --i-understand-this-costs-money [--max-sync-hours 8]
#
# Run it from a host INSIDE the VPC that is a member of nothing special: the script attaches nothing;
# it reaches the agents through Session Manager port forwarding (`aws ssm start-session`, which needs the
# session-manager-plugin), exactly as the README's snapshot runbook does. Credentials and region come
# from the standard AWS settings (AWS_PROFILE, AWS_REGION).
#
# Steps, each timed: deploy a one-node Hoodi stack → wait until the node is ready → take a consistent
# snapshot through the agent → promote it → scale to two nodes (the new one must start from the snapshot)
# → terminate the first instance (the Auto Scaling lifecycle hook lets its agent stop gracefully; its DNS
# record must be gone) → destroy everything, snapshots included. On any failure (or Ctrl-C) the stack
# and its snapshots are destroyed all the same.
#
# Every AWS call here is one the README documents: ethnode's own commands, `aws ssm start-session`
# (snapshot runbook), `aws autoscaling terminate-instance-in-auto-scaling-group`, `aws route53
# list-resource-record-sets`, `aws ec2 describe-volumes` / `describe-snapshots` / `delete-snapshot`.
set -euo pipefail
cd "$(dirname "$0")/.."

max_sync_hours=8
confirmed=false
while [[ $# -gt 0 ]]; do
  case $1 in
    --i-understand-this-costs-money) confirmed=true ;;
    --max-sync-hours) max_sync_hours=$2; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ $confirmed != true ]]; then
  echo "error: this deploys real AWS resources and costs money; rerun with --i-understand-this-costs-money" >&2
  exit 2
fi
for v in ETHNODE_SMOKE_VPC ETHNODE_SMOKE_SUBNETS ETHNODE_SMOKE_IMAGE; do
  if [[ -z ${!v:-} ]]; then
    echo "error: set $v (see the header of this script)" >&2
    exit 2
  fi
done
for tool in aws session-manager-plugin curl jq; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 2; }
done
ethnode=${ETHNODE_BIN:-target/release/ethnode}
[[ -x $ethnode ]] || cargo build --release --locked --bin ethnode
[[ -x $ethnode ]] || { echo "error: no ethnode binary at $ethnode" >&2; exit 2; }

stack=ethnode-smoke-$(date +%s)
work=$(mktemp -d)
cfg=$work/ethnode.toml
subnets=$(printf '"%s",' ${ETHNODE_SMOKE_SUBNETS//,/ }); subnets=[${subnets%,}]
cat > "$cfg" <<EOF
[node]
network = "hoodi"
[dns]
name = "hoodi.$stack.internal"
[aws]
stack_name = "$stack"
[deploy]
vpc_id = "$ETHNODE_SMOKE_VPC"
subnet_ids = $subnets
image = "$ETHNODE_SMOKE_IMAGE"
instance_type = "m7i.xlarge"
volume_size_gib = 500
volume_iops = 3000
volume_throughput = 125
node_count = 1
EOF

declare -a steps=()
started=$(date +%s)
step_start=$started
done_step() {
  local now; now=$(date +%s)
  steps+=("$(printf '%-44s %8ss' "$1" $((now - step_start)))")
  echo "== $1: $((now - step_start))s"
  step_start=$now
}

forward_pid=""
cleanup() {
  local code=$?
  [[ -n $forward_pid ]] && kill "$forward_pid" 2>/dev/null || true
  echo "== cleaning up stack $stack (exit $code)"
  "$ethnode" destroy --yes --no-final-snapshot --config "$cfg" || echo "warning: destroy failed; delete stack $stack by hand" >&2
  for snap in $(aws ec2 describe-snapshots --owner-ids self --filters "Name=tag:ethnode:stack,Values=$stack" \
      --query 'Snapshots[].SnapshotId' --output text); do
    aws ec2 delete-snapshot --snapshot-id "$snap" || echo "warning: could not delete $snap" >&2
  done
  local hours; hours=$(awk -v s=$(( $(date +%s) - started )) 'BEGIN { printf "%.2f", s / 3600 }')
  # The stack's monthly cost (ethnode's price table) prorated to the hours it ran, for two nodes at most.
  local monthly; monthly=$(ETHNODE_DEPLOY_NODE_COUNT=2 "$ethnode" cost --json --config "$cfg" | jq .total_usd_month)
  echo
  printf '%-44s %9s\n' step time
  printf '%s\n' "${steps[@]}"
  printf '%-44s %8sh\n' "total" "$hours"
  printf 'cost incurred: at most ~$%s (2 nodes at $%s/month for %sh; list prices, see deploy/prices.toml)\n' \
    "$(awk -v m="$monthly" -v h="$hours" 'BEGIN { printf "%.2f", m / 730 * h }')" "$monthly" "$hours"
  rm -rf "$work"
  exit $code
}
trap cleanup EXIT INT TERM

instances() {
  "$ethnode" status --json --config "$cfg" | jq -r '.nodes[] | select(.instance.state == "running") | .instance.id'
}

# Forwards localhost:$2 to the agent (8555) of instance $1 (the snapshot runbook's way in).
forward() {
  [[ -n $forward_pid ]] && kill "$forward_pid" 2>/dev/null || true
  aws ssm start-session --target "$1" --document-name AWS-StartPortForwardingSession \
    --parameters "portNumber=8555,localPortNumber=$2" >/dev/null &
  forward_pid=$!
  for _ in $(seq 60); do curl -sf "http://127.0.0.1:$2/health/live" >/dev/null && return 0; sleep 2; done
  echo "error: no agent through the port forward to $1" >&2
  return 1
}

"$ethnode" doctor --config "$cfg"
done_step "doctor"
"$ethnode" deploy --yes --config "$cfg"
done_step "deploy (1 node, empty volume)"

first=""
for _ in $(seq 120); do first=$(instances | head -n1); [[ -n $first ]] && break; sleep 10; done
[[ -n $first ]] || { echo "error: no running instance" >&2; exit 1; }
forward "$first" 18555
deadline=$(( $(date +%s) + max_sync_hours * 3600 ))
until [[ $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18555/health/ready) == 200 ]]; do
  (( $(date +%s) < deadline )) || { echo "error: not ready within ${max_sync_hours}h" >&2; exit 1; }
  sleep 60
done
done_step "sync until ready (Hoodi, checkpoint sync)"

snapshot=$("$ethnode" snapshot create --agent http://127.0.0.1:18555 --json --config "$cfg" | jq -r .snapshot_id)
done_step "consistent snapshot $snapshot (to completed)"
"$ethnode" snapshot promote "$snapshot" --yes --config "$cfg"
done_step "promote"

ETHNODE_DEPLOY_NODE_COUNT=2 "$ethnode" update --yes --config "$cfg"
second=""
for _ in $(seq 120); do second=$(instances | grep -v "$first" | head -n1 || true); [[ -n $second ]] && break; sleep 10; done
[[ -n $second ]] || { echo "error: the second node did not start" >&2; exit 1; }
from=""
for _ in $(seq 60); do
  from=$(aws ec2 describe-volumes --filters "Name=tag:ethnode:instance,Values=$second" --query 'Volumes[0].SnapshotId' --output text)
  [[ $from != None && -n $from ]] && break; sleep 10
done
[[ $from == "$snapshot" ]] || { echo "error: the new node's chain volume comes from '$from', not $snapshot" >&2; exit 1; }
done_step "scale to 2: new node's volume from $snapshot"

zone=$(aws cloudformation describe-stacks --stack-name "$stack" --query "Stacks[0].Outputs[?OutputKey=='HostedZoneId'].OutputValue" --output text)
aws autoscaling terminate-instance-in-auto-scaling-group --instance-id "$first" --no-should-decrement-desired-capacity >/dev/null
gone=false
for _ in $(seq 90); do
  ids=$(aws route53 list-resource-record-sets --hosted-zone-id "$zone" --query 'ResourceRecordSets[].SetIdentifier' --output text)
  if [[ $ids != *"$first"* ]]; then gone=true; break; fi
  sleep 10
done
[[ $gone == true ]] || { echo "error: the terminated node's DNS record is still there" >&2; exit 1; }
done_step "terminate node 1: graceful stop, record gone"

third=""
for _ in $(seq 120); do third=$(instances | grep -v -e "$first" -e "$second" | head -n1 || true); [[ -n $third ]] && break; sleep 10; done
[[ -n $third ]] || { echo "error: no replacement instance" >&2; exit 1; }
from=$(aws ec2 describe-volumes --filters "Name=tag:ethnode:instance,Values=$third" --query 'Volumes[0].SnapshotId' --output text)
[[ $from == "$snapshot" ]] || { echo "error: the replacement's chain volume comes from '$from', not $snapshot" >&2; exit 1; }
done_step "replacement starts from the snapshot"
echo "== all steps passed; destroying"
