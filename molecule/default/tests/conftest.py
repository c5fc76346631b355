"""Run the testinfra checks through podman exec instead of Ansible's shell module.

Molecule starts pytest with its Ansible inventory; testinfra's ansible backend would run every
command as an Ansible task (seconds each). The containers are podman containers on this machine,
so the same hosts are addressed directly with testinfra's podman backend.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "hosts", None):
        return
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        return
    from testinfra.utils.ansible_runner import AnsibleRunner

    hosts = AnsibleRunner(inventory).get_hosts("workstations")
    config.option.hosts = ",".join(f"podman://{name}" for name in hosts)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """`make test` must end within CI's 90 minutes on 2 cores, where the whole scenario with its cycle
    tests and fault suite takes longer: scripts/test.sh sets AIWS_TEST_STARTED and AIWS_TEST_BUDGET,
    and a test that would start after the budget is spent is skipped, saying so (the skips are listed
    at the end). `scripts/molecule.sh test` and `scripts/molecule.sh verify` set no budget: every test runs."""
    import time

    started, budget = os.environ.get("AIWS_TEST_STARTED"), os.environ.get("AIWS_TEST_BUDGET")
    if not started or not budget:
        return
    spent = time.time() - float(started)
    if spent > float(budget):
        pytest.skip(f"make test's time budget is spent ({spent / 60:.0f} of {float(budget) / 60:.0f} min, "
                    "AIWS_TEST_BUDGET): `scripts/molecule.sh verify` runs the rest")
