#!/usr/bin/env bash
# deploy/secrets.sh — fetch MuseHub's secrets from SSM and write the app's .env
# (stand-in of the real script, on the sandbox's app host).
#
# Every parameter under $SSM_PREFIX is fetched decrypted and written as NAME=value lines to
# <app_dir>/.env, mode 600, atomically. Secrets never appear in argv or on the terminal.
# Each invocation appends one line to <app_dir>/secrets.log (tests count them).
set -euo pipefail

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
app_dir=$(dirname "$deploy_dir")
# host.env: this host's non-secret settings (SSM endpoint, python paths, ports)
# shellcheck source=/dev/null
. "$deploy_dir/host.env"

echo "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) secrets" >>"$app_dir/secrets.log"

# The sandbox SSM is moto: it accepts any credentials; these are not secrets.
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true \
  "$VENV_PYTHON" "$deploy_dir/fetch_secrets.py" \
  --endpoint "$SSM_ENDPOINT" --region "$AWS_REGION" --prefix "$SSM_PREFIX" --out "$app_dir/.env"
