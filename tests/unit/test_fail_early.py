"""Bad input and unsafe hosts stop the run before anything changes, with a message naming the cause.

Each case runs the real site.yml in check mode against this machine (the shipped `lab`
inventory, local connection) and expects a failure whose message names the variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = [str(Path(sys.executable).parent / "ansible-playbook"), "site.yml", "-i", "lab", "--check"]


def run(extra: dict, tags: str = "preflight") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(
        [*PLAYBOOK, "--tags", tags, "-e", json.dumps(extra)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"aiws_cuda_version": "11.8"}, "aiws_cuda_version"),
        ({"aiws_cudnn_version": "8.9"}, "aiws_cudnn_version"),
        ({"aiws_gpus": ["1002:744c"]}, "aiws_gpus"),
        ({"aiws_driver_flavor": "nouveau"}, "aiws_driver_flavor"),
        ({"aiws_mirror_profile": "somewhere"}, "aiws_mirror_profile"),
        ({"aiws_mirror_profile": "custom", "aiws_mirror_custom": {"pypi": "http://mirror.example/simple"}}, "aiws_mirror_allow_http"),
        ({"cuda_toolkit_repo_base": "http://mirror.example/cuda"}, "cuda_toolkit_repo_base"),
        ({"cuda_toolkit_key_fingerprint": "3bf863cc"}, "cuda_toolkit_key_fingerprint"),
        ({"nvidia_driver_reboot": "sometimes"}, "nvidia_driver_reboot"),
    ],
    ids=["cuda-11.8", "cudnn-8.9", "amd-gpu-id", "flavor", "profile", "custom-http", "cuda-repo-http", "fingerprint", "reboot-flag"],
)
def test_bad_input_stops_in_preflight(extra: dict, expected: str) -> None:
    result = run(extra)
    assert result.returncode != 0, result.stdout[-2000:]
    assert expected in result.stdout, result.stdout[-3000:]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"aiws_gpus": ["10de:2b85"], "aiws_driver_branch": 535}, "535"),
        ({"aiws_gpus": ["10de:1b80"], "aiws_driver_flavor": "open"}, "open"),
        ({"aiws_gpus": ["10de:1b80", "10de:2b85"]}, "Blackwell"),
        ({"aiws_gpus": ["10de:1180"]}, "470"),
    ],
    ids=["rtx5090-branch-535", "pascal-open", "pascal-beside-blackwell", "kepler"],
)
def test_hardware_the_plan_cannot_serve_stops_with_reasons(extra: dict, expected: str) -> None:
    result = run(extra)
    assert result.returncode != 0
    assert "no supported stack" in result.stdout
    assert expected in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_secure_boot_with_unsigned_modules_stops_before_installing(tmp_path: Path) -> None:
    mokutil = tmp_path / "mokutil"
    mokutil.write_text("#!/bin/sh\necho 'SecureBoot enabled'\n")
    mokutil.chmod(0o755)
    result = run({"aiws_gpus": ["10de:2684"], "nvidia_driver_mokutil": str(mokutil)}, tags="driver")
    assert result.returncode != 0
    assert "Secure Boot" in result.stdout and "Nothing was installed" in result.stdout
    assert "nvidia_driver_secure_boot_mok" in result.stdout
    # It stopped at the check: no install task ran.
    assert "Install the driver packages" not in result.stdout


def test_secure_boot_read_from_efivars_without_mokutil_stops_with_three_choices(tmp_path: Path) -> None:
    # No mokutil: the SecureBoot EFI variable decides (4 attribute bytes, then 1 = enabled).
    efivar = tmp_path / "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    efivar.write_bytes(b"\x06\x00\x00\x00\x01")
    result = run({"aiws_gpus": ["10de:2684"], "nvidia_driver_mokutil": str(tmp_path / "no-mokutil"),
                  "nvidia_driver_efivars_secure_boot": str(efivar)}, tags="driver")
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert f"Secure Boot on ({efivar}: 1 (enabled))" in out
    assert "(1) " in out and "(2) set nvidia_driver_secure_boot_mok: true and nvidia_driver_mok_password" in out
    assert "(3) disable Secure Boot in the firmware setup" in out and "Nothing was installed" in out
    assert "install | " not in result.stdout


@pytest.mark.parametrize("password", ["", "line\nbreak", "x" * 257], ids=["missing", "newline", "too-long"])
def test_mok_mode_without_a_usable_password_stops_in_preflight(password: str) -> None:
    result = run({"nvidia_driver_secure_boot_mok": True, "nvidia_driver_mok_password": password})
    assert result.returncode != 0
    assert "nvidia_driver_mok_password" in result.stdout
    assert password not in result.stdout or not password
    assert "Traceback" not in result.stdout + result.stderr


def test_the_removed_hold_setting_is_refused() -> None:
    result = run({"nvidia_driver_hold": True})
    assert result.returncode != 0
    assert "nvidia_driver_pin_branch" in result.stdout
