"""The bootstrap refuses what it cannot work with in one line, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "scripts" / "bootstrap.sh"


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_old_python_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "python3.8"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in *platform*) echo 3.8.10 ;; *) exit 1 ;; esac\n'
    )
    fake.chmod(0o755)
    result = subprocess.run([str(BOOTSTRAP)], env=dict(os.environ, AIWS_PYTHON=str(fake), AIWS_VENV=str(tmp_path / "v")),
                            capture_output=True, text=True, check=False)
    line = one_line_refusal(result)
    assert "3.8.10 is too old" in line and "3.11" in line


def test_missing_python_is_refused(tmp_path: Path) -> None:
    result = subprocess.run([str(BOOTSTRAP)], env=dict(os.environ, AIWS_PYTHON="python3.99-nowhere", AIWS_VENV=str(tmp_path / "v")),
                            capture_output=True, text=True, check=False)
    assert "install Python 3.11 or newer" in one_line_refusal(result)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the bootstrap as an unprivileged user")
def test_test_tools_without_root_are_refused() -> None:
    # A PATH with the shell tools the bootstrap uses but none of podman, runc, debootstrap ...
    # (in a folder the unprivileged user can reach: pytest's own tmp_path is root-only)
    tmp_path = Path(tempfile.mkdtemp(prefix="aiws-bootstrap-"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "env", "dirname", "cat", "sha256sum", "cut", "grep", "id", "python3"):
        found = shutil.which(tool, path="/usr/local/bin:/usr/bin:/bin")
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    # The script itself from there too: the checkout may sit in a folder only root can enter (mktemp -d, /root).
    (tmp_path / "scripts").mkdir()
    bootstrap = tmp_path / "scripts" / "bootstrap.sh"
    shutil.copy(BOOTSTRAP, bootstrap)
    tmp_path.chmod(0o755)
    result = subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", f"PATH={bin_dir}", f"AIWS_VENV={tmp_path / 'v'}", "bash", str(bootstrap), "--test"],
        capture_output=True, text=True, check=False,
    )
    shutil.rmtree(tmp_path)
    line = one_line_refusal(result)
    assert "run as root" in line and "podman" in line
