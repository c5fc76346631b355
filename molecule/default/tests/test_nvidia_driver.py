"""The driver stage in a container: its decisions match the GPU brain, its host-side settings are in place.

A container has no kernel of its own: only the reboot itself is left out (tagged molecule-notest) and
its decision is checked instead. On Ubuntu the driver really comes from (the simulated)
ubuntu-drivers on the simulated archive (tests/fixtures/fx_ubuntu_archive.py), which logs every call
to /var/log/aiws-sim/ubuntu-drivers.jsonl; Debian 12 installs nothing yet.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from machines import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugins" / "filter"))
from nvidia_gpus import nvidia_gpus  # noqa: E402
from nvidia_stack import nvidia_stack  # noqa: E402

UD_LOG = "/var/log/aiws-sim/ubuntu-drivers.jsonl"


@pytest.fixture()
def expected(host) -> dict:
    m = machine(host)
    return nvidia_stack(nvidia_gpus([m.gpu]), cuda=m.cuda, distro=m.distro)


def fact(host) -> dict:
    return json.loads(host.file("/etc/ansible/facts.d/aiws_nvidia_driver.fact").content_string)


def ubuntu_drivers_calls(host) -> list[dict]:
    text = host.run(f"cat {UD_LOG} 2>/dev/null").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_driver_decision_matches_the_gpu_brain(host, expected: dict) -> None:
    recorded = fact(host)
    assert recorded["branch"] == expected["driver_branch"]
    assert recorded["flavor"] == expected["driver_flavor"]
    assert recorded["source"] == expected["driver_repo"]


def test_flavour_follows_the_architecture(host) -> None:
    assert fact(host)["flavor"] == {"ada": "open", "pascal": "proprietary"}[machine(host).arch]


def test_nouveau_is_blacklisted(host) -> None:
    conf = host.file("/etc/modprobe.d/blacklist-nouveau-aiws.conf")
    assert conf.user == "root" and conf.mode == 0o644
    assert "blacklist nouveau" in conf.content_string
    assert "options nouveau modeset=0" in conf.content_string


def test_nvidia_repository_serves_the_driver_when_the_plan_takes_it_from_there(host, expected: dict) -> None:
    if machine(host).family != "debian":
        pytest.skip("Ubuntu takes the driver from the distribution")
    # CUDA 12.4 needs driver 550+, more than Debian 12's 535: the plan takes 580 from NVIDIA's repository,
    # so its driver packages must not be demoted by the pin file.
    assert expected["driver_repo"] == "cuda"
    candidate = host.check_output("apt-cache policy cuda-drivers-580 | awk '/Candidate/ {print $2}'")
    assert candidate.startswith("580.")


def test_secure_boot_was_checked_and_found_off(host) -> None:
    # Every machine boots with an EFI variable store whose SecureBoot variable is 0 (molecule.yml).
    assert host.file("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c").exists
    assert fact(host)["secure_boot"] is False


# --- Ubuntu: what the simulated archive and ubuntu-drivers did --------------------------------------


def ubuntu(host):
    m = machine(host)
    if m.family != "ubuntu":
        pytest.skip("Debian 12 has no ubuntu-drivers")
    return m


def test_ubuntu_drivers_was_asked_for_the_planned_flavour(host, expected: dict) -> None:
    ubuntu(host)
    calls = [c for c in ubuntu_drivers_calls(host) if c.get("command") == "install"]
    assert calls, f"no `ubuntu-drivers install` in {UD_LOG}"
    flavour = expected["ubuntu_drivers"]["args"][-1]
    assert all(c["driver_string"] == flavour for c in calls), calls
    # The machine's declared GPU is what the simulated ubuntu-drivers saw.
    gpu = machine(host).gpu.split(":")[1].upper()
    assert any(f"d0000{gpu}" in alias for alias in calls[0]["modaliases"])


def test_ubuntu_drivers_exits_0_and_skips_dkms_without_include_dkms(host) -> None:
    """The fixture keeps ubuntu-drivers' contract: exit 0 always; without --include-dkms it installs no
    driver whose module DKMS would build, and says "All the available drivers are already installed."."""
    m = ubuntu(host)
    for call in ubuntu_drivers_calls(host):
        if call.get("command") != "install":
            continue
        assert call["exit_code"] == 0, call
        if not call["include_dkms"] and not m.prebuilt:
            assert call["to_install"] == [] and call.get("installed", []) == [], call
            assert call["output"][-1] == "All the available drivers are already installed.", call
            assert call["skipped_dkms"][0]["modules"].startswith("nvidia-dkms-"), call


def test_kernel_modules_come_from_where_the_kernel_has_them(host, expected: dict) -> None:
    """GA kernel: Canonical's prebuilt linux-modules-nvidia-<flavour>-generic (no DKMS package);
    HWE kernel without prebuilt modules: nvidia-dkms-<flavour>, when ubuntu-drivers got --include-dkms."""
    m = ubuntu(host)
    flavour = expected["ubuntu_drivers"]["args"][-1].removeprefix("nvidia:")
    installed = [c for c in ubuntu_drivers_calls(host) if c.get("installed")]
    if m.prebuilt:
        assert host.package(f"linux-modules-nvidia-{flavour}-generic").is_installed
        assert not host.package(f"nvidia-dkms-{flavour}").is_installed
        booted = host.file("/run/aiws-sim/booted-kernel").content_string.strip()
        assert host.package(f"linux-modules-nvidia-{flavour}-{booted}").is_installed
        assert host.run("modinfo -F signer nvidia").stdout.strip() == "Canonical Ltd. Kernel Module Signing"
    elif any(c["include_dkms"] for c in installed):
        assert host.package(f"nvidia-dkms-{flavour}").is_installed
        assert not host.run("dpkg -l 'linux-modules-nvidia-*' 2>/dev/null | grep -q '^ii'").succeeded


def test_the_kernel_the_machine_boots_is_an_ubuntu_one(host) -> None:
    m = ubuntu(host)
    booted = host.file("/run/aiws-sim/booted-kernel").content_string.strip()
    assert booted.endswith("-generic")
    assert host.file(f"/boot/vmlinuz-{booted}").exists
    assert host.package(m.kernel).is_installed
    # modinfo and depmod look at the booted kernel's modules (the container shares the host's uname).
    modules = host.check_output(f"readlink -f /lib/modules/{booted}")
    assert host.check_output(f"readlink -f /lib/modules/$(uname -r)") == modules


def test_reboot_decision_is_recorded(host) -> None:
    """The reboot itself is left out in containers; the decision is what the tests check."""
    recorded = fact(host)
    assert isinstance(recorded["reboot_needed"], bool)
    module = host.run("modinfo -F version nvidia 2>/dev/null").stdout.strip()
    # No module is loaded in a container: a module installed for the booted kernel means a reboot.
    assert recorded["reboot_needed"] == bool(module)
