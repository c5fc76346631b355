# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest setup: make plugins/filter importable and give fixture helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILTER_DIR = ROOT / "plugins" / "filter"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

if str(FILTER_DIR) not in sys.path:
    sys.path.insert(0, str(FILTER_DIR))


def read_lspci(name: str) -> str:
    """Text of tests/unit/fixtures/lspci/<name>.txt."""
    return (FIXTURES / "lspci" / f"{name}.txt").read_text(encoding="utf-8")


@pytest.fixture
def lspci() -> object:
    """Fixture returning the reader of lspci fixture files."""
    return read_lspci


@pytest.fixture(scope="session")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict]]:
    """tests/fixtures/fx_anaconda.py's installers and terms endpoints, served on a free loopback port.

    Yields the base URL, the web root and the installers' manifest (installers.json)."""
    www = tmp_path_factory.mktemp("www")
    subprocess.run([sys.executable, str(ROOT / "tests/fixtures/fx_anaconda.py"), "build", str(www / "anaconda")],
                   check=True, capture_output=True)
    manifest = json.loads((www / "anaconda/installers.json").read_text())
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/fixtures/serve.py"), "--root", str(www), "--port", "0",
                               "--log", str(www.parent / "serve.log")], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    base = server.stdout.readline().split()[1].rstrip("/")
    yield base, www, manifest
    server.terminate()
    server.wait(timeout=10)
