# SPDX-License-Identifier: GPL-3.0-or-later
"""roles/verify/files/mnistcudnn.sh builds the sample the way the installed samples ship it.

The sample trees here are small stand-ins with the two real layouts of libcudnn9-samples: a
Makefile in every sample (cuDNN 9.0-9.10), or only a top-level CMakeLists.txt whose
mnistCUDNN/CMakeLists.txt does add_subdirectory(FreeImage) (newer releases).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_collections.aiws.workstation.plugins.plugin_utils import checks, parsers
from conftest import ROOT

SCRIPT = ROOT / "roles" / "verify" / "files" / "mnistcudnn.sh"
PROGRAM = r"""
#include <cstdio>
#include <fstream>
#include <FreeImage.h>
int main() {
    std::ifstream data("data/one_28x28.pgm");
    if (!data) { std::printf("Cannot open data/one_28x28.pgm\nTest failed!\n"); return 1; }
    std::printf("cudnnGetVersion() : 92800 , CUDNN_VERSION from cudnn.h : 92800 (9.28.0)\n");
    std::printf("FreeImage %s\n\nTest passed!\n", FreeImage_GetVersion());
    return 0;
}
"""


def _sample(tree: Path, layout: str, cmake_minimum: str = "3.20") -> Path:
    mnist = tree / "mnistCUDNN"
    (mnist / "data").mkdir(parents=True)
    (mnist / "data" / "one_28x28.pgm").write_text("P2\n1 1\n255\n0\n")
    (mnist / "mnistCUDNN.cpp").write_text(PROGRAM)
    if layout in ("make", "both"):
        (mnist / "Makefile").write_text(
            "all: mnistCUDNN\n"
            "mnistCUDNN: mnistCUDNN.cpp\n\t$(CXX) $(CPPFLAGS) -o $@ $< $(LDFLAGS) -lfreeimage\n"
            "clean:\n\trm -f mnistCUDNN\n"
        )
    if layout in ("cmake", "both"):
        (tree / "CMakeLists.txt").write_text(
            f"cmake_minimum_required(VERSION {cmake_minimum})\nproject(cudnn-samples LANGUAGES CXX)\n"
            "add_subdirectory(mnistCUDNN)\n"
        )
        (mnist / "CMakeLists.txt").write_text(
            "add_subdirectory(FreeImage)\nadd_executable(mnistCUDNN mnistCUDNN.cpp)\n"
            "target_link_libraries(mnistCUDNN PRIVATE FreeImage)\n"
        )
    return tree


@pytest.fixture
def freeimage(tmp_path: Path) -> Path:
    """A prefix with FreeImage.h and libfreeimage.so, as libfreeimage-dev installs them."""
    prefix = tmp_path / "prefix"
    (prefix / "include").mkdir(parents=True)
    (prefix / "lib").mkdir()
    (prefix / "include" / "FreeImage.h").write_text(
        '#ifdef __cplusplus\nextern "C" {\n#endif\nconst char *FreeImage_GetVersion(void);\n'
        "#ifdef __cplusplus\n}\n#endif\n"
    )
    source = tmp_path / "fi.c"
    source.write_text('const char *FreeImage_GetVersion(void) { return "3.18.0"; }\n')
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(prefix / "lib" / "libfreeimage.so"), str(source)], check=True
    )
    return prefix


def _run(tree: Path, prefix: Path | None, path: str | None = None) -> str:
    env = {
        "PATH": path if path is not None else os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tree.parent),
        "TMPDIR": str(tree.parent),
        "AIWS_LOGIN_SHELL": "1",  # the test sets the environment a login shell would
        "LANG": "C.UTF-8",
    }
    if prefix is not None:
        env.update(
            CMAKE_PREFIX_PATH=str(prefix),
            CPPFLAGS=f"-I{prefix / 'include'}",
            LDFLAGS=f"-L{prefix / 'lib'} -Wl,-rpath,{prefix / 'lib'}",
            LD_LIBRARY_PATH=str(prefix / "lib"),
        )
    run = subprocess.run(["bash", str(SCRIPT), str(tree)], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    leftovers = [p.name for p in tree.parent.glob("aiws-cudnn.*")]
    assert leftovers == [], f"scratch directories left behind: {leftovers}"
    return run.stdout


def _judged(stdout: str) -> dict:
    probe = {
        "host": "t",
        "plan": {"gpus": [{"name": "RTX 4090", "compute_capability": "8.9"}], "stack": {}},
        "facts": {"aiws_cudnn": {"version": "9.28"}},
        "pci_gpus": "1",
        "mnist": {"rc": 0, "stdout": stdout},
    }
    return next(c for c in checks.judge(probe)["checks"] if c["check"] == "cudnn_mnist")


def test_makefile_layout_builds_with_make(tmp_path: Path, freeimage: Path) -> None:
    out = _run(_sample(tmp_path / "samples", "make"), freeimage)
    sections = parsers.parse_sections(out)
    assert sections["build"]["rc"] == 0 and sections["build"]["output"].startswith("build system: make")
    assert sections["run"]["rc"] == 0 and "Test passed!" in sections["run"]["output"]
    assert _judged(out)["observed"] == "Test passed! (cuDNN 9.28.0, built with make)"


def test_makefile_wins_when_both_are_shipped(tmp_path: Path, freeimage: Path) -> None:
    out = _run(_sample(tmp_path / "samples", "both"), freeimage)
    assert parsers.parse_sections(out)["build"]["output"].startswith("build system: make")


@pytest.mark.skipif(not shutil.which("cmake"), reason="needs cmake on this machine")
def test_cmake_layout_builds_with_freeimage_beside_the_sample(tmp_path: Path, freeimage: Path) -> None:
    out = _run(_sample(tmp_path / "samples", "cmake"), freeimage)
    sections = parsers.parse_sections(out)
    assert sections["build"]["rc"] == 0, sections["build"]["output"]
    assert sections["build"]["output"].startswith("build system: cmake")
    assert sections["run"]["rc"] == 0 and "Test passed!" in sections["run"]["output"]
    check = _judged(out)
    assert check["status"] == "pass" and check["observed"].endswith("built with cmake)")


@pytest.mark.skipif(not shutil.which("cmake"), reason="needs cmake on this machine")
def test_cmake_layout_without_freeimage_fails_the_build_naming_the_package(tmp_path: Path) -> None:
    out = _run(_sample(tmp_path / "samples", "cmake"), None)
    check = _judged(out)
    assert check["status"] == "fail" and check["observed"].startswith("build failed (cmake)")
    assert "libfreeimage-dev" in check["hint"]


@pytest.mark.skipif(not shutil.which("cmake"), reason="needs cmake on this machine")
def test_cmake_older_than_the_samples_need_is_a_skip(tmp_path: Path, freeimage: Path) -> None:
    out = _run(_sample(tmp_path / "samples", "cmake", cmake_minimum="99.1"), freeimage)
    assert "### skip rc=0" in out and "### build" not in out
    check = _judged(out)
    assert check["status"] == "skip"
    assert "CMake 99.1 or newer" in check["hint"] and "this host's cmake is" in check["hint"]


def test_no_cmake_is_a_skip_not_a_failed_gpu(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "cp", "mktemp", "rm", "sed", "head", "mkdir", "grep", "dirname", "cat", "sort", "printf"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    out = _run(_sample(tmp_path / "samples", "cmake"), None, path=str(bin_dir))
    check = _judged(out)
    assert check["status"] == "skip"
    assert "cmake is not installed" in check["hint"] and "3.20 or newer" in check["hint"]


def test_unknown_layout_is_a_skip(tmp_path: Path) -> None:
    tree = tmp_path / "samples"
    (tree / "mnistCUDNN").mkdir(parents=True)
    check = _judged(_run(tree, None))
    assert check["status"] == "skip" and "neither mnistCUDNN/Makefile nor a top-level CMakeLists.txt" in check["hint"]


def test_missing_samples_is_reported(tmp_path: Path) -> None:
    out = _run(tmp_path / "nothing", None)
    assert "### missing rc=1" in out
