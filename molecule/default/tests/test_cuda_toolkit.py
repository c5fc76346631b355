"""CUDA toolkit from the (fixture) NVIDIA repository: what an admin checks by hand."""

from __future__ import annotations

import json
import re

import pytest
from machines import machine


def login(host, user: str, command: str):
    return host.run(f"runuser -l {user} -c {command!r}")


def test_repository_source_is_signed_by_the_pinned_keyring(host) -> None:
    repo = machine(host).distro.replace(".", "")
    sources = host.run(f"grep -l 'nvidia/compute/cuda/repos/{repo}/x86_64/' /etc/apt/sources.list.d/*")
    assert sources.rc == 0
    path = sources.stdout.split()[0]
    text = host.file(path).content_string
    assert "Signed-By: /usr/share/keyrings/cuda-archive-keyring.gpg" in text or "signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg" in text
    assert "Suites: /" in text or text.rstrip().endswith(" /")
    keyring = host.file("/usr/share/keyrings/cuda-archive-keyring.gpg")
    assert keyring.user == "root" and keyring.mode == 0o644


def test_keyring_holds_exactly_the_pinned_key(host) -> None:
    fact = json.loads(host.file("/etc/ansible/facts.d/aiws_cuda_toolkit.fact").content_string)
    listing = host.check_output("gpg --batch --show-keys --with-colons /usr/share/keyrings/cuda-archive-keyring.gpg")
    pubs = [line for line in listing.splitlines() if line.startswith("pub:")]
    assert len(pubs) == 1
    assert f":{fact['key_fingerprint']}:" in listing


def test_pin_file_prefers_only_the_toolkit_and_cudnn_from_nvidia(host) -> None:
    pin = host.file("/etc/apt/preferences.d/cuda-repository-pin-600").content_string
    assert "Pin: release o=NVIDIA,l=NVIDIA CUDA\nPin-Priority: 600" in pin
    assert pin.rstrip().endswith("Package: *\nPin: release o=NVIDIA,l=NVIDIA CUDA\nPin-Priority: 100")
    toolkit = f"cuda-toolkit-{machine(host).cuda.replace('.', '-')}"
    assert re.search(r"\d+\.\d+\.\d+-1 600\n\s+100 http://127\.0\.0\.1", host.check_output(f"apt-cache policy {toolkit}"))
    assert " 600\n" in host.check_output("apt-cache policy libcudnn9-cuda-12")
    if machine(host).family == "debian":
        # NVIDIA's driver packages of another branch stay at 100 (the plan's 580 is raised by the driver's branch pin).
        assert re.search(r"590\.44\.01-1 100\n", host.check_output("apt-cache policy nvidia-alternative"))


def test_toolkits_installed_side_by_side(host) -> None:
    m = machine(host)
    for version in (m.cuda, *m.cuda_extra):
        assert host.package(f"cuda-toolkit-{version.replace('.', '-')}").is_installed
        assert host.file(f"/usr/local/cuda-{version}/bin/nvcc").is_executable


# (nvidia-open itself is the Ada host's driver now: the driver stage installs it through nvidia-open-580.)
@pytest.mark.parametrize("meta", ["cuda", "cuda-12-4", "cuda-runtime-12-4", "cuda-drivers"])
def test_no_driver_dragging_meta_is_installed(host, meta: str) -> None:
    assert not host.package(meta).is_installed


def test_default_cuda_points_at_the_planned_toolkit(host) -> None:
    assert host.check_output("readlink /usr/local/cuda") == "/etc/alternatives/cuda"
    assert host.check_output("readlink /etc/alternatives/cuda") == f"/usr/local/cuda-{machine(host).cuda}"


def test_nvcc_from_a_fresh_login_shell_of_an_ordinary_user(host) -> None:
    result = login(host, "labuser", "nvcc -V")
    assert result.rc == 0, result.stderr
    cuda = machine(host).cuda
    assert f"release {cuda}, V{cuda}" in result.stdout


def test_nvcc_compiles_a_kernel_to_an_object(host) -> None:
    source = (
        "__global__ void scale(float *x, float a, int n) {"
        " int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] *= a; }"
    )
    script = (
        "set -e; d=$(mktemp -d); cd $d; "
        f"printf '%s\\n' '{source}' > scale.cu; "
        "nvcc -c -arch=sm_89 scale.cu -o scale.o; "
        "file scale.o 2>/dev/null || true; test -s scale.o && echo compiled; rm -rf $d"
    )
    result = login(host, "labuser", script)
    assert result.rc == 0, result.stderr
    assert "compiled" in result.stdout


def test_cuda_libraries_are_on_the_loader_path(host) -> None:
    assert "libcudart.so.12" in host.check_output("ldconfig -p")
    assert host.file("/etc/ld.so.conf.d/aiws-cuda.conf").content_string.strip().endswith("/usr/local/cuda/lib64")


def test_fact_records_the_toolkit(host) -> None:
    fact = json.loads(host.file("/etc/ansible/facts.d/aiws_cuda_toolkit.fact").content_string)
    m = machine(host)
    assert fact["version"] == m.cuda
    assert fact["home"] == f"/usr/local/cuda-{m.cuda}"
    assert sorted(fact["versions"]) == sorted([m.cuda, *m.cuda_extra])
