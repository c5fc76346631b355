# shellcheck shell=bash
# Sourced by scripts/molecule.sh and scripts/bench.sh: everything a container run needs on this
# machine — the podman settings, the images of this checkout's builder, the test fixtures, their
# signing key's fingerprint, the fixture web server, and the simulated Ubuntu archive (stopped, with
# the apt mirror proxy, when the sourcing shell exits).
#
#   . scripts/fixtures-env.sh     # from the repository root, as root
#   AIWS_TEST_UBUNTU=0 . scripts/fixtures-env.sh    # the Debian 12 image only (make bench)
#
# Exports CONTAINERS_CONF, AIWS_FIXTURE_PORT, AIWS_APT_MIRROR_PORT, AIWS_UBUNTU_ARCHIVE_PORT,
# AIWS_TEST_CACHE, AIWS_TEST_IMAGE (Debian 12, for tests that start containers of their own),
# AIWS_TEST_IMAGE_<PLATFORM> for each platform of molecule/default/molecule.yml,
# AIWS_FIXTURE_NVIDIA_FPR, AIWS_FIXTURE_NVIDIA_KEY_FILE and AIWS_FIXTURE_LOG (the server's access log).
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

export CONTAINERS_CONF="$top/molecule/containers.conf"
export AIWS_FIXTURE_PORT="${AIWS_FIXTURE_PORT:-8089}"
export AIWS_APT_MIRROR_PORT="${AIWS_APT_MIRROR_PORT:-8100}"
export AIWS_UBUNTU_ARCHIVE_PORT="${AIWS_UBUNTU_ARCHIVE_PORT:-$((AIWS_APT_MIRROR_PORT + 10))}"
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/aiws-test; else default_cache="$HOME/.cache/aiws-test"; fi
export AIWS_TEST_CACHE="${AIWS_TEST_CACHE:-$default_cache}"
export PATH="$top/.venv/bin:$PATH"
export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

[ "$(id -u)" -eq 0 ] || { echo "$(basename "$0"): the container tests run podman as root (systemd containers, host network); run as root" >&2; exit 2; }

# Stop what this run starts: the fixture server, the apt mirror proxy (a proxy left running from
# another cache folder would log elsewhere and mislead the cache test) and the simulated Ubuntu archive.
fixture_server=
trap 'if [ -n "$fixture_server" ]; then kill "$fixture_server" 2>/dev/null || true; fi
      python3 tests/fixtures/fx_apt_mirror.py stop >/dev/null 2>&1 || true
      python3 tests/fixtures/fx_ubuntu_archive.py stop >/dev/null 2>&1 || true' EXIT

# The images of this checkout's builder (tagged with their build key, so checkouts do not rebuild
# each other's). The Ubuntu ones start the simulated archive, which their build needs.
image() { molecule/images/build.sh "$1" | tail -n1; }
AIWS_TEST_IMAGE_DEBIAN12=$(image debian12)
AIWS_TEST_IMAGE=$AIWS_TEST_IMAGE_DEBIAN12
export AIWS_TEST_IMAGE AIWS_TEST_IMAGE_DEBIAN12
if [ "${AIWS_TEST_UBUNTU:-1}" != 0 ]; then
  AIWS_TEST_IMAGE_UBUNTU2204=$(image ubuntu22.04)
  AIWS_TEST_IMAGE_UBUNTU2204_HWE=$(image ubuntu22.04-hwe)
  AIWS_TEST_IMAGE_UBUNTU2404=$(image ubuntu24.04)
  AIWS_TEST_IMAGE_UBUNTU2404_HWE=$(image ubuntu24.04-hwe)
  export AIWS_TEST_IMAGE_UBUNTU2204 AIWS_TEST_IMAGE_UBUNTU2204_HWE AIWS_TEST_IMAGE_UBUNTU2404 AIWS_TEST_IMAGE_UBUNTU2404_HWE
fi
tests/fixtures/build.sh
# The fixture repository's throwaway signing key, for the inventory (molecule/default/group_vars).
eval "$(python3 - "$AIWS_TEST_CACHE/www/nvidia/fixture.json" <<'PY'
import json, shlex, sys
key = json.load(open(sys.argv[1]))["key"]
print(f"export AIWS_FIXTURE_NVIDIA_FPR={shlex.quote(key['fingerprint'])}")
print(f"export AIWS_FIXTURE_NVIDIA_KEY_FILE={shlex.quote(key['pub_file'])}")
PY
)"

export AIWS_FIXTURE_LOG="$AIWS_TEST_CACHE/serve-$AIWS_FIXTURE_PORT.log"
python3 tests/fixtures/serve.py --root "$AIWS_TEST_CACHE/www" --port "$AIWS_FIXTURE_PORT" \
  --log "$AIWS_FIXTURE_LOG" --pidfile "$AIWS_TEST_CACHE/serve-$AIWS_FIXTURE_PORT.pid" >/dev/null &
fixture_server=$!
for _ in $(seq 50); do
  python3 - <<PY 2>/dev/null && break
import urllib.request; urllib.request.urlopen("http://127.0.0.1:$AIWS_FIXTURE_PORT/", timeout=1)
PY
  sleep 0.2
done
