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


def fetch(url: str, dest: Path, attempts: int = 3, sha256: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT), url, str(dest), str(attempts), *([sha256] if sha256 else [])],
                          capture_output=True, text=True, timeout=120, check=False)


def test_partial_download_is_resumed(server, tmp_path: Path) -> None:
    base, payload, log = server
    dest = tmp_path / "installer.sh"
    dest.write_bytes(payload[:300_000])
    result = fetch(f"{base}/installer.sh", dest)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(payload).digest()
    # serve.py writes its log line once the body has gone out: curl can be done before it is written.
    deadline = time.monotonic() + 10
    while not log.exists() or not log.read_text().strip():
        assert time.monotonic() < deadline, "serve.py wrote no access log line"
        time.sleep(0.05)
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


def test_a_complete_file_is_not_fetched_again(server, tmp_path: Path) -> None:
    """With the checksum (as the role passes it), a file that has it costs no request: curl would get
    416 for a range past its end and start over."""
    base, payload, log = server
    dest = tmp_path / "installer.sh"
    dest.write_bytes(payload)
    before = log.read_text() if log.exists() else ""
    result = fetch(f"{base}/installer.sh", dest, sha256=hashlib.sha256(payload).hexdigest())
    assert result.returncode == 0, result.stderr
    assert "is complete" in result.stdout
    time.sleep(0.2)
    assert (log.read_text() if log.exists() else "") == before, "no request for a complete file"


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock (util-linux) takes the lock")
def test_a_second_download_waits_for_the_first(server, tmp_path: Path) -> None:
    """A download still running (the driver stage's background one, or an earlier run's) holds the folder's
    lock: a second one waits for it, then finds the file complete."""
    base, payload, _ = server
    dest = tmp_path / "installer.sh"
    holder = subprocess.Popen(["flock", str(tmp_path), "sh", "-c", f"sleep 2; cat > {dest}"], stdin=subprocess.PIPE)
    time.sleep(0.5)
    started = time.monotonic()
    waiter = subprocess.Popen(["sh", str(SCRIPT), f"{base}/installer.sh", str(dest), "3", hashlib.sha256(payload).hexdigest()],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdin is not None
    holder.stdin.write(payload)
    holder.stdin.close()
    holder.wait(timeout=30)
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert time.monotonic() - started >= 1, "the second download did not wait for the lock"
    assert "is complete" in out, out + err
    assert dest.read_bytes() == payload
