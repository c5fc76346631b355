"""Anaconda's terms in conda (conda-anaconda-tos 0.2.2) and what the anaconda role tells it.

- The fixture conda of tests/fixtures/fx_anaconda.py enforces the terms as the plugin does: terms
  endpoints served on loopback, records on the plugin's search path with its precedence, the
  `plugins.auto_accept_tos` switch (a .condarc or CONDA_PLUGINS_AUTO_ACCEPT_TOS), CI, the same
  error class, text and exit code.
- roles/anaconda/templates/condarc-terms.yml.j2, rendered by Ansible, is what that conda reads
  to let a member's non-interactive `conda create` through.
- roles/anaconda/tasks/terms.yml writes it only for the Anaconda Distribution with the terms
  accepted for the installation, idempotently, honestly in check mode, with a backup of a file it
  replaces (as root: the file belongs to root).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/anaconda"
ANSIBLE_PLAYBOOK = (shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
                    or shutil.which("ansible-playbook"))
NON_INTERACTIVE = "CondaToSNonInteractiveError: Terms of Service have not been accepted for the following channels."


@pytest.fixture(scope="module")
def prefix(fixture_server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, www, manifest = fixture_server
    where = tmp_path_factory.mktemp("opt") / "anaconda3"
    installer = www / "anaconda" / manifest["installers"]["2099.01-0"]["file"]
    subprocess.run(["bash", str(installer), "-b", "-p", str(where)], check=True, capture_output=True)
    return where


@pytest.fixture
def lab(fixture_server, prefix: Path, tmp_path: Path):
    """A user's view: own HOME, a system condarc whose default_channels are the served stand-ins."""
    base = fixture_server[0]
    home = tmp_path / "home"
    home.mkdir()
    condarc = tmp_path / "system.condarc"
    condarc.write_text(f"default_channels:\n  - {base}/conda/pkgs/main\n  - {base}/conda/pkgs/r\n"
                       f"custom_channels:\n  conda-forge: {base}/conda/cloud\nchannel_alias: {base}/conda/cloud\n")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "CONDARC": str(condarc), "LANG": "C.UTF-8"}
    yield {"base": base, "home": home, "env": env, "prefix": prefix, "condarc": condarc}
    for left in ("condarc.d", "conda-meta/tos", "envs"):
        shutil.rmtree(prefix / left, ignore_errors=True)
    (prefix / "envs").mkdir()


def conda(lab: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(lab["prefix"] / "bin/conda"), *args], capture_output=True, text=True,
                          env={**lab["env"], **env}, stdin=subprocess.DEVNULL, check=False, timeout=60)


def channel_hash(location: str, name: str) -> str:
    """conda_anaconda_tos.path.hash_channel: sha256 of the channel's location, then its name."""
    return hashlib.sha256(location.encode() + name.encode()).hexdigest()


def records(root: Path) -> dict[str, dict]:
    return {json.loads(f.read_text())["base_url"]: json.loads(f.read_text()) for f in root.glob("*/*.json")}


# --- the fixture conda enforces the terms as the plugin does ---------------------------------------

def test_without_acceptance_a_non_interactive_create_fails_like_the_plugin(lab) -> None:
    base = lab["base"]
    result = conda(lab, "create", "-y", "-n", "x", "numpy")
    assert result.returncode == 1
    assert result.stderr.startswith("\n" + NON_INTERACTIVE + " Please accept or remove them before proceeding:\n")
    assert f"    - {base}/conda/pkgs/main\n    - {base}/conda/pkgs/r\n" in result.stderr
    assert f"    conda tos accept --override-channels --channel {base}/conda/pkgs/main\n" in result.stderr
    assert "https://www.anaconda.com/docs/tools/working-with-conda/channels" in result.stderr
    assert not (lab["prefix"] / "envs/x").exists(), "the command ran although the terms stopped it"
    # -y is not needed: without a terminal on stdout conda cannot ask either.
    assert NON_INTERACTIVE in conda(lab, "create", "-n", "x").stderr
    # Commands outside the plugin's run_for set are not checked.
    assert conda(lab, "info", "--json").returncode == 0


def test_the_installations_condarc_d_accepts_for_every_user(lab) -> None:
    (lab["prefix"] / "condarc.d").mkdir()
    (lab["prefix"] / "condarc.d/10-aiws-terms.yml").write_text("plugins:\n  auto_accept_tos: true\n")
    result = conda(lab, "create", "-y", "-n", "x")
    assert result.returncode == 0, result.stderr
    assert (f"By accessing {lab['base']}/conda/pkgs/main with auto acceptance enabled (auto_accept_tos=True) "
            "for this repository you acknowledge and agree to the Terms of Service:") in result.stdout
    assert "2 channel Terms of Service accepted" in result.stdout
    # The plugin records the member's acceptance in ~/.conda/tos/<sha256(location+name)>/<version>.json.
    host = lab["base"].split("://")[1]
    main = lab["home"] / ".conda/tos" / channel_hash(host, "conda/pkgs/main")
    [record] = list(main.glob("*.json"))
    assert record.name == "1752537600.0.json"  # 2025-07-15T00:00:00Z, the served version
    data = json.loads(record.read_text())
    assert data["tos_accepted"] is True and data["base_url"] == f"{lab['base']}/conda/pkgs/main"
    assert set(data) == {"version", "text", "support", "base_url", "tos_accepted", "acceptance_timestamp"}
    # An explicit opt-out of one member (the variable beats every file) brings the error back for them.
    fresh = conda(lab, "create", "-y", "-n", "y", HOME=str(lab["home"].parent / "other"),
                  CONDA_PLUGINS_AUTO_ACCEPT_TOS="no")
    assert fresh.returncode == 1 and NON_INTERACTIVE in fresh.stderr


def test_a_later_user_file_overrides_the_installations_setting(lab) -> None:
    (lab["prefix"] / "condarc.d").mkdir()
    (lab["prefix"] / "condarc.d/10-aiws-terms.yml").write_text("plugins:\n  auto_accept_tos: true\n")
    (lab["home"] / ".condarc").write_text("plugins:\n  auto_accept_tos: false\n")
    assert NON_INTERACTIVE in conda(lab, "create", "-y", "-n", "x").stderr
    assert conda(lab, "create", "-y", "-n", "x", CONDA_PLUGINS_AUTO_ACCEPT_TOS="yes").returncode == 0


def test_conda_tos_accept_records_where_asked_and_only_for_that_channel(lab) -> None:
    base = lab["base"]
    accept = conda(lab, "tos", "accept", "--system", "--override-channels", "--channel", f"{base}/conda/pkgs/main")
    assert accept.returncode == 0 and f"accepted Terms of Service for {base}/conda/pkgs/main" in accept.stdout
    system = records(lab["prefix"] / "conda-meta/tos")
    assert list(system) == [f"{base}/conda/pkgs/main"] and system[f"{base}/conda/pkgs/main"]["tos_accepted"]
    # pkgs/r is still pending: the error names it alone.
    result = conda(lab, "create", "-y", "-n", "x")
    assert result.returncode == 1 and f"- {base}/conda/pkgs/r\n" in result.stderr
    assert f"- {base}/conda/pkgs/main\n" not in result.stderr
    conda(lab, "tos", "accept", "--system", "--override-channels", "-c", f"{base}/conda/pkgs/r")
    assert conda(lab, "create", "-y", "-n", "x").returncode == 0
    # A channel without an endpoint has no terms: nothing to accept, nothing written, exit 0.
    none = conda(lab, "tos", "accept", "--system", "--override-channels", "-c", "conda-forge")
    assert none.returncode == 0 and "Terms of Service not found for" in none.stdout
    assert len(records(lab["prefix"] / "conda-meta/tos")) == 2


def test_records_precedence_newest_version_then_search_path_order(lab, fixture_server) -> None:
    base, www, _ = fixture_server
    main = f"{base}/conda/pkgs/main"
    args = ("--override-channels", "-c", main)
    # A user's rejection and the installation's acceptance of the same version: the installation
    # ($CONDA_ROOT/conda-meta/tos) comes first on the search path and wins.
    assert conda(lab, "tos", "reject", "--user", *args).returncode == 0
    rejected = conda(lab, "create", "-y", "-n", "x", *args)
    assert rejected.returncode == 1 and "CondaToSRejectedError: Terms of Service has been rejected" in rejected.stderr
    conda(lab, "tos", "accept", "--system", *args)
    assert conda(lab, "create", "-y", "-n", "x", *args).returncode == 0
    # New terms published: the records are outdated and the channel is pending again.
    terms = www / "conda/pkgs/main/terms.json"
    original = terms.read_text()
    try:
        terms.write_text(json.dumps({**json.loads(original), "version": "2026-03-01T00:00:00Z"}))
        shutil.rmtree(lab["home"] / ".cache/conda-anaconda-tos")  # the plugin caches the endpoint for an hour
        listed = json.loads(conda(lab, "tos", *args).stdout)
        assert listed[main]["outdated"] is True
        assert NON_INTERACTIVE in conda(lab, "create", "-y", "-n", "y", *args).stderr
    finally:
        terms.write_text(original)


def test_ci_accepts_with_the_terms_printed_and_an_explicit_false_wins(lab) -> None:
    ci = conda(lab, "create", "-y", "-n", "x", CI="true")
    assert ci.returncode == 0 and f"By accessing {lab['base']}/conda/pkgs/main via CI" in ci.stdout
    (lab["home"] / ".conda").rename(lab["home"] / "dot-conda-after-ci")
    assert NON_INTERACTIVE in conda(lab, "create", "-y", "-n", "y", CI="false", JENKINS_URL="http://ci").stderr


def test_channels_without_an_endpoint_are_not_checked(lab) -> None:
    # A mirror that copies only <channel>/<subdir>/ (TUNA's sync script) has no terms.json; the
    # public host is never asked by the fixture (it counts as unreachable, as on a host offline).
    (lab["home"] / ".condarc").write_text(
        "channels:\n  - conda-forge\n  - nodefaults\ndefault_channels:\n  - https://repo.anaconda.com/pkgs/main\n")
    assert conda(lab, "create", "-y", "-n", "x").returncode == 0
    assert conda(lab, "create", "-y", "-n", "y", "--override-channels", "-c", "https://repo.anaconda.com/pkgs/main",
                 "-c", f"{lab['base']}/conda/cloud/conda-forge").returncode == 0
    # Offline, the plugin asks no endpoint (conda's session refuses) and lets the command through.
    (lab["home"] / ".condarc").unlink()
    assert conda(lab, "create", "-y", "-n", "z", CONDA_OFFLINE="true").returncode == 0
    # ... and caches "no terms" for the channel: an hour of online runs pass too (remote.py).
    assert conda(lab, "create", "-y", "-n", "w").returncode == 0
    shutil.rmtree(lab["home"] / ".cache/conda-anaconda-tos")
    assert NON_INTERACTIVE in conda(lab, "create", "-y", "-n", "v").stderr


# --- the role's template, rendered by Ansible, is what conda reads ----------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> str:
    if ANSIBLE_PLAYBOOK is None:
        pytest.fail("ansible-playbook not found (scripts/bootstrap.sh --test)")
    assert ANSIBLE_PLAYBOOK is not None
    out = tmp_path_factory.mktemp("rendered")
    (out / "playbook.yml").write_text(yaml.safe_dump([{
        "name": "Render the anaconda role's terms template", "hosts": "localhost", "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "vars_files": [str(ROLE / "defaults/main.yml")],
        "tasks": [{"name": "Render", "ansible.builtin.copy": {
            "dest": str(out / "10-aiws-terms.yml"), "mode": "0644",
            "content": "{{ lookup('ansible.builtin.template', '" + str(ROLE / "templates/condarc-terms.yml.j2")
                       + "') }}"}}],
    }]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(out / "tmp"))
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(out / "playbook.yml")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return (out / "10-aiws-terms.yml").read_text()


def test_template_renders_the_plugins_setting(rendered: str) -> None:
    assert yaml.safe_load(rendered) == {"plugins": {"auto_accept_tos": True}}
    assert all(line.startswith("#") for line in rendered.splitlines()[:-2] if line)
    assert "https://www.anaconda.com/legal" in rendered
    assert "#!final" not in rendered, "a member must stay able to opt out for themselves"


def test_rendered_template_lets_a_member_create_non_interactively(lab, rendered: str) -> None:
    assert NON_INTERACTIVE in conda(lab, "create", "-y", "-n", "x").stderr
    (lab["prefix"] / "condarc.d").mkdir()
    (lab["prefix"] / "condarc.d/10-aiws-terms.yml").write_text(rendered)
    result = conda(lab, "create", "-y", "-n", "x")
    assert result.returncode == 0, result.stderr
    assert str(lab["prefix"] / "condarc.d/10-aiws-terms.yml") in json.loads(conda(lab, "info", "--json").stdout)[
        "config_files"]


# --- the role's tasks ----------------------------------------------------------------------------------

def run_terms(tmp: Path, *cases: dict[str, object], check: bool = False) -> subprocess.CompletedProcess:
    """One ansible-playbook run: a play per case, each including the role's terms tasks."""
    playbook = tmp / "terms.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": f"The anaconda role's terms tasks, case {i}", "hosts": "localhost", "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "/usr/bin/python3", "anaconda_group": "root", **case},
        "tasks": [{"name": "Terms", "ansible.builtin.include_role": {"name": "anaconda", "tasks_from": "terms.yml"}}],
    } for i, case in enumerate(cases)]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible"))
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(playbook), "--diff"]
    return subprocess.run(argv + (["--check"] if check else []), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def changed(result: subprocess.CompletedProcess) -> int:
    line = [x for x in result.stdout.splitlines() if x.startswith("localhost ") and "changed=" in x][-1]
    return int(line.split("changed=")[1].split()[0])


@pytest.mark.skipif(os.geteuid() != 0, reason="the role's file belongs to root: run as root (make test does)")
@pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason="ansible-playbook not found (scripts/bootstrap.sh --test)")
def test_role_records_acceptance_only_when_accepted_for_the_installation(tmp_path: Path, rendered: str) -> None:
    prefix = tmp_path / "anaconda3"
    (prefix / "condarc.d").mkdir(parents=True)
    target = prefix / "condarc.d/10-aiws-terms.yml"
    accepted = {"anaconda_prefix": str(prefix), "anaconda_accept_terms": True}

    dry = run_terms(tmp_path, accepted, check=True)
    assert dry.returncode == 0 and changed(dry) == 1 and "auto_accept_tos: true" in dry.stdout
    assert not target.exists(), "check mode wrote the file"

    first = run_terms(tmp_path, accepted)
    assert first.returncode == 0, first.stdout[-3000:]
    assert target.read_text() == rendered
    assert (target.stat().st_mode & 0o7777, target.stat().st_uid) == (0o660, 0)
    again = run_terms(tmp_path, accepted, accepted, check=True)
    assert again.returncode == 0 and changed(again) == 0
    assert changed(run_terms(tmp_path, accepted)) == 0

    # A file changed by hand is put back, the changed one kept as a backup beside it.
    target.write_text("plugins:\n  auto_accept_tos: false\n")
    assert changed(run_terms(tmp_path, accepted)) == 1
    assert target.read_text() == rendered
    backups = [p for p in target.parent.iterdir() if p.name.startswith(target.name + ".")]
    assert [b.read_text() for b in backups] == ["plugins:\n  auto_accept_tos: false\n"]

    # Nothing is accepted for Miniforge, nor without acceptance, nor when each member accepts alone:
    # a file already there is removed (each case on its own prefix), and a re-run changes nothing.
    refused: list[dict[str, object]] = [{"anaconda_flavor": "miniforge", "anaconda_accept_terms": False},
               {"anaconda_flavor": "miniforge", "anaconda_accept_terms": True},
               {"anaconda_accept_terms": True, "anaconda_terms_scope": "user"},
               {"anaconda_accept_terms": False}]
    for i, case in enumerate(refused):
        case["anaconda_prefix"] = str(tmp_path / f"refused{i}")
        (tmp_path / f"refused{i}/condarc.d").mkdir(parents=True)
        (tmp_path / f"refused{i}/condarc.d/10-aiws-terms.yml").write_text(rendered)
    removed = run_terms(tmp_path, *refused)
    assert removed.returncode == 0 and changed(removed) == len(refused), removed.stdout[-3000:]
    assert not list(tmp_path.glob("refused*/condarc.d/10-aiws-terms.yml"))
    assert changed(run_terms(tmp_path, *refused)) == 0
