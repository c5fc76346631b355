"""Verification and fleet report in the container scenario.

The containers have a declared GPU but no device: every GPU check must be `skip` with the container
reason; every other check runs for real. A stage's checks pass when its fact file exists (the
stage ran) and skip naming the stage's tag when it does not, so this file holds before and after
the other stages land, and never accepts a fail.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from machines import MACHINES

GPU_CHECKS = {"nvidia_smi", "driver_branch", "gpu_count", "driver_flavor", "driver_cuda", "cuda_run"}
ALL_CHECKS = GPU_CHECKS | {"driver_pending", "nvcc_version", "cuda_compile", "cudnn_mnist", "conda_info", "conda_channels",
                          "pip_index"}
DECLARED = {name: (m.gpu_name, m.arch) for name, m in MACHINES.items()}
# check -> (fact file that enables it, tag named in the skip reason)
STAGE_OF = {
    "driver_pending": ("aiws_nvidia_driver", "driver"),
    "nvcc_version": ("aiws_cuda_toolkit", "cuda"),
    "cuda_compile": ("aiws_cuda_toolkit", "cuda"),
    "cudnn_mnist": ("aiws_cudnn", "cudnn"),
    "conda_info": ("aiws_anaconda", "anaconda"),
    "conda_channels": ("aiws_anaconda", "anaconda"),
    "pip_index": ("aiws_python_mirrors", "pymirrors"),
}


_CACHE: dict[str, tuple[dict[str, Any], set[str], str]] = {}


def _state(host) -> tuple[dict[str, Any], set[str], str]:
    """verify.json, the stage facts present and the scratch directories left, read once per host."""
    name = host.backend.get_hostname()
    if name not in _CACHE:
        out = host.run(
            "stat -c '%U %a' /var/lib/aiws/verify.json; echo '@@'; cat /var/lib/aiws/verify.json; echo '@@';"
            " ls /etc/ansible/facts.d 2>/dev/null; echo '@@'; ls -d /tmp/aiws-cuda.* /tmp/aiws-cudnn.* 2>/dev/null; true"
        ).stdout
        parts = [*re.split(r"^@@$", out, flags=re.MULTILINE), "", "", ""]  # testinfra strips the last newline
        owner_mode, content, facts, scratch = parts[:4]
        assert owner_mode.split() == ["root", "644"], owner_mode
        present = {n.removesuffix(".fact") for n in facts.split() if n.endswith(".fact")}
        _CACHE[name] = (json.loads(content), present, scratch.strip())
    return _CACHE[name]


def _result(host) -> dict[str, Any]:
    return _state(host)[0]


def _kind(host) -> str:
    name = host.backend.get_hostname()
    suffix = "-" + (os.environ.get("AIWS_TEST_SUFFIX") or "main")
    return name.removesuffix(suffix)


def _facts(host) -> set[str]:
    return _state(host)[1]


def test_result_is_stored_with_exactly_the_containers_checks(host) -> None:
    result = _result(host)
    assert result["host"] == host.backend.get_hostname()
    assert {c["check"] for c in result["checks"]} == ALL_CHECKS
    for check in result["checks"]:
        assert set(check) == {"check", "title", "status", "expected", "observed", "hint"}
    assert result["summary"]["fail"] == 0, [c for c in result["checks"] if c["status"] == "fail"]
    assert result["status"] == "pass"


def test_gpu_checks_skip_with_the_container_reason(host) -> None:
    name, _ = DECLARED[_kind(host)]
    for check in _result(host)["checks"]:
        if check["check"] in GPU_CHECKS:
            assert check["status"] == "skip", check
            assert check["hint"].startswith("container: no NVIDIA device or kernel module inside a container")
            assert name in check["hint"]


def test_stage_checks_pass_when_the_stage_ran_and_say_which_stage_otherwise(host) -> None:
    facts = _facts(host)
    for check in _result(host)["checks"]:
        if check["check"] not in STAGE_OF:
            continue
        fact, tag = STAGE_OF[check["check"]]
        if fact in facts:
            # The cuda fact means a real nvcc 12.4 from the fixture repository: nvcc -V and nvcc -c must pass.
            assert check["status"] in ({"pass"} if check["check"] in {"nvcc_version", "cuda_compile"} else {"pass", "skip"}), check
        else:
            assert check["status"] == "skip", check
            assert f"--tags {tag}" in check["hint"] and f"{fact}.fact" in check["hint"]


def test_nvcc_check_reports_the_planned_cuda_when_the_toolkit_is_installed(host) -> None:
    if "aiws_cuda_toolkit" not in _facts(host):
        pytest.skip("the cuda stage is not part of this branch yet (no aiws_cuda_toolkit.fact)")
    (nvcc,) = [c for c in _result(host)["checks"] if c["check"] == "nvcc_version"]
    cuda = MACHINES[_kind(host)].cuda
    assert nvcc["status"] == "pass"
    assert nvcc["expected"] == cuda and nvcc["observed"].startswith(f"{cuda} (V{cuda}.")


def test_mnist_builds_the_way_the_installed_samples_ship(host) -> None:
    """The fixture's samples: a Makefile for the Pascal hosts' cuDNN 9.10, CMake for the Ada hosts' newest;
    Ubuntu 22.04's CMake (3.22) is older than those need, so the check says so and skips."""
    if "aiws_cudnn" not in _facts(host):
        pytest.skip("the cudnn stage is not part of this branch yet (no aiws_cudnn.fact)")
    (mnist,) = [c for c in _result(host)["checks"] if c["check"] == "cudnn_mnist"]
    m = MACHINES[_kind(host)]
    if m.samples_build == "cmake" and m.distro == "ubuntu22.04":
        assert mnist["status"] == "skip", mnist
        assert "CMake 3.27 or newer" in mnist["hint"] and "3.22.1" in mnist["hint"], mnist
        return
    assert mnist["status"] == "pass", mnist
    assert mnist["observed"].endswith(f"built with {m.samples_build})"), mnist


def test_verification_left_no_scratch_directories(host) -> None:
    assert _state(host)[2] == ""


def _fleet_report() -> Path:
    """The latest report of a run over the whole scenario (the converge's or the idempotence run's): the
    cycle tests re-run stages on one machine at a time and write reports of that machine alone, some
    while the other worker checks these."""
    base = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    folder = Path(base) / "reports" if base else None
    assert folder and folder.is_dir(), f"no report folder {folder}"
    everyone = {m.container for m in MACHINES.values()}
    whole = [p for p in sorted(folder.glob("aiws-report-*.json"))
             if {e["host"] for e in json.loads(p.read_text())["hosts"]} >= everyone]
    assert whole, f"no aiws-report-*.json in {folder} covers {sorted(everyone)}"
    for ext in (".md", ".html"):
        assert whole[-1].with_suffix(ext).is_file()
    return whole[-1]


def _report() -> dict[str, Any]:
    return json.loads(_fleet_report().read_text())


def test_fleet_report_lists_the_container_with_its_declared_gpu(host) -> None:
    data = _report()
    me = host.backend.get_hostname()
    entries = {e["host"]: e for e in data["hosts"]}
    assert me in entries
    entry = entries[me]
    name, arch = DECLARED[_kind(host)]
    assert entry["container"] is True
    assert [(g["name"], g["arch"]) for g in entry["gpus"]] == [(name, arch)]
    assert entry["state"] == "pass"
    # Exactly the checks the host stored, with the same statuses.
    assert entry["checks"] == _result(host)["checks"]
    assert data["summary"]["unverified"] == 0 and data["summary"]["failed"] == 0


def test_fleet_report_html_and_markdown_name_the_host(host) -> None:
    latest = _fleet_report()
    me = host.backend.get_hostname()
    assert f'data-host="{me}"' in latest.with_suffix(".html").read_text()
    assert f"| {me} (container) |" in latest.with_suffix(".md").read_text()
