# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the nvidia_stack filter: one test per rule."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.aiws.workstation.plugins.plugin_utils import nvidia
from conftest import read_lspci
from nvidia_gpus import nvidia_gpus
from nvidia_stack import FilterModule, nvidia_stack

KEYS = {
    "supported",
    "apt_components",
    "driver_branch",
    "driver_flavor",
    "driver_repo",
    "cuda_version",
    "cudnn_version",
    "cuda_repo",
    "packages",
    "cudnn_samples",
    "ubuntu_drivers",
    "gpus",
    "architectures",
    "reasons",
}

# one representative device per architecture: (pci id, arch)
CURRENT = {
    "maxwell": "10de:13c2",  # GTX 970
    "pascal": "10de:1b06",  # GTX 1080 Ti
    "volta": "10de:1db1",  # V100 SXM2
    "turing": "10de:1e07",  # RTX 2080 Ti
    "ampere": "10de:2204",  # RTX 3090
    "ada": "10de:2684",  # RTX 4090
    "hopper": "10de:2330",  # H100 SXM5
    "blackwell": "10de:2b85",  # RTX 5090
}


# The newest cuDNN minor release of the generated table (every current one supports CUDA 12.0-12.9).
NEWEST_CUDNN = max(nvidia.policy()["cudnn"]["releases"], key=lambda v: tuple(map(int, v.split("."))))


def plan(ids: list[str], **options: Any) -> dict[str, Any]:
    return nvidia_stack(nvidia_gpus(ids), **options)


def text(result: dict[str, Any]) -> str:
    return "\n".join(result["reasons"])


def test_registered_under_its_name() -> None:
    assert FilterModule().filters()["nvidia_stack"] is nvidia_stack


@pytest.mark.parametrize("arch", list(CURRENT))
def test_every_current_architecture_is_supported_on_ubuntu_with_580(arch: str) -> None:
    result = plan([CURRENT[arch]])
    assert set(result) == KEYS
    assert result["supported"] is True, text(result)
    assert result["driver_branch"] == 580
    assert result["cuda_version"] == "12.9"
    assert result["architectures"] == [arch]
    assert result["gpus"] == 1
    expected = "proprietary" if arch in ("maxwell", "pascal", "volta") else "open"
    assert result["driver_flavor"] == expected
    assert result["cudnn_version"] == ("9.10" if expected == "proprietary" else NEWEST_CUDNN)
    assert result["packages"]["cuda"] == ["cuda-toolkit-12-9"]
    assert result["cuda_repo"] == "ubuntu2404"
    suffix = "-open" if expected == "open" else ""
    assert result["packages"]["driver"] == [f"nvidia-driver-580{suffix}", "nvidia-utils-580"]
    assert result["ubuntu_drivers"] == {"args": ["install", f"nvidia:580{suffix}"]}


@pytest.mark.parametrize(
    ("fixture", "branch_text"),
    [("gtx680_kepler", "470.xx"), ("gtx480_fermi", "390.xx")],
)
def test_kepler_and_fermi_unsupported_with_legacy_branch(fixture: str, branch_text: str) -> None:
    result = nvidia_stack(nvidia_gpus(read_lspci(fixture)))
    assert result["supported"] is False
    assert result["driver_branch"] is None and result["cuda_version"] is None
    assert result["packages"] == {"driver": [], "cuda": [], "cudnn": []}
    assert branch_text in text(result)
    assert "no CUDA 12" in text(result)
    assert "CUDA 11.x" in text(result) and "replace the card" in text(result)


def test_unknown_device_unsupported() -> None:
    result = plan(["10de:ffff"])
    assert result["supported"] is False
    assert "does not know" in text(result)


def test_no_gpu_gives_toolkit_only_plan() -> None:
    result = nvidia_stack([])
    assert result["supported"] is True
    assert result["driver_branch"] is None and result["driver_flavor"] is None
    assert result["ubuntu_drivers"] is None
    assert result["packages"]["driver"] == []
    assert result["packages"]["cuda"] == ["cuda-toolkit-12-9"]
    assert result["cudnn_version"] == NEWEST_CUDNN
    assert "no NVIDIA GPU detected or declared: driver skipped" in result["reasons"]
    assert (
        nvidia_stack(nvidia_gpus(read_lspci("t4_matrox_server").replace("NVIDIA", "x").replace("10de", "1234")))["gpus"]
        == 0
    )


def test_server_packages_and_ubuntu_drivers_gpgpu() -> None:
    result = nvidia_stack(nvidia_gpus(read_lspci("hgx_8x_h100")), server=True)
    assert result["supported"] is True
    assert result["gpus"] == 8
    # What `ubuntu-drivers install --gpgpu` installs (detect.py): the headless metapackage, never
    # nvidia-driver-580-server-open; nvidia-smi comes from nvidia-utils-580-server beside it.
    assert result["packages"]["driver"] == ["nvidia-headless-no-dkms-580-server-open", "nvidia-utils-580-server"]
    assert result["ubuntu_drivers"] == {"args": ["install", "--gpgpu", "nvidia:580-server-open"]}
    assert result["apt_components"] == []
    assert "ERD" in text(result)


def test_server_proprietary_for_volta() -> None:
    result = plan(["10de:1db1"] * 8, server=True, distro="ubuntu22.04")
    assert result["ubuntu_drivers"] == {"args": ["install", "--gpgpu", "nvidia:580-server"]}
    assert result["cuda_repo"] == "ubuntu2204"


def test_blackwell_open_only_and_cuda_12_8_minimum() -> None:
    result = plan([CURRENT["blackwell"]], cuda="12.8")
    assert result["supported"] and result["driver_flavor"] == "open" and result["cuda_version"] == "12.8"
    assert "required by" in text(result)
    low = plan([CURRENT["blackwell"]], cuda="12.6")
    assert low["supported"] is False
    assert "needs CUDA 12.8 or newer" in text(low)


def test_cuda_12_4_on_blackwell_unsupported_even_where_repo_has_it() -> None:
    result = plan([CURRENT["blackwell"]], cuda="12.4", distro="ubuntu22.04")
    assert result["supported"] is False
    assert "12.8" in text(result)


@pytest.mark.parametrize("pci_id", ["10de:3182", "10de:31c2", "10de:2e12"])
def test_cc_10_3_and_12_1_need_cuda_12_9_and_580(pci_id: str) -> None:
    assert plan([pci_id], cuda="12.8")["supported"] is False
    result = plan([pci_id])
    assert result["supported"] and result["cuda_version"] == "12.9" and result["driver_branch"] == 580


def test_flavor_open_on_pascal_unsupported() -> None:
    result = plan([CURRENT["pascal"]], flavor="open")
    assert result["supported"] is False
    assert "Turing or newer" in text(result)


def test_flavor_proprietary_on_blackwell_and_gh200_unsupported() -> None:
    assert plan([CURRENT["blackwell"]], flavor="proprietary")["supported"] is False
    gh200 = nvidia_stack(nvidia_gpus(read_lspci("gh200_domains_dnn")), flavor="proprietary")
    assert gh200["supported"] is False
    assert "only the open kernel modules" in text(gh200)
    auto = nvidia_stack(nvidia_gpus(read_lspci("gh200_domains_dnn")))
    assert auto["driver_flavor"] == "open"


def test_flavor_proprietary_allowed_on_ada() -> None:
    result = plan([CURRENT["ada"]], flavor="proprietary")
    assert result["supported"] and result["packages"]["driver"][0] == "nvidia-driver-580"


def test_cmp_card_without_open_support_gets_proprietary() -> None:
    result = plan(["10de:1e09"])
    assert result["driver_flavor"] == "proprietary"
    assert "supported-gpus.json" in text(result)


def test_forced_535_on_rtx_5090_unsupported() -> None:
    for distro in ("ubuntu24.04", "debian12"):
        result = plan([CURRENT["blackwell"]], driver_branch=535, distro=distro)
        assert result["supported"] is False, distro
        assert "needs driver 570 or newer" in text(result)


def test_forced_transitional_branch_resolves_to_580() -> None:
    result = plan([CURRENT["ada"]], driver_branch=535)
    assert result["supported"] and result["driver_branch"] == 580
    assert "transitional package that installs 580" in text(result)
    result = plan([CURRENT["ada"]], driver_branch=590)
    assert result["driver_branch"] == 595


def test_forced_595_beyond_pascal_last_branch() -> None:
    result = plan([CURRENT["pascal"]], driver_branch=595)
    assert result["supported"] is False
    assert "up to the 580 branch" in text(result)


def test_forced_595_on_ada() -> None:
    result = plan([CURRENT["ada"]], driver_branch=595)
    assert result["supported"] and result["driver_branch"] == 595
    assert result["packages"]["driver"] == ["nvidia-driver-595-open", "nvidia-utils-595"]
    # noble carries nvidia-graphics-drivers-595-server (libnvidia-extra-595-server); jammy's was not read
    server = plan([CURRENT["ada"]], driver_branch=595, server=True)
    # --gpgpu (aiws_driver_server): ubuntu-drivers installs the headless driver, no desktop stack
    assert server["packages"]["driver"] == ["nvidia-headless-no-dkms-595-server", "nvidia-utils-595-server"]
    assert "the only ones ubuntu24.04 packages for the 595 branch (-server)" in text(server)
    assert plan([CURRENT["ada"]], driver_branch=595, server=True, distro="ubuntu22.04")["supported"] is False
    assert plan([CURRENT["blackwell"]], driver_branch=595, server=True)["supported"] is False


# Every branch NVIDIA published from 580 on, forced on Ubuntu 24.04 for an RTX 4090:
# (driver packages) when the archive carries it, else the words of the refusal.
BRANCHES_2026 = {
    580: ["nvidia-driver-580-open", "nvidia-utils-580"],
    590: ["nvidia-driver-595-open", "nvidia-utils-595"],  # transitional to 595
    595: ["nvidia-driver-595-open", "nvidia-utils-595"],
    610: ["nvidia-driver-610-open", "nvidia-utils-610"],
    615: ["nvidia-driver-615-open", "nvidia-utils-615"],
    620: "620.70.06",
}


@pytest.mark.parametrize(("branch", "expected"), list(BRANCHES_2026.items()))
def test_forcing_each_2026_branch_on_ubuntu(branch: int, expected: list[str] | str) -> None:
    result = plan([CURRENT["ada"]], driver_branch=branch)
    if isinstance(expected, list):
        assert result["supported"], text(result)
        assert result["packages"]["driver"] == expected
        assert result["ubuntu_drivers"] == {"args": ["install", expected[0].replace("nvidia-driver-", "nvidia:")]}
    else:
        assert result["supported"] is False
        assert "not packaged for ubuntu24.04" in text(result) and expected in text(result)


def test_every_known_branch_works_or_is_refused_with_a_reason() -> None:
    known = nvidia.policy()["known_branches"]
    for branch in known:
        for distro in ("ubuntu22.04", "ubuntu24.04", "debian12"):
            for arch, pci_id in CURRENT.items():
                for server in (False, True):
                    result = plan([pci_id], driver_branch=branch, distro=distro, server=server)
                    if result["supported"]:
                        assert result["driver_branch"] >= branch or branch in (535, 565, 570), (branch, distro, arch)
                        assert result["packages"]["driver"], (branch, distro, arch)
                    else:
                        assert str(branch) in text(result) or "transitional" in text(result), (branch, distro, arch)


def test_615_has_only_open_modules_on_ubuntu() -> None:
    forced = plan([CURRENT["ada"]], driver_branch=615, flavor="proprietary")
    assert forced["supported"] is False
    assert "packages only the open kernel modules of the 615 branch" in text(forced)
    assert "transitional to nvidia-driver-615-open" in text(forced)
    cmp_card = plan(["10de:1e09"], driver_branch=615)  # CMP 30HX: no kernelopen in supported-gpus.json
    assert cmp_card["supported"] is False and "needs proprietary" in text(cmp_card)
    auto = plan([CURRENT["ada"]], driver_branch=615)
    assert "open kernel modules: the only ones ubuntu24.04 packages for the 615 branch" in text(auto)


def test_branches_after_580_refuse_maxwell_pascal_volta() -> None:
    for branch in (595, 610, 615):
        for arch in ("maxwell", "pascal", "volta"):
            result = plan([CURRENT[arch]], driver_branch=branch)
            assert result["supported"] is False
            assert "up to the 580 branch" in text(result), (branch, arch)


def test_debian12_refuses_branches_it_does_not_offer_and_says_why() -> None:
    for branch in (590, 595, 610, 615, 620):
        result = plan([CURRENT["ada"]], driver_branch=branch, distro="debian12")
        assert result["supported"] is False
        assert "nvidia-driver-pinning-<branch>" in text(result), branch


def test_default_stays_on_the_lts_branch_and_says_so() -> None:
    for distro in ("ubuntu22.04", "ubuntu24.04"):
        result = plan([CURRENT["ada"]], distro=distro)
        assert result["driver_branch"] == 580
        assert "driver branch 580 (LTSB until 2028-06, restricted): the preferred branch" in text(result)


def test_branch_lifecycle_data_matches_the_architecture_limits() -> None:
    pol = nvidia.policy()
    info = pol["branch_lifecycle"]["info"]
    assert pol["branch_lifecycle"]["source"]
    for branch, row in info.items():
        assert row["designation"] in ("LTSB", "PB", "NFB")
        for arch in row.get("drops", []):
            assert int(pol["architectures"][arch]["max_branch"]) < int(branch), (branch, arch)
    for branch in pol["known_branches"]:
        if branch >= 580:
            assert branch in info, branch


def test_forced_branch_not_packaged() -> None:
    result = plan([CURRENT["ada"]], driver_branch=545)
    assert result["supported"] is False
    assert "not packaged" in text(result) and "580" in text(result)


def test_forced_470_cannot_run_cuda_12() -> None:
    result = plan([CURRENT["turing"]], driver_branch=470)
    assert result["supported"] is False
    assert "needs driver 525 or newer" in text(result)


def test_per_device_minimum_branches_from_data() -> None:
    for pci_id, minimum in (("10de:26b9", 535), ("10de:2335", 550), ("10de:2342", 535), ("10de:2348", 565)):
        result = plan([pci_id], distro="debian12", driver_branch=535)
        assert result["supported"] is (minimum <= 535), pci_id
    h200 = plan(["10de:2335"], distro="debian12")
    assert h200["driver_repo"] == "cuda" and h200["packages"]["driver"] == ["nvidia-kernel-open-dkms", "nvidia-open-580"]
    assert "needs driver 550 or newer" in text(h200)


def test_mixed_pascal_and_blackwell_unsupported() -> None:
    result = plan([CURRENT["pascal"], CURRENT["blackwell"]])
    assert result["supported"] is False
    assert result["architectures"] == ["pascal", "blackwell"]
    assert "different hosts" in text(result)


def test_mixed_workstation_turing_pascal_ampere_gets_proprietary_580() -> None:
    result = nvidia_stack(nvidia_gpus(read_lspci("mixed_workstation")))
    assert result["supported"] is True
    assert (result["driver_branch"], result["driver_flavor"], result["cudnn_version"]) == (580, "proprietary", "9.10")
    assert result["architectures"] == ["pascal", "turing", "ampere"]


def test_ubuntu2404_repo_has_no_cuda_below_12_5() -> None:
    result = plan([CURRENT["ada"]], cuda="12.4")
    assert result["supported"] is False
    assert "12.5 and newer only" in text(result)
    assert plan([CURRENT["ada"]], cuda="12.4", distro="ubuntu22.04")["cuda_version"] == "12.4"


def test_branch_at_least_cuda_minimum() -> None:
    for cuda, minimum in (("12.0", 525), ("12.2", 535), ("12.6", 560), ("12.9", 575)):
        result = plan([CURRENT["turing"]], cuda=cuda, distro="ubuntu22.04")
        assert result["supported"] and result["driver_branch"] >= minimum


def test_cudnn_limits() -> None:
    assert plan([CURRENT["volta"]], cudnn="9.11")["supported"] is False
    assert plan([CURRENT["volta"]], cudnn="9.10")["cudnn_version"] == "9.10"
    old = plan([CURRENT["ada"]], cudnn="9.0", distro="ubuntu22.04")
    assert old["supported"] and old["cuda_version"] == "12.3", "cuda '12' picks the newest that fits cuDNN 9.0"
    assert plan([CURRENT["blackwell"]], cudnn="9.5")["supported"] is False
    assert plan([CURRENT["ada"]], cudnn="9.0")["supported"] is False  # ubuntu2404 starts at 12.5
    packages = plan([CURRENT["pascal"]])["packages"]["cudnn"]
    assert packages == [
        "cudnn9-cuda-12=9.10.*",
        "libcudnn9-cuda-12=9.10.*",
        "libcudnn9-dev-cuda-12=9.10.*",
        "libcudnn9-headers-cuda-12=9.10.*",
        "libcudnn9-samples=9.10.*",
        "libfreeimage-dev",
    ]


def test_debian12_uses_debian_535_when_it_fits() -> None:
    result = plan([CURRENT["ada"]], distro="debian12")
    assert (result["driver_branch"], result["driver_repo"], result["cuda_version"]) == (535, "debian", "12.2")
    assert result["driver_flavor"] == "proprietary"
    assert result["packages"]["driver"] == ["nvidia-driver", "nvidia-kernel-dkms", "firmware-nvidia-gsp", "nvidia-smi"]
    assert result["ubuntu_drivers"] is None and result["cuda_repo"] == "debian12"
    # Debian's driver is in non-free and contrib: the apt sources must carry them (apt_mirror adds them).
    assert result["apt_components"] == ["main", "contrib", "non-free", "non-free-firmware"]
    opened = plan([CURRENT["ada"]], distro="debian12", flavor="open")
    assert "nvidia-open-kernel-dkms" in opened["packages"]["driver"]
    assert "alpha" in text(opened)


def test_debian12_switches_to_nvidia_repo_for_newer_cuda_or_blackwell() -> None:
    newer = plan([CURRENT["ada"]], distro="debian12", cuda="12.8")
    assert (newer["driver_branch"], newer["driver_repo"]) == (580, "cuda")
    assert newer["packages"]["driver"] == ["nvidia-kernel-open-dkms", "nvidia-open-580"]
    assert newer["apt_components"] == ["main", "contrib"]
    blackwell = plan([CURRENT["blackwell"]], distro="debian12")
    assert blackwell["packages"]["driver"] == ["nvidia-kernel-open-dkms", "nvidia-open-580"]
    assert "NVIDIA's CUDA repository" in text(blackwell)
    pascal = plan([CURRENT["pascal"]], distro="debian12", cuda="12.9")
    assert pascal["packages"]["driver"] == ["cuda-drivers-580"]


def test_server_ignored_on_debian() -> None:
    result = plan([CURRENT["ada"]], distro="debian12", server=True)
    assert result["supported"] and "ignored on debian12" in text(result)


def test_every_choice_explained() -> None:
    result = plan([CURRENT["ada"]])
    joined = text(result)
    for word in ("driver branch 580", "open kernel modules", "CUDA 12.9", f"cuDNN {NEWEST_CUDNN}"):
        assert word in joined


def test_never_pulls_driver_via_cuda_metapackages() -> None:
    forbidden = {"cuda", "cuda-drivers"}
    for arch, pci_id in CURRENT.items():
        for distro in ("ubuntu22.04", "ubuntu24.04", "debian12"):
            result = plan([pci_id], distro=distro)
            for name in result["packages"]["cuda"]:
                assert name not in forbidden and not name.startswith(("cuda-12", "cuda-runtime")), (arch, name)
                assert name.startswith("cuda-toolkit-12-")


@pytest.mark.parametrize(
    ("options", "option", "allowed"),
    [
        ({"cuda": "11.8"}, "cuda", "12.9"),
        ({"cuda": "twelve"}, "cuda", "no 12.7"),
        ({"cuda": "12.7"}, "cuda", "12.6, 12.8"),
        ({"cuda": None}, "cuda", "'12'"),
        ({"distro": "fedora40"}, "distro", "ubuntu22.04, ubuntu24.04, debian12"),
        ({"driver_branch": "latest"}, "driver_branch", "integer"),
        ({"driver_branch": 581}, "driver_branch", "580"),
        ({"driver_branch": True}, "driver_branch", "integer"),
        ({"flavor": "closed"}, "flavor", "auto, open, proprietary"),
        ({"cudnn": "8.9"}, "cudnn", "9.10"),
        ({"cudnn": 9.1}, "cudnn", "as a string"),
        ({"server": "maybe"}, "server", "boolean"),
    ],
)
def test_bad_options_raise_naming_option_and_allowed_values(options: dict[str, Any], option: str, allowed: str) -> None:
    with pytest.raises(AnsibleFilterError) as info:
        plan([CURRENT["ada"]], **options)
    message = str(info.value)
    assert message.startswith(f"nvidia_stack: option '{option}' must be")
    assert allowed in message


def test_lenient_option_spellings() -> None:
    assert plan([CURRENT["ada"]], driver_branch="580")["driver_branch"] == 580
    assert plan([CURRENT["ada"]], cuda=12.8)["cuda_version"] == "12.8"
    assert plan([CURRENT["ada"]], cuda=12, cudnn=9)["cuda_version"] == "12.9"
    assert plan([CURRENT["ada"]], server="yes")["ubuntu_drivers"]["args"][1] == "--gpgpu"


@pytest.mark.parametrize("bad", ["01:00.0 VGA", None, 5, [1], [{"name": "x"}]])
def test_bad_input_raises_naming_the_filter(bad: Any) -> None:
    with pytest.raises(AnsibleFilterError, match="nvidia_stack expects the list returned by nvidia_gpus"):
        nvidia_stack(bad)


def test_hand_written_gpu_dicts_accepted() -> None:
    result = nvidia_stack([{"arch": "ampere"}, {"pci_id": "10de:2684"}])
    assert result["supported"] and result["architectures"] == ["ampere", "ada"]


@pytest.mark.parametrize(
    ("pci_id", "distro", "build", "cmake"),
    [
        (CURRENT["ada"], "ubuntu24.04", "cmake", {"package": "cmake>=3.27", "release": None}),
        (CURRENT["ada"], "debian12", "cmake", {"package": "cmake>=3.27", "release": "bookworm-backports"}),
        (CURRENT["ada"], "ubuntu22.04", "cmake", None),
        (CURRENT["pascal"], "ubuntu24.04", "make", None),
        (CURRENT["pascal"], "debian12", "make", None),
    ],
)
def test_samples_build_the_way_the_planned_cudnn_ships_them(pci_id: str, distro: str, build: str, cmake: Any) -> None:
    result = plan([pci_id], distro=distro)
    samples = result["cudnn_samples"]
    assert samples["path"] == "/usr/src/cudnn_samples_v9"
    assert (samples["build"], samples["cmake"]) == (build, cmake)
    if build == "cmake" and cmake is None:
        assert "3.22.1: the mnistCUDNN check will report skip" in text(result)
    if build == "make":
        assert "a Makefile in every sample" in text(result)


def test_no_samples_plan_when_unsupported() -> None:
    assert plan(["10de:ffff"])["cudnn_samples"] is None
