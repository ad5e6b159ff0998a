#!/usr/bin/env bash
# The README's "main job": build, start a sandbox cluster of real redis-server processes,
# load demo keys, and run slotctl's read-only verbs against it. The sandbox keeps running
# afterwards so you can try the other verbs; stop it with ./bin/run.js sandbox stop.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server is not installed: sudo apt-get install -y redis-server" >&2
  exit 1
fi
[ -d node_modules ] || npm ci
npm run build >/dev/null

slotctl() { node bin/run.js "$@"; }

slotctl sandbox stop >/dev/null 2>&1 || true
slotctl sandbox start --masters 3 --replicas 1 --keys 10000
seed=$(slotctl sandbox status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).seed))')

echo; echo "\$ slotctl check $seed"; slotctl check "$seed"
echo; echo "\$ slotctl info $seed"; slotctl info "$seed"
echo
echo "The sandbox is still running at $seed. Try for example:"
echo "  ./bin/run.js rebalance $seed --dry-run"
echo "  ./bin/run.js reshard $seed --from all --to <master id> --slots 1000 --yes"
echo "Stop it with: ./bin/run.js sandbox stop"
