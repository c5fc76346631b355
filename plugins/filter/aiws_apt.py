# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""aiws_apt_unmet: the apt package requests that dpkg's installed packages do not already satisfy.

A stage calls ansible.builtin.apt only when this returns something: apt's module loads the whole
package cache for every call (seconds of CPU per host) to change nothing on a re-run.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: aiws_apt_unmet
short_description: the package requests dpkg's installed packages do not satisfy
description:
  - Takes the names an C(ansible.builtin.apt) task would install, each optionally with a version
    (C(cudnn9-cuda-12=9.28.*), C(cmake>=3.28)), and returns those that the installed packages do not satisfy.
  - C(name=version) matches the installed version exactly, or as a shell pattern when it has C(*) or C(?)
    (as apt reads C(=9.28.*)); C(>=), C(<=), C(>>), C(<<) compare as dpkg compares versions
    (epoch, upstream version, Debian revision, C(~) before anything).
  - A request in any other form is returned (left to apt).
positional: installed
options:
  _input:
    description: package requests, a list of strings
    type: list
    elements: str
    required: true
  installed:
    description: installed packages, name to version (preflight publishes it as C(aiws_packages_versions))
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Install cuDNN unless dpkg already has the planned release
  ansible.builtin.apt:
    name: "{{ cudnn_packages }}"
  when: cudnn_packages | aiws.workstation.aiws_apt_unmet(aiws_packages_versions) | length > 0
"""

RETURN = r"""
_value:
  description: the requests not satisfied, in the order given (empty when apt would change nothing)
  type: list
  elements: str
"""

_SPEC = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.\-]*)(?::[a-z0-9\-]+)?(?:(?P<op>=|>=|<=|>>|<<)(?P<version>\S+))?$")


def _order(char: str) -> int:
    """dpkg's order of a character in the non-digit part of a version: ~ first, then the end, letters, the rest."""
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    while a or b:
        head_a = re.match(r"^[^0-9]*", a).group(0)  # type: ignore[union-attr]
        head_b = re.match(r"^[^0-9]*", b).group(0)  # type: ignore[union-attr]
        for i in range(max(len(head_a), len(head_b))):
            ca = _order(head_a[i]) if i < len(head_a) else 0
            cb = _order(head_b[i]) if i < len(head_b) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(head_a):], b[len(head_b):]
        num_a = re.match(r"^[0-9]*", a).group(0)  # type: ignore[union-attr]
        num_b = re.match(r"^[0-9]*", b).group(0)  # type: ignore[union-attr]
        if int(num_a or 0) != int(num_b or 0):
            return -1 if int(num_a or 0) < int(num_b or 0) else 1
        a, b = a[len(num_a):], b[len(num_b):]
    return 0


def _split(version: str) -> tuple[int, str, str]:
    epoch, _sep, rest = version.partition(":") if ":" in version else ("0", "", version)
    upstream, _sep, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
    return int(epoch) if epoch.isdigit() else 0, upstream, revision


def dpkg_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as dpkg --compare-versions orders a and b."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


_OPS: dict[str, Callable[[int], bool]] = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">>": lambda c: c > 0,
    "<<": lambda c: c < 0,
}


def _met(spec: str, installed: Mapping[str, str]) -> bool:
    m = _SPEC.match(spec)
    if not m or m.group("name") not in installed:
        return False
    have, op, want = str(installed[m.group("name")]), m.group("op"), m.group("version")
    if op is None:
        return True
    if op == "=":
        return fnmatch.fnmatchcase(have, want) if any(c in want for c in "*?[") else have == want
    return _OPS[op](dpkg_compare(have, want))


def aiws_apt_unmet(specs: Any, installed: Any) -> list[str]:
    if isinstance(specs, str) or not isinstance(specs, Iterable):
        raise AnsibleFilterError(f"aiws_apt_unmet expects a list of package requests; got {specs!r}")
    if not isinstance(installed, Mapping):
        raise AnsibleFilterError(f"aiws_apt_unmet expects the installed packages as a mapping of name to version; "
                                 f"got {type(installed).__name__}")
    return [str(spec) for spec in specs if not _met(str(spec), installed)]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"aiws_apt_unmet": aiws_apt_unmet}
