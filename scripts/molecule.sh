#!/usr/bin/env bash
# Run a Molecule command against the container scenario with everything it needs:
# the podman settings, the locally built image, the test fixtures and their web server
# (scripts/fixtures-env.sh).
#
#   scripts/molecule.sh               # molecule test (create, converge, idempotence, verify, destroy)
#   scripts/molecule.sh converge      # any molecule subcommand
#   AIWS_TEST_DISTRO=ubuntu24.04 AIWS_IMAGE_MIRROR=https://... scripts/molecule.sh
#
# A clean run prints no warnings: when ansible printed a [WARNING], the command fails and lists them.
set -euo pipefail
# shellcheck source=scripts/fixtures-env.sh
. "$(dirname "$0")/fixtures-env.sh"

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
