#!/usr/bin/env bash
# deploy/deploy.sh — (re)start the MuseHub stand-in app (on the sandbox's app host).
#
# Stops the running instance (by its pidfile, never by name), starts a new one detached,
# and waits until it listens — not until it is healthy: checking health is the runbook's job.
# The app reads DB_PASSWORD from <app_dir>/.env when it starts, like the real one, so a
# rotated secret takes effect only after secrets.sh + deploy.sh.
# Each invocation appends one line to <app_dir>/deploy.log (tests count redeploys).
set -euo pipefail

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
app_dir=$(dirname "$deploy_dir")
# shellcheck source=/dev/null
. "$deploy_dir/host.env"
cd "$app_dir"

echo "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) deploy" >>deploy.log
t0=$EPOCHREALTIME
elapsed() { awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

[ -s .env ] || { echo "deploy: $app_dir/.env is missing; run deploy/secrets.sh first" >&2; exit 1; }

pid_is_app() {
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$app_dir/app.py"
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$APP_PORT") 2>/dev/null; }

old=$(cat app.pid 2>/dev/null | tr -dc '0-9' || true)
if pid_is_app "$old"; then
  echo "musehub: stopping pid $old"
  kill -TERM "$old" 2>/dev/null || true
  for _ in $(seq 1 100); do pid_is_app "$old" || break; sleep 0.05; done
  if pid_is_app "$old"; then kill -KILL "$old" 2>/dev/null || true; sleep 0.1; fi
fi
rm -f app.pid
# A process that is exiting has already lost its cmdline but may still hold its socket for
# a moment: give the port that moment before calling it taken.
for _ in $(seq 1 60); do listening || break; sleep 0.05; done
if listening; then
  echo "deploy: port $APP_PORT is taken by another process; not starting musehub" >&2
  exit 1
fi

# A clean environment: the app must depend only on .env and host.env, not on whoever
# deployed it (an operator's shell, an ssh session, the sandbox script).
# setsid: own session, so it outlives the ssh session or shell that deployed it. Descriptors
# 3-9 are closed: one inherited from the deployer (a lock file under `flock`) would otherwise
# stay held for the app's whole life.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME="$app_dir" \
  setsid "$PYTHON" "$app_dir/app.py" \
    --env-file "$app_dir/.env" --pidfile "$app_dir/app.pid" --fail-file "$app_dir/FAIL_HEALTH" \
    --port "$APP_PORT" --cert "$TLS_CERT" --key "$TLS_KEY" \
    --psql "$PSQL" --pg-host "$PG_HOST" --pg-port "$PG_PORT" \
    </dev/null >>app.log 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &

# app.py writes its pidfile once its socket is bound.
for _ in $(seq 1 200); do
  new=$(cat app.pid 2>/dev/null | tr -dc '0-9' || true)
  if [ -n "$new" ] && listening; then
    echo "musehub: started pid $new, listening on https://127.0.0.1:$APP_PORT ($(elapsed))"
    exit 0
  fi
  kill -0 $! 2>/dev/null || break
  sleep 0.05
done
echo "deploy: musehub did not start listening on 127.0.0.1:$APP_PORT; last lines of $app_dir/app.log:" >&2
tail -n 15 app.log >&2 || true
exit 1
