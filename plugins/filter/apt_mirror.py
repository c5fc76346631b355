# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the apt_mirror role: turn a mirror profile into apt sources, read existing sources.

Eleven filters, each documented in the YAML file of its name beside this one
(`ansible-doc -t filter aiws.workstation.<name>`): apt_mirror_sources (the files to write for a
profile), apt_mirror_parse_sources (the entries of one-line and deb822 text), apt_mirror_security_uris,
apt_mirror_via_cache, apt_mirror_probe_urls, apt_mirror_failed_urls, apt_mirror_backup_name,
apt_mirror_manifest_entry, apt_mirror_race_line, apt_mirror_originals and apt_mirror_candidates.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

DISTROS: dict[str, dict[str, Any]] = {
    "ubuntu22.04": {
        "family": "ubuntu",
        "format": "oneline",
        "path": "/etc/apt/sources.list",
        "other": "/etc/apt/sources.list.d/ubuntu.sources",
        "keyring": "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
        "components": ["main", "restricted", "universe", "multiverse"],
    },
    "ubuntu24.04": {
        "family": "ubuntu",
        "format": "deb822",
        "path": "/etc/apt/sources.list.d/ubuntu.sources",
        "other": "/etc/apt/sources.list",
        "keyring": "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
        "components": ["main", "restricted", "universe", "multiverse"],
    },
    "debian12": {
        "family": "debian",
        "format": "deb822",
        "path": "/etc/apt/sources.list.d/debian.sources",
        "other": "/etc/apt/sources.list",
        "keyring": "/usr/share/keyrings/debian-archive-keyring.gpg",
        "components": ["main", "contrib", "non-free", "non-free-firmware"],
    },
}


class AptMirrorError(ValueError):
    pass


def _base(url: str | None) -> str | None:
    return url.rstrip("/") if url else None


def apt_mirror_via_cache(url: str, proxy: str = "") -> str:
    """Route an https repository through apt-cacher-ng so it is cached (its HTTPS/// form)."""
    if proxy and url.startswith("https://"):
        return "http://HTTPS///" + url[len("https://"):]
    return url


def apt_mirror_sources(
    mirror: dict[str, Any],
    distro: str,
    codename: str,
    deb_arch: str,
    security: str = "official",
    proposed: bool = False,
    deb_src: bool = False,
    backports: bool = True,
    components: list[str] | None = None,
    system_security: list[str] | None = None,
    http_bootstrap: bool = False,
    cache_proxy: str = "",
    required_components: list[str] | None = None,
    system_entries: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The sources to write (see the module docstring).

    required_components: components the plan's packages come from (aiws_plan.stack.apt_components, e.g.
    Debian's driver in contrib and non-free); always added. With a profile that names no Debian archive
    (`official`) the system's own sources stay as they are unless they lack one of them: then the
    system's own entries (system_entries, read from the original files) are written with the missing
    components added, backed up like any other switch.
    """
    if distro not in DISTROS:
        raise AptMirrorError(f"apt_mirror_sources: unsupported distro {distro!r}; known: {sorted(DISTROS)}")
    if security not in ("official", "mirror"):
        raise AptMirrorError(f"apt_mirror_sources: security must be official or mirror, got {security!r}")
    d = DISTROS[distro]
    apt = mirror.get("apt") or {}
    required = [c for c in (required_components or []) if c]
    comps = list(dict.fromkeys((list(components) if components else list(d["components"])) + required))
    types = ["deb", "deb-src"] if deb_src else ["deb"]
    notes: list[str] = []
    suites = [codename, f"{codename}-updates"] + ([f"{codename}-backports"] if backports else [])
    if d["family"] == "ubuntu":
        ports = deb_arch != "amd64" and deb_arch != "i386"
        base = _base(apt.get("ubuntu_ports" if ports else "ubuntu"))
        if not base:
            raise AptMirrorError(f"mirror profile {mirror.get('profile')!r} names no apt.{'ubuntu_ports' if ports else 'ubuntu'}")
        if proposed:
            suites.append(f"{codename}-proposed")
        if security == "mirror":
            sec = [base]
        else:
            official = _base(apt.get("ubuntu_ports_security" if ports else "ubuntu_security"))
            if not official:
                raise AptMirrorError("mirror profile names no official Ubuntu security archive")
            sec = [official]
    else:
        base = _base(apt.get("debian"))
        if not base:
            keep = {"keep_system": True, **{k: d[k] for k in ("format", "path", "other", "keyring")}, "stanzas": [], "notes": []}
            return _system_with_components(keep, system_entries or [], codename, required)
        if security == "mirror":
            sec = [_base(apt.get("debian_security")) or base + "-security"]
        else:
            sec = [u for u in (_base(x) for x in (system_security or [])) if u]
            if not sec:
                notes.append(
                    "the system's own sources had no security entry, so none is written; "
                    "set apt_mirror_security: mirror to take security updates from the mirror"
                )

    def fix(url: str) -> str:
        if http_bootstrap and url.startswith("https://"):
            url = "http://" + url[len("https://"):]
        return apt_mirror_via_cache(url, cache_proxy)

    stanzas = [{"role": "archive", "types": types, "uri": fix(base), "suites": suites, "components": comps}]
    for uri in dict.fromkeys(sec):
        if uri:
            stanzas.append(
                {"role": "security", "types": types, "uri": fix(uri), "suites": [f"{codename}-security"], "components": comps}
            )
    return {
        "keep_system": False,
        "format": d["format"],
        "path": d["path"],
        "other": d["other"],
        "keyring": d["keyring"],
        "stanzas": stanzas,
        "notes": notes,
    }


def apt_mirror_probe_urls(render: dict[str, Any], mirror: dict[str, Any]) -> list[dict[str, Any]]:
    """Per archive of the render: {url: <uri>/dists/<first suite>/InRelease, key: apt.<profile key>, via: apt}."""
    if render.get("keep_system"):
        return []
    apt = mirror.get("apt") or {}
    out: list[dict[str, Any]] = []
    for stanza in render.get("stanzas", []):
        uri = stanza["uri"].rstrip("/")
        key = next((k for k, v in apt.items() if v and str(v).rstrip("/") == uri), "")
        out.append({"url": f"{uri}/dists/{stanza['suites'][0]}/InRelease", "key": f"apt.{key}" if key else "apt", "via": "apt"})
    return out


def _system_with_components(
    keep: dict[str, Any], entries: list[dict[str, Any]], codename: str, required: list[str]
) -> dict[str, Any]:
    """The system's own sources, or (when they lack a required component) the same entries with it added."""
    own = [e for e in entries if any(s == codename or s.startswith(codename + "-") for s in e.get("suites", []))]
    missing = [c for c in required if any(c not in e.get("components", []) for e in own)]
    if not own or not missing:
        return keep
    stanzas: list[dict[str, Any]] = []
    for e in own:
        comps = list(dict.fromkeys(list(e.get("components", [])) + required))
        role = "security" if all(s.endswith("-security") for s in e["suites"]) else "archive"
        uri = _base(e["uri"]) or e["uri"]
        same = next((st for st in stanzas if (st["role"], st["types"], st["uri"], st["components"])
                     == (role, list(e["types"]), uri, comps)), None)
        if same:
            same["suites"] += [s for s in e["suites"] if s not in same["suites"]]
        else:
            stanzas.append({"role": role, "types": list(e["types"]), "uri": uri, "suites": list(e["suites"]),
                            "components": comps})
    note = (f"the system's own sources, with {' '.join(missing)} added: the planned driver packages come from "
            "them (profile official keeps the system's archive)")
    return {**keep, "keep_system": False, "stanzas": stanzas, "notes": [note]}


_ONELINE = re.compile(r"^\s*(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*?)\s*$")


def apt_mirror_parse_sources(text: str) -> list[dict[str, Any]]:
    """Entries of sources in either format, or both at once (disabled ones left out).

    The role reads sources.list and ubuntu.sources/debian.sources as one text, so a host that keeps
    one-line entries beside a deb822 file gives both: each one-line entry is taken where it stands,
    and the deb822 fields of a blank-line separated stanza make one entry per URI.
    """
    entries: list[dict[str, Any]] = []
    for block in re.split(r"\n\s*\n", text or ""):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.lstrip().startswith("#") or not line.strip():
                continue
            m = _ONELINE.match(line)
            if m:
                entries.append({"types": [m.group(1)], "uri": m.group(2), "suites": [m.group(3)], "components": m.group(4).split()})
                key = None
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            k, _sep, v = line.partition(":")
            key = k.strip().lower()
            fields[key] = v.strip()
        if not fields.get("uris") or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields["uris"].split():
            entries.append(
                {
                    "types": fields.get("types", "deb").split(),
                    "uri": uri,
                    "suites": fields.get("suites", "").split(),
                    "components": fields.get("components", "").split(),
                }
            )
    return entries


def apt_mirror_security_uris(entries: list[dict[str, Any]], codename: str) -> list[str]:
    """URIs of the entries that serve <codename>-security (the system's own security archive)."""
    out: list[str] = []
    for e in entries:
        if "deb" in e["types"] and f"{codename}-security" in e["suites"] and e["uri"] not in out:
            out.append(e["uri"])
    return out


_FAILED = re.compile(r"(?:Failed to fetch|^Err:\d+)\s+(\S+)", re.MULTILINE)
# A mirror answering 404 for a suite: apt prints the Err: line on stdout and only this on stderr.
_NO_RELEASE = re.compile(r"^E: The repository '(\S+) (\S+) Release' does not have a Release file", re.MULTILINE)


def apt_mirror_failed_urls(stderr: str, render: dict[str, Any] | None = None) -> list[str]:
    """URLs apt-get update could not fetch; with render, only those under the rendered sources."""
    found = _FAILED.findall(stderr or "") + [
        f"{uri.rstrip('/')}/Release" if suite == "/" else f"{uri.rstrip('/')}/dists/{suite}/Release"
        for uri, suite in _NO_RELEASE.findall(stderr or "")
    ]
    urls = list(dict.fromkeys(found))
    if render is not None:
        bases = [s["uri"].rstrip("/") + "/" for s in render.get("stanzas", [])]
        urls = [u for u in urls if any((u.rstrip("/") + "/").startswith(b) for b in bases)]
    return urls


def apt_mirror_backup_name(path: str) -> str:
    """File name of a managed file inside a backup folder: /etc/apt/sources.list -> etc%apt%sources.list."""
    return path.lstrip("/").replace("/", "%")


def apt_mirror_manifest_entry(file: dict[str, Any], stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Manifest line of one managed file; stats are the stat loop results of the files that exist."""
    path = file["path"]
    stat = next((r.get("stat") or {} for r in stats if r.get("item", {}).get("path") == path), {})
    entry: dict[str, Any] = {"path": path, "state": "present" if stat.get("exists") else "absent"}
    if stat.get("exists"):
        entry.update(
            sha256=stat.get("checksum"), mode=stat.get("mode"), owner=stat.get("pw_name"),
            group=stat.get("gr_name"), backup="files/" + apt_mirror_backup_name(path),
        )
    return entry


def apt_mirror_originals(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each path's state in the oldest backup that names it. manifests: slurp loop results, oldest first."""
    out: dict[str, dict[str, Any]] = {}
    for m in manifests:
        for f in json.loads(base64.b64decode(m["content"]))["files"]:
            out.setdefault(f["path"], dict(f, dir=m["item"]))
    return list(out.values())


def apt_mirror_candidates(
    names: list[str], profiles: dict[str, Any], key: str, system_archive: str = "", family: str = "ubuntu"
) -> dict[str, str]:
    """name -> archive URL of each auto candidate that has one (official on Debian: the system's own)."""
    out: dict[str, str] = {}
    for name in names:
        url = ((profiles.get(name) or {}).get("apt") or {}).get(key) or ""
        if name == "official" and family == "debian":
            url = system_archive
        if url:
            out[name] = url
    return out


def apt_mirror_race_line(r: dict[str, Any]) -> str:
    if r.get("ok"):
        lag = f", {r['lag_hours']} h behind official" if r.get("lag_hours") is not None else ""
        return f"  {r['name']}: {r['seconds']:.3f} s, healthy{lag} ({r['url']})"
    took = f" after {r['seconds']:.3f} s" if r.get("seconds") is not None else ""
    return f"  {r['name']}: unhealthy{took}: {r.get('reason')} ({r['url']})"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "apt_mirror_sources": apt_mirror_sources,
            "apt_mirror_parse_sources": apt_mirror_parse_sources,
            "apt_mirror_security_uris": apt_mirror_security_uris,
            "apt_mirror_via_cache": apt_mirror_via_cache,
            "apt_mirror_probe_urls": apt_mirror_probe_urls,
            "apt_mirror_failed_urls": apt_mirror_failed_urls,
            "apt_mirror_backup_name": apt_mirror_backup_name,
            "apt_mirror_manifest_entry": apt_mirror_manifest_entry,
            "apt_mirror_race_line": apt_mirror_race_line,
            "apt_mirror_originals": apt_mirror_originals,
            "apt_mirror_candidates": apt_mirror_candidates,
        }
