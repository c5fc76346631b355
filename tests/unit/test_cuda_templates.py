"""The CUDA repository source, pin and environment files, rendered by Ansible for each distribution."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "cuda_toolkit"
NVIDIA = "https://developer.download.nvidia.com/compute/cuda/repos"
CASES = {
    # name: (distro, repo dir, driver source)
    "ubuntu2204": ("ubuntu22.04", "ubuntu2204/x86_64", "ubuntu"),
    "ubuntu2404": ("ubuntu24.04", "ubuntu2404/x86_64", "ubuntu"),
    "ubuntu2404-arm64": ("ubuntu24.04", "ubuntu2404/sbsa", "ubuntu"),
    "debian12": ("debian12", "debian12/x86_64", "debian"),
    "debian12-nvidia-driver": ("debian12", "debian12/x86_64", "cuda"),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    out = tmp_path_factory.mktemp("cuda")
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    internal = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    tasks = []
    for name, (distro, repo, source) in CASES.items():
        plan = {"distro": distro, "cuda_repo": repo, "mirror": {"profile": "official", "nvidia_cuda": NVIDIA},
                "stack": {"cuda_version": "12.9", "driver_repo": source}}
        common = {"aiws_plan": plan, "cuda_toolkit_source_url": f"{NVIDIA}/{repo}/"}
        for template in ("cuda-deb822.j2", "cuda-one-line.j2", "cuda-repository-pin.j2", "profile-cuda.sh.j2", "ld-cuda.conf.j2"):
            tasks.append({
                "name": f"Render {template} for {name}",
                "ansible.builtin.template": {"src": str(ROLE / "templates" / template), "dest": str(out / f"{name}--{template[:-3]}"), "mode": "0644"},
                "vars": common,
            })
    play = [{"name": "Render", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {**defaults, **internal}, "tasks": tasks}]
    book = out / "render.yml"
    book.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                             "-e", f"ansible_python_interpreter={sys.executable}", str(book)],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    files: dict[str, dict[str, str]] = {}
    for path in out.iterdir():
        if "--" in path.name:
            name, template = path.name.split("--", 1)
            files.setdefault(name, {})[template] = path.read_text()
    return files


@pytest.mark.parametrize("case", CASES)
def test_deb822_source_is_flat_and_signed(rendered: dict, case: str) -> None:
    repo = CASES[case][1]
    text = rendered[case]["cuda-deb822"]
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == [
        "Types: deb",
        f"URIs: {NVIDIA}/{repo}/",
        "Suites: /",
        "Signed-By: /usr/share/keyrings/cuda-archive-keyring.gpg",
    ]


@pytest.mark.parametrize("case", CASES)
def test_one_line_source_is_flat_and_signed(rendered: dict, case: str) -> None:
    repo = CASES[case][1]
    body = [line for line in rendered[case]["cuda-one-line"].splitlines() if line and not line.startswith("#")]
    assert body == [f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] {NVIDIA}/{repo}/ /"]


@pytest.mark.parametrize("case", CASES)
def test_pin_file_demotes_all_of_nvidias_repository_but_the_toolkit_and_cudnn(rendered: dict, case: str) -> None:
    pin = rendered[case]["cuda-repository-pin"]
    assert "Package: nsight-compute\nPin: origin *ubuntu.com*\nPin-Priority: -1" in pin
    assert "Package: nsight-systems\nPin: origin *ubuntu.com*\nPin-Priority: -1" in pin
    # By the Release fields NVIDIA's repository has (Origin: NVIDIA, Label: NVIDIA CUDA), whatever the driver source:
    # the driver stage's branch pin raises the plan's branch when the driver comes from there.
    assert pin.rstrip().endswith("Package: *\nPin: release o=NVIDIA,l=NVIDIA CUDA\nPin-Priority: 100")
    raised = pin.split("Pin-Priority: -1")[-1].split("Pin: release o=NVIDIA,l=NVIDIA CUDA\nPin-Priority: 600")[0]
    globs = raised.split("Package:", 1)[1].split()
    assert {"cuda-toolkit*", "cudnn*", "libcudnn*", "cuda-cudart*", "cuda-nv*"} <= set(globs)
    # No glob that raises a driver package or the metas that pull one in.
    for name in ("cuda-drivers", "cuda-drivers-580", "cuda", "cuda-12-4", "cuda-runtime-12-4", "nvidia-open",
                 "libcuda1", "nvidia-alternative", "firmware-nvidia-gsp", "libxnvctrl0", "libnvidia-compute-580"):
        assert not any(fnmatch.fnmatchcase(name, g) for g in globs), name
    assert "Pin-Priority: 1001" not in pin and pin.count("Pin-Priority: 600") == 1


@pytest.mark.parametrize("case", CASES)
def test_environment_files(rendered: dict, case: str) -> None:
    profile = rendered[case]["profile-cuda.sh"]
    assert 'PATH="/usr/local/cuda/bin:${PATH}"; export PATH' in profile
    assert "*:/usr/local/cuda/bin:*) ;;" in profile  # no duplicate entry on nested shells
    assert rendered[case]["ld-cuda.conf"].splitlines()[-1] == "/usr/local/cuda/lib64"


def test_profile_script_is_valid_sh(rendered: dict, tmp_path: Path) -> None:
    script = tmp_path / "cuda.sh"
    script.write_text(rendered["ubuntu2404"]["profile-cuda.sh"])
    result = subprocess.run(["sh", "-c", f'PATH=/usr/bin:/bin; . {script}; . {script}; echo "$PATH"'],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "/usr/local/cuda/bin:/usr/bin:/bin"
