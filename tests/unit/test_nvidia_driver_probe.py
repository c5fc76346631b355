# SPDX-License-Identifier: GPL-3.0-or-later
"""The driver stage's host probe (roles/nvidia_driver/files/nvidia_driver_probe.py) against real command outputs.

The kernel and modules decisions are checked against ubuntu-drivers-common's detect.py logic
(tags v0.9.6.2_0.22.04.9 and 0.9.7.6ubuntu3.3): the newest installed image, its metapackage's
candidate kernel, prebuilt modules only when the ABI package exists and the flavour's metapackage
depends on it, DKMS otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest
from conftest import load_file

ROOT = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    return load_file("nvidia_driver_probe", ROOT / "roles/nvidia_driver/files/nvidia_driver_probe.py")


P = load()
KT = "Ubuntu Kernel Team <kernel-team@lists.ubuntu.com>"
UBUNTU = "Ubuntu Core Developers <ubuntu-devel-discuss@lists.ubuntu.com>"
DEBIAN = "Debian NVIDIA Maintainers <pkg-nvidia-devel@lists.alioth.debian.org>"


def dpkg(*rows: tuple[str, str, str, str, str]) -> str:
    return "".join("\t".join(r) + "\n" for r in rows)


def compare(a: str, b: str) -> bool:
    """dpkg --compare-versions for the kernel versions used here (x.y.z-abi)."""
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.replace("-", ".").split("."))
    return key(a) > key(b)


class FakeHost:
    """Answers the probe's commands from canned outputs, records the calls."""

    def __init__(self, outputs: dict[tuple[str, ...], tuple[int, str, str]], files: dict[str, bytes] | None = None):
        self.outputs = outputs
        self.files = files or {}
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str]) -> tuple[int, str, str]:
        argv = list(argv)
        self.calls.append(argv)
        if argv[:2] == ["dpkg", "--compare-versions"]:
            return (0 if compare(argv[2], argv[4]) else 1), "", ""
        for key, value in self.outputs.items():
            if tuple(argv[: len(key)]) == key:
                return value
        return 127, "", f"{argv[0]}: not found"

    def read(self, path: str) -> bytes | None:
        return self.files.get(path)


NOBLE_60 = ("ii ", "linux-image-6.8.0-60-generic", "6.8.0-60.63", KT, "")
NOBLE_62 = ("ii ", "linux-image-6.8.0-62-generic", "6.8.0-62.65", KT, "")
META_GENERIC_62 = ("ii ", "linux-image-generic", "6.8.0-62.65", KT,
                   "linux-image-6.8.0-62-generic, linux-modules-extra-6.8.0-62-generic, linux-firmware")
META_GENERIC_60 = ("ii ", "linux-image-generic", "6.8.0-60.63", KT, "linux-image-6.8.0-60-generic, linux-firmware")
SHOW_META_62 = ("Package: linux-image-generic\nVersion: 6.8.0-62.65\nDepends: linux-image-6.8.0-62-generic, "
                "linux-modules-extra-6.8.0-62-generic,\n linux-firmware\n\n")
POLICY_PREBUILT = (
    "nvidia-dkms-580-open:\n  Installed: (none)\n  Candidate: 580.95.05-0ubuntu0.24.04.2\n  Version table:\n"
    "     580.95.05-0ubuntu0.24.04.2 500\n        500 http://archive.ubuntu.com/ubuntu noble-updates/restricted amd64 Packages\n"
    "linux-modules-nvidia-580-open-6.8.0-62-generic:\n  Installed: (none)\n  Candidate: 6.8.0-62.65+1\n"
    "  Version table:\n     6.8.0-62.65+1 500\n"
    "        500 http://archive.ubuntu.com/ubuntu noble-updates/restricted amd64 Packages\n"
)
RDEPENDS_62 = ("linux-modules-nvidia-580-open-6.8.0-62-generic\nReverse Depends:\n"
               "  linux-modules-nvidia-580-open-generic\n |linux-modules-nvidia-580-open-generic-hwe-24.04\n")


def args(**kw: object) -> argparse.Namespace:
    base = {"source": "ubuntu", "branch": 580, "flavour": "580-open", "mokutil": "mokutil",
            "efivars": "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
            "mok_cert": "", "container": False, "gpgpu": False}
    base.update(kw)
    return argparse.Namespace(**base)


def host(rows: str, show: str = SHOW_META_62, policy: str = POLICY_PREBUILT, rdepends: str = RDEPENDS_62,
         files: dict[str, bytes] | None = None, extra: dict | None = None) -> FakeHost:
    outputs: dict[tuple[str, ...], tuple[int, str, str]] = {
        ("dpkg-query",): (0, rows, ""),
        ("uname", "-r"): (0, "6.8.0-60-generic\n", ""),
        ("apt-cache", "show"): (0, show, ""),
        ("apt-cache", "policy", "nvidia-dkms-580-open"): (0, policy, ""),
        ("apt-cache", "rdepends"): (0, rdepends, ""),
        ("mokutil", "--sb-state"): (0, "SecureBoot disabled\n", ""),
    }
    outputs.update(extra or {})
    return FakeHost(outputs, files)


def probe(h: FakeHost, **kw: object) -> dict:
    return P.probe(args(**kw), runner=h.run, read=h.read)


# --------------------------------------------------------------------------- kernel and modules


def test_prebuilt_modules_for_the_newest_kernel_not_the_running_one() -> None:
    h = host(dpkg(NOBLE_60, NOBLE_62, META_GENERIC_62))
    state = probe(h)
    assert state["kernel"]["running"] == "6.8.0-60-generic"
    assert state["kernel"]["image"] == "linux-image-6.8.0-62-generic"
    assert state["kernel"]["meta"] == "linux-image-generic"
    assert state["kernel"]["target"] == "6.8.0-62-generic"
    assert state["kernel"]["boot"] == "6.8.0-62-generic"
    assert state["modules"]["package"] == "linux-modules-nvidia-580-open-generic"
    assert state["modules"]["prebuilt"] is True
    assert state["modules"]["abi_package"] == "linux-modules-nvidia-580-open-6.8.0-62-generic"
    assert ["apt-cache", "policy", "nvidia-dkms-580-open", "linux-modules-nvidia-580-open-6.8.0-62-generic"] in h.calls


def test_the_metapackages_candidate_kernel_decides_even_before_it_is_installed() -> None:
    # linux-image-generic is installed at 6.8.0-60 and its candidate depends on 6.8.0-62 (an update pending).
    h = host(dpkg(NOBLE_60, META_GENERIC_60))
    state = probe(h)
    assert state["kernel"]["image"] == "linux-image-6.8.0-60-generic"
    assert state["kernel"]["target"] == "6.8.0-62-generic"
    assert state["kernel"]["boot"] == "6.8.0-60-generic"  # not installed yet: 60 boots today
    assert state["modules"]["abi_package"] == "linux-modules-nvidia-580-open-6.8.0-62-generic"


def test_hwe_kernel_between_builds_falls_back_to_dkms() -> None:
    rows = dpkg(NOBLE_60, ("ii ", "linux-image-6.11.0-29-generic", "6.11.0-29.29~24.04.1", KT, ""),
                ("ii ", "linux-image-generic-hwe-24.04", "6.11.0-29.29~24.04.1", KT, "linux-image-6.11.0-29-generic"),
                META_GENERIC_60)
    show = "Package: linux-image-generic-hwe-24.04\nDepends: linux-image-6.11.0-29-generic, linux-firmware\n"
    policy = POLICY_PREBUILT.split("linux-modules-nvidia")[0]  # the ABI package is unknown to apt
    state = probe(host(rows, show=show, policy=policy))
    assert state["kernel"]["meta"] == "linux-image-generic-hwe-24.04"
    assert state["kernel"]["target"] == "6.11.0-29-generic"
    assert state["modules"]["package"] == "nvidia-dkms-580-open"
    assert state["modules"]["prebuilt"] is False
    assert "no linux-modules-nvidia-580-open-6.11.0-29-generic in the archive" in state["modules"]["why"]


def test_abi_package_without_the_flavours_metapackage_is_dkms() -> None:
    rdepends = "linux-modules-nvidia-580-open-6.8.0-62-generic\nReverse Depends:\n  linux-modules-nvidia-580-open-6.8.0-62-generic\n"
    state = probe(host(dpkg(NOBLE_62, META_GENERIC_62), rdepends=rdepends))
    assert state["modules"]["package"] == "nvidia-dkms-580-open"
    assert "does not depend on" in state["modules"]["why"]


def test_virtual_kernel_metapackage_reads_as_generic() -> None:
    rows = dpkg(NOBLE_62, ("ii ", "linux-image-virtual", "6.8.0-62.65", KT, "linux-image-6.8.0-62-generic"))
    state = probe(host(rows, show="Depends: linux-image-6.8.0-62-generic\n"))
    assert state["modules"]["package"] == "linux-modules-nvidia-580-open-generic"


def test_custom_kernel_without_metapackage_gets_no_modules_package() -> None:
    rows = dpkg(("ii ", "linux-image-6.9.3-custom-lab", "6.9.3-1", "admin <root@lab>", ""))
    state = probe(host(rows))
    assert state["kernel"]["meta"] is None
    assert state["kernel"]["boot"] == "6.9.3-custom-lab"
    assert state["modules"]["package"] is None
    assert "nvidia-dkms-580-open" in state["modules"]["why"]


def test_extra_and_dbg_images_are_not_kernels() -> None:
    rows = dpkg(NOBLE_60, ("ii ", "linux-image-extra-virtual", "6.8.0-99.1", KT, ""),
                ("ii ", "linux-image-6.8.0-99-generic-dbg", "6.8.0-99.1", KT, ""))
    assert probe(host(rows))["kernel"]["image"] == "linux-image-6.8.0-60-generic"


def test_container_without_kernel_image() -> None:
    state = probe(host(dpkg(("ii ", "bash", "5.2.15-2+b2", "x", ""))), container=True)
    assert state["kernel"] == {"image": None, "release": None, "meta": None, "target": None,
                               "running": "6.8.0-60-generic", "boot": None}
    assert state["reboot"]["state"] == "container"
    assert state["reboot"]["needed"] is False


# --------------------------------------------------------------------------- Secure Boot and MOK

EFIVAR_ON = b"\x06\x00\x00\x00\x01"
EFIVAR_OFF = b"\x06\x00\x00\x00\x00"


@pytest.mark.parametrize(("text", "enabled"), [
    ("SecureBoot enabled\n", True),
    ("SecureBoot disabled\n", False),
    ("SecureBoot disabled\nPlatform is in Setup Mode\n", False),
    ("This system doesn't support Secure Boot\n", False),
])
def test_secure_boot_from_mokutil(text: str, enabled: bool) -> None:
    sb = P.secure_boot((0, text, ""), EFIVAR_OFF, "/x")
    assert sb["enabled"] is enabled and sb["source"] == "mokutil"


def test_secure_boot_from_efivars_when_mokutil_is_absent() -> None:
    path = "/tmp/fake-efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    h = host(dpkg(NOBLE_62), files={path: EFIVAR_ON},
             extra={("/nonexistent/mokutil",): (127, "", "not found")})
    state = probe(h, mokutil="/nonexistent/mokutil", efivars=path)
    assert state["secure_boot"]["enabled"] is True
    assert state["secure_boot"]["source"] == "efivars"
    assert state["mok"]["mokutil"] is False
    assert P.secure_boot(None, EFIVAR_OFF, path)["enabled"] is False
    assert P.secure_boot(None, None, path) == {
        "enabled": False, "source": "efivars", "detail": f"{path} absent (no UEFI Secure Boot)"}


@pytest.mark.parametrize(("answer", "state"), [
    ((0, "/var/lib/dkms/mok.pub is not enrolled\n", ""), "not-enrolled"),
    ((1, "/var/lib/dkms/mok.pub is already in the enrollment request\n", ""), "pending"),
    ((1, "/var/lib/dkms/mok.pub is already enrolled\n", ""), "enrolled"),
    ((255, "", "Not a valid x509 certificate\n"), "unknown"),
])
def test_mok_state_from_mokutil_test_key(answer: tuple[int, str, str], state: str) -> None:
    assert P.mok_state(answer, True, "/var/lib/dkms/mok.pub") == state
    assert P.mok_state(answer, False, "/var/lib/dkms/mok.pub") == "absent"


# --------------------------------------------------------------------------- foreign drivers

SOURCES = """Package files:
 100 /var/lib/dpkg/status
     release a=now
 100 https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64  Packages
     release o=NVIDIA,l=NVIDIA CUDA,c=,b=x86_64
     origin developer.download.nvidia.com
 500 http://archive.ubuntu.com/ubuntu noble-updates/restricted amd64 Packages
     release v=24.04,o=Ubuntu,a=noble-updates,n=noble,l=Ubuntu,c=restricted,b=amd64
     origin archive.ubuntu.com
Pinned packages:
"""
NV = "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64  Packages"
UB = "http://archive.ubuntu.com/ubuntu noble-updates/restricted amd64 Packages"


def policy_of(name: str, version: str, source: str) -> str:
    return (f"{name}:\n  Installed: {version}\n  Candidate: {version}\n  Version table:\n"
            f" *** {version} 100\n        100 {source}\n        100 /var/lib/dpkg/status\n")


def test_foreign_by_name_and_by_origin_on_ubuntu() -> None:
    rows = dpkg(
        ("ii ", "nvidia-driver-pinning-590", "590.44.01-1", "cudatools <cudatools@nvidia.com>", ""),
        ("ii ", "libnvidia-compute", "590.44.01-0ubuntu1", "cudatools <cudatools@nvidia.com>", ""),
        ("ii ", "nvidia-driver-580", "580.65.06-0ubuntu1", "cudatools <cudatools@nvidia.com>", ""),
        ("ii ", "nvidia-utils-580", "580.95.05-0ubuntu0.24.04.2", UBUNTU, ""),
        ("ii ", "libxnvctrl0", "580.65.06-0ubuntu1", "cudatools <cudatools@nvidia.com>", ""),
        ("ii ", "nvidia-container-toolkit", "1.17.8-1", "NVIDIA CORPORATION <cudatools@nvidia.com>", ""),
        ("ii ", "nvidia-settings", "510.47.03-0ubuntu4", UBUNTU, ""),
        ("rc ", "cuda-drivers-580", "580.65.06-1", "cudatools <cudatools@nvidia.com>", ""),
    )
    policy = (policy_of("nvidia-driver-580", "580.65.06-0ubuntu1", NV)
              + policy_of("nvidia-utils-580", "580.95.05-0ubuntu0.24.04.2", UB)
              + policy_of("libxnvctrl0", "580.65.06-0ubuntu1", NV))
    h = host(rows, extra={("apt-cache", "policy", "libnvidia-compute"): (0, policy, ""),
                          ("apt-cache", "policy"): (0, SOURCES, "")})
    guard = probe(h)["foreign"]
    refused = {f["package"]: f["why"] for f in guard["refuse"]}
    assert guard["refuse"][0]["line"] == "libnvidia-compute 590.44.01-0ubuntu1 (NVIDIA's unversioned 590+ package name)"
    assert refused == {
        "nvidia-driver-pinning-590": "NVIDIA's repository package name",
        "libnvidia-compute": "NVIDIA's unversioned 590+ package name",
        "nvidia-driver-580": "installed from NVIDIA's CUDA repository",
    }
    assert [f["package"] for f in guard["report"]] == ["libxnvctrl0"]


def test_foreign_on_debian_by_origin_and_maintainer_when_no_index_has_it() -> None:
    rows = dpkg(
        ("ii ", "libcuda1", "580.65.06-1", "cudatools <cudatools@nvidia.com>", ""),  # repository removed since
        ("ii ", "nvidia-driver", "535.261.03-1", DEBIAN, ""),
        ("ii ", "nvidia-open-kernel-dkms", "535.261.03-1", DEBIAN, ""),  # Debian's own name, not NVIDIA's
        ("ii ", "nvidia-open-580", "580.65.06-1", "cudatools <cudatools@nvidia.com>", ""),
    )
    h = host(rows, extra={("apt-cache", "policy", "libcuda1"): (0, "", ""), ("apt-cache", "policy"): (0, "", "")})
    refused = [f["package"] for f in probe(h, source="debian")["foreign"]["refuse"]]
    assert refused == ["libcuda1", "nvidia-open-580"]


def test_nothing_is_foreign_when_the_plan_takes_nvidias_repository() -> None:
    rows = dpkg(("ii ", "nvidia-open-580", "580.65.06-1", "cudatools <cudatools@nvidia.com>", ""))
    assert probe(host(rows), source="cuda")["foreign"] == {"refuse": [], "report": []}


def test_policy_parsers_read_apt_output() -> None:
    sources = P.parse_policy_sources(SOURCES)
    assert sources["https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64"]["l"] == "NVIDIA CUDA"
    assert sources["http://archive.ubuntu.com/ubuntu noble-updates"]["o"] == "Ubuntu"
    pol = P.parse_policy(policy_of("nvidia-driver-580", "580.65.06-0ubuntu1", NV))
    assert pol["nvidia-driver-580"]["installed"] == "580.65.06-0ubuntu1"
    assert P.origin_of(pol["nvidia-driver-580"], sources) == "nvidia"


# --------------------------------------------------------------------------- reboot


@pytest.mark.parametrize(("kw", "needed", "state", "phrase"), [
    ({"reboot_required": True, "reboot_pkgs": ["linux-image-6.8.0-62-generic"], "installed_module": "580.95.05",
      "loaded_module": "580.95.05"}, True, "reboot", "/run/reboot-required exists (for linux-image-6.8.0-62-generic)"),
    ({"installed_module": "580.95.05", "loaded_module": "580.65.06"}, True, "reboot", "the loaded one is 580.65.06"),
    ({"installed_module": "580.95.05", "loaded_module": ""}, True, "reboot", "no nvidia module is loaded"),
    ({"installed_module": "580.95.05", "loaded_module": "580.95.05"}, False, "current", "is the one installed"),
    ({"installed_module": "580.95.05", "loaded_module": "580.95.05", "nouveau_loaded": True}, True, "reboot",
     "nouveau is loaded"),
    ({"container": True}, False, "container", "container: the host's kernel runs here"),
    ({}, False, "no-module", "DKMS did not build it"),
    ({"driver_installed": False}, False, "not-installed", "not installed"),
])
def test_reboot_decision(kw: dict, needed: bool, state: str, phrase: str) -> None:
    base = {"reboot_required": False, "reboot_pkgs": [], "boot_release": "6.8.0-62-generic",
            "running": "6.8.0-60-generic", "installed_module": "", "loaded_module": "", "container": False,
            "driver_installed": True}
    base.update(kw)
    decision = P.reboot_decision(**base)
    assert decision["needed"] is needed and decision["state"] == state
    assert phrase in " ".join(decision["reasons"])


def test_module_for_the_boot_kernel_is_read_with_modinfo() -> None:
    rows = dpkg(NOBLE_62, META_GENERIC_62, ("ii ", "nvidia-driver-580-open", "580.95.05-0ubuntu0.24.04.2", UBUNTU, ""))
    h = host(rows, files={"/sys/module/nvidia/version": b"580.65.06\n"}, extra={
        ("modinfo", "-k", "6.8.0-62-generic", "-F", "version", "nvidia"): (0, "580.95.05\n", ""),
        ("modinfo", "-k", "6.8.0-62-generic", "-n", "nvidia"): (0, "/lib/modules/6.8.0-62-generic/kernel/nvidia-580-open/nvidia.ko\n", ""),
    })
    state = probe(h)
    assert state["module"] == {"installed": "580.95.05", "loaded": "580.65.06", "nouveau": False,
                               "file": "/lib/modules/6.8.0-62-generic/kernel/nvidia-580-open/nvidia.ko"}
    assert state["reboot"]["needed"] is True


@pytest.mark.parametrize(("installed", "version"), [
    ({"libnvidia-compute-580": "580.95.05-0ubuntu0.24.04.2", "nvidia-utils-580": "580.95.05-0ubuntu0.24.04.2"}, "580.95.05"),
    ({"libnvidia-compute-580-server": "580.95.05-0ubuntu0.22.04.1"}, "580.95.05"),
    ({"libcuda1": "535.261.03-1~deb12u1", "nvidia-driver": "535.261.03-1~deb12u1"}, "535.261.03"),
    ({"nvidia-open-580": "580.65.06-1", "nvidia-settings": "580.95.05-1"}, "580.95.05"),
    ({"libcuda1": "590.44.01-1"}, ""),
])
def test_driver_version_is_the_branchs_libcuda(installed: dict, version: str) -> None:
    branch = 535 if "535" in str(installed) else 580
    assert P.driver_version(installed, branch) == version


# --------------------------------------------------------------------------- what ubuntu-drivers left

PREBUILT = {"package": "linux-modules-nvidia-580-open-generic", "prebuilt": True,
            "abi_package": "linux-modules-nvidia-580-open-6.8.0-62-generic", "dkms_package": "nvidia-dkms-580-open"}
DKMS = {"package": "nvidia-dkms-580-open", "prebuilt": False, "abi_package": None, "dkms_package": "nvidia-dkms-580-open"}


def inst(*names: str) -> dict:
    return {n: {"installed": "1", "version": "1"} for n in names}


def test_ubuntu_drivers_that_installed_nothing_is_caught() -> None:
    # "All the available drivers are already installed." with exit 0, nothing on the host.
    result = P.ubuntu_drivers_result("580-open", False, DKMS, inst("nvidia-utils-580"))
    assert result["missing"] == ["nvidia-driver-580-open or nvidia-driver-lrm-580-open", "nvidia-dkms-580-open"]
    assert result["driver_installed"] is False


def test_ubuntu_drivers_result_for_prebuilt_dkms_lrm_and_gpgpu() -> None:
    ok = P.ubuntu_drivers_result("580-open", False, PREBUILT, inst(
        "nvidia-driver-580-open", "linux-modules-nvidia-580-open-generic", "linux-modules-nvidia-580-open-6.8.0-62-generic"))
    assert ok["missing"] == [] and ok["meta"] == "nvidia-driver-580-open"
    # The metapackage moved on but the ABI package for the kernel that boots next did not arrive.
    assert P.ubuntu_drivers_result("580-open", False, PREBUILT, inst(
        "nvidia-driver-580-open", "linux-modules-nvidia-580-open-generic"))["modules_missing"] == [
        "linux-modules-nvidia-580-open-6.8.0-62-generic"]
    # 24.04: the lrm variant replaces nvidia-driver-<flavour> (detect.py get_userspace_lrm_meta).
    assert P.ubuntu_drivers_result("580-open", False, DKMS, inst("nvidia-driver-lrm-580-open", "nvidia-dkms-580-open"))[
        "missing"] == []
    # --gpgpu installs the headless metapackage, never nvidia-driver-<flavour>.
    server = {**DKMS, "package": "nvidia-dkms-580-server-open", "dkms_package": "nvidia-dkms-580-server-open"}
    gpgpu = P.ubuntu_drivers_result("580-server-open", True, server, inst("nvidia-driver-580-server-open",
                                                                           "nvidia-dkms-580-server-open"))
    assert gpgpu["missing"] == ["nvidia-headless-no-dkms-580-server-open"]


def test_probe_reports_what_ubuntu_drivers_must_install() -> None:
    h = host(dpkg(NOBLE_62, META_GENERIC_62))
    ud = probe(h, gpgpu=False)["ubuntu_drivers"]
    assert ud["meta"] == "nvidia-driver-580-open" and ud["driver_installed"] is False
    assert ud["missing"] == ["nvidia-driver-580-open or nvidia-driver-lrm-580-open",
                             "linux-modules-nvidia-580-open-generic", "linux-modules-nvidia-580-open-6.8.0-62-generic"]
