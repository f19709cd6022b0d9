#!/usr/bin/env bash
# Builds the Docker image the deployment test uses as its "bare-metal" hosts:
# Debian bookworm from Debian's archive (debootstrap; no registry needed) with
# systemd as init, sshd and python3. Prints the image tag. Does nothing when
# an image built from this script already exists.
#
#   tests/ansible/build-image.sh TARGET_DIR
set -euo pipefail
target=${1:?usage: build-image.sh TARGET_DIR}
here=$(cd "$(dirname "$0")" && pwd)
tag="meridian-host:$(sha256sum "$here/build-image.sh" | cut -c1-12)"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "installing debootstrap from Debian's archive" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; }
fi
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$target"
# One build at a time (concurrent test processes share the image).
exec 9>"$target/image.lock"
flock 9
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
root="$target/rootfs"
rm -rf "$root"
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror (a few minutes)" >&2
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,openssh-server,openssh-client,python3,python3-venv,iproute2,procps,ca-certificates,faketime \
  bookworm "$root" "$mirror" >"$target/debootstrap.log" 2>&1 ||
  { tail -20 "$target/debootstrap.log" >&2; exit 1; }
# A container has no consoles, udev or kernel modules to set up.
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
  systemd-modules-load.service sys-kernel-config.mount; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
mkdir -p "$root/root/.ssh"
chmod 700 "$root/root/.ssh"
printf 'PermitRootLogin prohibit-password\nUseDNS no\n' >"$root/etc/ssh/sshd_config.d/meridian-test.conf"
rm -f "$root/etc/machine-id" && touch "$root/etc/machine-id"
tar -C "$root" -c . | docker import -c 'CMD ["/sbin/init"]' - "$tag" >/dev/null
echo "$tag"
