#!/usr/bin/env bash
# The set-up-and-run command (`make demo`): installs what is missing (as
# root, from Debian), starts libvirtd and virtlogd, starts `hpcd dev` (a
# one-member master with this host's agent in the same process), and runs
# the example jobs in real guests. hpcd keeps running afterwards so you can
# go on: `bin/hpcsub queue`, `bin/hpcsub examples/render.yaml`, ...
#
# VHPC_DEMO_DIR (default /var/tmp/vhpc-demo) holds hpcd's data, its log and
# pid. The demo starts afresh each time, but deletes only a directory that
# it made itself (it holds the marker file .vhpc-demo): any other existing
# directory is refused, never removed.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${VHPC_DEMO_DIR:-/var/tmp/vhpc-demo}"
MARKER=.vhpc-demo
ADDR="${HPC_ADDR:-127.0.0.1:7070}"
export HPC_ADDR="$ADDR"
sub=bin/hpcsub

if [ -e "$DATA" ] && [ ! -f "$DATA/$MARKER" ]; then
  if [ ! -d "$DATA" ] || [ -n "$(ls -A "$DATA")" ]; then
    echo "demo: $DATA exists and was not made by the demo (no $MARKER in it); not touching it." >&2
    echo "demo: set VHPC_DEMO_DIR to a new directory, or remove $DATA yourself." >&2
    exit 2
  fi
fi
./scripts/start-libvirt.sh

if [ -f "$DATA/$MARKER" ] && [ -f "$DATA/hpcd.pid" ] && kill -0 "$(cat "$DATA/hpcd.pid")" 2>/dev/null; then
  echo "demo: stopping the previous demo's hpcd (pid $(cat "$DATA/hpcd.pid"))"
  kill "$(cat "$DATA/hpcd.pid")"
  while kill -0 "$(cat "$DATA/hpcd.pid")" 2>/dev/null; do sleep 0.2; done
fi
if [ -f "$DATA/$MARKER" ]; then
  rm -rf -- "$DATA"
fi
mkdir -p "$DATA"
echo "made by scripts/demo.sh; the next make demo deletes this directory" >"$DATA/$MARKER"
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
echo
echo "\$ hpc image build images/python.yaml   # a real Debian image (mmdebstrap); the first build takes minutes, later ones are cached"
built=$(bin/hpc image build images/python.yaml)
echo "$built"
echo "\$ hpc image push DIR public/python:1"
bin/hpc image push "$(printf '%s' "$built" | cut -f1)" public/python:1 --addr "$ADDR"
step --follow examples/python.yaml;  $sub --follow examples/python.yaml
step queue --all;                    $sub queue --all
step show 1;                         $sub show 1
echo
echo "demo: done. hpcd is still running (pid $(cat "$DATA/hpcd.pid")); stop it with: kill $(cat "$DATA/hpcd.pid")"
