#!/bin/sh
# start-libvirt.sh: make libvirtd + virtlogd + QEMU available on a host
# without an init system (CI containers, build machines).
#
# - Installs the missing Debian packages of scripts/debian-packages.txt
#   (as root) through scripts/install-deps.sh.
# - Starts virtlogd and libvirtd as daemons when they are not running.
# - Waits (bounded) until qemu:///system answers.
#
# Idempotent: safe to call before every `make test`.
set -eu

"$(dirname "$0")/install-deps.sh"

running() {
	# pgrep -x matches the process name exactly, so only the daemon itself.
	pgrep -x "$1" >/dev/null 2>&1
}

mkdir -p /run/libvirt /var/log/libvirt/qemu /var/lib/libvirt/qemu

if ! running virtlogd; then
	echo "start-libvirt: starting virtlogd" >&2
	virtlogd -d
fi
if ! running libvirtd; then
	echo "start-libvirt: starting libvirtd" >&2
	libvirtd -d
fi

i=0
until virsh -c qemu:///system version >/dev/null 2>&1; do
	i=$((i + 1))
	if [ "$i" -ge 50 ]; then
		echo "start-libvirt: libvirtd did not answer on qemu:///system within 10s" >&2
		virsh -c qemu:///system version >&2 || true
		exit 1
	fi
	sleep 0.2
done
echo "start-libvirt: libvirt is up ($(virsh -c qemu:///system version 2>/dev/null | grep -i 'running hypervisor' || echo qemu))" >&2
