#!/usr/bin/env bash
# Step kinds against the tools an operator would otherwise run, on the sandbox, with hyperfine:
#   ssh.exec `true`  vs  ssh (new connection each time)  and  ssh through an open ControlMaster
#   psql `select 1`  vs  psql -c 'select 1'               (direct, sslmode disable)
#   ssm.put          vs  aws ssm put-parameter            (moto)
# Usage: benches/kinds.sh   (builds --release; needs `scripts/sandbox up`; Markdown on stdout)
# Needs: hyperfine, jq, psql, python3 (for a private awscli venv, installed before timing).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine jq psql python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
eval "$(scripts/sandbox env)" || { echo "the sandbox is not up: scripts/sandbox up" >&2; exit 1; }
cargo build --release --locked -q
bin=$PWD/target/release/runbook
work=$(mktemp -d)
cm="$work/cm"   # the ControlMaster's socket
param="/bench/kinds-$$"
cleanup() {
  ssh -F "$SANDBOX_SSH_CONFIG" -o ControlPath="$cm" -O exit runbook-sandbox 2>/dev/null || true
  [ -x "$work/venv/bin/aws" ] && "$work/venv/bin/aws" ssm delete-parameter --name "$param" \
    --endpoint-url "$AWS_ENDPOINT_URL_SSM" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# awscli in a private venv (not timed). The sandbox's own venv runs moto: leave it alone.
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q awscli >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; exit 1; }
aws=$work/venv/bin/aws

mkdir -p "$work/rb"
cat >"$work/rb/environments.yaml" <<YAML
version: 1
environments:
  bench:
    aws: { region: $AWS_REGION, endpoint: $AWS_ENDPOINT_URL_SSM }
    hosts:
      app:
        address: $SANDBOX_SSH_HOST
        port: $SANDBOX_SSH_PORT
        user: $SANDBOX_SSH_USER
        key_file: $SANDBOX_SSH_KEY
        known_hosts: $SANDBOX_SSH_KNOWN_HOSTS
    databases:
      admin:
        host: $SANDBOX_PG_HOST
        port: $SANDBOX_PG_PORT
        name: runbook_admin
        user: $SANDBOX_PG_ADMIN_USER
        sslmode: disable
YAML
# runbook NAME N STEP-YAML: a runbook of N copies of one step
runbook() {
  local name=$1 n=$2 step=$3 i
  {
    echo "version: 1"; echo "name: $name"; echo "summary: $n steps"
    echo "inputs:"; echo "  pw: { description: admin password, secret: true }"
    echo "steps:"
    for i in $(seq 1 "$n"); do echo "  - id: s$i"; echo "    $step"; done
  } >"$work/rb/$name.yaml"
}
for n in 1 20; do
  runbook "ssh$n" "$n" 'ssh.exec: { host: app, command: "true" }'
  runbook "psql$n" "$n" 'psql: { database: admin, password: "{{ inputs.pw }}", sql: select 1 }'
  runbook "ssm$n" "$n" "ssm.put: { name: $param, value: v, type: String, overwrite: true }"
done
export RUNBOOK_INPUT_PW=$SANDBOX_PG_ADMIN_PASSWORD PGPASSWORD=$SANDBOX_PG_ADMIN_PASSWORD
"$bin" --dir "$work/rb" check >/dev/null
rb() { echo "$bin --dir $work/rb --state-dir $work/state run $1 --env bench --yes"; }
ssh_plain="ssh -F $SANDBOX_SSH_CONFIG -o ControlMaster=no -o ControlPath=none runbook-sandbox true"
ssh_mux="ssh -F $SANDBOX_SSH_CONFIG -o ControlMaster=no -o ControlPath=$cm runbook-sandbox true"
loop20() { echo "bash -c 'for i in {1..20}; do $1 || exit 1; done'"; }

ssh -F "$SANDBOX_SSH_CONFIG" -o ControlPath="$cm" -M -N -f runbook-sandbox
ssh -F "$SANDBOX_SSH_CONFIG" -o ControlPath="$cm" -O check runbook-sandbox 2>/dev/null

hf() { hyperfine -N --style none --warmup 3 --export-json "$work/$1.json" "${@:2}" >&2; }
hf ssh --min-runs 20 \
  -n 'runbook: 1 ssh.exec step' "$(rb ssh1)" \
  -n 'runbook: 20 ssh.exec steps' "$(rb ssh20)" \
  -n '20 × ssh, new connection each' "$(loop20 "$ssh_plain")" \
  -n '20 × ssh through a ControlMaster' "$(loop20 "$ssh_mux")"
hf psql --min-runs 20 \
  -n 'runbook: 1 psql step' "$(rb psql1)" \
  -n 'runbook: 20 psql steps' "$(rb psql20)" \
  -n "psql -c 'select 1'" "psql -h $SANDBOX_PG_HOST -p $SANDBOX_PG_PORT -U $SANDBOX_PG_ADMIN_USER -d runbook_admin -XAtq -c 'select 1'"
hf ssm --min-runs 10 \
  -n 'runbook: 1 ssm.put step' "$(rb ssm1)" \
  -n 'runbook: 20 ssm.put steps' "$(rb ssm20)" \
  -n 'aws ssm put-parameter' "$aws ssm put-parameter --name $param --value v --type String --overwrite --endpoint-url $AWS_ENDPOINT_URL_SSM"

# In-process cross-check: the step durations the run itself reports (`--output json`), steps
# 2–20 of 5 runs (step 1 also opens the SSH master).
for kind in ssh psql ssm; do
  for i in 1 2 3 4 5; do $(rb "${kind}20") --output json; done \
    | jq -s '[.[] | select(.event == "step_finished" and .id != "s1") | .duration_ms] | add / length' \
    >"$work/$kind.steps"
done

# The table, in ms. "per step" of a runbook is (median of 20 steps − median of 1 step) / 19:
# the run's fixed cost (start-up, loading, the SSH master's connection or the SDK client) drops
# out. Medians, because that fixed cost (mostly the SSH handshake) has outliers that swamp a
# difference of means. A loop of 20 invocations counts T / 20; one invocation counts T.
jq -rn --slurpfile ssh "$work/ssh.json" --slurpfile psql "$work/psql.json" --slurpfile ssm "$work/ssm.json" \
  --argjson ssh_steps "$(cat "$work/ssh.steps")" --argjson psql_steps "$(cat "$work/psql.steps")" \
  --argjson ssm_steps "$(cat "$work/ssm.steps")" '
  def ms: . * 1000 | . * 10 | round / 10;
  def r2: . * 100 | round / 100;
  def row($r; $per): "| \($r.command) | \($r.median | ms) ms | \($r.min | ms) ms | \($per | ms) ms |";
  def group($g; $steps; $kind):
    ($g.results) as $r
    | (($r[1].median - $r[0].median) / 19) as $step
    | ($r[-1] | if (.command | startswith("20 ×")) then .median / 20 else .median end) as $ref
    | row($r[0]; $r[0].median), row($r[1]; $step),
      ($r[2:][] | row(.; if (.command | startswith("20 ×")) then .median / 20 else .median end)),
      "| \($kind) step as the run reports it (steps 2–20, 5 runs) | | | \($steps | . * 10 | round / 10) ms |",
      "| **\($kind) step ÷ \($r[-1].command)** | | | **\($step / $ref | r2)×** (reported: \($steps / 1000 / $ref | r2)×) |";
  "| what | median | min | per step or invocation |",
  "|:---|---:|---:|---:|",
  group($ssh[0]; $ssh_steps; "ssh.exec"),
  group($psql[0]; $psql_steps; "psql"),
  group($ssm[0]; $ssm_steps; "ssm.put")'
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), load average $(cut -d" " -f1-3 /proc/loadavg) at the end; $(ssh -V 2>&1 | cut -d, -f1), $(psql --version), $("$aws" --version 2>&1 | cut -d' ' -f1)."
