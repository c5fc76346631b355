#!/usr/bin/env bash
# Run a Molecule command against the container scenario with everything it needs:
# the podman settings, the locally built images, the test fixtures and their servers.
#
#   scripts/molecule.sh               # molecule test (create, converge, idempotence, verify, destroy)
#   scripts/molecule.sh converge      # any molecule subcommand
#   scripts/molecule.sh converge --platform-name aiws-u22-ada-main   # one machine
#
# The scenario converges Debian 12, Ubuntu 22.04 and Ubuntu 24.04 machines (molecule/default/molecule.yml);
# Ubuntu runs on the simulated archive of tests/fixtures/fx_ubuntu_archive.py.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

export CONTAINERS_CONF="$top/molecule/containers.conf"
export AIWS_FIXTURE_PORT="${AIWS_FIXTURE_PORT:-8089}"
export AIWS_APT_MIRROR_PORT="${AIWS_APT_MIRROR_PORT:-8100}"
export AIWS_UBUNTU_ARCHIVE_PORT="${AIWS_UBUNTU_ARCHIVE_PORT:-$((AIWS_APT_MIRROR_PORT + 10))}"
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/aiws-test; else default_cache="$HOME/.cache/aiws-test"; fi
export AIWS_TEST_CACHE="${AIWS_TEST_CACHE:-$default_cache}"
export PATH="$top/.venv/bin:$PATH"
export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

[ "$(id -u)" -eq 0 ] || { echo "molecule.sh: the container tests run podman as root (systemd containers, host network); run as root" >&2; exit 2; }

# The images of this checkout's builder (tagged with their build key, so checkouts do not rebuild
# each other's). The Ubuntu ones start the simulated archive, which their build needs.
image() { molecule/images/build.sh "$1" | tail -n1; }
AIWS_TEST_IMAGE_DEBIAN12=$(image debian12)
AIWS_TEST_IMAGE_UBUNTU2204=$(image ubuntu22.04)
AIWS_TEST_IMAGE_UBUNTU2204_HWE=$(image ubuntu22.04-hwe)
AIWS_TEST_IMAGE_UBUNTU2404=$(image ubuntu24.04)
AIWS_TEST_IMAGE_UBUNTU2404_HWE=$(image ubuntu24.04-hwe)
# The Debian image, for the tests that start containers of their own (apt cache fleet, mirror cycles).
AIWS_TEST_IMAGE=$AIWS_TEST_IMAGE_DEBIAN12
export AIWS_TEST_IMAGE AIWS_TEST_IMAGE_DEBIAN12 AIWS_TEST_IMAGE_UBUNTU2204 AIWS_TEST_IMAGE_UBUNTU2204_HWE \
       AIWS_TEST_IMAGE_UBUNTU2404 AIWS_TEST_IMAGE_UBUNTU2404_HWE
tests/fixtures/build.sh
# The fixture repository's throwaway signing key, for the inventory (molecule/default/group_vars).
eval "$(python3 - "$AIWS_TEST_CACHE/www/nvidia/fixture.json" <<'PY'
import json, shlex, sys
key = json.load(open(sys.argv[1]))["key"]
print(f"export AIWS_FIXTURE_NVIDIA_FPR={shlex.quote(key['fingerprint'])}")
print(f"export AIWS_FIXTURE_NVIDIA_KEY_FILE={shlex.quote(key['pub_file'])}")
PY
)"

# Each machine's /sys/firmware: an EFI variable store with Secure Boot off, fresh for every scenario
# that creates the machines (tests flip it by writing SecureBoot-<guid> there; molecule.yml mounts it).
case "${1:-test}" in
  test|create)
    suffix=${AIWS_TEST_SUFFIX:-main}
    for host in aiws-ada aiws-pascal aiws-u22-ada aiws-u22-pascal aiws-u24-ada aiws-u24-pascal; do
      efivars="$AIWS_TEST_CACHE/machines/$host-$suffix/firmware/efi/efivars"
      rm -rf "$AIWS_TEST_CACHE/machines/$host-$suffix"
      mkdir -p "$efivars"
      printf '\006\000\000\000\000' > "$efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    done
    ;;
esac

python3 tests/fixtures/serve.py --root "$AIWS_TEST_CACHE/www" --port "$AIWS_FIXTURE_PORT" \
  --log "$AIWS_TEST_CACHE/serve-$AIWS_FIXTURE_PORT.log" --pidfile "$AIWS_TEST_CACHE/serve-$AIWS_FIXTURE_PORT.pid" >/dev/null &
server=$!
# Stop what this run started: the fixture server, the apt mirror proxy (a proxy left running from
# another cache folder would log elsewhere and mislead the cache test) and the simulated Ubuntu archive.
trap 'kill "$server" 2>/dev/null || true; python3 tests/fixtures/fx_apt_mirror.py stop >/dev/null 2>&1 || true
      python3 tests/fixtures/fx_ubuntu_archive.py stop >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do
  python3 - <<PY 2>/dev/null && break
import urllib.request; urllib.request.urlopen("http://127.0.0.1:$AIWS_FIXTURE_PORT/", timeout=1)
PY
  sleep 0.2
done

molecule "${@:-test}"
