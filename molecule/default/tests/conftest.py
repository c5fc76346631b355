"""Run the testinfra checks through podman exec instead of Ansible's shell module.

Molecule starts pytest with its Ansible inventory; testinfra's ansible backend would run every
command as an Ansible task (seconds each). The containers are podman containers on this machine,
so the same hosts are addressed directly with testinfra's podman backend.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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
    if not started or not budget or float(budget) <= 0:  # AIWS_TEST_BUDGET=0: no budget
        return
    spent = time.time() - float(started)
    if spent > float(budget):
        pytest.skip(f"make test's time budget is spent ({spent / 60:.0f} of {float(budget) / 60:.0f} min, "
                    "AIWS_TEST_BUDGET): `scripts/molecule.sh verify` runs the rest")


# Which machine a test works on, for the two workers of `pytest -n 2` (molecule.yml): every test of
# one machine runs on one worker, in the order they were collected, as in a run without workers, while
# the other worker tests other machines. A test of the converged state goes with its host; a test that
# re-runs stages or starts containers of its own goes with the machine it changes.
GROUP_OF_HOST = {"aiws-ada": "aiws-ada", "aiws-pascal": "aiws-pascal", "aiws-u22-pascal": "ubuntu", "aiws-u24-ada": "ubuntu"}
GROUP_OF_MODULE = {
    "test_apt_cache": "apt-cache",        # its own cache and client containers
    "test_apt_mirror": "aiws-pascal",     # the mirrors stage's cycles
    "test_preflight": "aiws-pascal",      # a mirrors run refused on aiws-pascal
    "test_nvidia_driver": "aiws-pascal",  # the driver stage's cycles
    "test_ubuntu_simulation": "ubuntu",   # its own Ubuntu containers; switches the shared simulated archive
    "test_zy_ubuntu_driver": "ubuntu",    # the driver stage on the Ubuntu machines; the archive's kernel update
    "test_zz_faults": "aiws-ada",         # the fault suite
}
# What each of the two workers takes (the groups above, balanced by their measured durations).
WORKER_GROUP = {"aiws-ada": "ada+cache", "apt-cache": "ada+cache",
                "aiws-pascal": "pascal+ubuntu", "ubuntu": "pascal+ubuntu"}
SUFFIX = "-" + (os.environ.get("AIWS_TEST_SUFFIX") or "main")
# the host's part of a node id; other parameters follow it after a "-" (test_x[podman://aiws-ada-main-cuda])
HOST_ID = re.compile(r"\[podman://([a-z0-9-]+?)" + re.escape(SUFFIX) + r"(?:-[^\]]*)?\]$")


def worker_group(nodeid: str) -> str:
    """The worker group of a test by its node id: `tests/test_x.py::test_y[podman://<host>-<suffix>]`."""
    host = HOST_ID.search(nodeid)
    if host:
        return WORKER_GROUP[GROUP_OF_HOST[host.group(1)]]
    module = Path(nodeid.split("::")[0]).stem
    if module not in GROUP_OF_MODULE:
        raise pytest.UsageError(f"{nodeid}: a test without a host must name the machine it changes in "
                                "GROUP_OF_MODULE (molecule/default/tests/conftest.py)")
    return WORKER_GROUP[GROUP_OF_MODULE[module]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        worker_group(item.nodeid)  # every test has a group, also in a run without workers


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's scheduling by scope, the scope being the worker group (its own --dist loadgroup marks
    a test by rewriting the item's _nodeid, which pytest 9 no longer reads)."""
    from xdist.scheduler import LoadScopeScheduling

    class MachineScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return MachineScheduling(config, log)


# Summaries a test records (record_property("aiws_summary", text)), printed after the results: a
# worker's own output is not shown by pytest -n, its reports' properties reach this process.
SUMMARIES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        SUMMARIES.extend(str(value) for name, value in report.user_properties if name == "aiws_summary")


def pytest_terminal_summary(terminalreporter) -> None:
    for text in SUMMARIES:
        terminalreporter.write_sep("-", "aiws")
        terminalreporter.write_line(text)
