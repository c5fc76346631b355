"""The simulated Ubuntu machine itself, without the project's roles: what the driver tests build on.

Two containers of their own, from the scenario's Ubuntu images: 22.04 with the GA kernel (Canonical's
prebuilt NVIDIA modules exist for it) and 24.04 with the HWE kernel (none: DKMS). Each is pointed at
the simulated archive (tests/fixtures/fx_ubuntu_archive.py) by hand and given an Ada GPU, then:

* ubuntu-drivers installs nothing for the DKMS-only kernel without --include-dkms, says so, exits 0
  and logs it; with --include-dkms (and the kernel's headers) DKMS builds a module signed by the MOK;
* prebuilt modules come with the driver on the GA kernel, and a kernel update (`publish kernel-update`,
  `apt upgrade`) brings the next ABI's image and its modules through the modules metapackage, asks for a
  reboot, and the next "boot" runs the new kernel with its module;
* Secure Boot is read from the machine's own EFI variables, and mokutil --import records the key.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from aiws_runs import MOK_NEW, SECURE_BOOT, archive, firmware, podman_restart, wait_booted

SUFFIX = "-" + (os.environ.get("AIWS_TEST_SUFFIX") or "main")
PORT = os.environ.get("AIWS_UBUNTU_ARCHIVE_PORT") or str(int(os.environ.get("AIWS_APT_MIRROR_PORT", "8100")) + 10)
ARCHIVE = f"http://127.0.0.1:{PORT}/ubuntu"
ADA = "pci:v000010DEd00002684sv00001043sd000088E2bc03sc00i00"
MACHINES = {
    # name: (image variable, codename)
    "prebuilt": ("AIWS_TEST_IMAGE_UBUNTU2204", "jammy"),
    "dkms": ("AIWS_TEST_IMAGE_UBUNTU2404_HWE", "noble"),
}


def podman(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, input=stdin)


def sh(name: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = podman("exec", "-e", "DEBIAN_FRONTEND=noninteractive", name, "bash", "-c", script, check=False)
    if check:
        assert run.returncode == 0, f"{script}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run




@pytest.fixture(scope="module")
def machines() -> Iterator[dict[str, str]]:
    names = {}
    for role, (variable, codename) in MACHINES.items():
        name = f"aiws-sim-{role}{SUFFIX}"
        image = os.environ.get(variable) or f"localhost/aiws-{variable.removeprefix('AIWS_TEST_IMAGE_').lower()}:latest"
        podman("rm", "-f", name, check=False)
        efivars = firmware(name)
        subprocess.run(["rm", "-rf", str(efivars.parents[1])], check=True)
        efivars.mkdir(parents=True)
        (efivars / SECURE_BOOT).write_bytes(b"\x06\x00\x00\x00\x00")
        podman("run", "-d", "--name", name, "--hostname", name, "--network", "host", "--systemd", "always",
               "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", "--security-opt", "unmask=/sys/firmware",
               "-v", f"{efivars.parents[1]}:/sys/firmware", image, "/sbin/init")
        names[role] = name
    for role, name in names.items():
        codename = MACHINES[role][1]
        wait_booted(name)
        sh(name, f"""
            rm -f /etc/apt/sources.list.d/ubuntu.sources
            printf 'deb {ARCHIVE} %s main restricted universe multiverse\\n' {codename} {codename}-updates {codename}-security \
                > /etc/apt/sources.list
            apt-get update -qq
            d=/var/lib/aiws-sim/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0
            mkdir -p $d && echo {ADA} > $d/modalias
            apt-get install -y -qq ubuntu-drivers-common >/dev/null""")
    yield names
    archive("retract", "kernel-update")
    for name in names.values():
        podman("rm", "-f", name, check=False)


def last_call(name: str) -> dict:
    lines = sh(name, "cat /var/log/aiws-sim/ubuntu-drivers.jsonl").stdout.splitlines()
    return json.loads(lines[-1])


def test_dkms_only_kernel_gets_nothing_without_include_dkms(machines: dict[str, str]) -> None:
    name = machines["dkms"]
    listed = sh(name, "ubuntu-drivers list").stdout
    assert "nvidia-driver-580-open" not in listed  # its modules would come from DKMS
    assert "nvidia-driver-580-open, (kernel modules provided by nvidia-dkms-580-open)" in sh(
        name, "ubuntu-drivers list --include-dkms").stdout
    run = sh(name, "ubuntu-drivers install nvidia:580-open")
    assert run.stdout.strip().endswith("All the available drivers are already installed.")
    call = last_call(name)
    assert call["exit_code"] == 0 and call["to_install"] == [] and "apt_command" not in call
    assert call["skipped_dkms"] == [{"driver": "nvidia-driver-580-open", "modules": "nvidia-dkms-580-open"}]
    assert call["kernel_image_meta"] == "linux-image-generic-hwe-24.04"
    assert sh(name, "dpkg -l nvidia-driver-580-open 2>/dev/null | grep -q ^ii", check=False).returncode != 0


def test_dkms_builds_and_signs_the_module_with_include_dkms(machines: dict[str, str]) -> None:
    name = machines["dkms"]
    booted = sh(name, "cat /run/aiws-sim/booted-kernel").stdout.strip()
    assert booted.startswith("6.17.0-")
    sh(name, f"apt-get install -y -qq linux-headers-{booted} >/dev/null")
    sh(name, "ubuntu-drivers install --include-dkms nvidia:580-open")
    call = last_call(name)
    assert call["to_install"] == ["nvidia-driver-580-open", "nvidia-dkms-580-open"] and call["apt_rc"] == 0
    assert "nvidia-dkms-580-open" in call["installed"] and "dkms" in call["installed"]
    assert sh(name, "readlink -f $(modinfo -n nvidia)").stdout.strip().endswith(f"/lib/modules/{booted}/updates/dkms/nvidia.ko.zst")
    assert sh(name, "modinfo -F version nvidia").stdout.strip() == "580.142"
    assert sh(name, "modinfo -F signer nvidia").stdout.strip() == f"{name} Secure Boot Module Signature key"
    # dkms 3.0 on Ubuntu signs with update-secureboot-policy's key, not /var/lib/dkms/mok.* (Debian's)
    assert sh(name, "test -s /var/lib/shim-signed/mok/MOK.der && test -s /var/lib/shim-signed/mok/MOK.priv", check=False).returncode == 0
    assert sh(name, "test -e /var/lib/dkms/mok.pub", check=False).returncode != 0
    assert f"nvidia/580.142, {booted}, x86_64: installed" in sh(name, "dkms status").stdout


def test_secure_boot_state_comes_from_the_machines_efi_variables(machines: dict[str, str]) -> None:
    name = machines["dkms"]
    sh(name, "apt-get install -y -qq mokutil >/dev/null")
    assert sh(name, "mokutil --sb-state").stdout.strip() == "SecureBoot disabled"
    (firmware(name) / SECURE_BOOT).write_bytes(b"\x06\x00\x00\x00\x01")
    assert sh(name, "mokutil --sb-state").stdout.strip() == "SecureBoot enabled"
    cert = "/var/lib/shim-signed/mok/MOK.der"
    imported = sh(name, f"printf 'secret\\nsecret\\n' | mokutil --import {cert} && mokutil --test-key {cert}")
    assert f"{cert} is already in the enrollment request" in imported.stdout
    assert (firmware(name) / MOK_NEW).exists()
    log = [json.loads(line) for line in sh(name, "cat /var/log/aiws-sim/mokutil.jsonl").stdout.splitlines()]
    assert [e["command"] for e in log if e.get("imported")] == ["--import"]


def test_prebuilt_modules_and_a_kernel_update_that_brings_the_next_abis(machines: dict[str, str]) -> None:
    name = machines["prebuilt"]
    sh(name, "ubuntu-drivers install nvidia:580-open")
    call = last_call(name)
    assert call["to_install"] == ["nvidia-driver-580-open", "linux-modules-nvidia-580-open-generic"]
    assert "nvidia-dkms-580-open" not in call["installed"] and "dkms" not in call["installed"]
    first = sh(name, "cat /run/aiws-sim/booted-kernel").stdout.strip()
    assert first == "5.15.0-160-generic"
    assert sh(name, "modinfo -F signer nvidia").stdout.strip() == "Canonical Ltd. Kernel Module Signing"
    assert sh(name, "test -e /var/run/reboot-required", check=False).returncode != 0

    archive("publish", "kernel-update")
    sh(name, "apt-get update -qq && apt upgrade -y -q >/dev/null 2>&1")
    installed = sh(name, "dpkg-query -W -f '${Package} ${Status}\\n' 'linux-*' | awk '$4 == \"installed\" {print $1}'").stdout.split()
    assert "linux-image-5.15.0-161-generic" in installed
    assert "linux-modules-nvidia-580-open-5.15.0-161-generic" in installed
    assert "*** System restart required ***" in sh(name, "cat /var/run/reboot-required").stdout
    # The running kernel keeps its module until the machine boots the new one.
    assert sh(name, "modinfo -F vermagic nvidia").stdout.startswith(first)
    podman_restart(name)
    assert sh(name, "cat /run/aiws-sim/booted-kernel").stdout.strip() == "5.15.0-161-generic"
    assert sh(name, "modinfo -F vermagic nvidia").stdout.startswith("5.15.0-161-generic ")
