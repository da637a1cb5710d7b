#!/bin/sh
# start-libvirt.sh: make libvirtd + virtlogd + QEMU available on a host
# without an init system (CI containers, build machines).
#
# - As root, installs the missing Debian packages (libvirt-daemon-system,
#   qemu-system-x86, qemu-utils, busybox-static, linux-image-amd64, e2fsprogs).
# - Starts virtlogd and libvirtd as daemons when they are not running.
# - Waits (bounded) until qemu:///system answers.
#
# Idempotent: safe to call before every `make test`.
set -eu

PKGS="libvirt-daemon-system qemu-system-x86 qemu-utils busybox-static linux-image-amd64 e2fsprogs"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "start-libvirt: installing:$missing" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
	else
		echo "start-libvirt: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
fi

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
