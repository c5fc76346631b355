# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest setup: make plugins/filter importable and give fixture helpers."""

from __future__ import annotations

import os
import subprocess
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


def run_playbook(tmp: Path, inventory: Path, *extra: str, playbook: str = "verify.yml") -> subprocess.CompletedProcess[str]:
    """ansible-playbook from the repository root (its ansible.cfg), facts in memory, scratch in tmp,
    the report (if any) into tmp/reports."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(inventory),
            "-e", f"report_dir={tmp / 'reports'}", *extra]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
