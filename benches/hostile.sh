#!/usr/bin/env bash
# Peak memory and wall time of `runbook check` on hostile inputs: an alias bomb, 140,000
# levels of nesting (block style, in a runbook and in environments.yaml), a 50 MB file and a
# FIFO. Each must be refused quickly with exit 2. Prints a Markdown table for BENCHMARKS.md.
# Needs /usr/bin/time (`apt-get install time`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
bin=$PWD/target/release/runbook
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case_dir() { mkdir -p "$work/$1"; printf '%s' "$work/$1"; }
head_rb() { printf 'version: 1\nname: %s\nsummary: s\n' "$1"; }

d=$(case_dir bomb)
{ head_rb x; echo 'a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'
  for i in $(seq 1 9); do
    printf 'a%d: &a%d [' "$i" "$i"; for _ in $(seq 1 8); do printf '*a%d, ' $((i - 1)); done
    printf '*a%d]\n' $((i - 1)); done
  echo 'steps: []'; } >"$d/x.yaml"
bomb_bytes=$(wc -c <"$d/x.yaml")

d=$(case_dir deep); { head_rb x; echo 'steps:'; python3 -c "print('- ' * 140000 + 'x')"; } >"$d/x.yaml"
d=$(case_dir deepmap); { head_rb x; echo 'steps:'
  python3 -c "print(''.join('  ' * i + 'a:\n' for i in range(1, 701)))"; } >"$d/x.yaml"
d=$(case_dir deepenv); { printf 'version: 1\nenvironments:\n  local: {}\nx:\n'
  python3 -c "print('- ' * 140000 + 'x')"; } >"$d/environments.yaml"
d=$(case_dir big); { head_rb x; printf '# '; head -c $((50 * 1024 * 1024)) /dev/zero | tr '\0' x; echo; } >"$d/x.yaml"
d=$(case_dir fifo); mkfifo "$d/x.yaml"

row() { # name, dir, description
  local runs=5 best_ms= rss= code
  for _ in $(seq $runs); do
    code=0
    # %e has 10 ms steps: the wall time is taken around the call instead (in µs).
    t0=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$work/t" "$bin" --dir "$2" check >/dev/null 2>&1 || code=$?
    t1=$(date +%s%N)
    kb=$(tail -n 1 "$work/t")
    ms=$(( (t1 - t0) / 1000 ))
    if [ -z "$best_ms" ] || [ "$ms" -lt "$best_ms" ]; then best_ms=$ms; fi
    if [ -z "$rss" ] || [ "$kb" -gt "$rss" ]; then rss=$kb; fi
  done
  printf '| %s | %s | %s ms | %.1f MB | %s |\n' "$1" "$3" "$(python3 -c "print(round($best_ms / 1000, 1))")" "$(python3 -c "print($rss / 1024)")" "$code"
}

echo "| input | what | wall (best of 5) | peak RSS (max of 5) | exit |"
echo "|:---|:---|---:|---:|---:|"
row "alias bomb ($bomb_bytes bytes, 9^10 copies)" "$work/bomb" "refused at the alias that crosses the budget"
row "140,000 \`- \` levels (280 KB)" "$work/deep" "refused at level 65"
row "700 nested mappings (490 KB)" "$work/deepmap" "refused at level 65"
row "140,000 levels in environments.yaml" "$work/deepenv" "refused at level 65"
row "50 MB runbook" "$work/big" "refused by its size, unread"
row "FIFO named x.yaml" "$work/fifo" "refused, not opened for blocking"
echo
echo "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(uname -sr), $(rustc --version)"
