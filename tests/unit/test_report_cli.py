"""`python -m aiws.report` end to end: ansible-runner runs verify.yml against this machine.

The host is this machine over a local connection, with its state and fact folders in a temporary
directory (nothing outside it is written). Without any stage fact every check skips: exit 0.
A cuDNN fact whose samples folder does not exist makes the mnistCUDNN check fail for real: exit 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _inventory(tmp: Path, extra_hosts: dict | None = None) -> Path:
    inv = tmp / "inventory.yml"
    inv.write_text(yaml.safe_dump({
        "all": {
            "children": {"workstations": {"hosts": {**(extra_hosts or {}), "aiws-cli-test": {
                "ansible_host": "127.0.0.1",
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "ansible_become": False,
                "verify_state_dir": str(tmp / "state"),
                "verify_fact_path": str(tmp / "facts.d"),
                "preflight_lock_file": str(tmp / "run.lock"),
            }}}},
            # Preflight checks every stage's inputs, the anaconda stage's terms included.
            "vars": {"anaconda_flavor": "miniforge"},
        },
    }))
    (tmp / "facts.d").mkdir()
    return inv


def _run(tmp: Path, inv: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp / "fact-cache"))
    return subprocess.run(
        [sys.executable, "-m", "aiws.report", "--inventory", str(inv), "--out", str(tmp / "reports"),
         "--private-data-dir", str(tmp / "runner")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env, check=False,
    )


def _report(tmp: Path) -> dict:
    (path,) = sorted((tmp / "reports").glob("aiws-report-*.json"))
    assert {p.suffix for p in (tmp / "reports").iterdir()} == {".json", ".md", ".html"}
    return json.loads(path.read_text())


@pytest.mark.skipif(os.geteuid() != 0, reason="the verify play runs with become; as root no sudo is needed")
def test_cli_exits_zero_when_nothing_fails(tmp_path: Path) -> None:
    run = _run(tmp_path, _inventory(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    data = _report(tmp_path)
    (host,) = data["hosts"]
    assert host["host"] == "aiws-cli-test" and host["state"] == "pass"
    assert host["summary"]["fail"] == 0 and host["summary"]["skip"] == len(host["checks"])
    stored = json.loads((tmp_path / "state" / "verify.json").read_text())
    assert stored["checks"] == host["checks"]
    assert "1 host(s): 1 passed, 0 failed a check, 0 not verified" in run.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the verify play runs with become; as root no sudo is needed")
def test_cli_exits_non_zero_on_a_failing_check(tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    (tmp_path / "facts.d" / "aiws_cudnn.fact").write_text(
        json.dumps({"version": "9.10.2", "samples": str(tmp_path / "no-samples-here")}))
    run = _run(tmp_path, inv)
    assert run.returncode == 1, run.stdout + run.stderr
    (host,) = _report(tmp_path)["hosts"]
    assert host["state"] == "fail"
    (mnist,) = [c for c in host["checks"] if c["check"] == "cudnn_mnist"]
    assert mnist["status"] == "fail"
    assert "libcudnn9-samples" in mnist["hint"]
    assert "aiws-cli-test: mnistCUDNN builds and prints Test passed!" in run.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the verify play runs with become; as root no sudo is needed")
def test_cli_reports_an_unreachable_host_and_still_verifies_the_others(tmp_path: Path) -> None:
    # Port 9 on loopback: nothing listens, ssh fails at once.
    dead = {"aiws-cli-dead": {"ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_connection": "ssh",
                              "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}}
    run = _run(tmp_path, _inventory(tmp_path, dead))
    assert run.returncode == 1, run.stdout + run.stderr
    hosts = {h["host"]: h for h in _report(tmp_path)["hosts"]}
    assert hosts["aiws-cli-test"]["state"] == "pass"
    assert hosts["aiws-cli-dead"]["state"] == "unverified"
    assert hosts["aiws-cli-dead"]["reason"].startswith("unreachable")
