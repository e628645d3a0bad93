#!/usr/bin/env bash
# `runbook run db-password` on the sandbox vs the hand-run procedure it replaces, done the
# hand-run way (one `ssh` per command, psql on the server, `aws ssm put-parameter`), against
# the same sandbox. Both really rotate the password; the sandbox stays consistent after each.
# Usage: scripts/sandbox up >/dev/null && benches/seed.sh     (Markdown table on stdout)
# Needs: hyperfine, python3 (a private awscli venv is installed first, not timed).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "needs hyperfine" >&2; exit 1; }
env_file=$(mktemp); scripts/sandbox env >"$env_file"; . "$env_file"; rm -f "$env_file"
cargo build --release --locked -q
bin=$PWD/target/release/runbook
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv" && "$work/venv/bin/pip" install -q awscli >"$work/pip.log" 2>&1
export PATH="$work/venv/bin:$PATH"

# The hand-run procedure (section 1 of the Markdown runbook), pointed at the sandbox. It is
# reproduced as written, unsafe parts included (the password on command lines): it is only
# timed here, never shipped.
cat >"$work/seed-db-password.sh" <<SEED
#!/usr/bin/env bash
set -euo pipefail
ssh_() { ssh -p $SANDBOX_SSH_PORT -i $SANDBOX_SSH_KEY -o IdentitiesOnly=yes -o BatchMode=yes \
  -o UserKnownHostsFile=$SANDBOX_SSH_KNOWN_HOSTS -o StrictHostKeyChecking=yes root@127.0.0.1 "\$@"; }
OLD_PW=\$(aws ssm get-parameter --name /musehub/sandbox/DB_PASSWORD --with-decryption \
  --query Parameter.Value --output text --endpoint-url $AWS_ENDPOINT_URL_SSM)
NEW_PW=\$(openssl rand -hex 24)
ssh_ "PGPASSWORD='\$OLD_PW' psql -h 127.0.0.1 -p $SANDBOX_PG_PORT -U musehub -d musehub -qAtX \
  -c \"ALTER USER musehub PASSWORD '\$NEW_PW';\""
aws ssm put-parameter --name /musehub/sandbox/DB_PASSWORD --value "\$NEW_PW" --type SecureString \
  --overwrite --endpoint-url $AWS_ENDPOINT_URL_SSM >/dev/null
ssh_ "cd $SANDBOX_APP_DIR && bash deploy/secrets.sh && bash deploy/deploy.sh" >/dev/null
for i in \$(seq 1 10); do
  ssh_ "curl -sf --cacert $SANDBOX_CA_FILE https://127.0.0.1:1337/explore >/dev/null && echo OK" && break
  sleep 3
done
SEED
chmod +x "$work/seed-db-password.sh"

echo "## db-password end to end: $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
hyperfine -N --warmup 1 -r 10 --export-markdown "$work/r.md" \
  -n 'runbook run db-password' "$bin --state-dir $work/state run db-password --env sandbox --yes" \
  -n 'hand-run procedure (bash, ssh, psql, aws cli)' "$work/seed-db-password.sh" >&2
cat "$work/r.md"
