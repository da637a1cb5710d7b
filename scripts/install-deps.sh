#!/bin/sh
# install-deps.sh: installs the Debian packages of scripts/debian-packages.txt
# that are missing. It is the only script that installs packages: test.sh,
# demo.sh, generate.sh and start-libvirt.sh call it first.
#
# As root it runs `apt-get update` (once, only when something is missing)
# and `apt-get install --no-install-recommends` for the missing packages.
# As another user it lists what is missing and exits 1.
# Idempotent and quick when everything is installed.
set -eu
cd "$(dirname "$0")/.."
LIST=scripts/debian-packages.txt

# The list without comments and blank lines.
pkgs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$LIST" | awk '{print $1}')

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing Debian packages:$missing" >&2
	echo "install-deps: run as root, or: sudo apt-get install --no-install-recommends$missing" >&2
	exit 1
fi
echo "install-deps: installing$missing (from $LIST)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
