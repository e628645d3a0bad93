#!/usr/bin/env bash
# Whole-process benchmarks of the CLI (start-up, check, engine overhead), with hyperfine.
# Usage: benches/cli.sh            (builds --release first; results on stdout, Markdown)
# Needs: hyperfine (apt-get install hyperfine). No service is needed: nothing here touches
# the network.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "needs hyperfine: apt-get install -y hyperfine" >&2; exit 1; }
cargo build --release --locked -q
bin=$PWD/target/release/runbook
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1,000 generated runbooks of 6 steps each, with templates between steps.
mkdir -p "$work/many" "$work/one"
cp runbooks/environments.yaml "$work/many/" "$work/one/" 2>/dev/null || true
for i in $(seq 1 1000); do
  cat >"$work/many/rb-$i.yaml" <<YAML
version: 1
name: rb-$i
summary: Generated runbook $i
inputs:
  reason: { description: Why, default: scheduled }
steps:
  - id: a
    generate: { format: hex, bytes: 24 }
  - id: b
    generate: { format: fernet }
  - id: c
    when: inputs.reason == 'scheduled'
    generate: { format: base64url, bytes: 32 }
  - id: d
    title: "Tell {{ env.name }}"
    manual.confirm:
      instructions: "Use {{ steps.a.value }} and {{ steps.b.value }} for {{ inputs.reason }}"
  - id: e
    generate: { format: alphanumeric, length: 40 }
  - id: f
    generate: { format: hex }
YAML
done

# One runbook of 1,000 generate steps: the engine's overhead per step.
{
  echo "version: 1"; echo "name: steps1000"; echo "summary: 1,000 steps"; echo "steps:"
  for i in $(seq 1 1000); do echo "  - id: s$i"; echo "    generate: { format: hex, bytes: 16 }"; done
} >"$work/one/steps1000.yaml"

echo "## $(date -u +%Y-%m-%d) — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
hyperfine -N --warmup 5 --export-markdown "$work/r1.md" \
  -n 'runbook --version' "$bin --version" \
  -n 'check shipped runbooks' "$bin check runbooks" \
  -n 'check 1,000 runbooks' "$bin check $work/many" \
  -n 'plan ssm-bootstrap (production)' "$bin plan ssm-bootstrap --env production" \
  -n 'run 1,000 generate steps' "$bin --dir $work/one --state-dir $work/state run steps1000 --env sandbox" >&2
cat "$work/r1.md"
