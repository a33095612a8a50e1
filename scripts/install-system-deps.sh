#!/usr/bin/env bash
# Installs the Debian packages kvmnet needs, only those missing, only when root.
# Usage: scripts/install-system-deps.sh demo|test
set -euo pipefail
profile=${1:-test}
# demo: enough to build libvirt-python (Python.h: python3-dev) and run on test:///default.
pkgs=(libvirt-dev pkg-config gcc python3-dev python3-venv libvirt-daemon-system qemu-system-x86 dnsmasq-base iproute2)
if [ "$profile" = test ]; then
  # The integration suite: real daemons and tools inside namespaces.
  pkgs+=(libvirt-clients network-manager netplan.io systemd isc-dhcp-client busybox-static
         iputils-ping augeas-tools augeas-lenses iptables cpio gzip kmod xz-utils dbus
         librsvg2-bin graphviz ifupdown bridge-utils openssh-server netcat-openbsd
         zsh fish)  # the completion scripts are run in each shell they are for
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "kvmnet: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "kvmnet: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# No service may start during the install: the tests start their own, in namespaces.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1; fi
trap '[ $made_policy = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
