# SPDX-License-Identifier: GPL-3.0-or-later
"""aiws_apt_unmet: which apt requests dpkg's installed packages already meet (the stages' no-op skip).

Its version order is checked against this machine's own `dpkg --compare-versions`."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import pytest
from aiws_apt import aiws_apt_unmet, dpkg_compare
from ansible.errors import AnsibleFilterError

VERSIONS = [
    "1.0", "1.0-1", "1.0-0", "1.0~rc1-1", "1.0~~a", "1.0a", "1.0.1", "1:0.9", "2:0.1", "0:1.0",
    "9.28.0.42-1", "9.28.1.3-1", "9.3.0.75-1", "3.25.1-1", "3.28.3-1build7", "3.31.6-1~bpo12+1",
    "580.105.08-0ubuntu1", "580.95.05-1", "5.2.15-2+b8", "5.2.15-2+b10", "1.2+dfsg-3", "1.2-3+deb12u1",
]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg to compare against")
def test_versions_are_ordered_as_dpkg_orders_them() -> None:
    wrong = []
    for a, b in itertools.permutations(VERSIONS, 2):
        dpkg_lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0
        dpkg_eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b], check=False).returncode == 0
        want = -1 if dpkg_lt else 0 if dpkg_eq else 1
        if dpkg_compare(a, b) != want:
            wrong.append((a, b, dpkg_compare(a, b), want))
    assert not wrong


INSTALLED = {"cudnn9-cuda-12": "9.28.0.42-1", "libcudnn9-dev-cuda-12": "9.28.0.42-1",
             "cmake": "3.31.6-1~bpo12+1", "gnupg": "2.2.40-1.1"}


@pytest.mark.parametrize(("request_", "met"), [
    ("gnupg", True),
    ("curl", False),
    ("cudnn9-cuda-12=9.28.*", True),          # the plan's pin on the chosen release
    ("cudnn9-cuda-12=9.27.*", False),          # another release: apt must move it
    ("cudnn9-cuda-12=9.28.0.42-1", True),
    ("cudnn9-cuda-12=9.28.0.42", False),       # = without a pattern is exact
    ("cmake>=3.28", True),
    ("cmake>=3.32", False),
    ("cmake<<3.32", True),
    ("cmake>>3.31.6-1", False),                # ~bpo sorts before the release it backports
    ("gnupg:amd64", True),
    ("Not A Package", False),                  # any other form is left to apt
])
def test_a_request_is_met_only_by_what_dpkg_has(request_: str, met: bool) -> None:
    assert aiws_apt_unmet([request_], INSTALLED) == ([] if met else [request_])


def test_the_unmet_requests_keep_their_order() -> None:
    assert aiws_apt_unmet(["curl", "gnupg", "cmake>=4", "cudnn9-cuda-12=9.28.*"], INSTALLED) == ["curl", "cmake>=4"]


@pytest.mark.parametrize(("specs", "installed", "says"), [
    ("gnupg", INSTALLED, "aiws_apt_unmet expects a list of package requests; got 'gnupg'"),
    (["gnupg"], ["gnupg"], "aiws_apt_unmet expects the installed packages as a mapping of name to version; got list"),
])
def test_wrong_input_names_the_filter(specs: object, installed: object, says: str) -> None:
    with pytest.raises(AnsibleFilterError, match=says.replace("(", r"\(").replace("[", r"\[")):
        aiws_apt_unmet(specs, installed)
