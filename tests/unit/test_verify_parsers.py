"""plugin_utils.parsers against recorded command output (tests/unit/fixtures/verify, sources in its README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_collections.aiws.workstation.plugins.plugin_utils import parsers

FIX = Path(__file__).parent / "fixtures" / "verify"


def fx(name: str) -> str:
    return (FIX / name).read_text()


def test_nvidia_smi_table_580_single_pascal() -> None:
    table = parsers.parse_nvidia_smi_table(fx("nvidia-smi-580-pascal.txt"))
    assert table == {
        "driver_version": "580.95.05",
        "cuda_version": "13.0",
        "gpus": [{"index": 0, "name": "Quadro P4000", "bus_id": "00000000:03:00.0"}],
    }


def test_nvidia_smi_table_535_two_gpus_old_layout() -> None:
    table = parsers.parse_nvidia_smi_table(fx("nvidia-smi-535-2x4090.txt"))
    assert table is not None
    assert table["driver_version"] == "535.288.01"
    assert table["cuda_version"] == "12.2"
    assert [g["bus_id"] for g in table["gpus"]] == ["00000000:3E:00.0", "00000000:B5:00.0"]
    assert {g["name"] for g in table["gpus"]} == {"NVIDIA GeForce RTX 4090"}


def test_nvidia_smi_table_kmd_header_of_newer_drivers() -> None:
    table = parsers.parse_nvidia_smi_table(fx("nvidia-smi-610-kmd-header.txt"))
    assert table is not None
    assert (table["driver_version"], table["cuda_version"]) == ("610.57.04", "13.3")
    assert len(table["gpus"]) == 2


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("nvidia-smi-failed.txt", "no_driver"),
        ("nvidia-smi-mismatch.txt", "version_mismatch"),
        ("nvidia-smi-no-devices.txt", "no_devices"),
    ],
)
def test_nvidia_smi_failures_are_classified(name: str, kind: str) -> None:
    text = fx(name)
    assert parsers.parse_nvidia_smi_table(text) is None
    assert parsers.nvidia_smi_failure(text) == kind


def test_nvidia_smi_failure_command_missing_and_unknown() -> None:
    assert parsers.nvidia_smi_failure("/bin/sh: 1: nvidia-smi: not found") == "not_found"
    assert parsers.nvidia_smi_failure("") is None


def test_nvidia_smi_csv_query() -> None:
    rows = parsers.parse_nvidia_smi_csv(fx("nvidia-smi-query-2x4090.csv"))
    assert len(rows) == 2
    assert rows[0] == {
        "index": "0",
        "name": "NVIDIA GeForce RTX 4090",
        "pci.bus_id": "00000000:3E:00.0",
        "driver_version": "535.288.01",
        "compute_cap": "8.9",
        "memory.total": "24564 MiB",
    }


def test_nvidia_smi_csv_rejects_error_text() -> None:
    assert parsers.parse_nvidia_smi_csv(fx("nvidia-smi-failed.txt")) == []
    assert parsers.parse_nvidia_smi_csv("") == []


def test_driver_version_file_flavours() -> None:
    assert parsers.parse_driver_version_file(fx("proc-driver-version-open.txt")) == {"flavor": "open", "version": "565.57.01"}
    assert parsers.parse_driver_version_file(fx("proc-driver-version-proprietary.txt")) == {
        "flavor": "proprietary",
        "version": "575.64.03",
    }
    assert parsers.parse_driver_version_file("cat: /proc/driver/nvidia/version: No such file or directory") is None


def test_nvcc_versions() -> None:
    assert parsers.parse_nvcc_version(fx("nvcc-12.4.txt")) == {"release": "12.4", "version": "12.4.131"}
    assert parsers.parse_nvcc_version(fx("nvcc-12.2.txt")) == {"release": "12.2", "version": "12.2.140"}
    assert parsers.parse_nvcc_version("bash: line 1: nvcc: command not found") is None


def test_mnist_real_run_passes() -> None:
    result = parsers.parse_mnist(fx("mnistcudnn-pascal-2gpu-passed.txt"), 0)
    assert result == {"passed": True, "passes": 2, "cudnn_version": "8.0.5", "versions_match": True, "devices": 2}


def test_mnist_needs_exit_zero_and_no_failure() -> None:
    text = fx("mnistcudnn-pascal-2gpu-passed.txt")
    assert parsers.parse_mnist(text, 1)["passed"] is False
    assert parsers.parse_mnist(text + "\nTest failed!\n", 0)["passed"] is False
    assert parsers.parse_mnist("", 0)["passed"] is False


def test_sections_split_script_output() -> None:
    text = fx("mnistcudnn-build-no-freeimage.txt") + "### build rc=2\n"
    sections = parsers.parse_sections(text)
    assert list(sections) == ["build"]
    assert sections["build"]["rc"] == 2
    assert "FreeImage.h: No such file or directory" in sections["build"]["output"]


def test_conda_info_json() -> None:
    info = parsers.parse_conda_info(fx("conda-info-tuna.json"))
    assert info is not None
    assert info["conda_version"] == "24.11.3"
    assert info["root_prefix"] == "/opt/anaconda3"
    assert parsers.channel_base(info["channels"][0]) == "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main"
    assert parsers.parse_conda_info("bash: conda: command not found") is None
    assert parsers.parse_conda_info(json.dumps({"no": "channels"})) is None


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main/linux-64", "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main"),
        ("https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main/noarch/", "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main"),
        ("https://conda.anaconda.org/conda-forge/linux-aarch64", "https://conda.anaconda.org/conda-forge"),
        ("https://example.org/channel/", "https://example.org/channel"),
    ],
)
def test_channel_base(url: str, base: str) -> None:
    assert parsers.channel_base(url) == base


def test_pip_config_list() -> None:
    assert parsers.parse_pip_config(fx("pip-config-list-tuna.txt")) == {
        "global.index-url": "https://pypi.tuna.tsinghua.edu.cn/simple",
        "global.timeout": "60",
        "install.trusted-host": "pypi.tuna.tsinghua.edu.cn",
    }
    assert parsers.parse_pip_config("") == {}


def test_key_values() -> None:
    assert parsers.split_key_values("nvidia_loaded=0\nsecure_boot=SecureBoot enabled\nnoise\n") == {
        "nvidia_loaded": "0",
        "secure_boot": "SecureBoot enabled",
    }
