"""The aiws_timing callback (plugins/callback): plays, tasks and per-host counts of one real run.

A two-play playbook runs on localhost through a local connection (nothing outside a temporary
directory changes) with the callback enabled, and the JSON it writes is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook") or ""

pytestmark = pytest.mark.skipif(not ANSIBLE_PLAYBOOK, reason="ansible-playbook not found (scripts/bootstrap.sh --test)")

PLAYBOOK = """
- name: Alpha | first stage
  hosts: all
  gather_facts: false
  tasks:
    - name: A module call that changes nothing
      ansible.builtin.command: "true"
      changed_when: false
    - name: A fact, set on the controller
      ansible.builtin.set_fact:
        timing_x: 1
    - name: Three loop items, one skipped
      ansible.builtin.command: "sleep 0.{{ item }}"
      loop: [1, 2, 3]
      when: item != 2
      changed_when: false
    - name: A skipped task
      ansible.builtin.command: "false"
      when: false
- name: Beta | second stage
  hosts: all
  gather_facts: false
  tasks:
    - name: A change
      ansible.builtin.file:
        path: "{{ scratch }}/made"
        state: touch
        mode: "0600"
    - name: A failure that is ignored
      ansible.builtin.command: "false"
      ignore_errors: true  # noqa: ignore-errors
"""


def test_records_stages_tasks_and_per_host_counts(tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "inv.yml").write_text(
        "all:\n  hosts:\n    timinghost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n")
    out = tmp_path / "timing" / "run.json"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_CALLBACKS_ENABLED="aiws.workstation.aiws_timing", AIWS_TIMING_FILE=str(out), ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "inv.yml"), str(tmp_path / "play.yml"),
                          "-e", f"scratch={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    record = json.loads(out.read_text())

    assert record["playbook"] == "play.yml"
    assert [p["stage"] for p in record["plays"]] == ["Alpha", "Beta"]
    assert set(record["stages"]) == {"Alpha", "Beta"}
    assert all(p["duration"] > 0 for p in record["plays"])
    assert record["wall"] >= sum(record["stages"].values()) - 0.01
    # The loop slept 0.1 + 0.3 s: its task took at least that long, for the task and the host.
    loop = next(t for t in record["tasks"] if t["name"] == "Three loop items, one skipped")
    assert loop["duration"] >= 0.4
    assert loop["hosts"]["timinghost"] == {"status": "ok", "duration": loop["hosts"]["timinghost"]["duration"],
                                           "items": 3, "calls": 2}
    assert loop["hosts"]["timinghost"]["duration"] >= 0.4

    host = record["hosts"]["timinghost"]
    # Run: command, set_fact, loop, file, the ignored failure; skipped: one task.
    assert (host["ok"], host["changed"], host["skipped"], host["ignored"], host["failed"]) == (3, 1, 1, 1, 0)
    assert host["tasks_run"] == 5
    # Module calls: command 1 + loop 2 + ignored command 1 = 4 command, 1 file; set_fact is no module call.
    assert host["actions"] == {"command": 4, "file": 1}
    assert host["module_calls"] == 5
    assert record["changed"] == [{"host": "timinghost", "stage": "Beta", "role": "", "task": "A change"}]


def test_writes_nothing_without_an_output_file(tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text("- name: Only | one\n  hosts: all\n  gather_facts: false\n  tasks: []\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_CALLBACKS_ENABLED="aiws.workstation.aiws_timing", AIWS_TIMING_FILE="", ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    run = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["play.yml", "tmp"]
