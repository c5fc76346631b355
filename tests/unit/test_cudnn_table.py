# SPDX-License-Identifier: GPL-3.0-or-later
"""The cuDNN release table: generated from PyPI's release list and the support-matrix facts."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.aiws.workstation.plugins.plugin_utils import nvidia
from conftest import FILTER_DIR, ROOT, load_file
from nvidia_gpus import nvidia_gpus
from nvidia_stack import nvidia_stack

GENERATOR = ROOT / "tools" / "gen_cudnn_table.py"
RECORD = ROOT / "tests" / "unit" / "fixtures" / "pypi" / "nvidia-cudnn-cu12.json"
TABLE = FILTER_DIR / "data" / "nvidia_cudnn.yml"
MATRIX = FILTER_DIR / "data" / "cudnn_support_matrix.yml"


gen = load_file("gen_cudnn_table", GENERATOR)
FACTS = yaml.safe_load(MATRIX.read_text(encoding="utf-8"))


def _ver(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def newest_cuda12_cudnn_in_record() -> str:
    """Newest final cuDNN 9 that NVIDIA published for CUDA 12 with a Linux x86_64 wheel, read
    straight from the recorded PyPI answer (independently of the generator)."""
    answer = json.loads(RECORD.read_text(encoding="utf-8"))
    versions = [
        v
        for v, files in answer["releases"].items()
        if re.fullmatch(r"9\.\d+\.\d+\.\d+", v)
        and any("manylinux" in f["filename"] and "x86_64" in f["filename"] and not f["yanked"] for f in files)
    ]
    return max(versions, key=_ver)


def wheel(version: str, platform: str = "manylinux_2_27_x86_64", yanked: bool = False, day: str = "2026-01-02") -> dict:
    return {
        "filename": f"nvidia_cudnn_cu12-{version}-py3-none-{platform}.whl",
        "packagetype": "bdist_wheel",
        "upload_time_iso_8601": f"{day}T10:00:00.000000Z",
        "yanked": yanked,
        "url": "https://files.example/nvidia_cudnn_cu12.whl",
        "digests": {"sha256": "0" * 64},
    }


def test_generator_reproduces_the_committed_table(tmp_path: Path) -> None:
    out = tmp_path / "nvidia_cudnn.yml"
    run = subprocess.run(
        [sys.executable, str(GENERATOR), "--pypi-json", str(RECORD), "--output", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert out.read_text(encoding="utf-8") == TABLE.read_text(encoding="utf-8"), (
        "plugins/filter/data/nvidia_cudnn.yml is not what tools/gen_cudnn_table.py makes of the recorded PyPI answer"
        " and cudnn_support_matrix.yml: regenerate it"
    )
    check = subprocess.run(
        [sys.executable, str(GENERATOR), "--pypi-json", str(RECORD), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_recorded_answer_is_trimmed_and_names_no_host() -> None:
    text = RECORD.read_text(encoding="utf-8")
    assert "http" not in text and "url" not in text
    answer = json.loads(text)
    assert answer["info"]["name"] == "nvidia-cudnn-cu12"
    for files in answer["releases"].values():
        for row in files:
            assert set(row) == set(gen.FILE_FIELDS)
    assert gen.trim(answer) == answer, "trimming a recorded answer changes nothing"


def test_table_covers_every_final_release_with_apt_versions() -> None:
    table = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    releases = table["releases"]
    newest = newest_cuda12_cudnn_in_record()
    assert table["pypi"]["newest"] == newest
    assert max(releases, key=_ver) == ".".join(newest.split(".")[:2])
    for minor, row in releases.items():
        assert row["version"].startswith(minor + ".")
        assert row["apt"] == row["version"] + "-1"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["released"])
        assert row["samples"]["build"] in ("make", "cmake")
    assert releases["9.10"]["architectures"][:3] == ["maxwell", "pascal", "volta"], "9.10 is their last release"
    for minor in releases:
        if _ver(minor) > (9, 10):
            assert not {"maxwell", "pascal", "volta"} & set(releases[minor]["architectures"]), minor
    assert all(s for s in table["matrix_sources"]) and all(s for s in table["samples_sources"])


def test_release_rules_on_a_synthetic_answer() -> None:
    answer: dict[str, Any] = {
        "info": {"name": "nvidia-cudnn-cu12", "version": "9.40.0.1"},
        "last_serial": 1,
        "releases": {
            "8.9.7.29": [wheel("8.9.7.29", "manylinux1_x86_64")],
            "9.17.0.29": [wheel("9.17.0.29", day="2025-12-05")],
            "9.17.1.4": [wheel("9.17.1.4", day="2025-12-22"), wheel("9.17.1.4", "win_amd64", day="2025-12-20")],
            "9.18.0.77": [wheel("9.18.0.77", "manylinux_2_27_aarch64")],  # no x86_64 wheel
            "9.25.0.15": [wheel("9.25.0.15", yanked=True)],  # yanked
            "9.25.1.1": [wheel("9.25.1.1")],
            "9.26.0.39.dev1": [wheel("9.26.0.39.dev1")],  # development build
            "9.0.0.312.post1": [wheel("9.0.0.312.post1")],  # post release
            "9.40.0.1": [wheel("9.40.0.1", day="2027-03-04")],  # a future minor: open-ended block
        },
    }
    trimmed = gen.trim(answer)
    assert "url" not in json.dumps(trimmed)
    releases = gen.final_releases(trimmed)
    assert releases == {
        "9.17": {"version": "9.17.1.4", "released": "2025-12-22"},
        "9.25": {"version": "9.25.1.1", "released": "2026-01-02"},
        "9.40": {"version": "9.40.0.1", "released": "2027-03-04"},
    }
    rows = gen.build_rows(releases, FACTS)
    assert rows["9.17"]["matrix"] == "9.17.0" and "confirmed" not in rows["9.17"]
    assert rows["9.40"]["confirmed"] is False and rows["9.40"]["cuda12"] == ["12.0", "12.9"]
    assert rows["9.40"]["samples"]["build"] == "cmake"
    assert rows["9.25"]["apt"] == "9.25.1.1-1"
    text = gen.generate(answer, FACTS)
    assert "9.40.0.1-1" in text and "url" not in text


def test_a_minor_no_block_covers_is_refused() -> None:
    facts = copy.deepcopy(FACTS)
    facts["matrix"] = [b for b in facts["matrix"] if b["to"] is not None]
    with pytest.raises(SystemExit, match="covers cuDNN 9.28"):
        gen.build_rows({"9.28": {"version": "9.28.0.42", "released": "2026-11-04"}}, facts)


@pytest.mark.parametrize(
    ("index", "url"),
    [
        ("https://mirror.example/simple", "https://mirror.example/pypi/nvidia-cudnn-cu12/json"),
        ("https://mirror.example/simple/", "https://mirror.example/pypi/nvidia-cudnn-cu12/json"),
        ("https://mirror.example/pypi/simple/", "https://mirror.example/pypi/nvidia-cudnn-cu12/json"),
    ],
)
def test_json_api_url_follows_the_index(index: str, url: str) -> None:
    assert gen.json_api_url(index) == url


def test_rtx4090_on_ubuntu2404_by_default_gets_the_newest_cudnn_for_cuda12() -> None:
    newest = newest_cuda12_cudnn_in_record()
    minor = ".".join(newest.split(".")[:2])
    result = nvidia_stack(nvidia_gpus(["10de:2684"]))
    assert result["supported"], result["reasons"]
    assert result["cudnn_version"] == minor
    assert result["packages"]["cudnn"][0] == f"cudnn9-cuda-12={minor}.*"
    assert any(f"cuDNN {minor}" in r and f"{newest}-1" in r for r in result["reasons"]), result["reasons"]


def test_loader_merges_the_generated_table() -> None:
    cudnn = nvidia.policy()["cudnn"]
    assert cudnn["releases"] == yaml.safe_load(TABLE.read_text(encoding="utf-8"))["releases"]
    assert cudnn["packages"][0] == "cudnn9-cuda-12" and cudnn["source"]


@pytest.mark.skipif(
    not os.environ.get("AIWS_LIVE_PYPI"), reason="set AIWS_LIVE_PYPI=1 to compare with PyPI's answer now"
)
def test_live_pypi_answer_gives_the_committed_table() -> None:
    """Live mode: fails when NVIDIA published a release since the table was generated
    (refresh with `python3 tools/gen_cudnn_table.py`)."""
    run = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], check=False, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr


def test_fixture_repository_carries_the_newest_cudnn_and_the_last_for_pascal() -> None:
    """The container scenario installs what the plan picks: the fixture must carry it."""
    nvidia_repo = load_file("nvidia_repo", ROOT / "tests" / "fixtures" / "nvidia_repo.py")
    releases = yaml.safe_load(TABLE.read_text(encoding="utf-8"))["releases"]
    newest = max(releases, key=_ver)
    assert releases[newest]["apt"] in nvidia_repo.DEFAULT_CUDNN
    assert releases["9.10"]["apt"] in nvidia_repo.DEFAULT_CUDNN
    for version in nvidia_repo.DEFAULT_CUDNN:
        minor = ".".join(version.split(".")[:2])
        assert nvidia_repo.samples_layout(version) == releases[minor]["samples"]["build"], version
