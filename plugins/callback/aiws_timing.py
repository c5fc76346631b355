# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""aiws_timing: record how long each play, role and task took, and what each host did, as JSON."""

from __future__ import annotations

DOCUMENTATION = r"""
name: aiws_timing
type: aggregate
short_description: per-play, per-role and per-task durations and per-host counts, written as JSON
description:
  - Records, for one C(ansible-playbook) run, the wall time of every play (a stage of site.yml), of
    every task (from its start to the next task's start, as ansible.posix.profile_tasks measures it),
    each host's time in each task, and per host the tasks run, changed and skipped and the module
    calls made on it (loop items counted one by one; controller-side actions such as C(set_fact),
    C(assert) and C(debug) are not module calls).
  - Writes the record when the playbook ends, to O(output_file). Prints nothing.
  - scripts/bench.py enables it for C(make bench); any run can, with
    C(ANSIBLE_CALLBACKS_ENABLED=aiws.workstation.aiws_timing AIWS_TIMING_FILE=run.json).
requirements:
  - enabled through callbacks_enabled
options:
  output_file:
    description: Where the JSON record is written. Empty, nothing is written.
    type: path
    default: ""
    env:
      - name: AIWS_TIMING_FILE
    ini:
      - section: callback_aiws_timing
        key: output_file
"""

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

# Actions that run on the controller only: no module is sent to the host.
CONTROLLER_ACTIONS = frozenset({
    "add_host", "assert", "debug", "fail", "group_by", "import_role", "import_tasks", "include_role",
    "include_tasks", "include_vars", "meta", "pause", "set_fact", "set_stats", "validate_argument_spec",
})


def short_action(action: str) -> str:
    """'ansible.builtin.set_fact' -> 'set_fact'; other collections keep their name."""
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def stage_of(play_name: str) -> str:
    """The stage a play belongs to: the part of its name before ' | ' (site.yml's plays are so named)."""
    return play_name.split(" | ", 1)[0].strip() or play_name


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "aiws_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = time.time()
        self.playbook = ""
        self.plays: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.hosts: dict[str, dict[str, Any]] = {}
        self.host_start: dict[tuple[str, str], float] = {}
        self.task_by_uuid: dict[str, dict[str, Any]] = {}
        self.open_task: dict[str, Any] | None = None
        self.open_play: dict[str, Any] | None = None

    # -- bookkeeping -------------------------------------------------------------------------
    def _close_task(self, now: float) -> None:
        if self.open_task is not None:
            self.open_task["duration"] = round(now - self.started - self.open_task["start"], 3)
            self.open_task = None

    def _close_play(self, now: float) -> None:
        self._close_task(now)
        if self.open_play is not None:
            self.open_play["duration"] = round(now - self.started - self.open_play["start"], 3)
            self.open_play = None

    def _host(self, name: str) -> dict[str, Any]:
        # ok counts unchanged results only (ansible's recap counts changed ones under ok too).
        return self.hosts.setdefault(name, {
            "ok": 0, "changed": 0, "skipped": 0, "failed": 0, "unreachable": 0, "ignored": 0,
            "tasks_run": 0, "module_calls": 0, "actions": {},
        })

    def _start_task(self, task: Any, handler: bool) -> None:
        now = time.time()
        self._close_task(now)
        role = getattr(task, "_role", None)
        play = self.open_play or {"name": "", "stage": ""}
        record = {
            "play": play["name"], "stage": play["stage"], "role": role.get_name() if role else "",
            "name": task.get_name(), "action": short_action(task.action or ""), "handler": handler,
            "start": round(now - self.started, 3), "duration": 0.0, "hosts": {},
        }
        self.tasks.append(record)
        self.task_by_uuid[task._uuid] = record
        self.open_task = record

    def _result(self, result: Any, status: str) -> None:
        now = time.time()
        host = result.host.get_name()
        task = result.task
        record = self.task_by_uuid.get(task._uuid)
        data = result.result if hasattr(result, "result") else result._result
        items = data.get("results") if isinstance(data.get("results"), list) else None
        action = short_action(task.action or "")
        if items is not None:
            calls = sum(1 for item in items if isinstance(item, dict) and not item.get("skipped"))
        else:
            calls = 0 if status in ("skipped", "unreachable") else 1
        if action in CONTROLLER_ACTIONS:
            calls = 0
        started = self.host_start.pop((host, task._uuid), now)
        if record is not None:
            record["hosts"][host] = {"status": status, "duration": round(now - started, 3),
                                     "items": len(items) if items is not None else None, "calls": calls}
        counts = self._host(host)
        counts[status] += 1
        if status not in ("skipped", "unreachable"):
            counts["tasks_run"] += 1
        counts["module_calls"] += calls
        if calls:
            counts["actions"][action] = counts["actions"].get(action, 0) + calls

    # -- events ------------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook: Any) -> None:
        self.started = time.time()
        self.playbook = os.path.basename(getattr(playbook, "_file_name", "") or "")

    def v2_playbook_on_play_start(self, play: Any) -> None:
        now = time.time()
        self._close_play(now)
        name = play.get_name()
        self.open_play = {"name": name, "stage": stage_of(name), "start": round(now - self.started, 3), "duration": 0.0}
        self.plays.append(self.open_play)

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._start_task(task, handler=False)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._start_task(task, handler=True)

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self.host_start[(host.get_name(), task._uuid)] = time.time()

    def v2_runner_on_ok(self, result: Any) -> None:
        data = result.result if hasattr(result, "result") else result._result
        self._result(result, "changed" if data.get("changed") else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        now = time.time()
        self._close_play(now)
        path = self.get_option("output_file")
        if not path:
            return
        stages: dict[str, float] = {}
        for play in self.plays:
            stages[play["stage"]] = round(stages.get(play["stage"], 0.0) + play["duration"], 3)
        roles: dict[str, float] = {}
        for task in self.tasks:
            key = f"{task['stage']}/{task['role'] or '-'}"
            roles[key] = round(roles.get(key, 0.0) + task["duration"], 3)
        changed = [
            {"host": host, "stage": task["stage"], "role": task["role"], "task": task["name"]}
            for task in self.tasks for host, res in task["hosts"].items() if res["status"] == "changed"
        ]
        record = {
            "schema": 1, "playbook": self.playbook, "started": round(self.started, 3),
            "wall": round(now - self.started, 3), "stages": stages, "roles": roles, "plays": self.plays,
            "hosts": self.hosts, "changed": changed, "tasks": self.tasks,
        }
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            json.dump(record, out, indent=1, sort_keys=False)
            out.write("\n")
