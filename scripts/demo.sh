#!/usr/bin/env bash
# The README's "main job": build, start a sandbox cluster of real redis-server processes,
# load demo keys, and run slotctl's read-only verbs against it. The sandbox keeps running
# afterwards so you can try the other verbs; the footer says how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh Debian machine has no redis-server: install it as .ci/run does when we may
# (root), otherwise print the one command that does it.
if ! command -v redis-server >/dev/null 2>&1 && ! command -v valkey-server >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "demo: installing redis-server (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # Debian may start the packaged service on 6379; the sandbox does not need it
    if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
  else
    echo "demo: redis-server is not installed; install it, then run npm run demo again:" >&2
    if command -v brew >/dev/null 2>&1; then echo "  brew install redis" >&2; else echo "  sudo apt-get install -y redis-server" >&2; fi
    exit 1
  fi
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build >/dev/null

# What to type: `slotctl` once it is on PATH as this checkout (npm link), else ./bin/run.js.
# The sandbox banner decides the same way, so both say the same.
here=$(cd bin && pwd -P)/run.js
on_path=$(command -v slotctl 2>/dev/null || true)
if [ -n "$on_path" ] && [ "$(readlink -f "$on_path")" = "$here" ]; then cli=slotctl; else cli=./bin/run.js; fi
slotctl() { node bin/run.js "$@"; }

slotctl sandbox stop >/dev/null 2>&1 || true
slotctl sandbox start --masters 3 --replicas 1 --keys 10000
seed=$(slotctl sandbox status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).seed))')

echo; echo "\$ $cli check $seed"; slotctl check "$seed"
echo; echo "\$ $cli info $seed"; slotctl info "$seed"
echo
echo "The sandbox is still running at $seed. Try for example:"
echo "  $cli rebalance $seed --dry-run"
echo "  $cli reshard $seed --from all --to <master id> --slots 1000 --yes"
echo "Stop it with: $cli sandbox stop"
if [ "$cli" != slotctl ]; then
  echo "To type slotctl instead of ./bin/run.js, put it on your PATH: npm link (or npm install -g .)"
fi
