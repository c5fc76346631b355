# SPDX-License-Identifier: GPL-3.0-or-later
"""What apt installs for the plan's driver packages on Debian 12 with NVIDIA's repository, asked from apt.

NVIDIA's (and Debian's) nvidia-driver depends on a kernel module through an or-group whose first
alternative is the proprietary nvidia-kernel-dkms. Installing only the open metapackage, apt meets that
or-group with its first alternative before it reaches nvidia-kernel-open-dkms, and the host gets both
module packages. The plan names the open module package beside the metapackage: apt marks every
package of its command line before resolving, and the or-group is met by the open one.

The packages are the container fixture's (tests/fixtures/nvidia_repo.py, branch 580), built as empty
.debs into a private apt configuration; `apt-get --simulate install` lists what would be installed on a
host with nothing installed. Nothing on this machine changes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import load_file
from nvidia_gpus import nvidia_gpus
from nvidia_stack import nvidia_stack

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("dpkg-deb", "apt-ftparchive", "apt-get")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in NEEDED),
                                reason="needs dpkg-deb, apt-ftparchive (apt-utils) and apt")
repo = load_file("aiws_fixture_nvidia_repo", ROOT / "tests/fixtures/nvidia_repo.py")


@pytest.fixture(scope="module")
def apt(tmp_path_factory: pytest.TempPathFactory):
    """apt-get --simulate install against the fixture's branch-580 driver packages."""
    work = tmp_path_factory.mktemp("apt")
    pool = work / "repo"
    pool.mkdir()
    for pkg in repo.driver_packages("debian12"):
        if not pkg.version.startswith("580."):
            continue  # the branch pin keeps 590 out (tests/unit/test_apt_pins.py); here only the or-group counts
        stage = work / f"stage-{pkg.name}"
        (stage / "DEBIAN").mkdir(parents=True)
        depends = f"Depends: {pkg.depends}\n" if pkg.depends else ""
        (stage / "DEBIAN/control").write_text(f"Package: {pkg.name}\nVersion: {pkg.version}\nArchitecture: all\n"
                                              f"Maintainer: aiws test <t@invalid>\n{depends}Description: stand-in\n")
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", str(stage), str(pool)],
                       check=True, capture_output=True)
    (pool / "Packages").write_text(subprocess.run(["apt-ftparchive", "packages", "."], cwd=pool, check=True,
                                                  capture_output=True, text=True).stdout)
    (work / "sources.list").write_text(f"deb [trusted=yes] file:{pool}/ /\n")
    (work / "lists/partial").mkdir(parents=True)
    (work / "cache/archives/partial").mkdir(parents=True)
    opts = [f"-oDir::Etc::SourceList={work / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={work / 'lists'}", f"-oDir::Cache={work / 'cache'}", "-oDir::State::status=/dev/null",
            "-oDir::Etc::PreferencesParts=/dev/null", "-oDir::Etc::Preferences=/dev/null", "-oDebug::NoLocking=1",
            "-oAPT::Architecture=amd64", "-oAcquire::AllowInsecureRepositories=1"]
    subprocess.run(["apt-get", *opts, "-qq", "update"], check=True, capture_output=True)

    def install(*names: str) -> list[str]:
        out = subprocess.run(["apt-get", *opts, "--simulate", "--no-install-recommends", "install", *names],
                             check=True, capture_output=True, text=True).stdout
        return sorted(line.split()[1] for line in out.splitlines() if line.startswith("Inst "))
    return install


def test_the_open_plan_brings_the_open_module_alone(apt) -> None:
    plan = nvidia_stack(nvidia_gpus(["10de:2684"]), distro="debian12", cuda="12.8")  # RTX 4090, NVIDIA's 580
    assert plan["driver_repo"] == "cuda" and plan["driver_flavor"] == "open"
    installed = apt(*plan["packages"]["driver"])
    assert "nvidia-kernel-open-dkms" in installed and "nvidia-open-580" in installed
    assert "nvidia-kernel-dkms" not in installed, installed


def test_the_metapackage_alone_would_bring_both_module_packages(apt) -> None:
    """Why the plan names the module package: without it apt takes the or-group's first alternative."""
    installed = apt("nvidia-open-580")
    assert {"nvidia-kernel-dkms", "nvidia-kernel-open-dkms"} <= set(installed), installed


def test_the_proprietary_plan_brings_the_proprietary_module_alone(apt) -> None:
    plan = nvidia_stack(nvidia_gpus(["10de:1b80"]), distro="debian12", cuda="12.8")  # GTX 1080
    assert plan["driver_flavor"] == "proprietary"
    installed = apt(*plan["packages"]["driver"])
    assert "nvidia-kernel-dkms" in installed and "nvidia-kernel-open-dkms" not in installed, installed
