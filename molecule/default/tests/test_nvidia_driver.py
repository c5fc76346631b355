"""The driver stage on every platform of the container scenario.

Debian 12 (aiws-ada, aiws-pascal): the plan (CUDA 12.4 needs driver 550+, more than Debian 12's 535)
takes branch 580 from NVIDIA's repository: nvidia-open-580 on the Ada host, cuda-drivers-580 on the
Pascal host. The fixture carries NVIDIA's package names in 580 and 590, with NVIDIA's loose ">="
dependencies, so the pins and the pinning package decide what lands.

Ubuntu 22.04 and 24.04 (aiws-u22-*, aiws-u24-*): the driver really comes from (the simulated)
ubuntu-drivers on the simulated archive (tests/fixtures/fx_ubuntu_archive.py), which logs every call
to /var/log/aiws-sim/ubuntu-drivers.jsonl, with Canonical's prebuilt modules on GA kernels and DKMS
on HWE kernels without them.

A container has no kernel of its own: the reboot decision is recorded (state "container") and nothing
reboots. The cycle tests at the end re-run the stage on the Debian Pascal host (MOK mode and the
migration from dpkg holds, then a plan that refuses NVIDIA's driver) and leave it as the converge did.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import aiws_runs as ar
import pytest
from machines import machine

ROOT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
sys.path[:0] = [str(ROOT / "collections"), str(ROOT / "plugins" / "filter")]  # as tests/unit/conftest.py
from nvidia_gpus import nvidia_gpus
from nvidia_stack import nvidia_stack

META = {"aiws-ada": "nvidia-open-580", "aiws-pascal": "cuda-drivers-580"}
PLANNED = {"aiws-ada": ["nvidia-kernel-open-dkms", "nvidia-open-580"], "aiws-pascal": ["cuda-drivers-580"]}
SUFFIX = "-" + (os.environ.get("AIWS_TEST_SUFFIX") or "main")
CYCLE_HOST = f"aiws-pascal{SUFFIX}"
FACT = "/etc/ansible/facts.d/aiws_nvidia_driver.fact"
PIN = "/etc/apt/preferences.d/aiws-nvidia-driver"
UD_LOG = "/var/log/aiws-sim/ubuntu-drivers.jsonl"


def kind(host) -> str:
    """The Debian host's name (aiws-ada, aiws-pascal); the Debian-only tests skip the Ubuntu machines."""
    m = machine(host)
    if m.family != "debian":
        pytest.skip("Ubuntu takes the driver from the distribution through ubuntu-drivers (tests below)")
    return m.hostname


@pytest.fixture()
def expected(host) -> dict:
    m = machine(host)
    return nvidia_stack(nvidia_gpus([m.gpu]), cuda=m.cuda, distro=m.distro)


def fact(host) -> dict:
    return json.loads(host.file(FACT).content_string)


# --- the converged state (every machine) -----------------------------------------------------------


def test_driver_decision_matches_the_gpu_brain(host, expected: dict) -> None:
    recorded = fact(host)
    assert recorded["branch"] == expected["driver_branch"]
    assert recorded["flavor"] == expected["driver_flavor"] == {"ada": "open", "pascal": "proprietary"}[machine(host).arch]
    assert recorded["source"] == expected["driver_repo"]


def test_debian_takes_branch_580_from_nvidias_repository(host, expected: dict) -> None:
    name = kind(host)
    recorded = fact(host)
    assert expected["driver_repo"] == "cuda"
    assert recorded["branch"] == expected["driver_branch"] == 580
    assert recorded["flavor"] == expected["driver_flavor"] == {"aiws-ada": "open", "aiws-pascal": "proprietary"}[name]
    assert recorded["source"] == "cuda"
    assert recorded["packages"] == expected["packages"]["driver"] == PLANNED[kind(host)]
    assert recorded["method"] == "apt" and recorded["ubuntu_drivers"] is None
    assert recorded["pinning_package"] == "nvidia-driver-pinning-580"


def test_pinning_package_went_in_before_the_branch_metapackage(host) -> None:
    """NVIDIA's guide, "Version locking": install nvidia-driver-pinning-<branch> before the driver."""
    log = host.file("/var/log/dpkg.log").content_string
    installs = [m.group(1) for m in re.finditer(r" install (\S+?):\S+ <none> ", log)]
    meta = META[kind(host)]
    assert "nvidia-driver-pinning-580" in installs and meta in installs
    assert installs.index("nvidia-driver-pinning-580") < installs.index(meta)
    assert host.file("/etc/apt/preferences.d/nvidia-driver-pinning-580").exists


def test_every_driver_component_is_from_branch_580_not_590(host) -> None:
    name = kind(host)
    listing = host.check_output(r"dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 'nvidia-*' libcuda1 "
                                r"libxnvctrl0 firmware-nvidia-gsp libnvidia-ml1 'cuda-drivers*' 2>/dev/null || true")
    # installed ones only: dpkg also lists packages it merely knows of (no version)
    versions = dict(line.split()[1:3] for line in listing.splitlines() if line.startswith("ii "))
    assert versions["libcuda1"] == "580.65.06-1"
    assert versions["firmware-nvidia-gsp"] == "580.65.06-1"
    assert versions[META[name]] == "580.65.06-1"
    assert {v for v in versions.values()} == {"580.65.06-1"}, versions
    assert fact(host)["version"] == "580.65.06"


def test_flavour_follows_the_architecture(host) -> None:
    name = kind(host)
    module = {"aiws-ada": "nvidia-kernel-open-dkms", "aiws-pascal": "nvidia-kernel-dkms"}[name]
    other = {"aiws-ada": "nvidia-kernel-dkms", "aiws-pascal": "nvidia-kernel-open-dkms"}[name]
    assert host.package(module).is_installed
    # nvidia-driver's or-dependency on a kernel module lists nvidia-kernel-dkms first: the plan names the
    # open module beside nvidia-open-580, so apt meets the or-group with it and pulls no second module.
    assert not host.package(other).is_installed


def test_branch_pin_keeps_580_and_leaves_nvidias_other_branches_out(host) -> None:
    kind(host)  # NVIDIA's Debian package names (libcuda1, 590 in the fixture)
    pin = host.file(PIN)
    assert pin.user == "root" and pin.mode == 0o644
    assert "Pin: version 580.*\nPin-Priority: 1001" in pin.content_string
    assert "NVIDIA CUDA" not in pin.content_string, "the plan's own source (NVIDIA's repository) is not demoted"
    policy = host.check_output("apt-cache policy libcuda1")
    assert re.search(r"580\.65\.06-1 1001", policy) and re.search(r"590\.44\.01-1 100\b", policy)
    assert "Candidate: 580.65.06-1" in policy
    assert fact(host)["pin"] == {"file": PIN, "version": "580.*", "priority": 1001}


def test_no_package_is_held(host) -> None:  # every platform
    assert host.check_output("dpkg --get-selections | awk '$2 == \"hold\"'") == ""


def test_nouveau_is_blacklisted(host) -> None:
    conf = host.file("/etc/modprobe.d/blacklist-nouveau-aiws.conf")
    assert conf.user == "root" and conf.mode == 0o644
    assert "blacklist nouveau" in conf.content_string
    assert "options nouveau modeset=0" in conf.content_string


def test_reboot_decision_is_recorded_for_a_container(host) -> None:
    """A container never reboots; the decision is recorded. Debian's fixture driver builds no module, so
    there is nothing to compare; on Ubuntu a module is installed for the booted kernel (prebuilt or built
    by the simulated DKMS) and none is loaded, which on a real machine means a reboot."""
    recorded = fact(host)
    assert recorded["reboot"]["action"] in ("none", "container")
    assert recorded["module_loaded"] == ""
    module = host.run("modinfo -F version nvidia 2>/dev/null").stdout.strip()
    if machine(host).family == "debian":
        assert module == ""
        assert recorded["reboot"]["state"] == "container"
        assert recorded["reboot"]["needed"] is False and recorded["reboot"]["action"] == "none"
        assert recorded["reboot"]["reasons"][0].startswith("container: the host's kernel runs here")
        assert recorded["kernel_boot"] is None and recorded["module_installed"] == ""
        assert recorded["boot_id"] is None
    else:
        booted = host.file("/run/aiws-sim/booted-kernel").content_string.strip()
        assert module and recorded["module_installed"] == module
        assert recorded["kernel_boot"] == booted
        assert recorded["reboot"]["state"] == "reboot" and recorded["reboot"]["needed"] is True
        assert recorded["reboot"]["action"] == "container"
        assert "no nvidia module is loaded" in " ".join(recorded["reboot"]["reasons"])
        assert recorded["boot_id"]


def test_secure_boot_was_checked_and_found_off(host) -> None:
    recorded = fact(host)
    # Every machine boots with an EFI variable store whose SecureBoot variable is 0 (molecule.yml).
    assert host.file("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c").exists
    assert recorded["secure_boot"] is False
    # Debian's image has no mokutil: the EFI variable is read; Ubuntu's has (the simulated) mokutil.
    assert recorded["secure_boot_source"] == ("mokutil" if host.exists("mokutil") else "efivars")
    # DKMS builds the module on Debian and on Ubuntu kernels without Canonical's prebuilt modules.
    assert recorded["dkms"] is (not machine(host).prebuilt)
    assert recorded["mok"] == {"state": "not-needed", "certificate": None}


# --- Ubuntu: what the simulated archive and ubuntu-drivers did --------------------------------------


def ubuntu_drivers_calls(host) -> list[dict]:
    text = host.run(f"cat {UD_LOG} 2>/dev/null").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


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
    assert host.check_output("readlink -f /lib/modules/$(uname -r)") == modules


# --- cycles on one host ---------------------------------------------------------------------------

MOKUTIL = """#!/bin/sh
# aiws test stand-in for mokutil 0.6.0: records every call; Secure Boot on; the key pending once imported.
d=/var/lib/aiws-test
echo "$*" >> $d/mokutil.calls
case "$1" in
  --sb-state) echo "SecureBoot enabled" ;;
  --test-key)
    if [ -f $d/mok-pending ]; then echo "$2 is already in the enrollment request"; exit 1; fi
    echo "$2 is not enrolled" ;;
  --import)
    read -r a; read -r b; printf '%s\\n%s\\n' "$a" "$b" > $d/mokutil.stdin
    [ "$a" = "$b" ] || { echo "password doesn't match" >&2; exit 1; }
    touch $d/mok-pending ;;
  *) exit 1 ;;
esac
"""
PASSWORD = "aiws-test-Mok-9"


def podman(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", "exec", "-i", CYCLE_HOST, *args], input=stdin, capture_output=True, text=True, check=False)


def play(*extra: str, tags: str = "driver") -> subprocess.CompletedProcess[str]:
    return ar.play(*extra, limit=CYCLE_HOST, tags=tags)


def recap(run: subprocess.CompletedProcess[str]) -> dict[str, int]:
    m = re.search(rf"^{re.escape(CYCLE_HOST)}\s*:\s*(.*)$", run.stdout, re.MULTILINE)
    assert m, run.stdout[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def read_fact() -> dict:
    return json.loads(podman("cat", FACT).stdout)


MOK_VARS = ["-e", json.dumps({"nvidia_driver_secure_boot_mok": True, "nvidia_driver_mok_password": PASSWORD,
                              "nvidia_driver_mokutil": "/var/lib/aiws-test/mokutil"})]


@pytest.fixture(scope="module")
def mok_run() -> subprocess.CompletedProcess[str]:
    """A host the old role provisioned (dpkg holds, its fact), Secure Boot on, MOK mode chosen."""
    podman("mkdir", "-p", "/var/lib/aiws-test", "/var/lib/dkms")
    podman("sh", "-c", "cat > /var/lib/aiws-test/mokutil && chmod 755 /var/lib/aiws-test/mokutil", stdin=MOKUTIL)
    # DKMS would have made its signing certificate when it built the module (Debian 12: /var/lib/dkms/mok.pub).
    podman("sh", "-c", "head -c 700 /dev/urandom > /var/lib/dkms/mok.pub")
    podman("apt-mark", "hold", "cuda-drivers-580", "nvidia-kernel-dkms", "libcuda1")
    old = {"branch": 580, "flavor": "proprietary", "source": "cuda", "packages": ["cuda-drivers-580"],
           "held": ["cuda-drivers-580", "nvidia-kernel-dkms"], "secure_boot": False, "dkms": True}
    podman("sh", "-c", f"cat > {FACT}", stdin=json.dumps(old))
    return play(*MOK_VARS, tags="driver,verify")


def test_cycle_1_mok_mode_imports_the_dkms_key_with_the_password_on_stdin(mok_run) -> None:
    assert mok_run.returncode == 0, mok_run.stdout[-4000:]
    calls = podman("cat", "/var/lib/aiws-test/mokutil.calls").stdout.splitlines()
    assert "--import /var/lib/dkms/mok.pub" in calls
    assert calls.index("--test-key /var/lib/dkms/mok.pub") < calls.index("--import /var/lib/dkms/mok.pub")
    assert podman("cat", "/var/lib/aiws-test/mokutil.stdin").stdout == f"{PASSWORD}\n{PASSWORD}\n"
    assert PASSWORD not in mok_run.stdout + mok_run.stderr, "the MOK password must never be logged"
    recorded = read_fact()
    assert recorded["secure_boot"] is True and recorded["secure_boot_source"] == "mokutil"
    assert recorded["mok"] == {"state": "pending", "certificate": "/var/lib/dkms/mok.pub"}
    assert recorded["reboot"]["needed"] is True and recorded["reboot"]["action"] == "container"
    assert recorded["boot_id"]


def test_cycle_1_holds_of_the_old_role_are_released_others_stay(mok_run) -> None:
    held = podman("apt-mark", "showhold").stdout.split()
    assert held == ["libcuda1"], "only what the old role recorded (and the branch's own holds) is released"
    assert "libcuda1 held with dpkg (not by aiws)" not in mok_run.stdout  # libcuda1 is no kernel-module package
    podman("apt-mark", "unhold", "libcuda1")


def test_cycle_1_verification_shows_the_pending_enrollment(mok_run) -> None:
    result = json.loads(podman("cat", "/var/lib/aiws/verify.json").stdout)
    check = next(c for c in result["checks"] if c["check"] == "driver_pending")
    assert check["status"] == "fail" and check["observed"].startswith("MOK enrollment")
    assert "MokManager" in check["hint"]
    assert result["driver"]["pending"] == ["MOK enrollment"]


def test_cycle_2_mok_mode_again_changes_nothing(mok_run) -> None:
    again = play(*MOK_VARS)
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again)["changed"] == 0
    calls = podman("cat", "/var/lib/aiws-test/mokutil.calls").stdout.splitlines()
    assert calls.count("--import /var/lib/dkms/mok.pub") == 1, "a pending key is not imported twice"


def test_cycle_3_a_plan_for_debians_driver_refuses_nvidias_installed_one(mok_run) -> None:
    before = podman("dpkg-query", "-W", "-f=${Package} ${Version}\n").stdout
    pin_before = podman("cat", PIN).stdout
    run = play("-e", "aiws_cuda_version=12.2")  # Pascal + CUDA 12.2: Debian's own 535 from non-free
    assert run.returncode != 0
    out = " ".join((run.stdout + run.stderr).split())
    assert "already has an NVIDIA driver this plan did not install" in out
    assert "cuda-drivers-580 580.65.06-1 (NVIDIA's repository package name)" in out
    assert "nvidia-driver-pinning-580 580.65.06-1 (NVIDIA's repository package name)" in out
    assert "libcuda1 580.65.06-1 (installed from NVIDIA's CUDA repository)" in out
    assert "sudo apt purge" in out and "Nothing was changed" in out
    assert podman("dpkg-query", "-W", "-f=${Package} ${Version}\n").stdout == before
    assert podman("cat", PIN).stdout == pin_before


def test_cycle_4_back_to_the_converged_state(mok_run) -> None:
    """Secure Boot off again (no mokutil, no EFI variable): the fact and verify.json as the converge left them."""
    podman("rm", "-rf", "/var/lib/aiws-test", "/var/lib/dkms/mok.pub")
    run = play(tags="driver,verify")
    assert run.returncode == 0, run.stdout[-3000:]
    recorded = read_fact()
    assert recorded["secure_boot"] is False and recorded["mok"]["state"] == "not-needed"
    assert recorded["reboot"]["action"] == "none"
