"""The fleet report's HTML page in a real headless browser (Debian's chromium).

Chromium is installed by tests/browser/ensure-chromium.sh when missing (root, Debian's archive).
The page is loaded from a file: its DOM must hold the fleet table with a failing row, and the
rendered screenshot must show the failing row's red and the passing row's green.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.aiws.workstation.plugins.plugin_utils import checks, report

ROOT = Path(__file__).resolve().parents[2]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    run = subprocess.run([str(ROOT / "tests/browser/ensure-chromium.sh")], capture_output=True, text=True, timeout=1200, check=False)
    if run.returncode != 0:
        pytest.fail(f"chromium is missing and could not be installed: {run.stderr[-2000:]}")
    return run.stdout.strip().splitlines()[-1]


def _browser(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False)


def _fleet() -> dict[str, Any]:
    plan = {"container": False, "gpus": [{"name": "NVIDIA GeForce RTX 4090", "pci_id": "10de:2684", "arch": "ada",
                                          "compute_capability": "8.9"}],
            "stack": {"driver_branch": 580, "driver_flavor": "open", "cuda_version": "12.4", "cudnn_version": "9.10"}}

    def item(check: str, status: str, hint: str | None = None) -> dict[str, Any]:
        return {"check": check, "title": checks.CHECK_TITLES[check], "status": status, "expected": "e",
                "observed": "o", "hint": hint}

    good = checks.host_result("ws-good", plan, {}, [item("nvidia_smi", "pass"), item("nvcc_version", "pass")])
    bad = checks.host_result("ws-bad", plan, {}, [
        item("nvidia_smi", "fail", "nouveau is still loaded: blacklist it, run update-initramfs -u and reboot."),
        item("nvcc_version", "pass"),
    ])
    return report.fleet_report(["ws-good", "ws-bad"], {"ws-good": good, "ws-bad": bad}, {}, "2026-11-22", "test")


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what chromium writes): (width, height, rows of RGB(A) bytes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6) and body[12] == 0, "unexpected PNG format"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, channels, rows


def _has_color(rows: list[bytes], channels: int, rgb: tuple[int, int, int], tolerance: int = 6) -> bool:
    for row in rows:
        for x in range(0, len(row), channels):
            if all(abs(row[x + k] - rgb[k]) <= tolerance for k in range(3)):
                return True
    return False


def test_report_page_dom_has_the_table_and_the_failing_row(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "aiws-report.html"
    page.write_text(report.render(_fleet(), "html"))
    run = _browser(chromium, tmp_path, "--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert '<table id="fleet">' in dom
    assert dom.count('<tr class="host ') == 2
    assert '<tr class="host fail" data-host="ws-bad">' in dom
    assert '<tr class="host pass" data-host="ws-good">' in dom
    assert '<tr class="problem" data-host="ws-bad">' in dom
    assert "nouveau is still loaded: blacklist it" in dom
    assert "2 host(s): 1 passed, 1 failed a check, 0 not verified." in dom


def test_report_page_renders_the_failing_row_red(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "aiws-report.html"
    page.write_text(report.render(_fleet(), "html"))
    shot = tmp_path / "shot.png"
    run = _browser(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,1000", "--hide-scrollbars",
                   page.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    width, channels, rows = _png_pixels(shot.read_bytes())
    assert width == 1280
    assert _has_color(rows, channels, (0xFD, 0xEC, 0xEA)), "no failing-row background (#fdecea) rendered"
    assert _has_color(rows, channels, (0xB3, 0x26, 0x1E)), "no failing-row marker (#b3261e) rendered"
    assert _has_color(rows, channels, (0x1B, 0x7F, 0x3B)), "no passing-row marker (#1b7f3b) rendered"
