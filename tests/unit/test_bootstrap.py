"""The bootstrap refuses what it cannot work with in one line, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
    # (in a folder the unprivileged user can reach: pytest's own tmp_path is root-only). The
    # bootstrap runs from a copy there too: the checkout may be unreadable to others (a clone
    # under /root, or in a `mktemp -d` folder, is mode 0700).
    tmp_path = Path(tempfile.mkdtemp(prefix="aiws-bootstrap-"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    copy = tmp_path / "checkout"
    (copy / "scripts").mkdir(parents=True)
    shutil.copy2(BOOTSTRAP, copy / "scripts" / BOOTSTRAP.name)
    for name in ("requirements.txt", "requirements-test.txt", "requirements.yml"):
        shutil.copy2(ROOT / name, copy / name)
    for path in (copy, copy / "scripts", *copy.rglob("*")):
        path.chmod(path.stat().st_mode | 0o055)
    for tool in ("bash", "sh", "env", "dirname", "cat", "sha256sum", "cut", "grep", "id", "python3"):
        found = shutil.which(tool, path="/usr/local/bin:/usr/bin:/bin")
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    tmp_path.chmod(0o755)
    result = subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", f"PATH={bin_dir}", f"AIWS_VENV={tmp_path / 'v'}", "bash", str(copy / "scripts" / BOOTSTRAP.name), "--test"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    shutil.rmtree(tmp_path)
    line = one_line_refusal(result)
    assert "run as root" in line and "podman" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as make test runs it")
@pytest.mark.skipif(os.environ.get("AIWS_PRIVATE_CHECKOUT") == "1", reason="already running in the private copy")
def test_runs_from_a_checkout_others_cannot_read() -> None:
    """A root user's clone under /root or in `mktemp -d` is mode 0700: the tests that switch to an
    unprivileged user must not need to read the checkout."""
    private = Path(tempfile.mkdtemp(prefix="aiws-private-"))  # mode 0700, like mktemp -d
    try:
        copy = private / "checkout"
        shutil.copytree(ROOT, copy, symlinks=True,
                        ignore=shutil.ignore_patterns(".venv", ".git", ".cache", "reports", "__pycache__", ".pytest_cache"))
        assert private.stat().st_mode & 0o777 == 0o700
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests/unit/test_bootstrap.py"],
            cwd=copy, env=dict(os.environ, AIWS_PRIVATE_CHECKOUT="1"), capture_output=True, text=True, check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert "test_test_tools_without_root_are_refused PASSED" in result.stdout, result.stdout[-2000:]
    finally:
        shutil.rmtree(private)
