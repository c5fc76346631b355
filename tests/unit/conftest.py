# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest setup: make the collection and plugins/filter importable and give fixture helpers."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILTER_DIR = ROOT / "plugins" / "filter"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# The checkout as the collection aiws.workstation (ansible_collections is a namespace package: this
# portion joins the ansible bundle's), so the filters' own imports of its plugin_utils work here too.
for path in (ROOT / "collections", FILTER_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def read_lspci(name: str) -> str:
    """Text of tests/unit/fixtures/lspci/<name>.txt."""
    return (FIXTURES / "lspci" / f"{name}.txt").read_text(encoding="utf-8")


@pytest.fixture
def lspci() -> object:
    """Fixture returning the reader of lspci fixture files."""
    return read_lspci


class RecordingProxy:
    """A forward HTTP proxy on loopback that answers every request itself (200, or 404 for paths ending in
    /missing) and records the target and the Proxy-Authorization user:password of each."""

    def __init__(self) -> None:
        import base64
        import http.server
        import threading

        seen: list[dict[str, str]] = []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                auth = self.headers.get("Proxy-Authorization", "")
                user = base64.b64decode(auth.split()[1]).decode() if auth.startswith("Basic ") else ""
                seen.append({"target": self.path, "auth": user})
                self.send_response(404 if self.path.endswith("/missing") else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def recording_proxy():
    """A RecordingProxy for the module's tests; its address is proxy.address (host:port)."""
    proxy = RecordingProxy()
    yield proxy
    proxy.server.shutdown()


@contextlib.contextmanager
def serve_www(www: Path, *args: str) -> Iterator[str]:
    """tests/fixtures/serve.py on a free loopback port for the folder www (extra args: --delay, --fail);
    yields its base URL, without a trailing slash."""
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/fixtures/serve.py"), "--root", str(www), "--port", "0",
                               "--log", str(www.parent / f"serve-{www.name}.log"), *args], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().split()[1].rstrip("/")
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict]]:
    """tests/fixtures/fx_anaconda.py's installers and terms endpoints, served on a free loopback port.

    Yields the base URL, the web root and the installers' manifest (installers.json)."""
    www = tmp_path_factory.mktemp("www")
    subprocess.run([sys.executable, str(ROOT / "tests/fixtures/fx_anaconda.py"), "build", str(www / "anaconda")],
                   check=True, capture_output=True)
    manifest = json.loads((www / "anaconda/installers.json").read_text())
    with serve_www(www) as base:
        yield base, www, manifest


def run_playbook(tmp: Path, inventory: Path, *extra: str, playbook: str = "verify.yml") -> subprocess.CompletedProcess[str]:
    """ansible-playbook from the repository root (its ansible.cfg), facts in memory, scratch in tmp,
    the report (if any) into tmp/reports."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(inventory),
            "-e", f"report_dir={tmp / 'reports'}", *extra]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def load_file(name: str, path: Path) -> ModuleType:
    """A Python file that is no importable module (a role's script or library, a tool, a fixture
    builder) loaded as module `name`, registered in sys.modules (dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
