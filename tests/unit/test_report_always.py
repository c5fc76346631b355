"""A fleet report is written whatever happens to the run, naming each host that failed or was
unreachable with its stage and error, and ansible-playbook then exits non-zero.

verify.yml (preflight, verification, report) runs against this machine over a local connection,
with every file it writes in a temporary directory: "ws-good" passes, "ws-bad" fails in the
verify stage (its state folder cannot be made), "ws-dead" is unreachable (ssh to port 9).
ansible-core ends a playbook when every host of a play has failed; the aiws_report callback then
writes the report the report play would have written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_playbook

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the plays run with become; as root no sudo is needed")


def local(tmp: Path, name: str, **more) -> dict:
    return {
        "ansible_host": "127.0.0.1", "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "ansible_become": False, "verify_state_dir": str(tmp / name / "state"), "verify_fact_path": str(tmp / name / "facts.d"),
        "preflight_lock_file": str(tmp / name / "run.lock"), **more,
    }


def inventory(tmp: Path, hosts: dict) -> Path:
    for name in hosts:
        (tmp / name / "facts.d").mkdir(parents=True, exist_ok=True)
    inv = tmp / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"workstations": {"hosts": hosts}},
                                           # offline: the URL probes of preflight would stop every run here
                                           "vars": {"anaconda_flavor": "miniforge", "preflight_probe_urls": False}}}))
    return inv


def play(tmp: Path, inv: Path, *extra: str, playbook: str = "verify.yml") -> subprocess.CompletedProcess[str]:
    return run_playbook(tmp, inv, *extra, playbook=playbook)


def report(tmp: Path) -> dict[str, dict]:
    (path,) = sorted((tmp / "reports").glob("aiws-report-*.json"))
    assert {p.suffix for p in (tmp / "reports").iterdir()} == {".json", ".md", ".html"}
    return {h["host"]: h for h in json.loads(path.read_text())["hosts"]}


def flat(text: str) -> str:
    return " ".join(text.split())


DEAD = {"ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_connection": "ssh",
        "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}


def bad_state(tmp: Path) -> str:
    """A state folder preflight accepts (absolute, no system folder) that cannot be made: its parent
    is a regular file, so the Verify stage fails creating it."""
    blocker = tmp / "ws-bad" / "blocker"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where a folder is expected\n")
    return str(blocker / "state")


def test_the_report_play_names_the_stage_and_error_of_each_host_it_could_not_verify(tmp_path: Path) -> None:
    inv = inventory(tmp_path, {"ws-good": local(tmp_path, "ws-good"), "ws-dead": DEAD,
                               "ws-bad": local(tmp_path, "ws-bad", verify_state_dir=bad_state(tmp_path))})
    run = play(tmp_path, inv)
    assert run.returncode != 0, run.stdout[-3000:]
    hosts = report(tmp_path)
    assert hosts["ws-good"]["state"] == "pass"
    dead, bad = hosts["ws-dead"], hosts["ws-bad"]
    assert dead["state"] == "unverified" and dead["reason"].startswith("unreachable in stage Preflight (task "), dead
    assert "Failed to connect to the host via ssh" in dead["reason"] or "port 9" in dead["reason"], dead
    assert bad["state"] == "unverified"
    assert bad["reason"].startswith("failed in stage Verify (task 'Create the project's state directory'): "), bad
    assert "Fleet: 3 host(s), 1 passed, 0 failed a check, 2 not verified" in run.stdout
    assert "aiws_report:" not in run.stdout, "the report play ran: the callback must not write a second report"


def test_a_run_that_ends_early_still_writes_the_report_and_fails(tmp_path: Path) -> None:
    """One unreachable host and one failing host in the same play: ansible-core ends the playbook
    there, before the report play; the report still names both, with stage and error."""
    inv = inventory(tmp_path, {"ws-dead": DEAD, "ws-bad": local(tmp_path, "ws-bad", aiws_gpus=["8086:1234"])})
    run = play(tmp_path, inv)
    assert run.returncode != 0, run.stdout[-3000:]
    assert "PLAY [Report | write the fleet report" not in run.stdout, "this case is about the report play not running"
    out = flat(run.stdout)
    assert "aiws_report: the run stopped after the play 'Preflight | check inputs and plan each host'" in out, run.stdout[-3000:]
    hosts = report(tmp_path)
    assert set(hosts) == {"ws-dead", "ws-bad"}
    assert hosts["ws-dead"]["reason"].startswith("unreachable in stage Preflight (task "), hosts["ws-dead"]
    assert hosts["ws-bad"]["reason"].startswith("failed in stage Preflight (task 'assert | Check the GPUs, the versions and the mirror profile'): ")
    md = next((tmp_path / "reports").glob("*.md")).read_text()
    assert "ws-dead" in md and "aiws_gpus must list NVIDIA PCI IDs" in md


def test_a_one_host_lab_that_fails_a_later_stage_gets_a_report(tmp_path: Path) -> None:
    inv = inventory(tmp_path, {"ws-bad": local(tmp_path, "ws-bad", verify_state_dir=bad_state(tmp_path))})
    run = play(tmp_path, inv)
    assert run.returncode == 2, run.stdout[-3000:]
    assert "aiws_report: the run stopped after the play 'Verify | prove each workstation works'" in flat(run.stdout)
    reason = report(tmp_path)["ws-bad"]["reason"]
    assert reason.startswith("failed in stage Verify (task 'Create the project's state directory'): "), reason


def test_a_one_host_lab_that_fails_in_preflight_gets_a_report(tmp_path: Path) -> None:
    inv = inventory(tmp_path, {"ws-one": local(tmp_path, "ws-one", aiws_gpus=["8086:1234"])})
    run = play(tmp_path, inv)
    assert run.returncode == 2, run.stdout[-3000:]
    hosts = report(tmp_path)
    assert hosts["ws-one"]["reason"].startswith("failed in stage Preflight (task 'assert | Check the GPUs, the versions and the mirror profile'): ")
    assert "aiws_gpus must list NVIDIA PCI IDs" in hosts["ws-one"]["reason"]


def test_an_unreachable_apt_cache_host_is_reported_with_the_workstations_it_stopped(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yml"
    ws = local(tmp_path, "ws-one")
    (tmp_path / "ws-one/facts.d").mkdir(parents=True)
    inv.write_text(yaml.safe_dump({"all": {"children": {"workstations": {"hosts": {"ws-one": ws}},
                                                        "apt_cache": {"hosts": {"cache-dead": DEAD}}},
                                           "vars": {"anaconda_flavor": "miniforge", "preflight_probe_urls": False}}}))
    run = play(tmp_path, inv)
    assert run.returncode != 0, run.stdout[-3000:]
    hosts = report(tmp_path)
    assert hosts["cache-dead"]["reason"].startswith("unreachable in stage Preflight (task 'Reach the apt cache host'): ")
    assert hosts["ws-one"]["reason"].startswith(
        "failed in stage Preflight (task 'preflight | Stop when the apt cache host is unreachable'): "
        "The apt cache host cache-dead (group apt_cache) is unreachable:"), hosts["ws-one"]


def test_no_report_where_the_tags_leave_the_report_out(tmp_path: Path) -> None:
    inv = inventory(tmp_path, {"ws-one": local(tmp_path, "ws-one", aiws_gpus=["8086:1234"])})
    run = play(tmp_path, inv, "--skip-tags", "report")
    assert run.returncode == 2
    assert not (tmp_path / "reports").exists(), "--skip-tags report: no report, as the report play would write none"


def test_check_mode_shows_the_report_and_writes_nothing(tmp_path: Path) -> None:
    inv = inventory(tmp_path, {"ws-one": local(tmp_path, "ws-one", aiws_gpus=["8086:1234"])})
    run = play(tmp_path, inv, "--check")
    assert run.returncode == 2
    assert "Report: not written under --check" in run.stdout
    assert not (tmp_path / "reports").exists()
