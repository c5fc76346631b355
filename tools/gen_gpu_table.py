#!/usr/bin/env python3
# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate plugins/filter/data/nvidia_devices.json from upstream data.

One command regenerates the committed table::

    python3 tools/gen_gpu_table.py

What it does:

1. Reads the Debian mirror from this machine's own apt sources
   (``/etc/apt/sources.list.d/*.sources`` or ``/etc/apt/sources.list``).
2. Writes a private apt configuration under ``.cache/gpu-table/`` (sid and
   experimental, main/contrib/non-free) and runs ``apt-get update`` with it.
   The system's apt state and ``/etc`` are never touched.
3. Picks the NEWEST ``nvidia-driver`` available there and the newest
   ``pci.ids`` and fetches both with ``apt-get download``.
4. Reads NVIDIA's ``supported-gpus.json.gz`` (device IDs, marketing names,
   legacy branches, ``kernelopen``) from the driver package and ``pci.ids``
   (chip codenames such as ``AD102``/``GB202``; devices newer than the driver
   data) and writes one compact JSON table, one device per line.

Offline use (no apt): ``--driver-json FILE --pci-ids FILE`` with files you
already have; ``--driver-version``/``--pci-ids-version`` then label them.

Only GPU functions are kept: pci.ids rows naming audio, USB, UCSI, NVSwitch,
bridge or host functions are dropped, and pci.ids-only rows are kept only
for chips with a known codename prefix (Fermi ``GF`` .. Blackwell ``GB``).
Facts the upstream files do not carry (compute capability, open-only,
minimum branches) live in ``plugins/filter/data/nvidia_overlay.yml`` and are
merged when the filters load the table, not here.
"""

from __future__ import annotations

import argparse
import functools
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "plugins" / "filter" / "data" / "nvidia_devices.json"
DEFAULT_CACHE = ROOT / ".cache" / "gpu-table"

DRIVER_PACKAGE = "nvidia-driver"
PCI_IDS_PACKAGE = "pci.ids"
DRIVER_JSON_MEMBER = "usr/share/doc/nvidia-driver/supported-gpus.json.gz"
PCI_IDS_MEMBER = "usr/share/misc/pci.ids"
SUITES = ("sid", "experimental")
COMPONENTS = "main contrib non-free"
NVIDIA_VENDOR = "10de"

#: chip codename prefix (pci.ids) -> architecture
CODENAME_ARCH: dict[str, str] = {
    "GF": "legacy",  # Fermi
    "GK": "kepler",
    "GM": "maxwell",
    "GP": "pascal",
    "GV": "volta",
    "TU": "turing",
    "GA": "ampere",
    "AD": "ada",
    "GH": "hopper",
    "GB": "blackwell",
}
#: legacy branch of supported-gpus.json -> architecture (rows without codename)
LEGACY_BRANCH_ARCH: dict[str, str] = {"470.xx": "kepler", "367.xx": "kepler"}

CHIP_RE = re.compile(r"^(GF|GK|GM|GP|GV|TU|GA|AD|GH|GB)(\d+)(B?)(?![0-9])")
NON_GPU_RE = re.compile(
    r"audio|usb|ucsi|nvswitch|bridge|pcie? host|\bhost\b|serial|smbus|ethernet|sata|ahci|raid",
    re.IGNORECASE,
)
PCI_ROW_RE = re.compile(r"^\t([0-9a-f]{4})  (.+)$")


@dataclass
class Device:
    """One row of the generated table."""

    devid: str
    name: str
    chip: str | None
    arch: str
    legacy: str | None
    kernelopen: bool | None
    source: str

    def row(self) -> list[object]:
        """Row in the order of ``FIELDS``."""
        return [self.name, self.chip, self.arch, self.legacy, self.kernelopen, self.source]


FIELDS = ["name", "chip", "arch", "legacy_branch", "kernelopen", "source"]


# --------------------------------------------------------------------------- apt


def system_mirror() -> str:
    """Return the first Debian archive URI of this machine's apt sources."""
    candidates: list[tuple[str, list[str]]] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for block in Path(path).read_text(encoding="utf-8").split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                for uri in fields.get("uris", "").split():
                    candidates.append((uri, fields.get("suites", "").split()))
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text(encoding="utf-8").splitlines():
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb":
                candidates.append((words[1], [words[2]]))
    for uri, suites in candidates:
        if any(not s.endswith("-security") for s in suites):
            return uri.rstrip("/")
    raise SystemExit("gen_gpu_table: no Debian mirror found in this machine's apt sources; pass --mirror")


def _apt_options(cache: Path) -> list[str]:
    return [
        "-o",
        f"Dir::Etc::SourceList={cache / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={cache / 'lists'}",
        "-o",
        f"Dir::Cache={cache / 'apt'}",
        "-o",
        "APT::Sandbox::User=root",
    ]


def apt_setup(cache: Path, mirror: str) -> list[str]:
    """Write the private sources list, run ``apt-get update``; return apt options."""
    for sub in ("lists/partial", "apt/archives/partial", "debs"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    opts = f"[signed-by={keyring}] " if os.path.exists(keyring) else ""
    lines = [f"deb {opts}{mirror} {suite} {COMPONENTS}" for suite in SUITES]
    (cache / "sources.list").write_text("\n".join(lines) + "\n", encoding="utf-8")
    apt = _apt_options(cache)
    subprocess.run(["apt-get", *apt, "-q", "update"], check=True, stdout=subprocess.DEVNULL)
    return apt


def _dpkg_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    lower = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0
    return -1 if lower else 1


def newest_version(apt: list[str], package: str) -> tuple[str, str]:
    """Return (version, suite line) of the newest ``package`` in the private sources."""
    out = subprocess.run(["apt-cache", *apt, "madison", package], check=True, capture_output=True, text=True).stdout
    versions: dict[str, str] = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[0] == package:
            where = parts[2].split()
            versions.setdefault(parts[1], where[1] if len(where) > 1 else parts[2])
    if not versions:
        raise SystemExit(f"gen_gpu_table: {package} not found in {SUITES}")
    best = max(versions, key=functools.cmp_to_key(_dpkg_cmp))
    return best, versions[best]


def download_member(apt: list[str], cache: Path, package: str, version: str, member: str) -> bytes:
    """``apt-get download`` one package version and return one file of it."""
    debs = cache / "debs"
    subprocess.run(
        ["apt-get", *apt, "-q", "download", f"{package}={version}"],
        check=True,
        cwd=debs,
        stdout=subprocess.DEVNULL,
    )
    safe = version.replace(":", "%3a")
    matches = sorted(debs.glob(f"{package}_{safe}_*.deb"))
    if not matches:
        raise SystemExit(f"gen_gpu_table: download of {package}={version} left no .deb")
    with tempfile.TemporaryFile() as tmp:
        subprocess.run(["dpkg-deb", "--fsys-tarfile", str(matches[0])], check=True, stdout=tmp)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp) as tar:
            for info in tar:
                if info.name.lstrip("./") == member:
                    handle = tar.extractfile(info)
                    if handle is not None:
                        return handle.read()
    raise SystemExit(f"gen_gpu_table: {member} not found in {matches[0].name}")


# ----------------------------------------------------------------------- parsing


def parse_pci_ids(text: str) -> dict[str, str]:
    """Return ``{devid: name}`` of the NVIDIA vendor block of a pci.ids file."""
    rows: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith("\t"):
            inside = line.startswith(NVIDIA_VENDOR + " ")
            if not inside and rows:
                break
            continue
        if inside:
            match = PCI_ROW_RE.match(line)
            if match:
                rows[match.group(1)] = match.group(2).strip()
    return rows


def chip_of(pci_name: str) -> str | None:
    """Chip codename (``AD102``, ``GK110B``, ``GB20B``) of a pci.ids device name."""
    match = CHIP_RE.match(pci_name)
    return "".join(match.groups()) if match else None


def is_gpu_function(pci_name: str) -> bool:
    """False for pci.ids rows that name audio/USB/UCSI/NVSwitch/bridge functions."""
    return not NON_GPU_RE.search(pci_name)


def marketing_from_pci(pci_name: str, chip: str) -> str:
    """``GB202 [GeForce RTX 5090]`` -> ``NVIDIA GeForce RTX 5090``; no bracket -> ``NVIDIA GB202``."""
    match = re.search(r"\[(.+)\]", pci_name)
    return f"NVIDIA {match.group(1).strip()}" if match else f"NVIDIA {pci_name.strip() or chip}"


def build_table(chips: Iterable[dict[str, object]], pci: dict[str, str]) -> dict[str, Device]:
    """Merge supported-gpus.json rows and pci.ids rows into one device table."""
    table: dict[str, Device] = {}
    for entry in chips:
        devid = str(entry.get("devid", "")).lower().removeprefix("0x").zfill(4)
        if not re.fullmatch(r"[0-9a-f]{4}", devid):
            continue
        features = entry.get("features") or []
        legacy = entry.get("legacybranch")
        name = str(entry.get("name", "")).strip()
        generic = "subdevid" not in entry
        known = table.get(devid)
        if known is not None:
            # keep the generic (no subsystem) name when there is one
            if generic and not known.source.endswith("+generic"):
                known.name = name
                known.source = "driver+generic"
            if isinstance(features, list) and "kernelopen" in features:
                known.kernelopen = True
            continue
        pci_name = pci.get(devid, "")
        chip = chip_of(pci_name)
        if chip:
            arch = CODENAME_ARCH[chip[:2]]
        elif isinstance(legacy, str):
            arch = LEGACY_BRANCH_ARCH.get(legacy, "legacy")
        else:
            arch = "unknown"
        table[devid] = Device(
            devid=devid,
            name=name,
            chip=chip,
            arch=arch,
            legacy=legacy if isinstance(legacy, str) else None,
            kernelopen=isinstance(features, list) and "kernelopen" in features,
            source="driver+generic" if generic else "driver",
        )
    for dev in table.values():
        dev.source = "driver"
    for devid, pci_name in sorted(pci.items()):
        if devid in table:
            continue
        chip = chip_of(pci_name)
        if chip is None or not is_gpu_function(pci_name):
            continue
        table[devid] = Device(
            devid=devid,
            name=marketing_from_pci(pci_name, chip),
            chip=chip,
            arch=CODENAME_ARCH[chip[:2]],
            legacy=None,
            kernelopen=None,
            source="pci.ids",
        )
    return dict(sorted(table.items()))


def render(table: dict[str, Device], meta: dict[str, object]) -> str:
    """Compact, diff-friendly JSON: one device per line."""
    lines = ["{", f'"meta": {json.dumps(meta, sort_keys=True)},', f'"fields": {json.dumps(FIELDS)},', '"devices": {']
    rows = [f"{json.dumps(k)}: {json.dumps(v.row(), ensure_ascii=False)}" for k, v in table.items()]
    lines.append(",\n".join(rows))
    lines.append("}}")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--mirror", help="Debian archive URI (default: from this machine's apt sources)")
    parser.add_argument("--driver-json", type=Path, help="local supported-gpus.json(.gz); skips apt")
    parser.add_argument("--pci-ids", type=Path, help="local pci.ids; skips apt")
    parser.add_argument("--driver-version", default="local")
    parser.add_argument("--pci-ids-version", default="local")
    args = parser.parse_args(argv)

    if args.driver_json and args.pci_ids:
        raw_json = args.driver_json.read_bytes()
        pci_text = args.pci_ids.read_text(encoding="utf-8", errors="replace")
        driver = {"package": DRIVER_PACKAGE, "version": args.driver_version, "suite": "local file"}
        pci_meta = {"package": PCI_IDS_PACKAGE, "version": args.pci_ids_version, "suite": "local file"}
    else:
        apt = apt_setup(args.cache_dir, args.mirror or system_mirror())
        dver, dsuite = newest_version(apt, DRIVER_PACKAGE)
        pver, psuite = newest_version(apt, PCI_IDS_PACKAGE)
        raw_json = download_member(apt, args.cache_dir, DRIVER_PACKAGE, dver, DRIVER_JSON_MEMBER)
        pci_text = download_member(apt, args.cache_dir, PCI_IDS_PACKAGE, pver, PCI_IDS_MEMBER).decode(
            "utf-8", errors="replace"
        )
        driver = {"package": DRIVER_PACKAGE, "version": dver, "suite": dsuite}
        pci_meta = {"package": PCI_IDS_PACKAGE, "version": pver, "suite": psuite}
    if raw_json[:2] == b"\x1f\x8b":
        raw_json = gzip.decompress(raw_json)
    chips = json.loads(raw_json)["chips"]
    table = build_table(chips, parse_pci_ids(pci_text))
    counts: dict[str, int] = {}
    for dev in table.values():
        counts[dev.arch] = counts.get(dev.arch, 0) + 1
    meta: dict[str, object] = {
        "generator": "tools/gen_gpu_table.py",
        "driver_data": {**driver, "file": DRIVER_JSON_MEMBER, "entries": len(chips)},
        "pci_ids": {**pci_meta, "file": PCI_IDS_MEMBER},
        "devices_per_arch": dict(sorted(counts.items())),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(table, meta), encoding="utf-8")
    print(f"wrote {args.output} ({len(table)} devices: {meta['devices_per_arch']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
