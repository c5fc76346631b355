"""roles/anaconda/files/fetch-installer.sh: resume, restart when resuming is impossible, stop on 404."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles/anaconda/files/fetch-installer.sh"
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is what the role installs and uses")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    www = tmp_path_factory.mktemp("www")
    payload = bytes(range(256)) * 4096  # 1 MiB
    (www / "installer.sh").write_bytes(payload)
    log = www.parent / "access.log"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/fixtures/serve.py"), "--root", str(www), "--port", "0",
                             "--log", str(log)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    base = proc.stdout.readline().split()[1].rstrip("/")
    yield base, payload, log
    proc.terminate()
    proc.wait(timeout=10)


def fetch(url: str, dest: Path, attempts: int = 3) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT), url, str(dest), str(attempts)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_partial_download_is_resumed(server, tmp_path: Path) -> None:
    base, payload, log = server
    dest = tmp_path / "installer.sh"
    dest.write_bytes(payload[:300_000])
    result = fetch(f"{base}/installer.sh", dest)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(payload).digest()
    last = log.read_text().splitlines()[-1].split()
    assert last[3] == "206" and int(last[4]) == len(payload) - 300_000, "resumed with a range request"


def test_file_that_cannot_be_resumed_is_fetched_again(server, tmp_path: Path) -> None:
    base, payload, _ = server
    dest = tmp_path / "installer.sh"
    dest.write_bytes(b"x" * (len(payload) + 10))  # longer than the real file: 416, start over
    result = fetch(f"{base}/installer.sh", dest)
    assert result.returncode == 0, result.stderr
    assert "starting over" in result.stderr
    assert dest.read_bytes() == payload


def test_missing_file_stops_at_once(server, tmp_path: Path) -> None:
    base, _, _ = server
    started = time.monotonic()
    result = fetch(f"{base}/nothing-here.sh", tmp_path / "x.sh", attempts=5)
    assert result.returncode != 0 and "HTTP 404" in result.stderr
    assert time.monotonic() - started < 5, "a 404 is not retried"
