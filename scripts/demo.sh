#!/usr/bin/env bash
# Provision one throwaway local container end to end with the test fixtures, print its plan
# and the report, and remove it. Nothing on this machine changes but podman's image store and
# the fixture cache.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/bootstrap.sh --test
trap 'scripts/molecule.sh destroy >/dev/null 2>&1 || true' EXIT
# The plan of each container is printed by preflight ("Show the plan") during the converge.
scripts/molecule.sh converge
# The container scenario writes its report into molecule's scratch folder (molecule/default/group_vars/all/verify.yml).
latest=$(ls -1t "$HOME"/.ansible/tmp/molecule.*.default/reports/aiws-report-*.md 2>/dev/null | head -n1 || true)
if [ -n "$latest" ]; then
  printf '\n=== report: %s\n' "$latest"
  cat "$latest"
else
  echo "demo.sh: no report was written (see the converge output above)" >&2
  exit 1
fi
