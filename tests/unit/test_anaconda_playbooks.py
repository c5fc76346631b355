"""The anaconda role against bad input and its installer life cycle, run by ansible-playbook on localhost.

Nothing here touches the machine outside temporary directories:
- bad settings stop in preflight (`playbooks/preflight.yml --check`, which only reads users and groups);
- the installer tasks (roles/anaconda/tasks/installer.yml, record.yml) run with the prefix, the
  download directory and the fact directory in a temporary directory, against the fixture
  installers of tests/fixtures/fx_anaconda.py served by tests/fixtures/serve.py on a free port.
Needs root (the role's files belong to root) and /usr/bin/python3.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook") or "ansible-playbook"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the role's tasks create root-owned files: run as root (make test does)"),
    pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason="ansible-playbook not found (scripts/bootstrap.sh --test)"),
]


ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
           ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_CALLBACK_RESULT_FORMAT="json")


def write_inventory(tmp: Path) -> Path:
    inventory = tmp / "inventory.yml"
    if not inventory.exists():
        inventory.write_text(yaml.safe_dump({"all": {"children": {"workstations": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}}}}}}))
    return inventory


def run(tmp: Path, playbook: Path | str, extra: dict, check: bool = False) -> subprocess.CompletedProcess:
    inventory = write_inventory(tmp)
    (tmp / "extra.json").write_text(json.dumps(extra))
    env = ENV | {"ANSIBLE_LOCAL_TEMP": str(tmp / "ansible")}
    argv = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook), "-e", f"@{tmp / 'extra.json'}"]
    if check:
        argv.append("--check")
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def recap_changed(out: str) -> int:
    line = [x for x in out.splitlines() if x.startswith("localhost ") and "changed=" in x][-1]
    return int(line.split("changed=")[1].split()[0])


# --- bad input stops in preflight ---------------------------------------------------------------
# Every case is one `preflight.yml --check` run; they run side by side (module fixture) to save time.

PREFLIGHT = ROOT / "playbooks/preflight.yml"
ACCEPT = {"anaconda_accept_terms": True}
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "group-name": ({"anaconda_group": "Lab Users"}, 'anaconda_group "Lab Users" is not a valid group name'),
    "user-name": ({"anaconda_users": ["ok", "Bad Name"]}, "anaconda_users has invalid user names: Bad Name"),
    "missing-group": ({"anaconda_group": "aiws-nogroup", "anaconda_manage_group": False},
                      'anaconda_group "aiws-nogroup" does not exist on localhost and anaconda_manage_group is false'),
    "prefix": ({"anaconda_prefix": "/opt"}, "anaconda_prefix is /opt, a system directory"),
    "http-url": ({"anaconda_installer_url": "http://mirror.lab.example/Anaconda3.sh"},
                 'anaconda_installer_url: "http://mirror.lab.example/Anaconda3.sh" is plain http: set aiws_mirror_allow_http: true'),
    "unknown-version": ({"anaconda_version": "2030.01-0"}, "is not listed in data/installers.yml"),
    "bad-sha": ({"anaconda_installer_sha256": "1234"}, 'anaconda_installer_sha256 must be a SHA-256 sum, 64 hex digits; got "1234"'),
    "flavor": ({"anaconda_flavor": "conda"}, "anaconda_flavor"),
    "terms-scope": ({"anaconda_terms_scope": "everyone"},
                    "value of anaconda_terms_scope must be one of: installation, user, got: everyone"),
    "http-pypi": ({"python_mirrors_mirror": {"pypi": "http://devpi.lab.example/simple"}},
                  'python_mirrors_mirror.pypi: "http://devpi.lab.example/simple" is plain http'),
    "unknown-user": ({"anaconda_users": ["root", "nosuchuser-aiws"]},
                     "anaconda_users lists users that do not exist on localhost: nosuchuser-aiws"),
}
GOOD: dict[str, dict[str, Any]] = {
    "miniforge-without-terms": {"anaconda_flavor": "miniforge"},
    "unknown-user-created": {**ACCEPT, "anaconda_users": ["nosuchuser-aiws"], "anaconda_create_users": True},
}


@pytest.fixture(scope="module")
def preflight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    cases = {"terms": {}, **GOOD, **{name: {**ACCEPT, **extra} for name, (extra, _) in BAD.items()}}

    base = tmp_path_factory.mktemp("preflight")

    def one(name: str) -> tuple[str, subprocess.CompletedProcess]:
        (base / name).mkdir()
        # The URL probe is not what these cases test (and the mirrors are not reachable here): off.
        return name, run(base / name, PREFLIGHT, {**cases[name], "preflight_probe_urls": False}, check=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, cases))


def flat(text: str) -> str:
    return " ".join(text.split())


def test_terms_not_accepted_stop_preflight(preflight) -> None:
    result = preflight["terms"]
    assert result.returncode == 2, result.stdout[-2000:]
    assert "anaconda_accept_terms is false" in result.stdout
    assert "https://www.anaconda.com/legal" in result.stdout
    assert "Require the acceptance of Anaconda's terms" in result.stdout


@pytest.mark.parametrize("case", sorted(GOOD))
def test_good_settings_pass_preflight(preflight, case: str) -> None:
    assert preflight[case].returncode == 0, preflight[case].stdout[-3000:]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_settings_are_named_in_preflight(preflight, case: str) -> None:
    result = preflight[case]
    assert result.returncode == 2, result.stdout[-2000:]
    assert flat(BAD[case][1]) in flat(result.stdout), result.stdout[-3000:]


# --- installer life cycle on a temporary prefix -------------------------------------------------

# fixture_server (the fixture installers served on loopback): tests/unit/conftest.py

def life_cycle_playbook(tmp: Path) -> Path:
    playbook = tmp / "installer.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Installer tasks of the anaconda role on a temporary prefix",
        "hosts": "workstations",
        "gather_facts": False,
        "tasks": [
            {"name": "Read the architecture", "ansible.builtin.setup": {"gather_subset": ["!all", "!min", "platform"]}},
            {"name": "Install, update or keep", "ansible.builtin.include_role": {"name": "anaconda", "tasks_from": "installer.yml"}},
            {"name": "Record", "ansible.builtin.include_role": {"name": "anaconda", "tasks_from": "record.yml"}},
        ],
    }]))
    return playbook


def settings(tmp: Path, base: str, manifest: dict, version: str, **more) -> dict:
    entry = manifest["installers"][version]
    return {
        "anaconda_accept_terms": True, "anaconda_version": version,
        "anaconda_installer_url": f"{base}/anaconda/{entry['file']}", "anaconda_installer_sha256": entry["sha256"],
        "anaconda_prefix": str(tmp / "opt/anaconda3"), "anaconda_download_dir": str(tmp / "downloads"),
        "__anaconda_fact_dir": str(tmp / "facts"), "aiws_mirror_allow_http": True, **more,
    }


def test_wrong_checksum_is_refused_before_execution(tmp_path: Path, fixture_server) -> None:
    base, _, manifest = fixture_server
    bad = manifest["badsum"]
    extra = settings(tmp_path, base, manifest, "2099.01-0", anaconda_installer_url=f"{base}/anaconda/{bad['file']}")
    result = run(tmp_path, life_cycle_playbook(tmp_path), extra)
    assert result.returncode == 2, result.stdout[-3000:]
    out = result.stdout
    assert "Checksum mismatch for Anaconda3-2099.01-0-Linux-" in out
    assert f"expected sha256 {bad['sha256']}, got {bad['actual_sha256']}" in flat(out)
    assert "The file was deleted and nothing was installed" in flat(out)
    assert not any((tmp_path / "downloads").iterdir()), "the mismatching file was left behind"
    assert not (tmp_path / "opt").exists(), "something ran"
    assert not (tmp_path / "facts/aiws_anaconda.fact").exists()


def test_install_update_keep_and_refuse_downgrade(tmp_path: Path, fixture_server) -> None:
    base, www, manifest = fixture_server
    playbook = life_cycle_playbook(tmp_path)
    prefix = tmp_path / "opt/anaconda3"
    conda = prefix / "bin/conda"

    # 1. Install the old version from a file on the controller (no download).
    old = manifest["installers"]["2098.01-0"]
    first = run(tmp_path, playbook, settings(tmp_path, base, manifest, "2098.01-0",
                                             anaconda_installer_src=str(www / "anaconda" / old["file"])))
    assert first.returncode == 0, first.stdout[-3000:]
    assert subprocess.run([conda, "--version"], capture_output=True, text=True, check=False).stdout.strip() == "conda 98.1.0"
    record = json.loads((tmp_path / "facts/aiws_anaconda.fact").read_text())
    assert record["version"] == "2098.01-0" and record["sha256"] == old["sha256"]

    # A member's environment, which an update must keep.
    made = subprocess.run([conda, "create", "-y", "-p", str(prefix / "envs/kept")], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    (prefix / "envs/kept/notes.txt").write_text("precious\n")

    # 2. A newer version, downloaded from the fixture server: updated in place with -u.
    second = run(tmp_path, playbook, settings(tmp_path, base, manifest, "2099.01-0"))
    assert second.returncode == 0, second.stdout[-3000:]
    assert "Run the installer in batch mode (update)" in second.stdout
    assert subprocess.run([conda, "--version"], capture_output=True, text=True, check=False).stdout.strip() == "conda 99.1.0"
    assert (prefix / "envs/kept/notes.txt").read_text() == "precious\n"
    history = (prefix / "conda-meta/history").read_text()
    assert history.count("==> ") == 2 and " -u\n" in history

    # 3. The same version again: nothing happens.
    third = run(tmp_path, playbook, settings(tmp_path, base, manifest, "2099.01-0"))
    assert third.returncode == 0, third.stdout[-3000:]
    assert recap_changed(third.stdout) == 0
    assert (prefix / "conda-meta/history").read_text().count("==> ") == 2

    # 4. An older version is refused, naming both.
    fourth = run(tmp_path, playbook, settings(tmp_path, base, manifest, "2098.01-0"))
    assert fourth.returncode == 2
    assert "holds anaconda 2099.01-0" in fourth.stdout and "asks for anaconda 2098.01-0" in fourth.stdout
    assert subprocess.run([conda, "--version"], capture_output=True, text=True, check=False).stdout.strip() == "conda 99.1.0"


# --- half-installed, foreign and reinstalled prefixes; a filesystem too small ---------------------

def conda_version(prefix: Path) -> str:
    return subprocess.run([prefix / "bin/conda", "--version"], capture_output=True, text=True, check=False).stdout.strip()


def test_interrupted_install_is_finished_and_keeps_what_is_there(tmp_path: Path, fixture_server) -> None:
    base, _www, manifest = fixture_server
    prefix = tmp_path / "opt/anaconda3"
    new = manifest["installers"]["2099.01-0"]
    # What a run killed during the installer leaves: the role's mark, part of the payload, no
    # bin/conda yet; and an environment a member had made before an interrupted update.
    (prefix / "pkgs").mkdir(parents=True)
    (prefix / ".aiws-installing.json").write_text(json.dumps({"flavor": "anaconda", "version": "2099.01-0"}))
    (prefix / "LICENSE.txt").write_text("half\n")
    (prefix / "envs/kept").mkdir(parents=True)
    (prefix / "envs/kept/notes.txt").write_text("precious\n")
    result = run(tmp_path, life_cycle_playbook(tmp_path), settings(tmp_path, base, manifest, "2099.01-0"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Run the installer in batch mode (repair)" in result.stdout
    assert conda_version(prefix) == "conda 99.1.0"
    assert (prefix / "envs/kept/notes.txt").read_text() == "precious\n"
    assert not (prefix / ".aiws-installing.json").exists()
    mark = json.loads((prefix / ".aiws-install.json").read_text())
    assert mark == {"flavor": "anaconda", "version": "2099.01-0", "prefix": str(prefix),
                    "installer": new["file"], "sha256": new["sha256"]}
    again = run(tmp_path, life_cycle_playbook(tmp_path), settings(tmp_path, base, manifest, "2099.01-0"))
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, again.stdout[-3000:]


def test_prefix_with_files_aiws_did_not_install_is_refused(tmp_path: Path, fixture_server) -> None:
    base, _www, manifest = fixture_server
    prefix = tmp_path / "opt/anaconda3"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin/conda").write_text("#!/bin/sh\necho conda 1.0.0\n")
    (prefix / "bin/conda").chmod(0o755)
    (prefix / "someones-data.csv").write_text("1,2,3\n")
    before = sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*"))
    result = run(tmp_path, life_cycle_playbook(tmp_path), settings(tmp_path, base, manifest, "2099.01-0"))
    assert result.returncode == 2, result.stdout[-3000:]
    out = flat(result.stdout)
    assert f"{prefix} is not empty (bin, someones-data.csv) but holds no installation made by aiws" in out
    assert "it has a conda of its own" in out and "aiws never installs over files it did not put there" in out
    assert sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*")) == before
    assert "Run the installer" not in result.stdout


def test_installation_is_recognised_after_the_host_is_reinstalled(tmp_path: Path, fixture_server) -> None:
    base, _www, manifest = fixture_server
    prefix = tmp_path / "opt/anaconda3"
    playbook = life_cycle_playbook(tmp_path)
    first = run(tmp_path, playbook, settings(tmp_path, base, manifest, "2099.01-0"))
    assert first.returncode == 0, first.stdout[-3000:]
    # A reinstalled system keeps /opt, not /etc: the record is gone, the prefix's own mark is not.
    shutil.rmtree(tmp_path / "facts")
    shutil.rmtree(tmp_path / "downloads")
    second = run(tmp_path, playbook, settings(tmp_path, base, manifest, "2099.01-0"))
    assert second.returncode == 0, second.stdout[-3000:]
    assert "Run the installer in batch mode (keep)" in second.stdout, "the installation was not recognised"
    assert (prefix / "conda-meta/history").read_text().count("==> ") == 1, "the installer ran again"
    assert json.loads((tmp_path / "facts/aiws_anaconda.fact").read_text())["version"] == "2099.01-0"


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux) for a private mount")
def test_too_small_filesystem_stops_before_the_installer(tmp_path: Path, fixture_server) -> None:
    base, _www, manifest = fixture_server
    prefix = tmp_path / "opt/anaconda3"
    prefix.mkdir(parents=True)
    inventory = write_inventory(tmp_path)
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(settings(tmp_path, base, manifest, "2099.01-0")))
    playbook = life_cycle_playbook(tmp_path)
    # A small filesystem mounted at the prefix, in a mount namespace of this test's own.
    script = (f"mount -t tmpfs -o size=8m,mode=0755 aiws-small {prefix} && "
              f"{{ {ANSIBLE_PLAYBOOK} -i {inventory} {playbook} -e @{extra}; rc=$?; echo LISTING:; ls -A {prefix}; exit $rc; }}")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            cwd=ROOT, env=ENV | {"ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible")},
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-2000:]
    out = flat(result.stdout)
    assert f"Not enough space for anaconda 2099.01-0 in {prefix}: the filesystem mounted at {prefix} has" in out
    assert "(as its installer states) plus a 50 MB margin" in out
    assert "The installer did not run; nothing changed" in out
    assert result.stdout.split("LISTING:")[-1].split() == [], "the prefix must stay empty"
    assert "TASK [anaconda : installer | Run the installer in batch mode" not in result.stdout
