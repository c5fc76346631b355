#!/usr/bin/env python3
# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate plugins/filter/data/nvidia_cudnn.yml, the cuDNN 9 release table for CUDA 12.

One command regenerates the committed table from the newest upstream facts::

    python3 tools/gen_cudnn_table.py

What it does:

1. Asks PyPI's JSON API for the release list of ``nvidia-cudnn-cu12`` (NVIDIA's CUDA 12 build
   of cuDNN: every version with its files and upload times). The index is the one pip uses on
   this machine (``PIP_INDEX_URL`` or pip's ``global.index-url``, else pip's own default), so a
   mirror that serves the JSON API works too; ``--index-url`` overrides it.
2. Records that answer, trimmed to the fields used (no download URLs), in
   ``tests/unit/fixtures/pypi/nvidia-cudnn-cu12.json``: the unit tests regenerate the table
   from it offline and compare with the committed one.
3. Keeps the final (not yanked, not pre/post/dev) releases of cuDNN 9 that have a Linux x86_64
   wheel, takes the newest patch of each minor release, and joins the facts of
   ``plugins/filter/data/cudnn_support_matrix.yml`` (CUDA 12 range, minimum driver,
   architectures, samples layout, each with its source).
4. Writes one row per minor release. The apt version is the wheel's version with NVIDIA's
   Debian revision ``-1`` (``cudnn9-cuda-12=9.24.0.43-1``), as NVIDIA's repositories name them.

Offline: ``--pypi-json FILE`` reads a recorded (or full) answer instead of asking PyPI.
``--check`` exits 1 when the output would change (the file is left alone).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "nvidia-cudnn-cu12"
DATA = ROOT / "plugins" / "filter" / "data"
DEFAULT_OUTPUT = DATA / "nvidia_cudnn.yml"
DEFAULT_MATRIX = DATA / "cudnn_support_matrix.yml"
DEFAULT_RECORD = ROOT / "tests" / "unit" / "fixtures" / "pypi" / f"{PROJECT}.json"
MAJOR = 9
APT_REVISION = "-1"
FINAL_RE = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)\.(?P<build>\d+)$")
LINUX_X86_64_RE = re.compile(r"-manylinux[0-9_a-z]*x86_64\.whl$")
# Fields of a release file that the table uses; everything else (URLs, digests of other
# files, metadata) is dropped from the recording.
FILE_FIELDS = ("filename", "packagetype", "upload_time_iso_8601", "yanked")


# ------------------------------------------------------------------------- PyPI


def pip_index_url() -> str:
    """The simple index pip uses here: PIP_INDEX_URL, pip's configuration, else pip's default."""
    env = os.environ.get("PIP_INDEX_URL")
    if env:
        return env
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    from pip._internal.models.index import PyPI  # pip's own default, not written here

    return str(PyPI.simple_url)


def json_api_url(index_url: str, project: str = PROJECT) -> str:
    """``https://host/simple`` (or ``.../pypi/simple``) -> ``https://host/pypi/<project>/json``."""
    base = index_url.rstrip("/")
    base = base.removesuffix("/simple").removesuffix("/+simple")
    base = base.removesuffix("/pypi")
    return f"{base}/pypi/{project}/json"


def fetch(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        data: dict[str, Any] = json.load(answer)
    return data


def trim(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The PyPI answer reduced to what the table uses; stable order, no URLs."""
    releases: dict[str, list[dict[str, Any]]] = {}
    for version, files in (answer.get("releases") or {}).items():
        rows = [{k: f.get(k) for k in FILE_FIELDS} for f in files or []]
        releases[version] = sorted(rows, key=lambda row: str(row["filename"]))
    info = answer.get("info") or {}
    return {
        "info": {"name": info.get("name"), "version": info.get("version")},
        "last_serial": answer.get("last_serial"),
        "releases": dict(sorted(releases.items(), key=lambda kv: _sort_key(kv[0]))),
    }


def _sort_key(version: str) -> tuple[Any, ...]:
    parts = re.split(r"[.+-]", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


# ------------------------------------------------------------------------ table


def final_releases(answer: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``{minor: {version, released}}``: the newest usable patch of every cuDNN 9 minor release.

    Usable: a final version (four numbers, no pre/post/dev suffix), not yanked, with a Linux
    x86_64 wheel (NVIDIA's apt repositories follow the same versions). ``released`` is the upload
    date of that wheel.
    """
    best: dict[str, tuple[Version, str, str]] = {}
    for version, files in (answer.get("releases") or {}).items():
        match = FINAL_RE.match(version)
        if not match or int(match.group("major")) != MAJOR:
            continue
        wheels = [
            f
            for f in files or []
            if f.get("packagetype") == "bdist_wheel"
            and LINUX_X86_64_RE.search(str(f.get("filename", "")))
            and not f.get("yanked")
        ]
        if not wheels:
            continue
        released = min(str(f.get("upload_time_iso_8601") or "")[:10] for f in wheels)
        minor = f"{match.group('major')}.{match.group('minor')}"
        key = Version(version)
        if minor not in best or key > best[minor][0]:
            best[minor] = (key, version, released)
    return {m: {"version": v, "released": d} for m, (_, v, d) in sorted(best.items(), key=lambda kv: Version(kv[0]))}


def _block(blocks: Iterable[Mapping[str, Any]], minor: str, what: str) -> Mapping[str, Any]:
    for block in blocks:
        low = Version(str(block["from"]))
        high = Version(str(block["to"])) if block.get("to") is not None else None
        if Version(minor) >= low and (high is None or Version(minor) <= high):
            return block
    raise SystemExit(f"gen_cudnn_table: no {what} block of the support matrix file covers cuDNN {minor}")


def build_rows(releases: Mapping[str, Mapping[str, str]], facts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One row per minor release: PyPI's version and date joined with the support-matrix facts."""
    rows: dict[str, dict[str, Any]] = {}
    for minor, rel in releases.items():
        block = _block(facts["matrix"], minor, "matrix")
        samples = _block(facts["samples"], minor, "samples")
        row: dict[str, Any] = {
            "version": rel["version"],
            "apt": rel["version"] + APT_REVISION,
            "released": rel["released"],
            "cuda12": [str(v) for v in block["cuda12"]],
            "min_driver": str(block["min_driver"]),
            "architectures": list(block["architectures"]),
            "samples": {"build": str(samples["build"]), "cmake_minimum": str(samples["cmake_minimum"])},
        }
        if block.get("matrix"):
            row["matrix"] = str(block["matrix"])
        if not block.get("confirmed", False):
            row["confirmed"] = False
        rows[minor] = row
    return rows


def render(rows: Mapping[str, Mapping[str, Any]], answer: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    """The generated file: a header, the sources of every fact, one mapping per minor release."""
    newest = list(rows)[-1] if rows else None
    document: dict[str, Any] = {
        "generator": "tools/gen_cudnn_table.py",
        "source": (
            f"PyPI JSON API for {PROJECT} (NVIDIA's CUDA 12 build of cuDNN), recorded in "
            f"{DEFAULT_RECORD.relative_to(ROOT)}: final, not yanked releases with a Linux x86_64 wheel, "
            "newest patch per minor; apt version = wheel version + NVIDIA's Debian revision -1; CUDA range, "
            "driver, architectures and samples layout from plugins/filter/data/cudnn_support_matrix.yml"
        ),
        "pypi": {
            "project": PROJECT,
            "last_serial": answer.get("last_serial"),
            "newest": rows[newest]["version"] if newest else None,
        },
        "matrix_sources": [_source(b) for b in facts["matrix"]],
        "samples_sources": [_source(b) for b in facts["samples"]],
        "major": str(MAJOR),
    }
    releases = {"releases": {minor: dict(row) for minor, row in rows.items()}}
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=110, default_flow_style=False) + yaml.dump(
        releases, Dumper=_Dumper, sort_keys=False, width=110, default_flow_style=None
    )
    return (
        "# GENERATED by tools/gen_cudnn_table.py: do not edit. Change plugins/filter/data/cudnn_support_matrix.yml\n"
        "# (facts with their sources) and regenerate; tests/unit/test_cudnn_table.py checks this file.\n" + body
    )


class _Dumper(yaml.SafeDumper):
    """Indents block sequences under their key, as yamllint's default expects."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _source(block: Mapping[str, Any]) -> str:
    return f"{block['from']}-{block['to'] or 'newer'}: {' '.join(str(block['source']).split())}"


def generate(answer: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    """The table's text for a PyPI answer (full or trimmed) and the support-matrix facts."""
    trimmed = trim(answer)
    return render(build_rows(final_releases(trimmed), facts), trimmed, facts)


# ------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX, help="support-matrix facts (YAML)")
    parser.add_argument("--pypi-json", type=Path, help="recorded or full PyPI answer; skips the network")
    parser.add_argument("--index-url", help="simple index whose host serves the JSON API (default: pip's)")
    parser.add_argument("--record", type=Path, default=DEFAULT_RECORD, help="where a live answer is recorded")
    parser.add_argument("--check", action="store_true", help="exit 1 if the output would change")
    args = parser.parse_args(argv)

    if args.pypi_json:
        answer = json.loads(args.pypi_json.read_text(encoding="utf-8"))
    else:
        url = json_api_url(args.index_url or pip_index_url())
        answer = fetch(url)
        if not args.check:
            args.record.parent.mkdir(parents=True, exist_ok=True)
            args.record.write_text(json.dumps(trim(answer), indent=1) + "\n", encoding="utf-8")
            print(f"recorded the answer in {args.record}", file=sys.stderr)
    facts = yaml.safe_load(args.matrix.read_text(encoding="utf-8"))
    text = generate(answer, facts)
    if args.check:
        same = args.output.exists() and args.output.read_text(encoding="utf-8") == text
        print(f"{args.output}: {'up to date' if same else 'would change'}", file=sys.stderr)
        return 0 if same else 1
    args.output.write_text(text, encoding="utf-8")
    rows = yaml.safe_load(text)["releases"]
    newest = list(rows)[-1]
    print(f"wrote {args.output}: {len(rows)} minor releases, newest {rows[newest]['version']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
