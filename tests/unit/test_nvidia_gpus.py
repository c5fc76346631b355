# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the nvidia_gpus filter."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from conftest import read_lspci
from nvidia_gpus import FilterModule, nvidia_gpus

KEYS = {"slot", "pci_id", "name", "arch", "compute_capability"}


def archs(gpus: list[dict[str, Any]]) -> list[str]:
    return [g["arch"] for g in gpus]


def test_registered_under_its_name() -> None:
    assert FilterModule().filters()["nvidia_gpus"] is nvidia_gpus


def test_desktop_single_gpu_skips_audio_function() -> None:
    gpus = nvidia_gpus(read_lspci("desktop_rtx4090"))
    assert gpus == [
        {
            "slot": "0000:01:00.0",
            "pci_id": "10de:2684",
            "name": "NVIDIA GeForce RTX 4090",
            "arch": "ada",
            "compute_capability": "8.9",
        }
    ]


def test_hgx_h100_counts_gpus_not_nvswitch_nor_bmc() -> None:
    gpus = nvidia_gpus(read_lspci("hgx_8x_h100"))
    assert len(gpus) == 8
    assert {g["pci_id"] for g in gpus} == {"10de:2330"}
    assert archs(gpus) == ["hopper"] * 8
    assert all(g["compute_capability"] == "9.0" for g in gpus)
    slots = [g["slot"] for g in gpus]
    assert slots == sorted(slots)
    assert slots[0] == "0000:18:00.0"


def test_laptop_3d_controller_beside_intel_igpu() -> None:
    gpus = nvidia_gpus(read_lspci("laptop_rtx4060"))
    assert len(gpus) == 1
    assert gpus[0]["slot"] == "0000:01:00.0"
    assert gpus[0]["arch"] == "ada"
    assert "4060" in gpus[0]["name"]


def test_dgx_a100_ignores_mellanox_and_nvswitch() -> None:
    gpus = nvidia_gpus(read_lspci("dgx_a100"))
    assert len(gpus) == 8
    assert set(archs(gpus)) == {"ampere"}
    assert {g["compute_capability"] for g in gpus} == {"8.0"}


def test_mixed_workstation_in_bus_order_without_usb_ucsi() -> None:
    gpus = nvidia_gpus(read_lspci("mixed_workstation"))
    assert [g["pci_id"] for g in gpus] == ["10de:1e07", "10de:1b06", "10de:2204"]
    assert archs(gpus) == ["turing", "pascal", "ampere"]
    assert [g["compute_capability"] for g in gpus] == ["7.5", "6.1", "8.6"]


def test_old_pci_ids_device_name_gets_marketing_name() -> None:
    gpus = nvidia_gpus(read_lspci("rtx5090_old_pciids"))
    assert len(gpus) == 1
    assert gpus[0]["name"] == "NVIDIA GeForce RTX 5090"
    assert gpus[0]["arch"] == "blackwell"
    assert gpus[0]["compute_capability"] == "12.0"


def test_iommu_group_listing_with_rev_ff_and_prog_if() -> None:
    gpus = nvidia_gpus(read_lspci("iommu_groups"))
    assert [(g["slot"], g["arch"]) for g in gpus] == [("0000:01:00.0", "ampere"), ("0000:02:00.0", "pascal")]


def test_domains_sorted_numerically() -> None:
    gpus = nvidia_gpus(read_lspci("gh200_domains_dnn"))
    assert gpus == [
        {
            "slot": "0009:01:00.0",
            "pci_id": "10de:2342",
            "name": "NVIDIA GH200 120GB",
            "arch": "hopper",
            "compute_capability": "9.0",
        }
    ]


def test_kepler_and_fermi() -> None:
    (kepler,) = nvidia_gpus(read_lspci("gtx680_kepler"))
    assert (kepler["arch"], kepler["compute_capability"], kepler["name"]) == ("kepler", "3.0", "NVIDIA GeForce GTX 680")
    (fermi,) = nvidia_gpus(read_lspci("gtx480_fermi"))
    assert (fermi["arch"], fermi["compute_capability"]) == ("legacy", "2.0")


def test_matrox_bmc_ignored_tesla_t4_found() -> None:
    gpus = nvidia_gpus(read_lspci("t4_matrox_server"))
    assert [g["name"] for g in gpus] == ["NVIDIA Tesla T4"] * 2
    assert archs(gpus) == ["turing", "turing"]


def test_list_of_lines_equals_text() -> None:
    text = read_lspci("mixed_workstation")
    assert nvidia_gpus(text.splitlines()) == nvidia_gpus(text)


@pytest.mark.parametrize(
    "line",
    [
        "01:00.0 0300: 10de:2684 (rev a1)",
        ('01:00.0 "VGA compatible controller [0300]" "NVIDIA Corporation [10de]" "AD102 [GeForce RTX 4090] [2684]"'
        ' -ra1 "" ""'),
        "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD102 [GeForce RTX 4090] [10de:2684] (rev a1)\r",
        "  01:00.0 VGA compatible controller [0300]: NVIDIA Corporation Device [10de:2684]",
        "01:00.0 Display controller [0380]: NVIDIA Corporation AD102 [GeForce RTX 4090] [10de:2684] (rev a1)",
    ],
)
def test_other_lspci_formats(line: str) -> None:
    (gpu,) = nvidia_gpus(line)
    assert (gpu["slot"], gpu["pci_id"], gpu["arch"]) == ("0000:01:00.0", "10de:2684", "ada")


def test_lspci_nnk_subsystem_lines_not_counted() -> None:
    text = (
        "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation GA102 [GeForce RTX 3090] [10de:2204] (rev a1)\n"
        "\tSubsystem: NVIDIA Corporation Device [10de:147d]\n"
        "\tKernel driver in use: nvidia\n"
        "\tKernel modules: nvidiafb, nouveau, nvidia_drm, nvidia\n"
        "01:00.1 Audio device [0403]: NVIDIA Corporation GA102 High Definition Audio Controller [10de:1aef] (rev a1)\n"
        "\tSubsystem: NVIDIA Corporation Device [10de:147d]\n"
    )
    assert [g["pci_id"] for g in nvidia_gpus(text)] == ["10de:2204"]


def test_duplicate_paste_counted_once() -> None:
    text = read_lspci("desktop_rtx4090")
    assert len(nvidia_gpus(text + text)) == 1


def test_declared_ids() -> None:
    gpus = nvidia_gpus(["10de:2330"] * 8 + ["10DE:2B85", "0x2684", "2204", "1002:73bf"])
    assert len(gpus) == 11
    assert all(g["slot"] is None for g in gpus)
    assert archs(gpus) == ["hopper"] * 8 + ["blackwell", "ada", "ampere"]
    assert gpus[8]["pci_id"] == "10de:2b85"


def test_declared_ids_after_lspci_lines() -> None:
    lines = [*read_lspci("desktop_rtx4090").splitlines(), "10de:2b85"]
    gpus = nvidia_gpus(lines)
    assert [g["slot"] for g in gpus] == ["0000:01:00.0", None]


def test_lines_without_bus_address_each_count_once() -> None:
    gpus = nvidia_gpus(read_lspci("pasted_no_slot"))
    assert [g["pci_id"] for g in gpus] == ["10de:2204", "10de:2204", "10de:2330", "10de:2684"]
    assert all(g["slot"] is None for g in gpus)
    assert archs(gpus) == ["ampere", "ampere", "hopper", "ada"]
    assert gpus[0]["name"] == "NVIDIA GeForce RTX 3090"


@pytest.mark.parametrize(
    ("line", "pci_id"),
    [
        (
            "VGA compatible controller [0300]: NVIDIA Corporation AD102 [GeForce RTX 4090] [10de:2684] (rev a1)",
            "10de:2684",
        ),
        ("VGA compatible controller [0300]: NVIDIA Corporation AD102 [10de:2684]", "10de:2684"),
        ("3D controller [0302]: NVIDIA Corporation TU104GL [Tesla T4] [10de:1eb8] (rev a1)", "10de:1eb8"),
        ("Display controller [0380]: NVIDIA Corporation Device [10de:2b85] (rev a1)", "10de:2b85"),
        ("zz:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD102 [10de:2684]", "10de:2684"),
        ("  > 3D controller [0302]: NVIDIA Corporation GA100 [A100 SXM4 80GB] [10DE:20B2] (rev a1)\r", "10de:20b2"),
    ],
)
def test_line_without_bus_address(line: str, pci_id: str) -> None:
    (gpu,) = nvidia_gpus(line)
    assert (gpu["slot"], gpu["pci_id"]) == (None, pci_id)
    assert gpu["arch"] != "unknown"


def test_lines_without_address_after_addressed_ones_before_declared() -> None:
    lines = [
        "3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)",
        *read_lspci("desktop_rtx4090").splitlines(),
        "10de:2b85",
    ]
    assert [(g["slot"], g["pci_id"]) for g in nvidia_gpus(lines)] == [
        ("0000:01:00.0", "10de:2684"),
        (None, "10de:2330"),
        (None, "10de:2b85"),
    ]


def test_bare_id_in_text_is_not_a_declared_gpu() -> None:
    assert nvidia_gpus("2684\n10de:2684") == []


def test_unknown_nvidia_device() -> None:
    (gpu,) = nvidia_gpus("05:00.0 3D controller [0302]: NVIDIA Corporation Device [10de:ffff] (rev a1)")
    assert gpu["arch"] == "unknown"
    assert gpu["compute_capability"] is None
    assert gpu["name"] == "NVIDIA Device ffff"
    (declared,) = nvidia_gpus(["10de:fffe"])
    assert declared["arch"] == "unknown"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   \n\n",
        "not lspci at all",
        "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation",
        "\x00\xff\ufffd [10de:2684]",
        "Audio device [0403]: NVIDIA Corporation AD102 High Definition Audio Controller [10de:22ba] (rev a1)",
        "\tSubsystem: NVIDIA Corporation Device [10de:147d]",
        "VGA compatible controller [0300]: Intel Corporation Raptor Lake-P [Iris Xe Graphics] [8086:a7a0] (rev 04)",
        "[0300] but no vendor pair",
        "x" * 100000,
        [],
        ["", "garbage", "10de:zzzz"],
    ],
)
def test_garbage_gives_empty_list(garbage: Any) -> None:
    assert nvidia_gpus(garbage) == []


@pytest.mark.parametrize("bad", [None, 42, 3.5, {"pci_id": "10de:2684"}, b"01:00.0", [1, 2], ["10de:2684", None]])
def test_non_text_input_raises_naming_the_filter(bad: Any) -> None:
    with pytest.raises(AnsibleFilterError, match="nvidia_gpus expects lspci text or a list of strings"):
        nvidia_gpus(bad)


def test_result_shape() -> None:
    for name in ("desktop_rtx4090", "hgx_8x_h100", "mixed_workstation"):
        for gpu in nvidia_gpus(read_lspci(name)):
            assert set(gpu) == KEYS


def sixteen_gpu_lspci() -> str:
    lines = []
    for index in range(16):
        gpu, nic = f"{0x10 + index:02x}", f"{0x80 + index:02x}"
        lines.append(f"{gpu}:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)")
        lines.append(f"{gpu}:00.1 Bridge [0680]: NVIDIA Corporation GH100 [H100 NVSwitch] [10de:22a3] (rev a1)")
        lines.append(f"{nic}:00.0 Infiniband controller [0207]: Mellanox Technologies MT2910 [ConnectX-7] [15b3:1021]")
    return "\n".join(lines)


def test_performance_16_gpus_well_under_50ms() -> None:
    text = sixteen_gpu_lspci()
    assert len(nvidia_gpus(text)) == 16  # first call loads the table
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        nvidia_gpus(text)
    per_call = (time.perf_counter() - start) / runs
    assert per_call < 0.010, f"{per_call * 1000:.2f} ms per call"
