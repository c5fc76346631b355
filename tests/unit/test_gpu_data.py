# SPDX-License-Identifier: GPL-3.0-or-later
"""Consistency of the generated table with the rules, and ansible-level checks."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.aiws.workstation.plugins.plugin_utils import nvidia
from conftest import FILTER_DIR, ROOT
from nvidia_gpus import nvidia_gpus
from nvidia_stack import nvidia_stack

common = nvidia
TABLE: dict[str, Any] = json.loads((FILTER_DIR / "data" / "nvidia_devices.json").read_text(encoding="utf-8"))
POLICY = common.policy()
CUDA = POLICY["cuda"]["releases"]
CUDNN = POLICY["cudnn"]["releases"]
BIN = Path(sys.executable).parent
# From the checkout, ansible.cfg finds the collection (collections/); the filters go by their full names.
ANSIBLE_ENV = {**os.environ, "ANSIBLE_NOCOLOR": "1"}


def driver_devices() -> list[str]:
    """Every device ID that came from NVIDIA's supported-gpus.json."""
    return [devid for devid, row in TABLE["devices"].items() if row[5] == "driver"]


def test_table_records_its_sources() -> None:
    meta = TABLE["meta"]
    assert meta["driver_data"]["package"] == "nvidia-driver"
    assert meta["driver_data"]["version"]
    assert meta["pci_ids"]["version"]
    assert meta["driver_data"]["entries"] >= 2000
    assert (FILTER_DIR / "data" / "nvidia_devices.json").stat().st_size < 300_000


def test_every_driver_device_classifies() -> None:
    devices = driver_devices()
    assert len(devices) > 1000
    for devid in devices:
        (gpu,) = nvidia_gpus([f"10de:{devid}"])
        assert gpu["arch"] != "unknown", devid
        legacy = TABLE["devices"][devid][3]
        if legacy in (None, "580.xx"):
            assert gpu["arch"] not in ("legacy", "kepler"), devid
            assert gpu["compute_capability"], devid
        elif legacy in ("470.xx", "367.xx"):
            assert gpu["arch"] == "kepler", devid
        else:
            assert gpu["arch"] == "legacy", devid


def test_every_pci_ids_gpu_classifies_with_a_known_arch() -> None:
    for devid, row in TABLE["devices"].items():
        assert row[2] in common.ARCHITECTURES and row[2] != "unknown", devid


def test_legacy_devices_unsupported_for_cuda_12() -> None:
    for devid, row in TABLE["devices"].items():
        if row[2] not in ("legacy", "kepler"):
            continue
        result = nvidia_stack(nvidia_gpus([f"10de:{devid}"]))
        assert result["supported"] is False, devid
        assert "legacy" in result["reasons"][0] and "no CUDA 12" in result["reasons"][0]


@pytest.mark.parametrize("distro", ["ubuntu24.04", "ubuntu22.04", "debian12"])
def test_every_current_device_gets_a_stack_obeying_the_rules(distro: str) -> None:
    checked = 0
    for devid, row in TABLE["devices"].items():
        arch = row[2]
        if arch in ("legacy", "kepler"):
            continue
        gpus = nvidia_gpus([f"10de:{devid}"])
        result = nvidia_stack(gpus, distro=distro)
        assert result["supported"] is True, (devid, result["reasons"])
        branch = result["driver_branch"]
        cuda = result["cuda_version"]
        assert branch >= CUDA[cuda]["min_branch"], devid
        info = common.devices()[devid]
        rules = POLICY["architectures"][arch]
        assert branch >= rules["min_branch"] and branch >= (info["min_branch"] or 0), devid
        if "max_branch" in rules:
            assert branch <= rules["max_branch"], devid
        flavor = result["driver_flavor"]
        assert flavor in rules["flavors"], devid
        if info["open_only"]:
            assert flavor == "open", devid
        cudnn = result["cudnn_version"]
        assert arch in CUDNN[cudnn]["architectures"], devid
        low, high = CUDNN[cudnn]["cuda12"]
        version = tuple(map(int, cuda.split(".")))
        assert tuple(map(int, low.split("."))) <= version <= tuple(map(int, high.split(".")))
        if arch == "blackwell":
            assert tuple(map(int, cuda.split("."))) >= (12, 8) and branch >= 570
        if arch in ("maxwell", "pascal", "volta"):
            assert cudnn == "9.10" and flavor == "proprietary"
        checked += 1
    assert checked > 500


def test_policy_has_no_cuda_12_7_and_is_monotonic() -> None:
    assert "12.7" not in CUDA
    branches = [CUDA[v]["min_branch"] for v in sorted(CUDA, key=lambda v: tuple(map(int, v.split("."))))]
    assert branches == sorted(branches)
    assert {k: v["min_branch"] for k, v in CUDA.items()} == {
        "12.0": 525,
        "12.1": 530,
        "12.2": 535,
        "12.3": 545,
        "12.4": 550,
        "12.5": 555,
        "12.6": 560,
        "12.8": 570,
        "12.9": 575,
    }


def test_yaml_data_files_have_sources() -> None:
    overlay = common.overlay()
    assert overlay["sources"]
    for block in ("cuda", "architectures", "open_modules", "cudnn", "cuda_repo"):
        assert POLICY[block]["source"], block
    for name, dist in POLICY["distros"].items():
        assert dist["source"], name


def test_helper_is_loaded_once_and_shared() -> None:
    import nvidia_gpus as gpus_module
    import nvidia_stack as stack_module

    name = "ansible_collections.aiws.workstation.plugins.plugin_utils.nvidia"
    assert stack_module.nvidia is gpus_module.nvidia is common is sys.modules[name]


def test_generator_offline_on_tiny_inputs(tmp_path: Path) -> None:
    chips = {
        "chips": [
            {"devid": "0x2684", "name": "NVIDIA GeForce RTX 4090", "features": ["kernelopen"]},
            {"devid": "0x1180", "name": "GeForce GTX 680", "legacybranch": "470.xx", "features": []},
            {
                "devid": "0x2330",
                "subdevid": "0x16C1",
                "subvendorid": "0x10DE",
                "name": "NVIDIA H100 80GB HBM3",
                "features": ["kernelopen"],
            },
        ]
    }
    (tmp_path / "gpus.json.gz").write_bytes(gzip.compress(json.dumps(chips).encode()))
    (tmp_path / "pci.ids").write_text(
        "# comment\n10de  NVIDIA Corporation\n\t1180  GK104 [GeForce GTX 680]\n\t2684  AD102 [GeForce RTX 4090]\n"
        "\t22ba  AD102 High Definition Audio Controller\n\t22a3  GH100 [H100 NVSwitch]\n"
        "\t2b85  GB202 [GeForce RTX 5090]\n"
        "\t3000  GR100 [Reserved Dev ID A]\n\t2330  GH100 [H100 SXM5 80GB]\n10df  Emulex Corporation\n",
        encoding="utf-8",
    )
    out = tmp_path / "table.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "gen_gpu_table.py"),
            "--driver-json",
            str(tmp_path / "gpus.json.gz"),
            "--pci-ids",
            str(tmp_path / "pci.ids"),
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    table = json.loads(out.read_text(encoding="utf-8"))
    assert set(table["devices"]) == {"1180", "2330", "2684", "2b85"}
    assert table["devices"]["2b85"] == ["NVIDIA GeForce RTX 5090", "GB202", "blackwell", None, None, "pci.ids"]
    assert table["devices"]["1180"][2:4] == ["kepler", "470.xx"]
    assert table["devices"]["2684"][4] is True


def _ansible(tool: str) -> str:
    found = shutil.which(tool, path=str(BIN)) or shutil.which(tool)
    if not found:
        pytest.skip(f"{tool} not installed")
    return found


@pytest.mark.parametrize("name", ["nvidia_gpus", "nvidia_stack"])
def test_ansible_doc(name: str) -> None:
    run = subprocess.run(
        [_ansible("ansible-doc"), "-t", "filter", f"aiws.workstation.{name}"],
        cwd=ROOT,
        env=ANSIBLE_ENV,
        capture_output=True,
        text=True,
        timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert name in run.stdout


def test_loader_neither_warns_nor_lists_helper() -> None:
    run = subprocess.run(
        [_ansible("ansible-doc"), "-t", "filter", "-l", "aiws.workstation"],
        cwd=ROOT,
        env=ANSIBLE_ENV,
        capture_output=True,
        text=True,
        timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "aiws.workstation.nvidia_gpus" in run.stdout and "aiws.workstation.nvidia_stack" in run.stdout
    assert "plugin_utils" not in run.stdout + run.stderr and "[WARNING]" not in run.stdout + run.stderr


def test_filters_render_in_a_playbook(tmp_path: Path) -> None:
    lspci = json.dumps(
        nvidia_lspci := (
            FILTER_DIR.parent.parent / "tests" / "unit" / "fixtures" / "lspci" / "hgx_8x_h100.txt"
        ).read_text(encoding="utf-8")
    )
    assert nvidia_lspci
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        f"""- hosts: localhost
  gather_facts: false
  vars:
    lspci_text: {lspci}
  tasks:
    - name: Plan
      ansible.builtin.set_fact:
        stack: "{{{{ lspci_text | aiws.workstation.nvidia_gpus | aiws.workstation.nvidia_stack(server=true, cuda='12.8') }}}}"
        declared: "{{{{ ['10de:2b85'] | aiws.workstation.nvidia_gpus | map(attribute='arch') | list }}}}"
    - name: Check
      ansible.builtin.assert:
        that:
          - stack.supported
          - stack.gpus == 8
          - stack.driver_branch == 580
          - stack.cuda_version == '12.8'
          - stack.ubuntu_drivers.args == ['install', '--gpgpu', 'nvidia:580-server-open']
          - declared == ['blackwell']
    - name: Bad option fails with a clear message
      ansible.builtin.debug:
        msg: "{{{{ [] | aiws.workstation.nvidia_stack(cuda='11.8') }}}}"
      register: bad
      ignore_errors: true
    - name: Check the failure
      ansible.builtin.assert:
        that:
          - bad is failed
          - bad.msg is search("option 'cuda' must be")
""",
        encoding="utf-8",
    )
    run = subprocess.run(
        [_ansible("ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        cwd=ROOT,
        env=ANSIBLE_ENV,
        capture_output=True,
        text=True,
        timeout=300, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "failed=0" in run.stdout
