#!/usr/bin/env bash
# Build a systemd container image of a freshly installed distribution with debootstrap,
# and import it into podman as localhost/aiws-<distro>:<build key>. Nothing is pulled from a registry.
#
#   molecule/images/build.sh debian12                    # mirror: the one this machine's apt uses
#   molecule/images/build.sh ubuntu24.04 https://mirror.example/ubuntu
#   AIWS_IMAGE_MIRROR=https://... molecule/images/build.sh ubuntu22.04
#
# The image is rebuilt only when this script or the distro/mirror changes: it is tagged with its
# build key (localhost/aiws-<distro>:<key>, also :latest), so checkouts with different builders
# keep their own images side by side. The last line printed is the image reference.
set -euo pipefail

distro=${1:?usage: build.sh debian12|ubuntu22.04|ubuntu24.04 [MIRROR]}
mirror=${2:-${AIWS_IMAGE_MIRROR:-}}
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/../containers.conf}"

die() { printf 'build.sh: %s\n' "$*" >&2; exit 2; }

case "$distro" in
  debian12) suite=bookworm; family=debian; keyring=/usr/share/keyrings/debian-archive-keyring.gpg ;;
  ubuntu22.04) suite=jammy; family=ubuntu; keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg ;;
  ubuntu24.04) suite=noble; family=ubuntu; keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg ;;
  *) die "unknown distro '$distro': use debian12, ubuntu22.04 or ubuntu24.04" ;;
esac

# The distribution mirror: for Debian, read from this machine's own apt sources.
host_debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '/^URIs:/ {print $2; exit}' "$f"
  done | grep -v -e security -e '^$' | head -n1
  grep -hE '^deb (\[[^]]*\] )?https?://' /etc/apt/sources.list 2>/dev/null \
    | grep -v security | sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1; exit}'
  return 0
}
if [ -z "$mirror" ]; then
  [ "$family" = debian ] || die "no Ubuntu mirror given: pass one as the second argument or AIWS_IMAGE_MIRROR"
  mirror=$(host_debian_mirror | head -n1) || true
  [ -n "$mirror" ] || die "cannot find a Debian mirror in this machine's apt sources; pass one"
fi
[ -r "$keyring" ] || die "missing $keyring (apt-get install ${family}-archive-keyring)"

key=$( { cat "$0"; echo "$distro $suite $mirror"; } | sha256sum | cut -c1-16)
image="localhost/aiws-$distro:$key"
if podman image exists "$image"; then
  echo "build.sh: $image is up to date" >&2
  echo "$image"
  exit 0
fi

packages=python3,sudo,systemd,systemd-sysv,dbus,iproute2,procps
root=$(mktemp -d /var/tmp/aiws-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "build.sh: debootstrap $suite from $mirror" >&2
start=$(date +%s)
debootstrap --variant=minbase --include="$packages" --keyring="$keyring" "$suite" "$root" "$mirror" \
  > "$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
rm -f "$root.log"

# Make it look like a freshly installed machine that boots systemd quietly in a container.
echo "aiws-test" > "$root/etc/hostname"
: > "$root/etc/machine-id"
rm -f "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages
for unit in getty.target systemd-udevd.service systemd-udev-trigger.service systemd-networkd.service \
            systemd-resolved.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# The first apt run inside the container fetches the index again.
rm -rf "$root"/var/lib/apt/lists/* && mkdir -p "$root/var/lib/apt/lists/partial"

tar -C "$root" -c . | podman import -q \
  --change 'CMD ["/sbin/init"]' \
  --change "LABEL aiws.build-key=$key" \
  --change "LABEL aiws.distro=$distro" \
  --change 'ENV container=podman' \
  - "$image" >/dev/null
podman tag "$image" "localhost/aiws-$distro:latest"
echo "build.sh: built $image in $(( $(date +%s) - start ))s" >&2
echo "$image"
