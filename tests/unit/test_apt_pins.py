# SPDX-License-Identifier: GPL-3.0-or-later
"""What apt really chooses under the project's pin files, asked from apt itself.

The CUDA repository pin (roles/cuda_toolkit) and the driver's branch pin (roles/nvidia_driver) are
rendered by Ansible for three plans, put in a private apt configuration (Dir::Etc::PreferencesParts,
Dir::State::Lists) with two local repositories -- one laid out and labelled as NVIDIA's CUDA
repository (Origin: NVIDIA, Label: NVIDIA CUDA, flat), one as the distribution -- and
`apt-cache policy` says which version each package would install. Nothing on the machine changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("dpkg-deb", "apt-ftparchive", "apt-cache", "apt-get")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in NEEDED),
                                reason="needs dpkg-deb, apt-ftparchive (apt-utils) and apt")

NVIDIA = {  # NVIDIA's CUDA repository (debian12 and ubuntu2404 names together)
    "libcuda1": ["580.65.06-1", "590.44.01-1"],
    "nvidia-alternative": ["580.65.06-1", "590.44.01-1"],
    "firmware-nvidia-gsp": ["580.65.06-1", "590.44.01-1"],
    "nvidia-kernel-dkms": ["580.65.06-1", "590.44.01-1"],
    "libxnvctrl0": ["580.65.06-0ubuntu1"],
    "nvidia-driver-580": ["580.95.05-0ubuntu1"],  # NVIDIA's Ubuntu-style build, newer-looking than Ubuntu's
    "nvidia-open-580": ["580.65.06-1"],
    "cuda-drivers-580": ["580.65.06-1"],
    "nvidia-driver-pinning-580": ["580.65.06-1"],
    "cuda-toolkit-12-4": ["12.4.1-1"],
    "cuda-cudart-12-4": ["12.4.127-1"],
    "cudnn9-cuda-12": ["9.10.2.21-1"],
    "libcudnn9-cuda-12": ["9.10.2.21-1"],
    "nvidia-container-toolkit": ["1.17.8-1"],
}
DISTRO = {  # the distribution's archive
    "libcuda1": ["535.261.03-1"],
    "nvidia-alternative": ["535.261.03-1"],
    "firmware-nvidia-gsp": ["535.261.03-1"],
    "nvidia-kernel-dkms": ["535.261.03-1"],
    "libxnvctrl0": ["525.125.06-1"],
    "nvidia-driver-580": ["580.95.05-0ubuntu0.24.04.2"],
    "linux-modules-nvidia-580-open-generic": ["6.8.0-60.63+1"],
    "cuda-toolkit-12-4": ["12.4.0-0distro1"],
}
PLANS = {  # name: (distro, driver source, branch)
    "ubuntu-580": ("ubuntu24.04", "ubuntu", 580),
    "debian-535": ("debian12", "debian", 535),
    "debian-cuda-580": ("debian12", "cuda", 580),
}


def build_repo(root: Path, packages: dict[str, list[str]], release: list[str]) -> None:
    root.mkdir(parents=True)
    for name, versions in packages.items():
        for version in versions:
            stage = root.parent / f"stage-{name}-{version}"
            (stage / "DEBIAN").mkdir(parents=True)
            (stage / "DEBIAN/control").write_text(
                f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: aiws test <t@invalid>\n"
                "Description: pin test\n")
            subprocess.run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", str(stage),
                            str(root / f"{name}_{version}_all.deb")], check=True, capture_output=True)
            shutil.rmtree(stage)
    packages_text = subprocess.run(["apt-ftparchive", "packages", "."], cwd=root, check=True,
                                   capture_output=True, text=True).stdout
    (root / "Packages").write_text(packages_text)
    opts = [f"-oAPT::FTPArchive::Release::{k}={v}" for k, v in (f.split("=", 1) for f in release)]
    text = subprocess.run(["apt-ftparchive", *opts, "release", "."], cwd=root, check=True,
                          capture_output=True, text=True).stdout
    (root / "Release").write_text(text)


@pytest.fixture(scope="module")
def pins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """The pin files rendered by Ansible for each plan: {plan: {file name: text}}."""
    out = tmp_path_factory.mktemp("pins")
    tasks = []
    for role, template in (("cuda_toolkit", "cuda-repository-pin.j2"), ("nvidia_driver", "driver-pin.j2")):
        internal = yaml.safe_load((ROOT / "roles" / role / "vars/main.yml").read_text())
        for name, (distro, source, branch) in PLANS.items():
            tasks.append({
                "name": f"Render {template} for {name}",
                "ansible.builtin.template": {"src": str(ROOT / "roles" / role / "templates" / template),
                                             "dest": str(out / f"{name}--{template[:-3]}"), "mode": "0644"},
                "vars": {**{k: v for k, v in internal.items() if not k.endswith("_path")},
                         "aiws_plan": {"distro": distro, "cuda_repo": "x", "stack": {"driver_repo": source,
                                                                                      "driver_branch": branch}}},
            })
    play = [{"name": "Render", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
    (out / "render.yml").write_text(json.dumps(play))
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                             "-e", f"ansible_python_interpreter={sys.executable}", str(out / "render.yml")],
                            cwd=ROOT, env=dict(os.environ, ANSIBLE_NOCOLOR="1"), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    files: dict[str, dict[str, str]] = {}
    for path in out.iterdir():
        if "--" in path.name:
            plan, template = path.name.split("--", 1)
            files.setdefault(plan, {})[template] = path.read_text()
    return files


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("repos")
    build_repo(base / "nvidia", NVIDIA, ["Origin=NVIDIA", "Label=NVIDIA CUDA", "Architecture=x86_64"])
    build_repo(base / "distro", DISTRO, ["Origin=Distro", "Label=Distro", "Suite=stable", "Codename=stable"])
    return base


def policy(repos: Path, work: Path, files: dict[str, str]) -> dict[str, tuple[str, dict[str, int]]]:
    """{package: (candidate, {version: priority})} under the given preferences files."""
    prefs = work / "preferences.d"
    lists = work / "lists"
    (lists / "partial").mkdir(parents=True)
    prefs.mkdir()
    # Real names: apt reads preferences.d in name order, and the order decides.
    names = {"driver-pin": "aiws-nvidia-driver", "cuda-repository-pin": "cuda-repository-pin-600"}
    for template, text in files.items():
        (prefs / names[template]).write_text(text)
    (work / "sources.list").write_text(f"deb [trusted=yes] file:{repos / 'nvidia'}/ /\n"
                                       f"deb [trusted=yes] file:{repos / 'distro'}/ /\n")
    opts = [f"-oDir::Etc::SourceList={work / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={lists}", f"-oDir::Cache={work / 'cache'}", "-oDir::State::status=/dev/null",
            f"-oDir::Etc::PreferencesParts={prefs}", "-oDir::Etc::Preferences=/dev/null", "-oDebug::NoLocking=1",
            "-oAPT::Architecture=amd64", "-oAcquire::AllowInsecureRepositories=1"]
    (work / "cache" / "archives" / "partial").mkdir(parents=True)
    subprocess.run(["apt-get", *opts, "-qq", "update"], check=True, capture_output=True)
    names_all = sorted(set(NVIDIA) | set(DISTRO))
    text = subprocess.run(["apt-cache", *opts, "policy", *names_all], check=True, capture_output=True, text=True).stdout
    out: dict[str, tuple[str, dict[str, int]]] = {}
    current = ""
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            out[current] = ("", {})
        elif line.strip().startswith("Candidate:"):
            out[current] = (line.split(":", 1)[1].strip(), out[current][1])
        else:
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit() and line.startswith("     "):
                out[current][1][parts[0]] = int(parts[1])
            elif len(parts) == 3 and parts[0] == "***":
                out[current][1][parts[1]] = int(parts[2])
    return out


def test_the_cuda_pin_alone_keeps_nvidias_driver_packages_below_the_distribution(
        pins: dict, repos: Path, tmp_path: Path) -> None:
    got = policy(repos, tmp_path, {"cuda-repository-pin": pins["ubuntu-580"]["cuda-repository-pin"]})
    # NVIDIA's driver components, whatever their names, never outrank the distribution's.
    for name in ("libcuda1", "nvidia-alternative", "firmware-nvidia-gsp", "nvidia-kernel-dkms", "libxnvctrl0",
                 "nvidia-driver-580"):
        candidate, prio = got[name]
        assert candidate == DISTRO[name][0], (name, got[name])
        assert all(prio[v] == 100 for v in NVIDIA[name]), (name, prio)
    for name in ("nvidia-open-580", "cuda-drivers-580", "nvidia-driver-pinning-580", "nvidia-container-toolkit"):
        assert got[name][1] == {NVIDIA[name][0]: 100}, name
    # Only the toolkit and cuDNN are raised, above the distribution's same-named toolkit.
    for name in ("cuda-toolkit-12-4", "cuda-cudart-12-4", "cudnn9-cuda-12", "libcudnn9-cuda-12"):
        assert got[name][1][NVIDIA[name][0]] == 600, name
    assert got["cuda-toolkit-12-4"][0] == "12.4.1-1"


def test_ubuntu_branch_pin_prefers_ubuntus_build_and_leaves_the_modules_metapackage_free(
        pins: dict, repos: Path, tmp_path: Path) -> None:
    got = policy(repos, tmp_path, pins["ubuntu-580"])
    assert got["nvidia-driver-580"] == ("580.95.05-0ubuntu0.24.04.2",
                                        {"580.95.05-0ubuntu1": 100, "580.95.05-0ubuntu0.24.04.2": 1001})
    # The kernel-module metapackage is versioned like the kernel: no pin, it follows new ABIs.
    assert got["linux-modules-nvidia-580-open-generic"][1] == {"6.8.0-60.63+1": 500}
    assert got["libxnvctrl0"][0] == "525.125.06-1"
    assert got["cuda-toolkit-12-4"][1]["12.4.1-1"] == 600


def test_debian_branch_pin_keeps_debians_535(pins: dict, repos: Path, tmp_path: Path) -> None:
    got = policy(repos, tmp_path, pins["debian-535"])
    for name in ("libcuda1", "nvidia-alternative", "firmware-nvidia-gsp", "nvidia-kernel-dkms"):
        assert got[name][0] == "535.261.03-1", got[name]
        assert got[name][1] == {"580.65.06-1": 100, "590.44.01-1": 100, "535.261.03-1": 1001}


def test_nvidia_driver_branch_pin_takes_580_not_590_nor_debians_535(pins: dict, repos: Path, tmp_path: Path) -> None:
    got = policy(repos, tmp_path, pins["debian-cuda-580"])
    for name in ("libcuda1", "nvidia-alternative", "firmware-nvidia-gsp", "nvidia-kernel-dkms"):
        assert got[name] == ("580.65.06-1", {"590.44.01-1": 100, "580.65.06-1": 1001, "535.261.03-1": 500}), name
    assert got["nvidia-open-580"][1] == {"580.65.06-1": 1001}
    assert got["nvidia-container-toolkit"][1] == {"1.17.8-1": 100}, "other NVIDIA products keep their priority"
    assert "NVIDIA CUDA" not in pins["debian-cuda-580"]["driver-pin"], "the plan's own source is not demoted"


def test_the_driver_pin_names_its_packages_by_glob_not_by_regex() -> None:
    """apt matches each pattern of a pin against every package name of the archive whenever it loads its
    policy (every apt and apt-cache call) and compiles a /regex/ anew for each name: ten regexes cost
    3.3 s per call on Debian 12's archive, the same names as globs 0.1 s. Measured in the scenario:
    the driver stage's probe (four apt-cache calls) took 52 s of a 187 s no-op run of four hosts."""
    names = yaml.safe_load((ROOT / "roles/nvidia_driver/vars/main.yml").read_text())["__nvidia_driver_pin_packages"].split()
    assert names and not [n for n in names if n.startswith("/")], names
