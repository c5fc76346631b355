"""conda, pip and uv go through the configured mirror: the fixture index on loopback.

The mirror URLs are those of molecule/default/group_vars/all/pymirrors.yml
(http://127.0.0.1:<AIWS_FIXTURE_PORT>/...); the simple index holds the wheel aiws-probe, built
by tests/fixtures/fx_pypi.py and published nowhere else.
"""

from __future__ import annotations

import configparser
import json
import os
import tomllib

import pytest
import yaml

PREFIX = "/opt/anaconda3"
BASE = f"http://127.0.0.1:{os.environ.get('AIWS_FIXTURE_PORT', '8089')}"
PYPI = f"{BASE}/pypi/simple"


@pytest.fixture(scope="module")
def ct(host):
    """The container itself: conftest.py already addresses every host through `podman exec`."""
    return host


def login(host, user: str, script: str):
    body = script.replace("'", "'\"'\"'")
    return host.run(f"su - {user} -s /bin/bash -c '{body}'")


def test_condarc_parses_and_carries_the_mirror(ct) -> None:
    condarc = ct.file("/etc/conda/.condarc")
    assert condarc.user == "root" and condarc.group == "root" and condarc.mode == 0o644
    text = condarc.content_string
    data = yaml.safe_load(text)
    assert data["channels"] == ["defaults"]
    assert data["default_channels"] == [f"{BASE}/conda/pkgs/main", f"{BASE}/conda/pkgs/r"]
    assert data["custom_channels"] == {"conda-forge": f"{BASE}/conda/cloud", "pytorch": f"{BASE}/conda/cloud"}
    assert data["channel_alias"] == f"{BASE}/conda/cloud"
    assert data["show_channel_urls"] is True and data["channel_priority"] == "strict"
    for key in ("default_channels", "custom_channels", "channel_alias"):
        assert any(line.startswith(key + ":") and "#!final" in line for line in text.splitlines()), key


def test_conda_reads_the_mirror_and_final_keys_hold(ct) -> None:
    info = login(ct, "bob", "printf 'default_channels:\\n  - https://elsewhere.example/pkgs/main\\n' > ~/.condarc; "
                              "conda info --json; rm -f ~/.condarc")
    assert info.rc == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["config_files"][0] == "/etc/conda/.condarc"
    assert "/home/bob/.condarc" in data["config_files"]
    assert data["channels"] == [f"{BASE}/conda/pkgs/{c}/{s}" for c in ("main", "r") for s in ("linux-64", "noarch")]
    # bob's own default_channels cannot override the #!final system key.
    assert not [c for c in data["channels"] if "elsewhere.example" in c]


def test_named_channels_resolve_through_the_mirror(ct) -> None:
    probe = ct.run(
        "printf 'channels:\\n  - conda-forge\\n  - bioconda\\n' > /tmp/probe.condarc && "
        f"CONDARC=/tmp/probe.condarc {PREFIX}/bin/conda info --json")
    channels = json.loads(probe.stdout)["channels"]
    assert f"{BASE}/conda/cloud/conda-forge/linux-64" in channels   # custom_channels
    assert f"{BASE}/conda/cloud/bioconda/linux-64" in channels      # channel_alias
    assert not [c for c in channels if "anaconda.org" in c or "anaconda.com" in c]


def test_pip_conf_parses_with_the_mirror(ct) -> None:
    conf = ct.file("/etc/pip.conf")
    assert conf.user == "root" and conf.mode == 0o644
    parser = configparser.ConfigParser()
    parser.read_string(conf.content_string)
    assert parser["global"]["index-url"] == PYPI
    assert parser["global"]["trusted-host"] == "127.0.0.1"  # plain http mirror only
    assert "extra-index-url" not in parser["global"]


def test_uv_toml_parses_with_the_mirror(ct) -> None:
    data = tomllib.loads(ct.file("/etc/uv/uv.toml").content_string)
    assert data["index"] == [{"url": PYPI, "default": True}]


def test_pip_in_a_members_login_shell_installs_through_the_mirror(ct) -> None:
    ct.run(f"{PREFIX}/bin/pip uninstall -y aiws-probe")
    result = login(ct, "alice", "conda activate && pip install --no-cache-dir aiws-probe && aiws-probe")
    assert result.rc == 0, result.stdout + result.stderr
    assert f"Looking in indexes: {PYPI}" in result.stdout
    assert f"{BASE}/pypi/packages/aiws_probe-1.0.0-py3-none-any.whl" in result.stdout
    assert result.stdout.strip().endswith("aiws-probe 1.0.0")
    # What alice installed into the shared base, bob can remove.
    removed = login(ct, "bob", "conda activate && pip uninstall -y aiws-probe")
    assert removed.rc == 0, removed.stdout + removed.stderr


def test_originals_are_kept_and_user_files_untouched(ct) -> None:
    backups = ct.file("/var/lib/aiws/backup/python_mirrors")
    assert backups.is_directory and backups.mode == 0o700
    # The fresh image had none of these files: nothing to keep, nothing replaced.
    assert not ct.file("/var/lib/aiws/backup/python_mirrors/pip.conf.orig").exists
    assert not ct.run("ls /home/*/.config/pip/pip.conf.*~ /home/*/.condarc.*~ 2>/dev/null").stdout
