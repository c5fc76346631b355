"""Anaconda's terms and the shared installation: members work non-interactively, outsiders do not.

The fixture conda (tests/fixtures/fx_anaconda.py) enforces the terms as conda-anaconda-tos 0.2.2
does. The inventory's default_channels (molecule/default/group_vars/all/pymirrors.yml) are the
fixture server's conda/pkgs/main and conda/pkgs/r, which publish terms.json like
repo.anaconda.com. Without the acceptance the role records, every `conda create -y` of a member
fails with CondaToSNonInteractiveError.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

PREFIX = "/opt/anaconda3"
GROUP = "anaconda"
TERMS_FILE = f"{PREFIX}/condarc.d/10-aiws-terms.yml"
BASE = f"http://127.0.0.1:{os.environ.get('AIWS_FIXTURE_PORT', '8089')}"
DEFAULT_CHANNELS = [f"{BASE}/conda/pkgs/main", f"{BASE}/conda/pkgs/r"]
NON_INTERACTIVE = "CondaToSNonInteractiveError: Terms of Service have not been accepted for the following channels."


def login(host, user: str, script: str):
    """A login shell of the user (su -): no terminal on stdout, as in a script or a batch job."""
    body = script.replace("'", "'\"'\"'")
    return host.run(f"su - {user} -s /bin/bash -c '{body}'")


@pytest.fixture(scope="module")
def ct(host):
    """The container itself: conftest.py already addresses every host through `podman exec`."""
    return host


def test_acceptance_is_recorded_for_the_installation_only(ct) -> None:
    terms = ct.file(TERMS_FILE)
    assert terms.user == "root" and terms.group == GROUP and terms.mode == 0o660
    assert yaml.safe_load(terms.content_string) == {"plugins": {"auto_accept_tos": True}}
    info = login(ct, "alice", "conda info --json")
    assert info.rc == 0, info.stderr
    assert TERMS_FILE in json.loads(info.stdout)["config_files"]
    # Only this installation: nothing host-wide that another conda on the machine would read.
    assert "auto_accept_tos" not in ct.file("/etc/conda/.condarc").content_string
    assert not ct.file("/etc/conda/tos").exists


def test_member_creates_and_installs_non_interactively_from_the_default_channels(ct) -> None:
    made = login(ct, "alice", f"rm -rf {PREFIX}/envs/tos-x; conda create -y -n tos-x python && "
                              "conda install -y -n tos-x numpy")
    assert made.rc == 0, made.stderr
    assert "CondaToS" not in made.stderr
    assert ct.file(f"{PREFIX}/envs/tos-x/conda-meta/history").contains("conda install -y -n tos-x numpy")
    # The plugin recorded alice's acceptance of each default channel's terms in her home.
    listed = login(ct, "alice", "conda tos --json")
    assert listed.rc == 0, listed.stderr
    status = json.loads(listed.stdout)
    for url in DEFAULT_CHANNELS:
        assert status[url]["accepted"] is True and status[url]["outdated"] is False, status
        assert status[url]["path"].startswith("/home/alice/.conda/tos/"), status[url]


def test_without_the_setting_the_fixture_conda_stops_a_member(ct) -> None:
    # A member who opts out (the variable beats every .condarc) and has accepted nothing yet.
    result = login(ct, "bob", "export HOME=$(mktemp -d); CONDA_PLUGINS_AUTO_ACCEPT_TOS=no conda create -y -n tos-y")
    assert result.rc == 1
    assert NON_INTERACTIVE in result.stderr
    for url in DEFAULT_CHANNELS:
        assert f"    conda tos accept --override-channels --channel {url}\n" in result.stderr
    assert not ct.file(f"{PREFIX}/envs/tos-y").exists


def test_outsider_cannot_use_the_installation(ct) -> None:
    ct.run("id carol >/dev/null 2>&1 || useradd --create-home --shell /bin/bash carol")
    result = login(ct, "carol", f"{PREFIX}/bin/conda create -y -n tos-z")
    assert result.rc != 0 and "Permission denied" in result.stderr
    assert not ct.file("/home/carol/.conda/tos").exists
    assert not ct.file(f"{PREFIX}/envs/tos-z").exists
