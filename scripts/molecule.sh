#!/usr/bin/env bash
# Run a Molecule command against the container scenario with everything it needs:
# the podman settings, the locally built images, the test fixtures and their servers
# (scripts/fixtures-env.sh).
#
#   scripts/molecule.sh               # molecule test (create, converge, idempotence, verify, destroy)
#   scripts/molecule.sh converge      # any molecule subcommand
#   scripts/molecule.sh converge --platform-name aiws-u24-ada-main   # one machine
#
# The scenario converges Debian 12, Ubuntu 22.04 and Ubuntu 24.04 machines (molecule/default/molecule.yml);
# Ubuntu runs on the simulated archive of tests/fixtures/fx_ubuntu_archive.py.
# A clean run prints no warnings: when ansible printed a [WARNING], the command fails and lists them.
set -euo pipefail
# shellcheck source=scripts/fixtures-env.sh
. "$(dirname "$0")/fixtures-env.sh"

# Each machine's /sys/firmware: an EFI variable store with Secure Boot off, fresh for every scenario
# that creates the machines (tests flip it by writing SecureBoot-<guid> there; molecule.yml mounts it).
case "${1:-test}" in
  test|create)
    suffix=${AIWS_TEST_SUFFIX:-main}
    for host in aiws-ada aiws-pascal aiws-u22-pascal aiws-u24-ada; do
      efivars="$AIWS_TEST_CACHE/machines/$host-$suffix/firmware/efi/efivars"
      rm -rf "$AIWS_TEST_CACHE/machines/$host-$suffix"
      mkdir -p "$efivars"
      printf '\006\000\000\000\000' > "$efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    done
    ;;
esac

log="$AIWS_TEST_CACHE/molecule-${AIWS_TEST_SUFFIX:-main}.log"
set +e
molecule "${@:-test}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 0 ] && grep -q '^\[WARNING\]' "$log"; then
  echo "molecule.sh: ansible printed warnings; a clean run prints none:" >&2
  grep '^\[WARNING\]' "$log" | sort | uniq -c >&2
  exit 1
fi
exit "$rc"
