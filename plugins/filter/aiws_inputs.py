# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Input checks for preflight and the roles' tasks/assert.yml: thin wrappers around the collection's `plugin_utils.inputs`.

Each returns a list of messages, one per problem and each naming the variable (empty: all good),
so an assert reports only what failed:

aiws_unknown_vars(names_by_host)                 project-prefixed variables no argument spec declares,
                                                 with the closest declared name ({host: [names]} in)
aiws_shape_errors(hostvars_of_host, roles=None)  a string or null where a spec says list or dict
aiws_url_errors(value, name, allow_http=false, schema=None, keys=None, each=false)
                                                 one URL (empty: unset), or a mirror profile keyed as the
                                                 schema of data/mirrors.yml (keys: the part allowed;
                                                 each: a mapping of names to such profiles)
aiws_path_errors(path, name, kind='dir')         absolute; kind dir: not a system directory nor in the kernel's
                                                 trees; backup: nor in /tmp, /var/tmp; prefix: nor top-level,
                                                 inside the system's own trees or directly under /home
aiws_url_origins(entries, profile, custom, run_tags, skip_tags, apt_cache)
                                                 the probe entries this run needs; those with `key` (a mirror
                                                 profile key) get a `set_by` naming the profile or aiws_mirror_custom
aiws_redact(url)                                 the URL with its credentials replaced by ***

A value of the wrong kind raises AnsibleFilterError naming the filter and the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.aiws.workstation.plugins.plugin_utils import inputs, report

_plain = report.plain


def aiws_unknown_vars(names_by_host: Any) -> list[str]:
    if not isinstance(names_by_host, Mapping):
        raise AnsibleFilterError(f"aiws_unknown_vars expects a mapping of host -> variable names; got {type(names_by_host).__name__}")
    return inputs.unknown_vars({str(h): [str(n) for n in names] for h, names in names_by_host.items()})


def aiws_shape_errors(values: Any, roles: Iterable[str] | None = None) -> list[str]:
    if not isinstance(values, Mapping):
        raise AnsibleFilterError(f"aiws_shape_errors expects a host's variables (hostvars[inventory_hostname]); got {type(values).__name__}")
    names = {name for name in inputs.specs() if name in values}
    return inputs.shape_errors({name: _plain(values[name]) for name in names}, None if roles is None else list(roles))


def aiws_url_errors(value: Any, name: str, allow_http: Any = False, schema: Any = None, keys: Any = None,
                    each: Any = False) -> list[str]:
    if schema is not None and not isinstance(schema, Mapping):
        raise AnsibleFilterError(f"aiws_url_errors: schema must be data/mirrors.yml's schema mapping; got {type(schema).__name__}")
    return inputs.url_errors(_plain(value), str(name), bool(allow_http), _plain(schema),
                             None if keys is None else list(keys), bool(each))


def aiws_path_errors(path: Any, name: str, kind: str = "dir") -> list[str]:
    try:
        return inputs.path_errors(_plain(path), str(name), str(kind))
    except ValueError as err:
        raise AnsibleFilterError(f"aiws_path_errors: {err}") from err


def aiws_url_origins(entries: Any, profile: str, custom: Any = None, run_tags: Any = ("all",), skip_tags: Any = (),
                     apt_cache: Any = False) -> list[dict[str, Any]]:
    if not isinstance(entries, list):
        raise AnsibleFilterError(f"aiws_url_origins expects a list of probe entries; got {type(entries).__name__}")
    return inputs.url_origins(_plain(entries), str(profile), _plain(custom), list(run_tags or []), list(skip_tags or []),
                              bool(apt_cache))


def aiws_redact(url: Any) -> str:
    return inputs.redact(url)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "aiws_unknown_vars": aiws_unknown_vars,
            "aiws_shape_errors": aiws_shape_errors,
            "aiws_url_errors": aiws_url_errors,
            "aiws_path_errors": aiws_path_errors,
            "aiws_url_origins": aiws_url_origins,
            "aiws_redact": aiws_redact,
        }
