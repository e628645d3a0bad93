#!/usr/bin/env bash
# Fan-out: one `ssh.exec` (`true`) on 1 host vs 50 hosts with `parallel: 10` and `parallel: 50`,
# whole runs of the release binary, with hyperfine; plain `ssh` to the same hosts as the floor.
#
# Usage: benches/fanout.sh              the distro's OpenSSH on both ends (the sandbox's sshd)
#        benches/fanout.sh --openssh-10 the same, then again with OpenSSH 10.0p1 on both ends
#
# Why two: the time of a 50-host fan-out is the SSH key exchange. OpenSSH 9.2 (Debian 12)
# negotiates sntrup761x25519, whose client side costs ~70 ms of CPU per connection; OpenSSH
# ≥ 9.9 negotiates mlkem768x25519 (also post-quantum) for a tenth of that. `--openssh-10`
# builds OpenSSH 10.0p1 (Debian 13's) from Debian's source archive, pinned by SHA-256, into
# target/bench-openssh/ (rebuildable: delete it), starts a private sshd from it on a free
# loopback port, and runs `runbook` with that `ssh` first in PATH. Nothing is installed.
#
# Needs: hyperfine, the sandbox up (`scripts/sandbox up`); for --openssh-10 also curl, a C
# compiler, make, libssl-dev and zlib1g-dev. FANOUT_HOSTS, FANOUT_RUNS change the fleet size and
# the number of runs. Results on stdout, Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "needs hyperfine: apt-get install -y hyperfine" >&2; exit 1; }
eval "$(scripts/sandbox env)"
[ -f "$SANDBOX_SSH_KNOWN_HOSTS" ] || { echo "the sandbox is not up: scripts/sandbox up" >&2; exit 1; }
modern=
case "${1:-}" in
  --openssh-10) modern=1 ;;
  "") ;;
  *) echo "usage: benches/fanout.sh [--openssh-10]" >&2; exit 2 ;;
esac
cargo build --release --locked -q
bin=$PWD/target/release/runbook
work=$(mktemp -d)
sshd_pid=
cleanup() {
  [ -z "$sshd_pid" ] || kill "$sshd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
hosts=${FANOUT_HOSTS:-50}

OPENSSH_VERSION=10.0p1
OPENSSH_SHA256=021a2e709a0edf4250b1256bd5a9e500411a90dddabea830ed59cef90eb9d85c
build_openssh() { # prints the directory holding ssh, sshd, sshd-session, sshd-auth
  local cache=$PWD/target/bench-openssh src
  src=$cache/openssh-$OPENSSH_VERSION
  if [ ! -x "$src/sshd-auth" ]; then
    mkdir -p "$cache"
    local tarball=$cache/openssh_$OPENSSH_VERSION.orig.tar.gz
    curl -fsS -o "$tarball" "http://deb.debian.org/debian/pool/main/o/openssh/openssh_$OPENSSH_VERSION.orig.tar.gz"
    echo "$OPENSSH_SHA256  $tarball" | sha256sum -c --quiet -
    rm -rf "$src" && tar -xzf "$tarball" -C "$cache"
    mkdir -p "$cache/empty" && chmod 755 "$cache/empty"
    (cd "$src" && ./configure -q --without-pam --with-privsep-path="$cache/empty" \
        --with-privsep-user=nobody >/dev/null && make -s -j"$(nproc)" >/dev/null 2>&1)
  fi
  echo "$src"
}

# The fleet: $hosts aliases of one sshd, each its own master connection, as real hosts have.
write_inputs() { # dir, port, known_hosts
  local dir=$1 port=$2 kh=$3
  mkdir -p "$dir"
  {
    echo "version: 1"
    echo "environments:"
    echo "  sandbox:"
    echo "    hosts:"
    for i in $(seq -w 1 "$hosts"); do
      echo "      h$i: { address: $SANDBOX_SSH_HOST, port: $port, user: $SANDBOX_SSH_USER, key_file: $SANDBOX_SSH_KEY, known_hosts: $kh }"
    done
    echo "    groups:"
    echo "      fleet: [$(seq -w 1 "$hosts" | sed 's/^/h/' | paste -sd, | sed 's/,/, /g')]"
  } >"$dir/environments.yaml"
  local one_host
  one_host=$(seq -w 1 "$hosts" | head -1 | sed 's/^/h/')
  runbook() { # name, then the ssh.exec parameters
    printf 'version: 1\nname: %s\nsummary: fan-out benchmark\nsteps:\n  - id: s\n    ssh.exec: { %s, command: "true" }\n' "$1" "$2" >"$dir/$1.yaml"
  }
  runbook one "host: $one_host"
  runbook fan10 "hosts: fleet, parallel: 10"
  runbook fan50 "hosts: fleet, parallel: $hosts"
  # The floor: the same connections made by plain ssh without multiplexing, one per host, all
  # at once (what any tool that opens a connection per host pays for the handshakes).
  local raw="ssh -F /dev/null -o BatchMode=yes -o ControlMaster=no -o ControlPath=none -i $SANDBOX_SSH_KEY -o UserKnownHostsFile=$kh -p $port $SANDBOX_SSH_USER@$SANDBOX_SSH_HOST"
  printf '%s true\n' "$raw" >"$dir/raw1.sh"
  printf 'seq %s | xargs -P %s -I{} %s true\n' "$hosts" "$hosts" "$raw" >"$dir/raw50.sh"
}

measure() { # title, dir; PATH decides which ssh both runbook and the raw rows use
  local title=$1 dir=$2
  local run="$bin --dir $dir --state-dir $dir/state run"
  local kex
  kex=$(bash -c "$(sed 's/^ssh /ssh -v /' "$dir/raw1.sh")" 2>&1 | sed -n 's/.*kex: algorithm: \([^ ]*\).*/\1/p' | head -1)
  echo
  echo "### $title — $(ssh -V 2>&1 | cut -d, -f1), key exchange $kex"
  echo
  hyperfine -N --warmup 3 --runs "${FANOUT_RUNS:-20}" --export-markdown "$dir/r.md" \
    -n "1 host" "$run one --env sandbox --yes" \
    -n "$hosts hosts, parallel 10" "$run fan10 --env sandbox --yes" \
    -n "$hosts hosts, parallel $hosts" "$run fan50 --env sandbox --yes" \
    -n "raw ssh, 1 host" "bash $dir/raw1.sh" \
    -n "raw ssh, $hosts hosts at once" "bash $dir/raw50.sh" >&2
  cat "$dir/r.md"
}

echo "## $(date -u +%Y-%m-%d) — fan-out — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
write_inputs "$work/distro" "$SANDBOX_SSH_PORT" "$SANDBOX_SSH_KNOWN_HOSTS"
measure "distro OpenSSH on both ends (the sandbox's sshd)" "$work/distro"

if [ -n "$modern" ]; then
  src=$(build_openssh)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$src/ssh-keygen" -q -t ed25519 -N '' -f "$work/host_ed25519"
  echo "[$SANDBOX_SSH_HOST]:$port $(cut -d' ' -f1,2 "$work/host_ed25519.pub")" >"$work/known_hosts"
  cat >"$work/sshd_config" <<EOF
Port $port
ListenAddress $SANDBOX_SSH_HOST
HostKey $work/host_ed25519
PidFile $work/sshd.pid
AuthorizedKeysFile $(dirname "$SANDBOX_SSH_KEY")/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
MaxSessions 100
MaxStartups 100:30:200
# every "host" is 127.0.0.1: do not treat 50 connections from one source as an attack
PerSourcePenalties no
SshdSessionPath $src/sshd-session
SshdAuthPath $src/sshd-auth
LogLevel ERROR
# as the sandbox's sshd: an empty HOME, so the login shell reads no dotfiles of this machine
SetEnv HOME=$work/home
EOF
  mkdir -p "$work/home"
  "$src/sshd" -D -f "$work/sshd_config" -E "$work/sshd.log" &
  sshd_pid=$!
  for _ in $(seq 50); do [ -f "$work/sshd.pid" ] && break; sleep 0.1; done
  write_inputs "$work/modern" "$port" "$work/known_hosts"
  mkdir -p "$work/bin" && ln -s "$src/ssh" "$work/bin/ssh"
  PATH="$work/bin:$PATH" measure "OpenSSH $OPENSSH_VERSION on both ends" "$work/modern"
fi
