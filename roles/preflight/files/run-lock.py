#!/usr/bin/env python3
# Copyright (c) aiws contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run lock of one host: one aiws run at a time changes it.

  run-lock.py take    --file F --run JSON [--takeover RUN_ID]
  run-lock.py release --file F --run JSON
  run-lock.py show    --file F

JSON describes this run: run_id, pid, started (epoch), started_text, user, controller (host name),
machine_id (the controller's /etc/machine-id). The lock file holds that, plus the host's boot
(boot_id and PID 1's start) and when it was taken. Every change happens under flock() on the lock
file's folder and is written whole (temporary file, fsync, rename), so two runs that start together
cannot both take it, and a crash never leaves half a lock.

`take` prints one JSON object, {"state": ..., "holder": {...}, "reason": ...}:
  taken       the lock was free (or the file was unreadable: it is replaced, the reason says so)
  reentered   this run holds it already
  taken_over  a stale lock was replaced: the host rebooted since it was taken, its process is gone
              (runs from this host itself can be checked here), or --takeover named it
  held        another run holds it and this host cannot tell whether it is still alive: the
              controller decides (it can check a run of its own machine) and may call again with
              --takeover RUN_ID, which replaces the lock only while it still names that run
`release` removes the lock if this run holds it. `show` prints the holder without changing anything.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def proc_start(pid: int) -> str:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), '' if it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def this_boot() -> str:
    """The kernel's boot id and PID 1's start: a reboot, or a restarted container, changes it."""
    return f"{_read('/proc/sys/kernel/random/boot_id')}/{proc_start(1)}"


def alive(pid: Any, start: Any) -> bool:
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    return pid > 0 and bool(start) and proc_start(pid) == str(start)


@contextlib.contextmanager
def guarded(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load(path: Path) -> tuple[dict[str, Any] | None, str]:
    if not path.exists():
        return None, ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return None, f"the lock file was unreadable ({err}); replaced"
    if not isinstance(data, dict) or not data.get("run_id"):
        return None, "the lock file named no run; replaced"
    return data, ""


def write(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".run-lock.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def stale_reason(holder: dict[str, Any], takeover: str | None) -> str:
    if holder.get("boot") and holder["boot"] != this_boot():
        return "the host has restarted since that run took the lock"
    if holder.get("machine_id") and holder["machine_id"] == _read("/etc/machine-id"):
        # The run's controller is this host (a local run): its process can be checked here.
        if not alive(holder.get("pid"), holder.get("pid_start")):
            return f"its process {holder.get('pid')} is gone"
        return ""
    if takeover and takeover == holder.get("run_id"):
        return "taken over: the controller found that run gone, or was told to take over"
    return ""


def take(path: Path, run: dict[str, Any], takeover: str | None) -> dict[str, Any]:
    with guarded(path):
        holder, note = load(path)
        if holder and holder["run_id"] == run["run_id"]:
            return {"state": "reentered", "holder": holder}
        reason = note
        if holder:
            reason = stale_reason(holder, takeover)
            if not reason:
                return {"state": "held", "holder": holder}
        mine = dict(run, boot=this_boot(), taken=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    previous=holder or None, previous_reason=reason or None)
        write(path, mine)
        return {"state": "taken_over" if holder else "taken", "holder": mine, "previous": holder, "reason": reason}


def release(path: Path, run: dict[str, Any]) -> dict[str, Any]:
    with guarded(path):
        holder, _problem = load(path)
        if holder is None:
            return {"state": "absent"}
        if holder["run_id"] != run["run_id"]:
            return {"state": "not_ours", "holder": holder}
        path.unlink()
        return {"state": "released"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("action", choices=["take", "release", "show"])
    p.add_argument("--file", required=True, type=Path)
    p.add_argument("--run", default="{}", help="this run, as JSON")
    p.add_argument("--takeover", default=None, help="run_id of a lock to replace")
    args = p.parse_args(argv)
    run = json.loads(args.run)
    if args.action in ("take", "release") and not run.get("run_id"):
        print("run-lock.py: --run must name a run_id", file=sys.stderr)
        return 2
    if args.action == "take":
        out = take(args.file, run, args.takeover)
    elif args.action == "release":
        out = release(args.file, run)
    else:
        holder, note = load(args.file)
        out = {"state": "held" if holder else "free", "holder": holder,
               "reason": note or (stale_reason(holder, None) if holder else "")}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
