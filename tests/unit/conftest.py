# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest setup: make plugins/filter importable and give fixture helpers."""

from __future__ import annotations

import sys
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
