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
