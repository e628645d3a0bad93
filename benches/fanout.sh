#!/usr/bin/env bash
# Fan-out: one `ssh.exec` (`true`) on 1 host vs 50 hosts with `parallel: 10` and `parallel: 50`,
# whole runs of the release binary, with hyperfine.
# Usage: benches/fanout.sh        (builds --release first; results on stdout, Markdown)
# Needs: hyperfine, and the sandbox up (`scripts/sandbox up`): the 50 hosts are aliases of its
# one sshd, each with its own master connection, as 50 real hosts would have.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "needs hyperfine: apt-get install -y hyperfine" >&2; exit 1; }
eval "$(scripts/sandbox env)"
[ -f "$SANDBOX_SSH_KNOWN_HOSTS" ] || { echo "the sandbox is not up: scripts/sandbox up" >&2; exit 1; }
cargo build --release --locked -q
bin=$PWD/target/release/runbook
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
hosts=${FANOUT_HOSTS:-50}

{
  echo "version: 1"
  echo "environments:"
  echo "  sandbox:"
  echo "    hosts:"
  for i in $(seq -w 1 "$hosts"); do
    echo "      h$i: { address: $SANDBOX_SSH_HOST, port: $SANDBOX_SSH_PORT, user: $SANDBOX_SSH_USER, key_file: $SANDBOX_SSH_KEY, known_hosts: $SANDBOX_SSH_KNOWN_HOSTS }"
  done
  echo "    groups:"
  echo "      fleet: [$(seq -w 1 "$hosts" | sed 's/^/h/' | paste -sd, | sed 's/,/, /g')]"
} >"$work/environments.yaml"

one_host=$(seq -w 1 "$hosts" | head -1 | sed 's/^/h/')
runbook() { # name, then the ssh.exec parameters
  printf 'version: 1\nname: %s\nsummary: fan-out benchmark\nsteps:\n  - id: s\n    ssh.exec: { %s, command: "true" }\n' "$1" "$2" >"$work/$1.yaml"
}
runbook one "host: $one_host"
runbook fan10 "hosts: fleet, parallel: 10"
runbook fan50 "hosts: fleet, parallel: $hosts"

# The floor: the same connections made by plain ssh without multiplexing, one per host, all at
# once (what any tool that opens a connection per host pays for the handshakes).
raw="ssh -F /dev/null -o BatchMode=yes -o ControlMaster=no -o ControlPath=none -i $SANDBOX_SSH_KEY -o UserKnownHostsFile=$SANDBOX_SSH_KNOWN_HOSTS -p $SANDBOX_SSH_PORT $SANDBOX_SSH_USER@$SANDBOX_SSH_HOST"
printf '%s true\n' "$raw" >"$work/raw1.sh"
printf 'seq %s | xargs -P %s -I{} %s true\n' "$hosts" "$hosts" "$raw" >"$work/raw50.sh"

run="$bin --dir $work --state-dir $work/state run"
echo "## $(date -u +%Y-%m-%d) — fan-out — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
hyperfine -N --warmup 3 --runs "${FANOUT_RUNS:-20}" --export-markdown "$work/r.md" \
  -n "1 host" "$run one --env sandbox --yes" \
  -n "$hosts hosts, parallel 10" "$run fan10 --env sandbox --yes" \
  -n "$hosts hosts, parallel $hosts" "$run fan50 --env sandbox --yes" \
  -n "raw ssh, 1 host" "bash $work/raw1.sh" \
  -n "raw ssh, $hosts hosts at once" "bash $work/raw50.sh" >&2
cat "$work/r.md"
