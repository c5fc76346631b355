"""roles/anaconda/files/shared_tree.py: group, setgid, modes and default ACL below a prefix."""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles/anaconda/files/shared_tree.py"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changes group ownership: run as root (make test does)")


def tree(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize("others", ["none", "read"])
def test_tree_is_made_shared_then_left_alone(tmp_path: Path, others: str) -> None:
    group = grp.getgrgid(0).gr_name
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin/tool").write_text("#!/bin/sh\n")
    (prefix / "bin/tool").chmod(0o700)
    (prefix / "data.txt").write_text("x")
    (prefix / "data.txt").chmod(0o606)
    (prefix / "link").symlink_to("/etc/passwd")
    os.chmod(prefix / "bin", 0o700)

    dry = tree(["--prefix", str(prefix), "--group", group, "--others", others, "--check"])
    assert dry["changed"] == 3 and mode(prefix / "bin") == 0o700, "--check must change nothing"

    done = tree(["--prefix", str(prefix), "--group", group, "--others", others])
    assert done["changed"] == 3 and done["checked"] == 3, "links are neither counted nor changed"
    read = others == "read"
    assert mode(prefix / "bin") == (0o2775 if read else 0o2770)
    assert mode(prefix / "bin/tool") == (0o775 if read else 0o770)
    assert mode(prefix / "data.txt") == (0o664 if read else 0o660), "others never write"
    assert mode(Path("/etc/passwd")) == 0o644, "symbolic links are not followed"

    again = tree(["--prefix", str(prefix), "--group", group, "--others", others])
    assert again["changed"] == 0


def test_missing_prefix_is_reported_not_created(tmp_path: Path) -> None:
    result = tree(["--prefix", str(tmp_path / "absent"), "--group", grp.getgrgid(0).gr_name])
    assert result["changed"] == 0 and result["missing"] == str(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
