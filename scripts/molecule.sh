#!/usr/bin/env bash
# Run a Molecule command against the container scenario with everything it needs:
# the podman settings, the locally built image, the test fixtures and their web server
# (scripts/fixtures-env.sh).
#
#   scripts/molecule.sh               # molecule test (create, converge, idempotence, verify, destroy)
#   scripts/molecule.sh converge      # any molecule subcommand
#   AIWS_TEST_DISTRO=ubuntu24.04 AIWS_IMAGE_MIRROR=https://... scripts/molecule.sh
set -euo pipefail
# shellcheck source=scripts/fixtures-env.sh
. "$(dirname "$0")/fixtures-env.sh"

molecule "${@:-test}"
