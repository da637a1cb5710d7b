#!/usr/bin/env bash
# The set-up-and-run command (`make demo`): installs what is missing (as
# root, from Debian), starts libvirtd and virtlogd, starts `hpcd dev` (a
# one-member master with this host's agent in the same process), and runs
# the example jobs in real guests. hpcd keeps running afterwards so you can
# go on: `bin/hpcsub queue`, `bin/hpcsub examples/render.yaml`, ...
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-/var/tmp/vhpc-demo}"
ADDR="${HPC_ADDR:-127.0.0.1:7070}"
export HPC_ADDR="$ADDR"
sub=bin/hpcsub

./scripts/start-libvirt.sh

if [ -f "$DATA/hpcd.pid" ] && kill -0 "$(cat "$DATA/hpcd.pid")" 2>/dev/null; then
  echo "demo: stopping the previous demo's hpcd (pid $(cat "$DATA/hpcd.pid"))"
  kill "$(cat "$DATA/hpcd.pid")"
  while kill -0 "$(cat "$DATA/hpcd.pid")" 2>/dev/null; do sleep 0.2; done
fi
rm -rf "$DATA"
mkdir -p "$DATA"
chmod 755 "$DATA"
echo "demo: starting hpcd dev (data $DATA, gRPC $ADDR, metrics http://127.0.0.1:7080/metrics, log $DATA/hpcd.log)"
nohup bin/hpcd dev --data-dir "$DATA" --addr "$ADDR" >"$DATA/hpcd.log" 2>&1 &
echo $! >"$DATA/hpcd.pid"

printf 'demo: waiting for the node to register (the first start builds the guest image)'
for _ in $(seq 1 300); do
  if $sub nodes 2>/dev/null | grep -q ' ready '; then break; fi
  if ! kill -0 "$(cat "$DATA/hpcd.pid")" 2>/dev/null; then echo; tail -20 "$DATA/hpcd.log"; exit 1; fi
  printf .; sleep 0.5
done
echo
$sub nodes | grep -q ' ready ' || { echo "demo: the agent did not register; see $DATA/hpcd.log"; tail -20 "$DATA/hpcd.log"; exit 1; }

step() { echo; echo "\$ hpcsub $*"; }
step nodes;                          $sub nodes
step --dry-run examples/hello.yaml;  $sub --dry-run examples/hello.yaml
step --follow examples/hello.yaml;   $sub --follow examples/hello.yaml
step --wait examples/fail.yaml
set +e; $sub --wait examples/fail.yaml; rc=$?; set -e
echo "(exit status $rc: the job's own exit code)"
[ "$rc" = 3 ] || { echo "demo: expected exit status 3 from fail.yaml"; exit 1; }
step --wait examples/render.yaml;    $sub --wait examples/render.yaml
step queue --all;                    $sub queue --all
step show 1;                         $sub show 1
echo
echo "demo: done. hpcd is still running (pid $(cat "$DATA/hpcd.pid")); stop it with: kill $(cat "$DATA/hpcd.pid")"
