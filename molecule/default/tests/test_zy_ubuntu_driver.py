"""The driver stage on the converged Ubuntu machines, again, through what happens to a lab's machines
after provisioning (runs after the checks of the converged state, before the fault suite).

aiws-u22-pascal (22.04, HWE kernel: no prebuilt modules, the module comes from DKMS), one cycle after
the other, each starting from a machine whose driver packages were purged:

  Secure Boot on (only the EFI variable says so: no mokutil)  stops with the three choices, installs nothing
  MOK mode                           ubuntu-drivers --include-dkms, mokutil installed, the key DKMS signs
                                     with (update-secureboot-policy's MOK.der) imported, enrollment pending
  ubuntu-drivers whose apt run fails (the archive gone after the index was read; it still exits 0)   caught
  aiws_driver_server                 --gpgpu and the -server packages
  back to the inventory's plan       the converged state again

aiws-u24-ada (24.04, GA kernel: Canonical's prebuilt modules): a kernel update from the archive's
-updates after provisioning (`apt upgrade`) brings the next ABI's image and its NVIDIA modules through
the modules metapackage the branch pin leaves free, keeps branch 580, and the stage asks for the reboot;
after the "reboot" the new kernel runs its module and nothing is pending.

ubuntu-drivers, dkms and mokutil are the simulated archive's (tests/fixtures/fx_ubuntu_archive.py), which
log every call under /var/log/aiws-sim/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import aiws_runs as ar
import pytest

DKMS_HOST = f"aiws-u22-pascal{ar.SUFFIX}"
PREBUILT_HOST = f"aiws-u24-ada{ar.SUFFIX}"
FACT = "/etc/ansible/facts.d/aiws_nvidia_driver.fact"
UD_LOG = "/var/log/aiws-sim/ubuntu-drivers.jsonl"
MOK_LOG = "/var/log/aiws-sim/mokutil.jsonl"
CERT = "/var/lib/shim-signed/mok/MOK.der"  # what DKMS signs with on Ubuntu (update-secureboot-policy --new-key)
BLOCK = "/etc/apt/apt.conf.d/99zz-aiws-test-archive-gone"  # apt reaches no archive while it exists
PASSWORD = "aiws-test-Mok-9"
MOK_VARS = ["-e", json.dumps({"nvidia_driver_secure_boot_mok": True, "nvidia_driver_mok_password": PASSWORD})]
DRIVER_PACKAGES = r"^(nvidia-|libnvidia-|linux-modules-nvidia-|linux-objects-nvidia-|linux-signatures-nvidia-|xserver-xorg-video-nvidia-)"


def sh(container: str, script: str) -> str:
    run = ar.sh(container, f"export DEBIAN_FRONTEND=noninteractive; {script}")
    assert run.returncode == 0, f"{script}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout


def installed(container: str) -> dict[str, str]:
    out = sh(container, "dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\\n'")
    return {f[1]: f[2] for f in (line.split() for line in out.splitlines()) if len(f) == 3 and f[0] == "ii"}


def ud_calls(container: str) -> list[dict]:
    return [json.loads(line) for line in (ar.read(container, UD_LOG) or b"").decode().splitlines()]


def purge_driver(container: str) -> None:
    """What an admin's `apt purge 'nvidia-*'` leaves: no driver package, the stage's record gone with it."""
    sh(container, f"pkgs=$(dpkg-query -W -f '${{db:Status-Abbrev}} ${{Package}}\\n' | awk '/^ii/ {{print $2}}' | grep -E '{DRIVER_PACKAGES}' || true); "
                  f"[ -z \"$pkgs\" ] || apt-get purge -y -q $pkgs >/dev/null; rm -f {FACT}")
    assert not [p for p in installed(container) if p.startswith(("nvidia-driver-", "nvidia-dkms-", "nvidia-utils-"))]


def driver(container: str, *extra: str, tags: str = "driver"):
    return ar.play(*extra, limit=container, tags=tags)


@pytest.fixture(scope="module")
def dkms_host() -> Iterator[str]:
    yield DKMS_HOST
    # whatever a failed test left: Secure Boot off, no pending key, apt free to install, the converged driver
    ar.secure_boot(DKMS_HOST, False)
    (ar.firmware(DKMS_HOST) / ar.MOK_NEW).unlink(missing_ok=True)
    ar.sh(DKMS_HOST, f"rm -f {BLOCK}")
    if "nvidia-driver-580" not in installed(DKMS_HOST):
        driver(DKMS_HOST)


# --- aiws-u22-pascal: DKMS ------------------------------------------------------------------------


def test_secure_boot_from_efivars_without_mokutil_stops_with_three_choices(dkms_host: str) -> None:
    purge_driver(dkms_host)
    sh(dkms_host, "! dpkg -s mokutil >/dev/null 2>&1 || apt-get purge -y -q mokutil >/dev/null")
    ar.secure_boot(dkms_host, True)
    calls = len(ud_calls(dkms_host))
    run = driver(dkms_host)
    assert run.returncode != 0, run.stdout[-3000:]
    text = ar.flat(run.stdout + run.stderr)
    assert "boots with Secure Boot on (" in text and ar.SECURE_BOOT in text, text[-3000:]
    assert "module would be built by DKMS" in text
    assert "(1) boot a kernel Canonical ships signed prebuilt NVIDIA modules for" in text
    assert "(2) set nvidia_driver_secure_boot_mok: true and nvidia_driver_mok_password" in text
    assert "(3) disable Secure Boot in the firmware setup and run again. Nothing was installed." in text
    assert len(ud_calls(dkms_host)) == calls, "ubuntu-drivers must not run"
    assert "nvidia-driver-580" not in installed(dkms_host)


def test_mok_mode_installs_through_dkms_and_imports_the_key_it_signs_with(dkms_host: str) -> None:
    run = driver(dkms_host, *MOK_VARS, tags="driver,verify")
    assert run.returncode == 0, run.stdout[-4000:]
    assert PASSWORD not in run.stdout + run.stderr, "the MOK password must never be logged"
    call = ud_calls(dkms_host)[-1]
    assert call["argv"][-3:] == ["install", "--include-dkms", "nvidia:580"], call
    have = installed(dkms_host)
    assert have["nvidia-driver-580"].startswith("580.") and "nvidia-dkms-580" in have
    assert "mokutil" in have, "the stage installs mokutil to import the key"
    imports = [e for e in map(json.loads, (ar.read(dkms_host, MOK_LOG) or b"").decode().splitlines())
               if e.get("command") == "--import"]
    assert [e["argv"][1:] for e in imports] == [[CERT]] and imports[0]["exit_code"] == 0, imports
    assert len(imports[0]["imported"]) == 1, "the certificate DKMS signed the module with"
    assert (ar.firmware(dkms_host) / ar.MOK_NEW).exists(), "the key waits in MokNew for MokManager"
    recorded = ar.read_json(dkms_host, FACT)
    assert recorded["secure_boot"] is True
    assert recorded["mok"] == {"state": "pending", "certificate": CERT}
    assert recorded["reboot"]["needed"] is True and recorded["reboot"]["action"] == "container"
    result = ar.read_json(dkms_host, "/var/lib/aiws/verify.json")
    assert result["driver"]["pending"] == ["MOK enrollment"]


def test_an_ubuntu_drivers_that_installs_nothing_is_caught(dkms_host: str) -> None:
    ar.secure_boot(dkms_host, False)
    (ar.firmware(dkms_host) / ar.MOK_NEW).unlink(missing_ok=True)
    purge_driver(dkms_host)
    # The archive goes away between apt's index (which still names every package, so the stage's own
    # check passes) and ubuntu-drivers' apt run, which cannot download them: ubuntu-drivers exits 0 anyway.
    sh(dkms_host, f"apt-get clean && printf 'Acquire::http::Proxy \"http://127.0.0.1:9/\";\n' > {BLOCK}")
    try:
        run = driver(dkms_host)
    finally:
        sh(dkms_host, f"rm -f {BLOCK}")
    assert run.returncode != 0, run.stdout[-3000:]
    text = ar.flat(run.stdout + run.stderr)
    assert "`ubuntu-drivers install --include-dkms nvidia:580` exited 0 but" in text, text[-3000:]
    assert f"not installed on {dkms_host} (ubuntu-drivers exits 0 even when it installs nothing or apt fails)" in text
    assert "It printed:" in text
    call = ud_calls(dkms_host)[-1]
    assert call["exit_code"] == 0 and call["apt_rc"] != 0, call
    assert "nvidia-driver-580" not in installed(dkms_host)


def test_server_choice_gives_gpgpu_and_the_server_packages(dkms_host: str) -> None:
    run = driver(dkms_host, "-e", json.dumps({"aiws_driver_server": True}))
    assert run.returncode == 0, run.stdout[-4000:]
    call = ud_calls(dkms_host)[-1]
    assert call["argv"][-4:] == ["install", "--gpgpu", "--include-dkms", "nvidia:580-server"], call
    have = installed(dkms_host)
    assert have["nvidia-headless-no-dkms-580-server"].startswith("580.") and "nvidia-dkms-580-server" in have
    assert "nvidia-utils-580-server" in have
    assert "nvidia-driver-580" not in have, "--gpgpu installs no desktop driver"
    assert not sh(dkms_host, "apt-mark showhold").split()


def test_back_to_the_inventorys_driver(dkms_host: str) -> None:
    purge_driver(dkms_host)
    run = driver(dkms_host)
    assert run.returncode == 0, run.stdout[-4000:]
    have = installed(dkms_host)
    assert have["nvidia-driver-580"].startswith("580.") and "nvidia-dkms-580" in have
    recorded = ar.read_json(dkms_host, FACT)
    assert recorded["secure_boot"] is False and recorded["mok"]["state"] == "not-needed"


# --- aiws-u24-ada: Canonical's prebuilt modules, and a kernel update ------------------------------


@pytest.fixture(scope="module")
def kernel_update() -> Iterator[dict[str, str]]:
    """The machine before and after `apt upgrade` with the archive's next kernel ABI published."""
    before = installed(PREBUILT_HOST)
    booted = sh(PREBUILT_HOST, "cat /run/aiws-sim/booted-kernel").strip()
    ar.archive("publish", "kernel-update")
    try:
        sh(PREBUILT_HOST, "apt-get update -qq && apt upgrade -y -q >/dev/null 2>&1")
        yield {"booted": booted, "driver": before["nvidia-driver-580-open"]}
    finally:
        ar.archive("retract", "kernel-update")


def test_a_kernel_update_brings_the_new_kernels_modules_and_keeps_the_branch(kernel_update: dict[str, str]) -> None:
    have = installed(PREBUILT_HOST)
    booted = kernel_update["booted"]
    kernels = [p.removeprefix("linux-image-") for p in have if re.match(r"linux-image-[0-9].*-generic$", p)]
    newer = [k for k in kernels if k != booted]
    assert len(newer) == 1, f"one kernel beside {booted}: {kernels}"
    assert f"linux-modules-nvidia-580-open-{newer[0]}" in have, "the modules metapackage follows the kernel"
    assert have["nvidia-driver-580-open"].startswith("580."), "the branch stays"
    assert not sh(PREBUILT_HOST, "apt-mark showhold").split()
    run = driver(PREBUILT_HOST)
    assert run.returncode == 0, run.stdout[-4000:]
    recorded = ar.read_json(PREBUILT_HOST, FACT)
    reboot = recorded["reboot"]
    assert reboot["needed"] is True and reboot["action"] == "container", reboot
    assert reboot["reasons"][0].startswith("/run/reboot-required exists"), reboot
    assert any(f"installed for kernel {newer[0]} is 580." in r for r in reboot["reasons"]), reboot
    assert recorded["kernel_boot"] == newer[0], "the kernel that boots next is the new one"


def test_after_the_reboot_the_new_kernel_runs_its_module(kernel_update: dict[str, str]) -> None:
    """A container cannot load a module (the probe reads the host's /sys/module): after the "reboot"
    nothing is pending but that, for the kernel that now runs."""
    ar.podman_restart(PREBUILT_HOST)
    booted = sh(PREBUILT_HOST, "cat /run/aiws-sim/booted-kernel").strip()
    assert booted != kernel_update["booted"]
    assert sh(PREBUILT_HOST, "modinfo -F vermagic nvidia").startswith(f"{booted} ")
    run = driver(PREBUILT_HOST)
    assert run.returncode == 0, run.stdout[-4000:]
    recorded = ar.read_json(PREBUILT_HOST, FACT)
    assert recorded["kernel_boot"] == booted
    assert recorded["module_installed"] == sh(PREBUILT_HOST, "modinfo -F version nvidia").strip()
    reasons = recorded["reboot"]["reasons"]
    assert not [r for r in reasons if "reboot-required" in r], reasons
    assert any(f"installed for kernel {booted} is {recorded['module_installed']}" in r for r in reasons), reasons
