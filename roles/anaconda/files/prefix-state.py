#!/usr/bin/env python3
# Copyright (c) aiws contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What an installation prefix holds, for the anaconda role's install / repair / update / keep choice.

  prefix-state.py --prefix /opt/anaconda3

Prints one JSON object:
  exists, is_dir     the prefix
  entries, sample    how many names it holds besides aiws's marks and lost+found, and a few of them
  conda              PREFIX/bin/conda exists
  installed          PREFIX/.aiws-install.json: what aiws installed there and finished (null if none)
  installing         PREFIX/.aiws-installing.json: an installer run aiws began and did not finish
  free_kb, on        free space (KiB, for root) of the filesystem that holds or will hold the prefix,
                     and the existing path it was read from (the prefix or its nearest parent)
  mount              the mount point of that filesystem
Both marks live inside the prefix, so they travel with it (a reinstalled host keeps /opt).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

INSTALLED = ".aiws-install.json"
INSTALLING = ".aiws-installing.json"
IGNORED = {INSTALLED, INSTALLING, "lost+found"}


def mark(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"unreadable": str(path)} if path.exists() else None
    return data if isinstance(data, dict) else {"unreadable": str(path)}


def mount_point(path: Path) -> str:
    path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--prefix", required=True, type=Path)
    prefix = p.parse_args(argv).prefix
    on = prefix
    while not on.exists() and on != on.parent:
        on = on.parent
    st = os.statvfs(on)
    out: dict[str, Any] = {
        "exists": prefix.exists() or prefix.is_symlink(),
        "is_dir": prefix.is_dir(),
        "entries": 0, "sample": [], "conda": False, "installed": None, "installing": None,
        "free_kb": st.f_bavail * st.f_frsize // 1024, "on": str(on), "mount": mount_point(on),
    }
    if out["is_dir"]:
        names = sorted(n for n in os.listdir(prefix) if n not in IGNORED)
        out.update(entries=len(names), sample=names[:8], conda=(prefix / "bin/conda").exists(),
                   installed=mark(prefix / INSTALLED), installing=mark(prefix / INSTALLING))
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
