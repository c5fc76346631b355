"""preflight's aiws_url_probe module: every URL at once, short timeouts, apt's or the environment's proxy.

The module's functions are called directly against loopback servers: a static server (tests/fixtures/
serve.py, with a slow path) and a forward proxy that answers every request itself and records it (conftest.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import load_file, serve_www

ROOT = Path(__file__).resolve().parents[2]


probe = load_file("aiws_url_probe", ROOT / "plugins/modules/aiws_url_probe.py")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    www = tmp_path_factory.mktemp("www")
    (www / "repo").mkdir()
    (www / "repo/InRelease").write_text("Origin: test\n")
    (www / "slow").mkdir()
    (www / "slow/file").write_text("late\n")
    with serve_www(www, "--delay", "/slow/=2") as base:
        yield base


def test_apt_proxy_settings_are_read_from_apt_config_dump() -> None:
    dump = ('Acquire::http::Proxy "http://cache:3142/";\n'
            'Acquire::https::Proxy "DIRECT";\n'
            'Acquire::http::Proxy::mirror.lab.example "DIRECT";\n'
            'Acquire::Retries "3";\n')
    assert probe.apt_proxy_config(dump) == {
        "http": "http://cache:3142/", "https": "DIRECT", "http::mirror.lab.example": "DIRECT"}


@pytest.mark.parametrize(("url", "via", "apt", "env", "expected"), [
    ("http://a.example/x", "apt", {"http": "http://cache:3142/"}, {}, "http://cache:3142/"),
    # apt: the host-specific setting first, DIRECT means none
    ("http://a.example/x", "apt", {"http": "http://cache:3142/", "http::a.example": "DIRECT"}, {}, ""),
    # apt: https falls back to the http settings (apt-transport-https(1))
    ("https://a.example/x", "apt", {"http": "http://cache:3142/"}, {}, "http://cache:3142/"),
    ("https://a.example/x", "apt", {"http": "http://cache:3142/", "https": "DIRECT"}, {}, ""),
    # apt without settings, and everything else: the environment, no_proxy honoured
    ("https://a.example/x", "apt", {}, {"https_proxy": "http://env:8080"}, "http://env:8080"),
    ("https://a.example/x", "direct", {"https": "http://cache:3142/"}, {"https_proxy": "http://env:8080"}, "http://env:8080"),
    ("https://pkgs.a.example/x", "direct", {}, {"https_proxy": "http://env:8080", "no_proxy": "localhost,.a.example"}, ""),
    ("http://a.example/x", "direct", {}, {"HTTP_PROXY": "http://env:8080"}, "http://env:8080"),
    ("http://a.example/x", "direct", {}, {}, ""),
])
def test_the_proxy_is_the_one_the_downloading_tool_uses(url: str, via: str, apt: dict[str, str], env: dict[str, str],
                                                          expected: str) -> None:
    assert probe.proxy_for(url, via, apt, env) == expected


def test_probes_run_at_once_and_name_each_failure(web: str) -> None:
    urls = [
        {"url": f"{web}/repo/InRelease", "set_by": "cuda_toolkit_repo_base"},
        {"url": f"{web}/repo/missing", "set_by": "aiws_mirror_custom.pypi"},
        {"url": f"{web}/slow/file", "set_by": "slow one"},
        {"url": f"{web}/slow/file?2", "set_by": "slow two"},
        {"url": "http://127.0.0.1:9/x", "set_by": "refused"},
        {"url": "https://mirror.invalid/x", "set_by": "unresolvable"},
    ]
    started = time.monotonic()
    results = probe.run_probes(urls, timeout=1, workers=16, env={}, apt={})
    elapsed = time.monotonic() - started
    by = {r["set_by"]: r for r in results}
    assert by["cuda_toolkit_repo_base"]["ok"] and by["cuda_toolkit_repo_base"]["status"] in (200, 206)
    assert by["aiws_mirror_custom.pypi"]["error"] == "HTTP 404 Not Found"
    assert by["slow one"]["error"] == "no answer within 1 s" and by["slow two"]["error"] == "no answer within 1 s"
    assert by["refused"]["error"] == "connection refused"
    assert not by["unresolvable"]["ok"] and by["unresolvable"]["error"]
    assert elapsed < 2.5, f"the probes must run concurrently, took {elapsed:.1f}s"
    assert by["aiws_mirror_custom.pypi"]["line"] == (
        f"{web}/repo/missing: HTTP 404 Not Found (set by aiws_mirror_custom.pypi; no proxy)")


def test_probes_go_through_the_proxy_and_never_show_its_credentials(recording_proxy: Any) -> None:
    proxy = recording_proxy.address
    env = {"http_proxy": f"http://lab:env-pass-5@{proxy}"}
    apt = {"http": f"http://apt:apt-pass-6@{proxy}/"}
    urls = [{"url": "http://deb.mirror.test/debian/dists/bookworm/InRelease", "set_by": "apt", "via": "apt"},
            {"url": "http://pypi.mirror.test/simple/", "set_by": "pypi", "via": "direct"},
            {"url": "http://pypi.mirror.test/missing", "set_by": "gone", "via": "direct"}]
    results = probe.run_probes(urls, timeout=5, workers=4, env=env, apt=apt)
    by = {r["set_by"]: r for r in results}
    assert by["apt"]["ok"] and by["pypi"]["ok"] and not by["gone"]["ok"]
    seen = {s["target"]: s["auth"] for s in recording_proxy.seen}
    assert seen["http://deb.mirror.test/debian/dists/bookworm/InRelease"] == "apt:apt-pass-6"
    assert seen["http://pypi.mirror.test/simple/"] == "lab:env-pass-5"
    shown = repr(results)
    assert "env-pass-5" not in shown and "apt-pass-6" not in shown
    assert by["gone"]["proxy"] == f"http://***@{proxy}"
    assert f"proxy http://***@{proxy}" in by["gone"]["line"]


def test_credentials_in_a_url_are_never_shown(web: str) -> None:
    (result,) = probe.run_probes([{"url": "http://user:url-pass-7@127.0.0.1:9/x", "set_by": "x"}], 1, 1, env={}, apt={})
    assert "url-pass-7" not in repr(result)
    assert result["url"] == "http://***@127.0.0.1:9/x"


def test_the_probe_hides_the_whole_userinfo_even_with_an_at_sign_in_the_password() -> None:
    assert probe.redact("http://alice:p@ss@proxy.example.org:3128/") == "http://***@proxy.example.org:3128/"
    assert probe.redact("https://mirror.example.org/path/user@example") == "https://mirror.example.org/path/user@example"
