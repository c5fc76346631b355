"""One list of supported platforms (data/platforms.yml); every other place that names them agrees with it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import apt_mirror  # plugins/filter is on sys.path (tests/unit/conftest.py)
import nvidia_stack
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = yaml.safe_load((ROOT / "data/platforms.yml").read_text())
PLATFORMS: dict[str, dict[str, str]] = DATA["platforms"]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta/main.yml").is_file())


def load(rel: str) -> Any:
    return yaml.safe_load((ROOT / rel).read_text())


def test_the_list_itself_is_complete_and_consistent() -> None:
    assert PLATFORMS, "data/platforms.yml lists no platform"
    for key, p in PLATFORMS.items():
        assert set(p) == {"distribution", "major_version", "version", "codename", "family"}, key
        assert key == f"{p['family']}{p['version']}", f"{key}: the key is family and version"
        assert p["version"].split(".")[0] == p["major_version"], key
        assert p["distribution"].lower() == p["family"], key


def test_preflight_maps_the_facts_of_each_platform_and_nothing_else() -> None:
    variables = load("roles/preflight/vars/main.yml")
    expected = {f"{p['distribution']}-{p['major_version']}": key for key, p in PLATFORMS.items()}
    assert variables["__preflight_distros"] == expected
    assert variables["__preflight_deb_arch"] == DATA["architectures"]
    assert set(variables["__preflight_cuda_repo_arch"]) == set(DATA["architectures"])


def test_the_plans_policy_knows_each_platform_with_its_family() -> None:
    distros = load("plugins/filter/data/nvidia_policy.yml")["distros"]
    assert set(distros) == set(PLATFORMS)
    for key, p in PLATFORMS.items():
        assert distros[key]["family"] == p["family"], key


def test_nvidia_stack_documents_the_platforms_as_its_choices() -> None:
    doc = yaml.safe_load(nvidia_stack.DOCUMENTATION)
    options = {name: spec for name, spec in doc["options"].items() if "choices" in spec}
    with_platforms = {name: spec["choices"] for name, spec in options.items() if set(spec["choices"]) & set(PLATFORMS)}
    assert with_platforms, "nvidia_stack documents no option whose choices are the platforms"
    for name, choices in with_platforms.items():
        assert choices == list(PLATFORMS), f"nvidia_stack option {name}: {choices}"


def test_apt_mirror_has_a_sources_layout_for_each_platform() -> None:
    assert set(apt_mirror.DISTROS) == set(PLATFORMS)
    for key, p in PLATFORMS.items():
        assert apt_mirror.DISTROS[key]["family"] == p["family"], key


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_each_roles_galaxy_platforms_are_the_supported_ones(role: Path) -> None:
    expected: dict[str, list[str]] = {}
    for p in PLATFORMS.values():
        expected.setdefault(p["distribution"], []).append(p["codename"])
    listed = load(f"roles/{role.name}/meta/main.yml")["galaxy_info"]["platforms"]
    assert {entry["name"]: entry["versions"] for entry in listed} == expected


def test_the_container_scenario_runs_every_platform() -> None:
    text = (ROOT / "molecule/default/molecule.yml").read_text()
    images = set(re.findall(r"localhost/aiws-([a-z]+[0-9.]+)", text))
    assert images == set(PLATFORMS)
