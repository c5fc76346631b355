# shellcheck shell=bash
# Sourced by scripts/molecule.sh and scripts/bench.sh: everything a container run needs on this
# machine — the podman settings, the image of this checkout's builder, the test fixtures, their
# signing key's fingerprint and the fixture web server (stopped, with the apt mirror proxy, when
# the sourcing shell exits).
#
#   . scripts/fixtures-env.sh     # from the repository root, as root
#
# Exports CONTAINERS_CONF, AIWS_TEST_DISTRO, AIWS_FIXTURE_PORT, AIWS_TEST_CACHE, AIWS_TEST_IMAGE,
# AIWS_FIXTURE_NVIDIA_FPR, AIWS_FIXTURE_NVIDIA_KEY_FILE and AIWS_FIXTURE_LOG (the server's access log).
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

export CONTAINERS_CONF="$top/molecule/containers.conf"
export AIWS_TEST_DISTRO="${AIWS_TEST_DISTRO:-debian12}"
export AIWS_FIXTURE_PORT="${AIWS_FIXTURE_PORT:-8089}"
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/aiws-test; else default_cache="$HOME/.cache/aiws-test"; fi
export AIWS_TEST_CACHE="${AIWS_TEST_CACHE:-$default_cache}"
export PATH="$top/.venv/bin:$PATH"
export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

[ "$(id -u)" -eq 0 ] || { echo "$(basename "$0"): the container tests run podman as root (systemd containers, host network); run as root" >&2; exit 2; }

# The image of this checkout's builder (tagged with its build key, so checkouts do not rebuild each other's).
AIWS_TEST_IMAGE=$(molecule/images/build.sh "$AIWS_TEST_DISTRO" | tail -n1)
export AIWS_TEST_IMAGE
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
# Stop what this run started: the fixture server and the apt mirror proxy (a proxy left running
# from another cache folder would log elsewhere and mislead the cache test).
trap 'kill "$fixture_server" 2>/dev/null || true; python3 tests/fixtures/fx_apt_mirror.py stop >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do
  python3 - <<PY 2>/dev/null && break
import urllib.request; urllib.request.urlopen("http://127.0.0.1:$AIWS_FIXTURE_PORT/", timeout=1)
PY
  sleep 0.2
done
