"""The repository is the collection aiws.workstation: it builds, installs, and its playbook and plugins
work from the installed copy, outside the checkout; its version is one number everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"


def tool(name: str) -> str:
    return shutil.which(name, path=str(BIN)) or shutil.which(name) or name


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | dict[str, str]]:
    """Build the artifact from the checkout, then install it as a user would, from another folder."""
    base = tmp_path_factory.mktemp("collection")
    out, colls, elsewhere = base / "out", base / "collections", base / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ansible.cfg").write_text("[defaults]\n")  # not the checkout's settings
    build = subprocess.run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    artifact = out / f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    assert artifact.is_file(), build.stdout
    env = dict(os.environ, ANSIBLE_CONFIG=str(elsewhere / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(colls),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCAL_TEMP=str(base / "tmp"))
    # --no-deps: ansible.posix and community.general come with the pinned ansible bundle (requirements.txt).
    install = subprocess.run([tool("ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(colls), str(artifact)],
                             cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    return {"artifact": artifact, "root": colls / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"],
            "elsewhere": elsewhere, "env": env}


def run(installed: dict, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=installed["elsewhere"], env=installed["env"], capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_artifact_carries_the_collection_and_none_of_the_development_tree(installed: dict) -> None:
    with tarfile.open(installed["artifact"]) as tar:
        top = {name.split("/", 1)[0] for name in tar.getnames()}
    # MANIFEST.json and FILES.json stand for galaxy.yml in a built collection.
    assert {"MANIFEST.json", "FILES.json", "meta", "roles", "plugins", "playbooks", "data", "aiws",
            "README.md", "LICENSE", "CHANGELOG.md"} <= top
    assert not top & {".git", ".venv", ".cache", "collections", "molecule", "tests", "scripts", "tools", "lab"}, sorted(top)


def test_the_installed_site_playbook_resolves_every_role_and_task(installed: dict) -> None:
    inventory = installed["root"] / "inventories/lab"
    syntax = run(installed, tool("ansible-playbook"), f"{FQCN}.site", "-i", str(inventory), "--syntax-check")
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    assert f"{installed['root']}/playbooks/site.yml" in syntax.stdout
    listing = run(installed, tool("ansible-playbook"), f"{FQCN}.site", "-i", str(inventory), "--list-tasks")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    for role in sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir()):
        # the installed collection's roles, by their full names
        assert re.search(rf"^\s+{FQCN}\.{role} : ", listing.stdout, re.MULTILINE), f"{role}'s tasks are not listed"
    assert "[WARNING]" not in listing.stdout + listing.stderr, listing.stdout + listing.stderr


def test_the_installed_plugins_plan_a_gpu_with_their_data(installed: dict) -> None:
    expression = ("{{ (['10de:2684'] | aiws.workstation.nvidia_gpus"
                  " | aiws.workstation.nvidia_stack(distro='ubuntu24.04')).driver_branch }}")
    plan = run(installed, tool("ansible"), "localhost", "-m", "ansible.builtin.debug", "-a", f"msg={expression}")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert re.search(r'"msg": "?5[0-9]{2}', plan.stdout), plan.stdout
    doc = run(installed, tool("ansible-doc"), "-t", "module", f"{FQCN}.aiws_url_probe")
    assert doc.returncode == 0 and str(installed["root"]) in doc.stdout, doc.stdout + doc.stderr


def test_one_version_everywhere() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    package = re.search(r'^__version__ = "([^"]+)"$', (ROOT / "aiws/__init__.py").read_text(), re.MULTILINE)
    releases = yaml.safe_load((ROOT / "changelogs/changelog.yaml").read_text())["releases"]
    newest = max(releases, key=lambda v: tuple(int(p) for p in v.split(".")))
    assert package
    assert GALAXY["version"] == project == package.group(1) == newest
    runtime = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())
    assert runtime["requires_ansible"].startswith(">=2.19")


def test_the_checkout_is_the_same_collection() -> None:
    link = ROOT / "collections/ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert link.is_symlink() and link.resolve() == ROOT


def test_the_collection_installs_from_git_as_the_readme_says(installed: dict, tmp_path: Path) -> None:
    """`ansible-galaxy collection install git+<repository>,<ref>`: here the checkout's own commit."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    colls = tmp_path / "from-git"
    env = dict(installed["env"], ANSIBLE_COLLECTIONS_PATH=str(colls))
    got = subprocess.run([tool("ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(colls), f"git+file://{ROOT},HEAD"],
                         cwd=installed["elsewhere"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert got.returncode == 0, got.stdout + got.stderr
    root = colls / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (root / "playbooks/site.yml").is_file() and (root / "MANIFEST.json").is_file()
    assert not (root / "collections").exists() and not (root / "tests").exists()


def test_roles_read_the_collections_data_through_its_lookup_not_by_climbing_out() -> None:
    climbing = [f"{path.relative_to(ROOT)}:{number}" for path in (ROOT / "roles").rglob("*.yml")
                for number, line in enumerate(path.read_text().splitlines(), 1) if "/../" in line]
    assert not climbing, climbing


def test_the_data_lookup_returns_a_data_file_and_names_the_known_ones(tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: \"{{ lookup('aiws.workstation.aiws_data', 'platforms').platforms | list }}\"\n"
        "    - ansible.builtin.debug:\n        msg: \"{{ lookup('aiws.workstation.aiws_data', 'mirors') }}\"\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    got = subprocess.run([tool("ansible-playbook"), "-i", "localhost,", "-c", "local", str(play)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    out = got.stdout + got.stderr
    assert got.returncode != 0
    assert "- ubuntu22.04" in got.stdout, out
    assert "aiws_data: no data file 'mirors'; known: installers, mirrors, platforms" in out, out


def _project_filters() -> set[str]:
    """Every filter the collection's plugins define (their FilterModule), by short name."""
    names: set[str] = set()
    for path in (ROOT / "plugins/filter").glob("*.py"):
        text = path.read_text()
        block = text[text.find("def filters(self)"):]
        names |= set(re.findall(r'"([a-z_]+)":', block))
    return names


def test_every_use_of_a_project_filter_names_it_in_full() -> None:
    """Roles, playbooks and the scenario call the collection's filters as aiws.workstation.<name>, as
    where the collection is installed; a short name only works while plugins/filter is configured."""
    names = _project_filters()
    assert {"nvidia_stack", "apt_mirror_sources", "apt_mirror_manifest_entry", "aiws_apt_unmet"} <= names
    bare = re.compile(r"(?:\|\s*|\b(?:map|select|reject)\(\s*['\"])(" + "|".join(sorted(names)) + r")\b")
    short = []
    for pattern in ("roles/**/*.yml", "roles/**/*.j2", "playbooks/*.yml", "*.yml", "molecule/default/*.yml",
                    "molecule/default/group_vars/**/*.yml", "inventories/**/*.yml"):
        for path in ROOT.glob(pattern):
            text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
            short += [f"{path.relative_to(ROOT)}: {m.group(1)}" for m in bare.finditer(text)]
    assert not short, short


def test_the_changelog_is_kept_as_collections_keep_it(tmp_path: Path) -> None:
    """Fragments lint clean, and CHANGELOG.md is what antsibull-changelog writes from changelog.yaml
    (a release is made with the tool, never by editing the file)."""
    lint = subprocess.run([tool("antsibull-changelog"), "lint"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
    for name in ("galaxy.yml", "CHANGELOG.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "changelogs", tmp_path / "changelogs")
    generate = subprocess.run([tool("antsibull-changelog"), "generate"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, check=False)
    assert generate.returncode == 0, generate.stdout + generate.stderr
    assert (tmp_path / "CHANGELOG.md").read_text() == (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("kind", ["filter", "lookup", "callback", "module"])
def test_every_plugin_of_the_collection_is_documented(kind: str) -> None:
    """`ansible-doc -t <kind> -l` lists each plugin with its short description (a filter without one
    shows UNDOCUMENTED): filters defined together in one file each have their own YAML doc beside it."""
    listing = subprocess.run([tool("ansible-doc"), "-t", kind, "-l", FQCN], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, check=False)
    assert listing.returncode == 0, listing.stderr
    names = [line.split()[0] for line in listing.stdout.splitlines() if line.startswith(f"{FQCN}.")]
    assert names, listing.stdout
    assert [line for line in listing.stdout.splitlines() if "UNDOCUMENTED" in line] == []
    assert "[WARNING]" not in listing.stderr, listing.stderr
