"""A clean run prints no [WARNING]: the playbook's static checks on the shipped inventory, an
inventory without the optional apt_cache group, and the apt_mirror tasks that look for files
which need not exist (ansible.builtin.find warned about each missing folder).

The converge itself is scanned by scripts/molecule.sh (container scenario) and by make bench.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook") or ""

pytestmark = pytest.mark.skipif(not ANSIBLE_PLAYBOOK, reason="ansible-playbook not found (scripts/bootstrap.sh --test)")


def playbook(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"))
    return subprocess.run([ANSIBLE_PLAYBOOK, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def warnings(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (run.stdout + run.stderr).splitlines() if "[WARNING]" in line]


@pytest.mark.parametrize("mode", ["--syntax-check", "--list-tasks", "--list-hosts"])
def test_site_on_the_lab_inventory_prints_no_warning(mode: str, tmp_path: Path) -> None:
    run = playbook("site.yml", "-i", "lab", mode, tmp=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert warnings(run) == []


def test_an_inventory_without_a_cache_group_prints_no_warning(tmp_path: Path) -> None:
    # As molecule's generated inventory and many lab inventories: workstations only.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"workstations": {"hosts": {"ws01": None}}}}}))
    run = playbook("site.yml", "-i", str(inventory), "--list-hosts", tmp=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert warnings(run) == []
    assert "pattern: []" in run.stdout  # the cache play has no hosts
    # ...and with the group, the cache play runs on it.
    inventory.write_text(yaml.safe_dump({"all": {"children": {"workstations": {"hosts": {"ws01": None}},
                                                               "apt_cache": {"hosts": {"cache01": None}}}}}))
    run = playbook("site.yml", "-i", str(inventory), "--list-hosts", tmp=tmp_path)
    assert "pattern: ['apt_cache']" in run.stdout and "cache01" in run.stdout, run.stdout


READ = """
- name: Read what apt_mirror looks at
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    aiws_plan: {codename: bookworm}
  tasks:
    - name: Run the role's read step
      ansible.builtin.include_role:
        name: apt_mirror
        tasks_from: TASKS
    - name: Write what it found
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'existing': __apt_mirror_existing | default(none), 'oldest': __apt_mirror_oldest_snapshot | default(none),
                     'restore': __apt_mirror_restore_snapshots | default(none)} | to_json }}"
        mode: "0600"
"""


def read_step(tmp: Path, tasks: str, backup_dir: Path) -> tuple[dict, list[str]]:
    play = tmp / f"{tasks}.play.yml"
    play.write_text(READ.replace("TASKS", tasks))
    out = tmp / f"{tasks}.json"
    run = playbook(str(play), "-i", "localhost,", "-e", f"out={out}", "-e", f"apt_mirror_backup_dir={backup_dir}",
                   "-e", "ansible_python_interpreter=" + sys.executable, tmp=tmp)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text()), warnings(run)


def test_apt_mirror_reads_missing_folders_without_warnings(tmp_path: Path) -> None:
    backups = tmp_path / "backups"  # does not exist yet: no switch has happened
    found, warned = read_step(tmp_path, "read.yml", backups)
    assert warned == []
    assert found["oldest"] == ""
    watched = ["/etc/apt/sources.list", "/etc/apt/sources.list.d/ubuntu.sources", "/etc/apt/sources.list.d/debian.sources",
               "/etc/ssl/certs/ca-certificates.crt", "/etc/cloud/cloud.cfg", "/etc/apt/preferences.d/aiws-proposed",
               "/etc/cloud/cloud.cfg.d/99-aiws-apt-mirror.cfg"]
    assert found["existing"] == [p for p in watched if os.path.lexists(p)]

    found, warned = read_step(tmp_path, "restore.yml", backups)
    assert warned == [] and found["restore"] == []


def test_apt_mirror_finds_the_oldest_backup(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    for name in ("20260301T000000Z", "20250101T000000Z", ".partial"):
        (backups / "snapshots" / name / "files").mkdir(parents=True)
    (backups / "snapshots" / "20240101T000000Z").write_text("a file, not a snapshot")
    found, warned = read_step(tmp_path, "read.yml", backups)
    assert warned == []
    assert found["oldest"] == str(backups / "snapshots" / "20250101T000000Z")


BACKUP = """
- name: Back up with apt_mirror's backup step, then list the backups as its apply step does
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    __apt_mirror_files: []
    __apt_mirror_existing: []
    __apt_mirror_profile: test
  tasks:
    - name: Run the role's backup step
      ansible.builtin.include_role:
        name: apt_mirror
        tasks_from: backup.yml
    - name: Write what is there
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'snapshot': __apt_mirror_snapshot} | to_json }}"
        mode: "0600"
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the backup folders are made root-owned")
def test_apt_mirror_backs_up_into_a_missing_folder_without_warnings(tmp_path: Path) -> None:
    """The first switch: no snapshots/ yet (the find module warned there); a half-made backup of an
    interrupted run is removed the next time."""
    backups = tmp_path / "backups"
    play = tmp_path / "backup.play.yml"
    play.write_text(BACKUP)
    out = tmp_path / "backup.json"
    args = [str(play), "-i", "localhost,", "-e", f"out={out}", "-e", f"apt_mirror_backup_dir={backups}",
            "-e", "ansible_python_interpreter=" + sys.executable]
    run = playbook(*args, tmp=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert warnings(run) == []
    first = Path(json.loads(out.read_text())["snapshot"])
    assert (first / "manifest.json").is_file()
    half = backups / "snapshots" / ".20250101T000000000000Z.partial"
    (half / "files").mkdir(parents=True)
    run = playbook(*args, tmp=tmp_path)
    assert run.returncode == 0 and warnings(run) == [], run.stdout + run.stderr
    assert not half.exists() and first.is_dir()
