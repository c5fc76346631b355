"""The driver stage in a container: its decisions match the GPU brain, its host-side settings are in place.

A container has no kernel of its own, so installing the module, holding its packages and rebooting
are tagged molecule-notest; everything else the stage does is checked here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugins" / "filter"))
from nvidia_gpus import nvidia_gpus  # noqa: E402
from nvidia_stack import nvidia_stack  # noqa: E402

DECLARED = {"aiws-ada": ["10de:2684"], "aiws-pascal": ["10de:1b80"]}


@pytest.fixture()
def expected(host) -> dict:
    name = host.check_output("hostname").strip()
    return nvidia_stack(nvidia_gpus(DECLARED[name]), cuda="12.4", distro="debian12")


def fact(host) -> dict:
    return json.loads(host.file("/etc/ansible/facts.d/aiws_nvidia_driver.fact").content_string)


def test_driver_decision_matches_the_gpu_brain(host, expected: dict) -> None:
    recorded = fact(host)
    assert recorded["branch"] == expected["driver_branch"]
    assert recorded["flavor"] == expected["driver_flavor"]
    assert recorded["source"] == expected["driver_repo"]
    assert recorded["packages"] == expected["packages"]["driver"]


def test_flavour_follows_the_architecture(host) -> None:
    name = host.check_output("hostname").strip()
    assert fact(host)["flavor"] == {"aiws-ada": "open", "aiws-pascal": "proprietary"}[name]


def test_nouveau_is_blacklisted(host) -> None:
    conf = host.file("/etc/modprobe.d/blacklist-nouveau-aiws.conf")
    assert conf.user == "root" and conf.mode == 0o644
    assert "blacklist nouveau" in conf.content_string
    assert "options nouveau modeset=0" in conf.content_string


def test_nvidia_repository_serves_the_driver_when_the_plan_takes_it_from_there(host, expected: dict) -> None:
    # CUDA 12.4 needs driver 550+, more than Debian 12's 535: the plan takes 580 from NVIDIA's repository,
    # so its driver packages must not be demoted by the pin file.
    assert expected["driver_repo"] == "cuda"
    pin = host.file("/etc/apt/preferences.d/cuda-repository-pin-600").content_string
    assert "Pin-Priority: 100" not in pin
    candidate = host.check_output("apt-cache policy cuda-drivers-580 | awk '/Candidate/ {print $2}'")
    assert candidate.startswith("580.")


def test_secure_boot_was_checked_and_found_off(host) -> None:
    recorded = fact(host)
    assert recorded["secure_boot"] is False
    assert recorded["dkms"] is True
