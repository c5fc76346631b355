"""cuDNN 9 matched to CUDA 12, kept on the plan's minor release."""

from __future__ import annotations

import json

import pytest
from machines import machine


# The plan picks 9.10 for the Pascal cards (their last cuDNN) and the newest cuDNN for CUDA 12 for the Ada cards
# (machines.py reads it from plugins/filter/data/nvidia_cudnn.yml).
@pytest.fixture()
def minor(host) -> str:
    return machine(host).cudnn


@pytest.mark.parametrize("name", ["cudnn9-cuda-12", "libcudnn9-cuda-12", "libcudnn9-dev-cuda-12", "libcudnn9-headers-cuda-12", "libcudnn9-samples"])
def test_cudnn_packages_on_the_planned_minor(host, minor: str, name: str) -> None:
    package = host.package(name)
    assert package.is_installed
    assert package.version.startswith(minor + ".")


def test_header_reports_the_planned_version(host, minor: str) -> None:
    header = host.file("/usr/include/x86_64-linux-gnu/cudnn_version.h")
    assert header.exists
    major, minor_number = minor.split(".")
    assert f"#define CUDNN_MAJOR {major}" in header.content_string
    assert f"#define CUDNN_MINOR {minor_number}" in header.content_string


def test_apt_stays_on_the_minor_release(host, minor: str) -> None:
    pin = host.file("/etc/apt/preferences.d/aiws-cudnn").content_string
    assert f"Pin: version {minor}.*" in pin
    candidate = host.check_output("apt-cache policy libcudnn9-cuda-12 | awk '/Candidate/ {print $2}'")
    assert candidate.startswith(minor + ".")


def test_samples_are_installed_for_the_mnist_check(host) -> None:
    layout = machine(host).samples_build
    assert host.file("/usr/src/cudnn_samples_v9/CMakeLists.txt").exists
    assert host.file("/usr/src/cudnn_samples_v9/mnistCUDNN/Makefile").exists is (layout == "make")
    assert host.package("libfreeimage-dev").is_installed
    m = machine(host)
    if layout == "cmake" and m.distro == "ubuntu22.04":
        # Ubuntu 22.04's cmake is 3.22: the plan installs none and the mnistCUDNN check skips, saying why.
        assert not host.package("cmake").is_installed
        assert not host.file("/etc/apt/preferences.d/aiws-cmake").exists
    elif layout == "cmake":
        version = host.check_output("cmake --version").splitlines()[0].split()[-1]
        assert tuple(int(p) for p in version.split(".")[:2]) >= (3, 27), version
        if m.family == "debian":
            # Debian 12's own cmake is 3.25; the samples need 3.27 or newer: the stage takes bookworm-backports'.
            assert "~bpo12" in host.package("cmake").version
            # only cmake and cmake-data come from backports (apt-get -t would have moved libcurl4 too)
            assert "bpo" not in host.package("libcurl4").version
            assert "Package: cmake cmake-data" in host.file("/etc/apt/preferences.d/aiws-cmake").content_string


def test_fact_records_cudnn(host, minor: str) -> None:
    fact = json.loads(host.file("/etc/ansible/facts.d/aiws_cudnn.fact").content_string)
    assert fact["version"] == minor
    assert fact["samples"] == "/usr/src/cudnn_samples_v9"
    assert fact["samples_build"] == machine(host).samples_build
    assert fact["package_version"].startswith(minor + ".")
    assert fact["cuda_major"] == "12"
