#!/usr/bin/env bash
# Every test, in order of cost: lint, syntax, unit tests, then the container scenario.
#   scripts/test.sh            # all of it (what CI runs)
#   scripts/test.sh --fast     # everything but the container scenario
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fast=false
[ "${1:-}" = "--fast" ] && fast=true

started=$(date +%s)
step() { printf '\n=== %s (%ss in)\n' "$*" "$(( $(date +%s) - started ))"; }
# CI stops a run after 90 minutes. On 2 cores the whole container scenario (its cycle tests and the
# fault suite) takes longer: the scenario's tests that would start after AIWS_TEST_BUDGET seconds
# are skipped, and say so (molecule/default/tests/conftest.py). 0 runs them all.
export AIWS_TEST_STARTED="${AIWS_TEST_STARTED:-$started}"
export AIWS_TEST_BUDGET="${AIWS_TEST_BUDGET:-4680}"
[ "$AIWS_TEST_BUDGET" != 0 ] || unset AIWS_TEST_BUDGET

step "bootstrap"
scripts/bootstrap.sh --test
export PATH="$top/.venv/bin:$PATH"

step "yamllint"
yamllint --strict .

step "ansible-lint (production profile)"
ansible-lint --profile production

step "ruff, mypy (strict on the plugins, the roles' Python and the aiws package)"
ruff check .
mypy --strict -p ansible_collections.aiws.workstation.plugins
mypy --strict aiws roles/*/files/*.py
mypy tests scripts tools
mypy molecule/default/tests  # apart: its conftest.py would clash with tests/unit's

step "ansible-test sanity (the collection as built, in a scratch ansible_collections tree)"
scripts/sanity.sh

step "ansible-playbook --syntax-check / --list-tasks"
ansible-playbook site.yml -i lab --syntax-check
ansible-playbook site.yml -i lab --list-tasks >/dev/null
ansible-playbook playbooks/plan.yml -i lab --syntax-check

step "pytest (unit tests, two workers)"
# Most unit tests run ansible-playbook on localhost against their own temporary inventories and
# fixture servers on free ports; two workers keep both cores busy (pytest tests -s, without -n,
# shows what tests print, e.g. test_bad_inputs.py's counts).
python -m pytest tests -n 2 --durations=15

if ! $fast; then
  step "molecule test (container scenario)"
  scripts/molecule.sh test
fi
step "all tests passed"
