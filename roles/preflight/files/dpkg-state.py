#!/usr/bin/env python3
# Copyright (c) aiws contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What state dpkg is in, before any apt task of the run touches it.

  dpkg-state.py [--wait SECONDS] [--admindir /var/lib/dpkg]

Finds the process holding dpkg's locks (/var/lib/dpkg/lock-frontend, then lock; fcntl locks, as
apt and dpkg take them, read with F_GETLK without taking them). With --wait, waits up to that
many seconds for the holder to finish, as apt's DPkg::Lock::Timeout would. Then, while the lock
is free, reads `dpkg --audit` (packages left unpacked, half-configured or half-installed) and the
journal of an interrupted dpkg run (/var/lib/dpkg/updates/, which makes apt refuse with
"dpkg was interrupted"). Prints one JSON object:
  {"holder": {"pid", "command"} | null, "waited": s, "audit": "...", "journal": n, "interrupted": bool}
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LOCKS = ("lock-frontend", "lock")


def holder(admindir: Path) -> dict[str, Any] | None:
    for path in (str(admindir / name) for name in LOCKS):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            probe = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
            l_type, _whence, _start, _len, pid = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, probe))
        finally:
            os.close(fd)
        if l_type != fcntl.F_UNLCK:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                command = ""
            return {"pid": pid, "command": command or "?", "lock": path}
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--wait", type=int, default=0, help="seconds to wait for another apt or dpkg run")
    p.add_argument("--admindir", type=Path, default=Path("/var/lib/dpkg"), help="dpkg's database (as dpkg --admindir)")
    args = p.parse_args(argv)
    started = time.monotonic()
    first = held = holder(args.admindir)
    while held and time.monotonic() - started < args.wait:
        time.sleep(1)
        held = holder(args.admindir)
    out: dict[str, Any] = {"holder": held, "first_holder": first, "waited": round(time.monotonic() - started),
                           "audit": "", "journal": 0, "interrupted": False}
    if held is None:
        audit = subprocess.run(["dpkg", f"--admindir={args.admindir}", "--audit"], capture_output=True, text=True,
                               env=dict(os.environ, LC_ALL="C"), check=False)
        out["audit"] = (audit.stdout + audit.stderr).strip()
        updates = args.admindir / "updates"
        out["journal"] = len([e for e in updates.iterdir() if e.name.isdigit()]) if updates.is_dir() else 0
        out["interrupted"] = bool(out["audit"] or out["journal"])
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
