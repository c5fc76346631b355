#!/usr/bin/env bash
# Build a systemd container image of a freshly installed distribution with debootstrap,
# and import it into podman as localhost/aiws-<distro>:<build key>. Nothing is pulled from a registry.
#
#   molecule/images/build.sh debian12                    # mirror: the one this machine's apt uses
#   molecule/images/build.sh ubuntu22.04                 # the simulated Ubuntu archive on loopback
#   molecule/images/build.sh ubuntu24.04-hwe             # ... with the HWE kernel (no prebuilt NVIDIA modules)
#   molecule/images/build.sh ubuntu24.04 https://mirror.example/ubuntu   # a real Ubuntu mirror
#   AIWS_IMAGE_MIRROR=https://... molecule/images/build.sh ubuntu22.04
#
# Ubuntu images come from the simulated archive of tests/fixtures/fx_ubuntu_archive.py (Debian 12's
# userland under Ubuntu's suites, stub packages for what only Ubuntu has; this script builds and starts
# it) unless a real Ubuntu mirror is given. They carry Ubuntu's release files (base-files) and
# Ubuntu's own source formats pointing at the OFFICIAL archive (22.04: one-line /etc/apt/sources.list;
# 24.04: deb822 /etc/apt/sources.list.d/ubuntu.sources), so nothing installs until the mirror switch
# points apt elsewhere, and an installed kernel: `linux-generic` (the GA kernel, for whose ABI the
# archive has Canonical's prebuilt linux-modules-nvidia-*) or, for <distro>-hwe,
# `linux-generic-hwe-XX.04` (an ABI without prebuilt modules: the DKMS path). The unit
# aiws-sim-boot.service "boots" the newest installed kernel at container start (molecule/images/ubuntu).
#
# The image is rebuilt only when this script, its files, the distro/mirror or (simulated archive) the
# packages the image is made of change: it is tagged with its build key (localhost/aiws-<distro>:<key>,
# also :latest), so checkouts with different builders keep their own images side by side. The last
# line printed is the image reference.
set -euo pipefail

distro=${1:?usage: build.sh debian12|ubuntu22.04[-hwe]|ubuntu24.04[-hwe] [MIRROR]}
mirror=${2:-${AIWS_IMAGE_MIRROR:-}}
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/../containers.conf}"

die() { printf 'build.sh: %s\n' "$*" >&2; exit 2; }

kernel=""
case "$distro" in
  debian12) suite=bookworm; family=debian; keyring=/usr/share/keyrings/debian-archive-keyring.gpg ;;
  ubuntu22.04|ubuntu22.04-hwe) suite=jammy; family=ubuntu; keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg ;;
  ubuntu24.04|ubuntu24.04-hwe) suite=noble; family=ubuntu; keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg ;;
  *) die "unknown distro '$distro': use debian12, ubuntu22.04[-hwe] or ubuntu24.04[-hwe]" ;;
esac
if [ "$family" = ubuntu ]; then
  release=${distro#ubuntu}
  case "$distro" in
    *-hwe) kernel=linux-generic-hwe-${release%-hwe} ;;
    *) kernel=linux-generic ;;
  esac
fi

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
simulated=false
archive_inputs=""
if [ -z "$mirror" ] && [ "$family" = ubuntu ]; then
  simulated=true
  fixtures="$here/../../tests/fixtures"
  python3 "$fixtures/fx_ubuntu_archive.py" build >&2 || die "the simulated Ubuntu archive did not build"
  mirror=$(python3 "$fixtures/fx_ubuntu_archive.py" url)
  if [ "$(id -u)" -eq 0 ]; then cache=${AIWS_TEST_CACHE:-/var/cache/aiws-test}; else cache=${AIWS_TEST_CACHE:-$HOME/.cache/aiws-test}; fi
  keyring="$cache/ubuntu-archive/www/ubuntu-archive-keyring.gpg"
  # The image depends on the packages debootstrap takes from the archive (and its key), not on the port.
  archive_inputs=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["key"]["fingerprint"], d["releases"][sys.argv[2]]["image_key"])' \
    "$cache/ubuntu-archive/www/ubuntu/fixture.json" "$suite")
fi
if [ -z "$mirror" ]; then
  [ "$family" = debian ] || die "no Ubuntu mirror"
  mirror=$(host_debian_mirror | head -n1) || true
  [ -n "$mirror" ] || die "cannot find a Debian mirror in this machine's apt sources; pass one"
fi
[ -r "$keyring" ] || die "missing $keyring (apt-get install ${family}-archive-keyring)"

if $simulated; then
  key=$( { cat "$0" "$here"/ubuntu/*; echo "$distro $suite simulated $archive_inputs"; } | sha256sum | cut -c1-16)
elif [ "$family" = ubuntu ]; then
  key=$( { cat "$0" "$here"/ubuntu/*; echo "$distro $suite $mirror"; } | sha256sum | cut -c1-16)
else
  key=$( { cat "$0"; echo "$distro $suite $mirror"; } | sha256sum | cut -c1-16)
fi
case "$distro" in
  *-hwe)
    # The HWE variant is the GA image with its kernel swapped, as an admin does with
    # `apt install linux-generic-hwe-XX.04` (cheaper than a second debootstrap).
    base=$("$0" "${distro%-hwe}" "${2:-}" | tail -n1)
    key=$( { echo "$key"; podman image inspect --format '{{.Id}}' "$base"; } | sha256sum | cut -c1-16)
    ;;
esac
image="localhost/aiws-$distro:$key"
if podman image exists "$image"; then
  echo "build.sh: $image is up to date" >&2
  echo "$image"
  exit 0
fi

if [ -n "${base:-}" ]; then
  start=$(date +%s)
  name="aiws-image-build-$key"
  podman rm -f "$name" >/dev/null 2>&1 || true
  list=$(mktemp /var/tmp/aiws-sources.XXXXXX)
  trap 'rm -f "$list"; podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
  echo "deb $mirror $suite main restricted" > "$list"
  ga=$(podman run --rm "$base" dpkg-query -W -f '${Package}\n' 'linux-image-[0-9]*' 'linux-modules-[0-9]*' 'linux-headers-[0-9]*' \
       'linux-modules-extra-[0-9]*' 'linux-generic' 'linux-image-generic' 'linux-headers-generic' 2>/dev/null | tr '\n' ' ')
  echo "build.sh: $distro: $base with $kernel instead of $ga" >&2
  apt_opts="-o Dir::Etc::SourceList=/tmp/aiws.list -o Dir::Etc::SourceParts=/dev/null -o Acquire::Languages=none"
  podman run --name "$name" --network host -v "$list:/tmp/aiws.list:ro" -e DEBIAN_FRONTEND=noninteractive "$base" sh -ec "
    apt-get $apt_opts update -qq
    apt-get $apt_opts install -y -qq --no-install-recommends $kernel >/dev/null
    apt-get $apt_opts purge -y -qq $ga >/dev/null
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/run/reboot-required* /run/reboot-required*
    mkdir -p /var/lib/apt/lists/partial
    rm -f /lib/modules/\$(uname -r)
  " >&2 || die "could not put $kernel into $base"
  podman commit -q --change "LABEL aiws.build-key=$key" --change "LABEL aiws.distro=$distro" \
    --change "LABEL aiws.kernel=$kernel" "$name" "$image" >/dev/null
  podman tag "$image" "localhost/aiws-$distro:latest"
  echo "build.sh: built $image in $(( $(date +%s) - start ))s" >&2
  echo "$image"
  exit 0
fi

# openssh-server: the scenario reaches its machines over ssh, as a lab reaches its workstations.
packages=python3,sudo,systemd,systemd-sysv,dbus,iproute2,procps,openssh-server
script=()
if [ "$family" = ubuntu ]; then
  # What an Ubuntu install has that the driver stage looks at: the archive keyring, a kernel with
  # its initramfs tool, and update-notifier's reboot-required notice.
  packages="$packages,ubuntu-keyring,kmod,initramfs-tools,update-notifier-common,$kernel"
  script=(/usr/share/debootstrap/scripts/gutsy)  # debootstrap 1.0.128 lacks noble; gutsy serves every Ubuntu
fi
root=$(mktemp -d /var/tmp/aiws-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "build.sh: debootstrap $suite from $mirror" >&2
start=$(date +%s)
debootstrap --variant=minbase --include="$packages" --components=main,restricted --keyring="$keyring" \
  "$suite" "$root" "$mirror" "${script[@]}" \
  > "$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
rm -f "$root.log"

if [ "$family" = ubuntu ]; then
  # Ubuntu's own source formats, pointing at the official archive, as the installer leaves them.
  install -m 0644 "$here/ubuntu/sources.list.$suite" "$root/etc/apt/sources.list"
  if [ -e "$here/ubuntu/ubuntu.sources.$suite" ]; then
    install -m 0644 "$here/ubuntu/ubuntu.sources.$suite" "$root/etc/apt/sources.list.d/ubuntu.sources"
  fi
  # A fresh install has no pending reboot.
  rm -f "$root"/var/run/reboot-required* "$root"/run/reboot-required*
  # The simulated machine: the kernel it "boots", and the folder the simulated ubuntu-drivers reads
  # its PCI devices from (the test harness writes the declared GPU there).
  install -m 0755 "$here/ubuntu/aiws-sim-boot" "$root/usr/local/sbin/aiws-sim-boot"
  install -m 0644 "$here/ubuntu/aiws-sim-boot.service" "$root/etc/systemd/system/aiws-sim-boot.service"
  mkdir -p "$root/etc/systemd/system/sysinit.target.wants" "$root/var/lib/aiws-sim/sys/devices"
  ln -sf ../aiws-sim-boot.service "$root/etc/systemd/system/sysinit.target.wants/aiws-sim-boot.service"
fi

# sshd starts only where the test harness gives the machine its own port (the containers share the
# host network): scripts/molecule.sh writes /etc/ssh/aiws-test/sshd.conf (port, loopback address,
# the test key) into a folder that molecule.yml mounts there. A container without it runs no sshd.
# pam_loginuid cannot write the login uid in a container: optional, or every login is refused.
printf 'Include /etc/ssh/aiws-test/sshd.conf\n' > "$root/etc/ssh/sshd_config.d/00-aiws-test.conf"
mkdir -p "$root/etc/systemd/system/ssh.service.d"
printf '[Unit]\nConditionPathExists=/etc/ssh/aiws-test/sshd.conf\n' > "$root/etc/systemd/system/ssh.service.d/aiws-test.conf"
sed -i -E 's/^session\s+required\s+pam_loginuid.so/session optional pam_loginuid.so/' "$root/etc/pam.d/sshd"

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
  --change "LABEL aiws.kernel=${kernel:-none}" \
  --change 'ENV container=podman' \
  - "$image" >/dev/null
podman tag "$image" "localhost/aiws-$distro:latest"
echo "build.sh: built $image in $(( $(date +%s) - start ))s" >&2
echo "$image"
