# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lookup aiws_run: who this run is, and whether another run of this controller is still alive."""

from __future__ import annotations

DOCUMENTATION = r"""
name: aiws_run
short_description: This ansible-playbook run's identity, or whether a run named in a host's lock is alive
description:
  - Without terms, returns this run as the preflight role records it in each host's run lock
    (C(run_id), C(pid) and C(pid_start) of the ansible-playbook process, C(started), C(user),
    C(controller), C(machine_id)).
  - With a run as its term (the holder of a host's lock), returns C(alive) or C(gone) when that run
    was started on this controller (same machine id; its process and start time are checked), and
    C(unknown) when another machine started it.
options:
  _terms:
    description: A run recorded in a lock (a dict with machine_id, pid, pid_start); none for this run.
    required: false
"""

EXAMPLES = r"""
- name: Who is this run
  ansible.builtin.set_fact:
    preflight_run: "{{ lookup('aiws.workstation.aiws_run') }}"

- name: Is the run that holds the lock still running here
  ansible.builtin.debug:
    msg: "{{ lookup('aiws.workstation.aiws_run', holder) }}"
"""

RETURN = r"""
_raw:
  description: This run (a dict), or alive / gone / unknown for the given run.
  type: raw
"""

import datetime as dt
import getpass
import multiprocessing
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _proc_start(pid: int) -> str:
    stat = _read(f"/proc/{pid}/stat")
    return stat.rsplit(")", 1)[1].split()[19] if stat else ""


def _playbook_pid() -> int:
    """The ansible-playbook process: lookups run in its forked workers."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getpid()


def _started(start_ticks: str) -> float:
    btime = next((line.split()[1] for line in _read("/proc/stat").splitlines() if line.startswith("btime ")), "")
    if not (btime and start_ticks):
        return 0.0
    return int(btime) + int(start_ticks) / os.sysconf("SC_CLK_TCK")


def this_run() -> dict[str, Any]:
    pid = _playbook_pid()
    start = _proc_start(pid)
    machine = _read("/etc/machine-id")
    started = _started(start)
    user = getpass.getuser()
    if os.environ.get("SUDO_USER") and os.environ["SUDO_USER"] != user:
        user = f"{user} (sudo from {os.environ['SUDO_USER']})"
    return {
        "run_id": f"{(machine or socket.gethostname())[:12]}-{pid}-{start or 0}",
        "pid": pid,
        "pid_start": start,
        "started": round(started),
        "started_text": dt.datetime.fromtimestamp(started).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if started else "",
        "user": user,
        "controller": socket.gethostname(),
        "machine_id": machine,
    }


def run_state(holder: Mapping[str, Any]) -> str:
    if not holder.get("machine_id") or holder.get("machine_id") != _read("/etc/machine-id"):
        return "unknown"
    try:
        pid = int(holder.get("pid") or 0)
    except (TypeError, ValueError):
        return "gone"
    if pid <= 0:
        return "gone"
    if holder.get("pid_start"):
        return "alive" if _proc_start(pid) == str(holder["pid_start"]) else "gone"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "alive"
    return "alive"


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[Any]:
        if not terms:
            return [this_run()]
        out = []
        for term in terms:
            if not isinstance(term, Mapping):
                raise AnsibleLookupError(f"aiws_run: a term must be a run recorded in a lock (a dict); got {term!r}")
            out.append(run_state(term))
        return out
