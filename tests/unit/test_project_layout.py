"""The project's contracts that no linter checks: specs match defaults, inventories stay complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_has_spec_assert_and_readme(role: Path) -> None:
    for rel in ("meta/argument_specs.yml", "meta/main.yml", "tasks/main.yml", "tasks/assert.yml", "README.md"):
        assert (role / rel).is_file(), f"{role.name} lacks {rel}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_default_is_specified_and_prefixed(role: Path) -> None:
    defaults = load(role / "defaults/main.yml") if (role / "defaults/main.yml").exists() else {}
    options = load(role / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for name in defaults:
        assert name.startswith(role.name + "_"), f"{role.name}: default {name} lacks the role prefix"
        assert name in options, f"{role.name}: default {name} is missing from meta/argument_specs.yml"
    for name, spec in options.items():
        assert spec.get("description"), f"{role.name}: option {name} has no description"
        if name.startswith(role.name + "_"):
            assert name in defaults, f"{role.name}: option {name} has no default in defaults/main.yml"


def test_site_imports_every_stage_with_its_tag() -> None:
    assert yaml.safe_load((ROOT / "site.yml").read_text()) == [
        {"name": "Provision the workstations, stage by stage", "ansible.builtin.import_playbook": "playbooks/site.yml"}]
    site = yaml.safe_load((ROOT / "playbooks/site.yml").read_text())
    imported = [item["ansible.builtin.import_playbook"] for item in site]
    tags: set[str] = set()
    for rel in imported:
        for play in yaml.safe_load((ROOT / "playbooks" / rel).read_text()):
            for role in play.get("roles", []):
                tags.update(role["tags"])
    assert {"preflight", "mirrors", "driver", "cuda", "cudnn", "anaconda", "pymirrors", "verify", "report"} <= tags
    assert "always" in tags


def test_lab_inventory_documents_only_known_project_settings() -> None:
    defaults = load(ROOT / "roles/preflight/defaults/main.yml")["preflight_aiws_defaults"]
    lab = {}
    for f in sorted((ROOT / "inventories/lab/group_vars/all").glob("*.yml")):
        lab.update(load(f))
    project = {k: v for k, v in lab.items() if k.startswith("aiws_")}
    for name, value in defaults.items():
        assert name in project, f"inventories/lab does not document {name}"
        assert project[name] == value, f"inventories/lab sets {name}={project[name]!r}, preflight default is {value!r}"


def test_lab_resolves_to_inventories_lab() -> None:
    assert (ROOT / "lab").resolve() == (ROOT / "inventories/lab").resolve()


def test_readme_documents_every_role_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"{role.name}: {name}"
        for role in ROLES
        if (role / "defaults/main.yml").exists()
        for name in (load(role / "defaults/main.yml") or {})
        if f"`{name}`" not in readme
    ]
    assert not missing, "README's variable reference lacks " + ", ".join(missing)


def test_pre_commit_runs_the_lint_and_type_checks_of_make_test() -> None:
    """Each local hook is one of scripts/test.sh's lint commands (or, for mypy, all three of them)."""
    hooks = {hook["id"]: hook for repo in load(ROOT / ".pre-commit-config.yaml")["repos"] for hook in repo["hooks"]}
    script = [line.split("#")[0].strip() for line in (ROOT / "scripts/test.sh").read_text().splitlines()]
    commands = [line for line in script if line.split(" ")[0] in ("yamllint", "ansible-lint", "ruff", "mypy")]
    assert set(hooks) == {"yamllint", "ansible-lint", "ruff", "mypy"}
    entries = " && ".join(hook["entry"].removeprefix("bash -c ").strip("'") for hook in hooks.values())
    for command in commands:
        assert f".venv/bin/{command}" in entries, f"no pre-commit hook runs `{command}`"
    assert all(hook["language"] == "system" for hook in hooks.values()), "hooks run the pinned tools of .venv"


def test_pre_commit_accepts_its_configuration() -> None:
    pre_commit = Path(sys.executable).parent / "pre-commit"
    run = subprocess.run([str(pre_commit), "validate-config", ".pre-commit-config.yaml"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
