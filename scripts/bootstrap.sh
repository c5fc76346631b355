#!/usr/bin/env bash
# Prepare the controller: a virtual environment with pinned Ansible (and, with --test,
# the test tools and the system packages the container tests need).
#
#   scripts/bootstrap.sh          # .venv with requirements.txt + collections
#   scripts/bootstrap.sh --test   # also requirements-test.txt, podman, runc, debootstrap ...
#
# Every refusal is one line on stderr and exit code 2; no tracebacks.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
venv="${AIWS_VENV:-$top/.venv}"
want_test=false
[ "${1:-}" = "--test" ] && want_test=true

die() { printf 'bootstrap: %s\n' "$*" >&2; exit 2; }

# ansible-core 2.19 needs Python 3.11 or newer on the controller.
py="${AIWS_PYTHON:-python3}"
command -v "$py" >/dev/null 2>&1 || die "no '$py' found: install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3 python3-venv), or set AIWS_PYTHON"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "$("$py" -c 'import platform; print(platform.python_version())') is too old: Ansible here needs Python 3.11 or newer (Ubuntu 24.04 and Debian 12 ship it; on Ubuntu 22.04 install python3.11 and set AIWS_PYTHON=python3.11)"
"$py" -c 'import venv, ensurepip' 2>/dev/null \
  || die "Python's venv module is missing: apt-get install python3-venv (or python3.11-venv)"

# System packages the container tests need. Installing them needs root.
if $want_test; then
  need=()
  for pair in podman:podman runc:runc debootstrap:debootstrap apt-ftparchive:apt-utils gpg:gnupg dpkg-deb:dpkg-dev ssh:openssh-client ssh-keygen:openssh-client; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "the container tests need ${need[*]}: run as root (or install them first: apt-get install ${need[*]})"
    command -v apt-get >/dev/null 2>&1 || die "cannot install ${need[*]}: no apt-get on this machine"
    echo "bootstrap: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

# The virtual environment, rebuilt only when the pinned requirements change. A venv made
# with --test is a superset of the plain one, so it satisfies a plain bootstrap as well.
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
key_plain=$(hash_of "$top/requirements.txt" "$top/requirements.yml")
key_test=$(hash_of "$top/requirements.txt" "$top/requirements-test.txt" "$top/requirements.yml")
stamp="$venv/.aiws-requirements"
have=$(cat "$stamp" 2>/dev/null || true)
if $want_test; then ok_keys="$key_test"; else ok_keys="$key_plain $key_test"; fi
if [ ! -x "$venv/bin/python" ] || [[ " $ok_keys " != *" $have "* ]] || [ -z "$have" ]; then
  echo "bootstrap: preparing $venv"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  if $want_test; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$top/requirements-test.txt"
    echo "$key_test" > "$stamp"
  else
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$top/requirements.txt"
    echo "$key_plain" > "$stamp"
  fi
fi

# Collections: the pinned bundle already has them, so this reaches no server.
"$venv/bin/ansible-galaxy" collection install -r "$top/requirements.yml" >/dev/null \
  || die "ansible-galaxy could not satisfy requirements.yml from the installed ansible bundle"
