# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lookup aiws_data: one of the collection's data files (data/<name>.yml), parsed."""

from __future__ import annotations

DOCUMENTATION = r"""
name: aiws_data
short_description: One of the collection's data files, parsed
description:
  - Returns the content of C(data/<name>.yml) of the collection aiws.workstation (the mirror profiles
    and their schema, the conda installers with their sums, the supported platforms), read from the
    collection itself, wherever it is installed or checked out.
  - Roles read their data through it instead of climbing out of their own folder.
options:
  _terms:
    description: Names of data files, without the folder and the C(.yml) suffix.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Load the mirror profiles
  ansible.builtin.set_fact:
    mirror_data: "{{ lookup('aiws.workstation.aiws_data', 'mirrors') }}"

- name: The conda installers the anaconda role knows
  ansible.builtin.debug:
    msg: "{{ lookup('aiws.workstation.aiws_data', 'installers').installers | list }}"
"""

RETURN = r"""
_raw:
  description: The parsed content of each named file (a dict per name).
  type: list
  elements: dict
"""

from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

# plugins/lookup/aiws_data.py -> the collection's root -> data/
DATA = Path(__file__).resolve().parents[2] / "data"


def known() -> list[str]:
    return sorted(path.stem for path in DATA.glob("*.yml"))


def aiws_data(name: Any) -> Any:
    """The parsed data/<name>.yml; refuse a name that is not one of the collection's data files."""
    names = known()
    if not isinstance(name, str) or name not in names:
        raise AnsibleLookupError(f"aiws_data: no data file {name!r}; known: {', '.join(names)}")
    try:
        return yaml.safe_load((DATA / f"{name}.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise AnsibleLookupError(f"aiws_data: cannot read {DATA / name}.yml: {err}") from err


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[Any]:
        if not terms:
            raise AnsibleLookupError(f"aiws_data: name a data file; known: {', '.join(known())}")
        return [aiws_data(term) for term in terms]
