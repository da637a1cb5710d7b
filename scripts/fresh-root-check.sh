#!/usr/bin/env bash
# fresh-root-check.sh (by hand, as root): proves scripts/debian-packages.txt
# on a clean Debian 12 root, the way a new machine would see the project.
#
# It makes a minbase bookworm root with mmdebstrap (Essential and required
# packages plus apt, nothing else), clones the committed tree into it,
# copies in the Go toolchain (the one prerequisite not from Debian), and
# inside a chroot runs: scripts/install-deps.sh, make build, make generate
# (the generated code must not change), make unit and tools/pkgcheck -v.
# The e2e tier cannot run there: a chroot has no daemons of its own, and
# libvirtd would have to be started inside it with the host's /dev and
# cgroups; `make test` on the host covers it.
#
# VHPC_FRESH_ROOT (default /var/tmp/vhpc-fresh-root) is deleted and made
# again on every run, but only when it holds the marker this script leaves.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${VHPC_FRESH_ROOT:-/var/tmp/vhpc-fresh-root}"
MARKER=.vhpc-fresh-root
GOROOT_HOST="$(go env GOROOT)"

if [ "$(id -u)" -ne 0 ]; then echo "fresh-root-check: run as root (mmdebstrap and chroot)" >&2; exit 2; fi
if [ -e "$WORK" ] && [ ! -f "$WORK/$MARKER" ]; then
  echo "fresh-root-check: $WORK exists and was not made by this script; set VHPC_FRESH_ROOT" >&2; exit 2
fi
for d in proc sys dev; do # a run killed before its cleanup leaves them
  if mountpoint -q "$WORK/root/$d" 2>/dev/null; then umount -l "$WORK/root/$d"; fi
done
rm -rf --one-file-system -- "$WORK"
mkdir -p "$WORK"
touch "$WORK/$MARKER"
root="$WORK/root"

echo "== mmdebstrap --variant=minbase bookworm" >&2
mmdebstrap --quiet --variant=minbase bookworm "$root"
git clone -q . "$root/src/vhpc"
mkdir -p "$root/usr/local"
cp -a "$GOROOT_HOST" "$root/usr/local/go"
# This host's network settings, as a new machine on this network has them:
# name servers and any local CA that TLS to the Go module proxy needs
# (ca-certificates from the list picks them up when it installs).
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi

mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" || true; done; }
trap cleanup EXIT
for d in proc sys dev; do
  mount --rbind "/$d" "$root/$d"; mounted+=("$root/$d")
done

echo "== in the chroot: install-deps, build, generate, unit, pkgcheck" >&2
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/go/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  GOPROXY="$(go env GOPROXY)" /bin/bash -euo pipefail -c '
    cd /src/vhpc
    ./scripts/install-deps.sh
    make build
    make generate
    git diff --exit-code --stat -- api/
    make unit
    go run ./tools/pkgcheck -v
    echo "fresh-root-check: ok"'
