# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Input checks preflight runs before anything changes (the filters `aiws_*_errors`, `aiws_unknown_vars`).

Every function is pure and returns a list of messages, one per problem, each naming the variable
(empty list: nothing wrong), so an assert can report exactly the conditions that failed:

* `unknown_vars`  variables with a project prefix that no role's meta/argument_specs.yml declares,
  with the closest declared name (a misspelt `aiws_cuda_verison` would otherwise do nothing);
* `shape_errors`  a string or null where an argument spec expects a list or a mapping
  (validate_argument_spec checks a converted copy: `anaconda_users: alice` passes it as ["alice"]
  while the roles read the raw string letter by letter);
* `url_errors`    URLs (http(s)://host/path, plain http only with the opt-in, no credentials) and
  mirror profiles keyed as the schema of data/mirrors.yml;
* `path_errors`   absolute folders that are not system directories, compared after normalising;
* `redact`        a URL with its user name and password replaced, for messages.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.aiws.workstation.plugins.module_utils.redact import redact as _redact

ROOT = Path(__file__).resolve().parents[2]  # plugins/plugin_utils/inputs.py -> the collection root
PROJECT_PREFIX = "aiws_"

# Task keywords and modules whose names become host variables while a run goes on.
_SET_FACT = ("ansible.builtin.set_fact", "set_fact")
_SET_STATS = ("ansible.builtin.set_stats", "set_stats")
_INCLUDE_VARS = ("ansible.builtin.include_vars", "include_vars")


# ---------------------------------------------------------------------------------------------
# What the project declares
# ---------------------------------------------------------------------------------------------
def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def roles(root: Path = ROOT) -> list[str]:
    """The project's roles (folders of roles/ with a meta/argument_specs.yml)."""
    return sorted(p.name for p in (root / "roles").iterdir() if (p / "meta/argument_specs.yml").is_file())


@lru_cache(maxsize=4)
def _specs(root: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for role in roles(root):
        data = _load(root / "roles" / role / "meta/argument_specs.yml") or {}
        for entry in (data.get("argument_specs") or {}).values():
            for name, spec in ((entry or {}).get("options") or {}).items():
                out.setdefault(name, dict(spec or {}, role=role))
    return out


def specs(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """Every option of every role's argument specs (all entry points): name -> spec plus its `role`."""
    return _specs(root)


@lru_cache(maxsize=4)
def _defaults(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role in roles(root):
        out.update(_load(root / "roles" / role / "defaults/main.yml") or {})
    return out


def defaults(root: Path = ROOT) -> dict[str, Any]:
    """Every role's defaults/main.yml in one mapping."""
    return _defaults(root)


def prefixes(root: Path = ROOT) -> list[str]:
    """Variable prefixes that belong to the project: aiws_ and each role's name."""
    return [PROJECT_PREFIX] + [role + "_" for role in roles(root)]


def _collect(node: Any, names: set[str]) -> None:
    """Names a task or play tree creates: register, set_fact/set_stats keys, include_vars name, vars, loop_var."""
    if isinstance(node, list):
        for item in node:
            _collect(item, names)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "register" and isinstance(value, str):
            names.add(value)
        elif key in _SET_FACT and isinstance(value, dict):
            names.update(k for k in value if k != "cacheable")
        elif key in _SET_STATS and isinstance(value, dict):
            names.update((value.get("data") or {}).keys())
        elif key in _INCLUDE_VARS and isinstance(value, dict) and isinstance(value.get("name"), str):
            names.add(value["name"])
        elif key == "vars" and isinstance(value, dict):
            names.update(value.keys())
        elif key == "loop_control" and isinstance(value, dict):
            names.update(v for k, v in value.items() if k in ("loop_var", "index_var") and isinstance(v, str))
        _collect(value, names)


@lru_cache(maxsize=4)
def _internal(root: Path) -> frozenset[str]:
    names: set[str] = set()
    files = [*root.glob("roles/*/tasks/*.yml"), *root.glob("roles/*/handlers/*.yml"), *root.glob("playbooks/*.yml"),
             *root.glob("*.yml")]
    for path in files:
        _collect(_load(path), names)
    for path in root.glob("roles/*/vars/*.yml"):
        names.update((_load(path) or {}).keys())
    return frozenset(n for n in names if isinstance(n, str) and "{" not in n)


def internal_names(root: Path = ROOT) -> frozenset[str]:
    """Variables the roles and playbooks set themselves while running (registered results, facts, task vars)."""
    return _internal(root)


# ---------------------------------------------------------------------------------------------
# Misspelt variables
# ---------------------------------------------------------------------------------------------
def closest(name: str, known: Iterable[str]) -> str | None:
    """The declared name closest to a misspelt one, if any is close enough."""
    found = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return found[0] if found else None


def unknown_vars(names_by_host: Mapping[str, Iterable[str]], root: Path = ROOT) -> list[str]:
    """One message per project-prefixed variable that no argument spec declares, naming the hosts and the closest name."""
    declared = specs(root)
    internal = internal_names(root)
    own = tuple(prefixes(root))
    hosts_of: dict[str, list[str]] = {}
    for host, names in names_by_host.items():
        for name in names:
            name = str(name)
            if name.startswith(own) and name not in declared and name not in internal:
                hosts_of.setdefault(name, []).append(str(host))
    messages = []
    total = len(names_by_host)
    for name in sorted(hosts_of):
        hosts = hosts_of[name]
        where = "every host" if total > 1 and len(hosts) == total else ", ".join(hosts)
        guess = closest(name, declared)
        hint = f"did you mean {guess}?" if guess else "see the variable reference in README.md."
        messages.append(
            f"{name} (set for {where}) is not a variable of this project: no role's meta/argument_specs.yml declares it,"
            f" so it changes nothing; {hint}"
        )
    return messages


# ---------------------------------------------------------------------------------------------
# Lists and mappings
# ---------------------------------------------------------------------------------------------
def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _list_example(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
        return "[" + ", ".join(json.dumps(p) for p in parts) + "]"
    return "[]"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "the string " + json.dumps(value)
    if isinstance(value, Mapping):
        return "a mapping"
    return "a list" if _is_list(value) else type(value).__name__


def shape_errors(values: Mapping[str, Any], only_roles: Iterable[str] | None = None, root: Path = ROOT) -> list[str]:
    """A string or null given where an argument spec says list or dict, one message per variable."""
    wanted = set(only_roles) if only_roles is not None else None
    messages = []
    for name, spec in sorted(specs(root).items()):
        if wanted is not None and spec["role"] not in wanted:
            continue
        kind = spec.get("type")
        if kind not in ("list", "dict") or name not in values:
            continue
        value = values[name]
        if kind == "list" and not _is_list(value):
            if value is None:
                messages.append(f"{name} is empty (null): write {name}: [] for none, or a YAML list of values.")
            else:
                messages.append(f"{name} must be a YAML list, e.g. {_list_example(value)}; got {_kind(value)}.")
        elif kind == "dict" and not isinstance(value, Mapping):
            if value is None:
                messages.append(f"{name} is empty (null): write {name}: {{}} for none, or a YAML mapping of key: value.")
            else:
                messages.append(f"{name} must be a YAML mapping of key: value, e.g. {{key: value}}; got {_kind(value)}.")
    return messages


# ---------------------------------------------------------------------------------------------
# URLs and mirror profiles
# ---------------------------------------------------------------------------------------------
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HTTP_OPT_IN = "aiws_mirror_allow_http"


def redact(url: Any) -> str:
    """The URL with any user name and password replaced by ***, safe to print (any value, as text)."""
    return _redact(str(url))


def url_problem(url: Any, allow_http: bool = False) -> str | None:
    """Why a value is not a usable download URL, or None."""
    if not isinstance(url, str):
        return f"must be a URL (https://host/path), got {_kind(url)}"
    shown = json.dumps(redact(url))
    if not url or url != url.strip() or re.search(r"\s", url):
        return f"{shown} is not a URL: expected https://host/path without spaces"
    m = _SCHEME.match(url)
    if not m:
        return f"{shown} is not a URL: expected https://host/path (http:// only with {HTTP_OPT_IN}: true)"
    scheme = m.group(1).lower()
    if scheme not in ("http", "https"):
        return f"{shown} uses {scheme}://, which apt, pip and conda are not set up for here: use https:// (or http://)"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return f"{shown} has an invalid port: expected https://host[:port]/path"
    if "@" in parts.netloc:
        return (f"{shown} carries a user name or password: apt sources and /etc/pip.conf are readable by every user."
                " Keep credentials in /etc/apt/auth.conf.d/ (apt) or a netrc file instead")
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if not host or not _HOST.match(host):
        return f"{shown} has no valid host name: expected https://host/path"
    if port == 0:
        return f"{shown} has an invalid port: expected https://host[:port]/path"
    if scheme == "http" and not allow_http:
        return (f"{shown} is plain http: set {HTTP_OPT_IN}: true to allow it (apt still checks signatures;"
                " pip, conda and the installer download do not), or use https://")
    return None


def _paths(schema: Mapping[str, Any], base: str = "") -> dict[str, str]:
    """Every key of the schema as a dotted path -> its kind (nested blocks included as 'block')."""
    out: dict[str, str] = {}
    for key, kind in schema.items():
        path = f"{base}{key}"
        if isinstance(kind, Mapping):
            out[path] = "block"
            out.update(_paths(kind, path + "."))
        else:
            out[path] = str(kind)
    return out


def _suggest(key: str, level: Mapping[str, Any], where: str, every: Mapping[str, str], root: str) -> str:
    """The closest valid key, in full: a sibling first, else any key of the schema by its last part."""
    near = closest(key, level.keys())
    if near:
        return f"{where}.{near}"
    by_leaf: dict[str, str] = {}
    for path in every:
        by_leaf.setdefault(path.rsplit(".", 1)[-1], path)
    leaf = closest(key, by_leaf)
    return f"{root}.{by_leaf[leaf]}" if leaf else ""


def _check_value(kind: str, value: Any, where: str, allow_http: bool) -> list[str]:
    if kind == "url":
        problem = url_problem(value, allow_http)
        return [f"{where}: {problem}."] if problem else []
    if kind in ("urls", "names", "texts"):
        if not _is_list(value):
            return [f"{where} must be a YAML list, e.g. {_list_example(value)}; got {_kind(value)}."]
        out = []
        for index, item in enumerate(value):
            if kind == "urls":
                out.extend(_check_value("url", item, f"{where}[{index}]", allow_http))
            elif kind == "names" and not (isinstance(item, str) and _NAME.match(item)):
                out.append(f"{where}[{index}] must be a channel name such as conda-forge; got {_kind(item)}.")
            elif kind == "texts" and not isinstance(item, str):
                out.append(f"{where}[{index}] must be text; got {_kind(item)}.")
        return out
    if kind == "text" and not isinstance(value, str):
        return [f"{where} must be text; got {_kind(value)}."]
    return []


def _check_block(value: Any, schema: Mapping[str, Any], where: str, ctx: Mapping[str, Any]) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{where} must be a YAML mapping keyed as {ctx['source']}; got {_kind(value)}."]
    out = []
    for key, item in value.items():
        key = str(key)
        if key not in schema:
            guess = _suggest(key, schema, where, ctx["every"], ctx["root"])
            hint = f"; did you mean {guess}?" if guess else "."
            out.append(f"{where}.{key} is not a key of {ctx['source']} (valid here: {', '.join(schema)}){hint}")
            continue
        kind = schema[key]
        if isinstance(kind, Mapping):
            out.extend(_check_block(item, kind, f"{where}.{key}", ctx))
        else:
            out.extend(_check_value(str(kind), item, f"{where}.{key}", ctx["allow_http"]))
    return out


def url_errors(value: Any, name: str, allow_http: bool = False, schema: Mapping[str, Any] | None = None,
               keys: Sequence[str] | None = None, each: bool = False) -> list[str]:
    """Problems of one URL (schema None; empty means unset) or of a mirror profile checked against the schema
    (keys: the part of the schema allowed; each: value maps names to profiles)."""
    if each:
        if not isinstance(value, Mapping):
            return [f"{name} must be a YAML mapping of profile names to profiles; got {_kind(value)}."]
        return [m for key, item in value.items()
                for m in url_errors(item, f"{name}.{key}", allow_http, schema, keys)]
    if schema is None:
        if value is None or value == "":
            return []
        problem = url_problem(value, allow_http)
        return [f"{name}: {problem}."] if problem else []
    allowed = {k: v for k, v in schema.items() if keys is None or k in keys}
    ctx = {
        "source": "a mirror profile of data/mirrors.yml" if keys is None else name,
        "every": _paths(allowed), "root": name, "allow_http": allow_http,
    }
    return _check_block(value, allowed, name, ctx)


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------
# Folders of the system itself: none may become a role's own folder (the roles chmod, chgrp and
# fill their folders; a backup in /etc/apt/ would even be read by apt).
SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/lost+found", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/tmp", "/usr", "/var",
    "/usr/bin", "/usr/games", "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec", "/usr/libx32",
    "/usr/local", "/usr/local/bin", "/usr/local/etc", "/usr/local/games", "/usr/local/include", "/usr/local/lib",
    "/usr/local/man", "/usr/local/sbin", "/usr/local/share", "/usr/local/src", "/usr/sbin", "/usr/share", "/usr/src",
    "/var/backups", "/var/cache", "/var/lib", "/var/local", "/var/lock", "/var/log", "/var/mail", "/var/opt",
    "/var/run", "/var/spool", "/var/tmp", "/var/www", "/etc/apt", "/etc/apt/apt.conf.d", "/etc/apt/keyrings",
    "/etc/apt/preferences.d", "/etc/apt/sources.list.d", "/etc/apt/trusted.gpg.d", "/etc/ansible", "/etc/conda",
    "/etc/profile.d", "/etc/ld.so.conf.d", "/etc/ssl", "/usr/share/keyrings",
})
# Trees of the kernel and of the running system (tmpfs): nothing of a role's can live there.
KERNEL_TREES = ("/proc", "/sys", "/dev", "/run")
# Emptied at boot, or by systemd-tmpfiles after some days: no place for backups.
TEMPORARY_TREES = ("/tmp", "/var/tmp")
# The system's and its package manager's: no place for a tree a role re-groups.
SYSTEM_TREES = ("/etc", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/var/lib", "/var/cache",
                "/var/log", "/var/spool", "/var/mail", "/var/backups", "/snap", "/root")


def normpath(path: str) -> str:
    """/etc/apt/ and //etc/./apt and /etc/x/../apt all as /etc/apt (compare after this)."""
    norm = posixpath.normpath("/" + path.lstrip("/")) if path.startswith("/") else posixpath.normpath(path)
    return norm


def _under(path: str, trees: Iterable[str]) -> str | None:
    return next((t for t in trees if path == t or path.startswith(t + "/")), None)


def path_errors(path: Any, name: str, kind: str = "dir") -> list[str]:
    """Problems of a path variable. kind: absolute (any absolute path); dir (a folder the role creates and owns:
    not a system directory, not in the kernel's trees); backup (a dir that keeps backups: not in /tmp or /var/tmp
    either); prefix (a tree the role re-groups: as backup, and not a top-level folder, nor inside the system's
    trees, nor directly under /home)."""
    if kind not in ("absolute", "dir", "backup", "prefix"):
        raise ValueError(f"path_errors: kind must be absolute, dir, backup or prefix; got {kind!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        return [f"{name} must be an absolute path (starting with /); got {_kind(path)}."]
    norm = normpath(path)
    shown = path if norm == path else f"{path} (that is {norm})"
    if kind == "absolute":
        return []
    if norm in SYSTEM_DIRS:
        default = defaults().get(name)
        own = "a folder of its own" + (f", e.g. the default {default}" if isinstance(default, str) and default.startswith("/") else "")
        return [(f"{name} is {shown}, {'the root directory' if norm == '/' else 'a system directory'}:"
                f" the role would take it over; choose {own}.")]
    kernel = _under(norm, KERNEL_TREES)
    if kernel:
        return [(f"{name} is {shown}, inside {kernel}, which belongs to the kernel or the running system:"
                 " choose a folder that persists, e.g. under /var or /opt.")]
    temporary = _under(norm, TEMPORARY_TREES) if kind in ("backup", "prefix") else None
    if temporary:
        return [(f"{name} is {shown}, inside {temporary}, which is emptied at boot or after some days, so what is"
                 " kept there would be lost: choose a folder that persists, e.g. under /var or /opt.")]
    if kind == "prefix":
        tree = _under(norm, SYSTEM_TREES)
        if tree or (norm.startswith("/usr/") and not norm.startswith("/usr/local/")):
            where = tree or "/usr"
            return [(f"{name} is {shown}, inside {where}, which the system and its package manager own:"
                    " choose a folder of its own such as /opt/anaconda3 or /srv/conda.")]
        if posixpath.dirname(norm) == "/":
            return [(f"{name} is {shown}, a top-level folder, and the role re-groups everything below it (a data disk"
                     " mounted there would be taken over): choose a folder of its own such as /opt/anaconda3.")]
        if posixpath.dirname(norm) == "/home":
            return [(f"{name} is {shown}, directly under /home where the users' home directories live:"
                    " choose a folder of its own such as /opt/anaconda3 or /home/shared/anaconda3.")]
    return []


# ---------------------------------------------------------------------------------------------
# Where a URL of the plan comes from
# ---------------------------------------------------------------------------------------------
def _has(data: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or not data.get(part):
            return False
        data = data[part]
    return True


def url_origins(entries: Iterable[Mapping[str, Any]], profile: str, custom: Mapping[str, Any] | None = None,
                run_tags: Iterable[str] = ("all",), skip_tags: Iterable[str] = (), apt_cache: bool = False,
                root: Path = ROOT) -> list[dict[str, Any]]:
    """The probe entries this run needs, each with a `set_by`: its own (a variable), else the mirror profile and key
    that named the URL (aiws_mirror_custom.<key>, the data/mirrors.yml profile, or official where the profile has
    no such key). Left out: entries of stages the tags do not run, URLs apt fetches through the fleet's apt cache
    (apt_cache: the cache fetches them, and its stage checks it), and, with profile auto, the mirror's URLs (the
    mirrors stage races the candidates first)."""
    profiles = ((_load(root / "data/mirrors.yml") or {}).get("profiles") or {})
    run, skip = set(run_tags or ["all"]), set(skip_tags or [])
    out = []
    for entry in entries:
        item = dict(entry)
        stages = set(item.pop("stages", None) or [])
        if stages and (not (stages - skip) or ("all" not in run and not stages & run)):
            continue
        if (apt_cache and item.get("via") == "apt") or (profile == "auto" and item.get("key")):
            continue
        key = str(item.pop("key", "") or "")
        if not item.get("set_by") and key:
            if profile == "custom" and _has(custom or {}, key):
                item["set_by"] = f"aiws_mirror_custom.{key}"
            elif profile != "custom" and _has(profiles.get(profile), key):
                item["set_by"] = f"mirror profile {profile} (data/mirrors.yml {key})"
            else:
                chosen = "aiws_mirror_custom" if profile == "custom" else profile
                item["set_by"] = f"mirror profile official (data/mirrors.yml {key}; {chosen} has none)"
        out.append(item)
    return out
