# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared code of the nvidia_gpus and nvidia_stack filters (not a filter).

Loads the generated device table, the overlay and the policy lazily and once
(``functools.cache``), parses ``lspci -nn`` text and classifies NVIDIA GPU
functions. The filter files load this module by path under the fixed name
``_aiws_nvidia`` (see ``load_common`` in each of them), so both filters and
the unit tests share one instance and one cache.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable
from typing import Any

import yaml

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DEVICES_FILE = os.path.join(DATA_DIR, "nvidia_devices.json")
OVERLAY_FILE = os.path.join(DATA_DIR, "nvidia_overlay.yml")
POLICY_FILE = os.path.join(DATA_DIR, "nvidia_policy.yml")

NVIDIA_VENDOR = "10de"
#: PCI class codes of display functions (VGA, 3D controller, display controller)
DISPLAY_CLASSES = frozenset({"0300", "0302", "0380"})
ARCHITECTURES = (
    "legacy",
    "kepler",
    "maxwell",
    "pascal",
    "volta",
    "turing",
    "ampere",
    "ada",
    "hopper",
    "blackwell",
    "unknown",
)

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# `[domain:]bus:dev.fn` anywhere in a line (IOMMU listings prefix it with text)
_SLOT = r"(?P<slot>(?:[0-9A-Fa-f]{4,8}:)?[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])"
# lspci -nn:  01:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD102 [GeForce RTX 4090] [10de:2684] (rev a1)
_NN_RE = re.compile(r"(?:^|\s)" + _SLOT + r"\s+(?P<cls>[^\[\]]*?)\s*\[(?P<code>[0-9A-Fa-f]{4})\]\s*:\s*(?P<rest>.*)$")
# lspci -n:   01:00.0 0300: 10de:2684 (rev a1)
_N_RE = re.compile(
    r"(?:^|\s)" + _SLOT + r"\s+(?P<code>[0-9A-Fa-f]{4}):\s+(?P<vid>[0-9A-Fa-f]{4}):(?P<did>[0-9A-Fa-f]{4})\b"
)
# lspci -mmnn: 01:00.0 "VGA compatible controller [0300]" "NVIDIA Corporation [10de]"
#              "AD102 [GeForce RTX 4090] [2684]" ...
_MM_RE = re.compile(
    r"(?:^|\s)" + _SLOT + r'\s+"[^"]*\[(?P<code>[0-9A-Fa-f]{4})\]"\s+"[^"]*\[(?P<vid>[0-9A-Fa-f]{4})\]"\s+'
    r'"(?P<name>[^"]*?)\s*\[(?P<did>[0-9A-Fa-f]{4})\]"'
)
_ID_RE = re.compile(r"\[(?P<vid>[0-9A-Fa-f]{4}):(?P<did>[0-9A-Fa-f]{4})\]")
# A line without a bus address (pasted from a forum, a ticket or another tool):
#   VGA compatible controller [0300]: NVIDIA Corporation AD102 [GeForce RTX 4090] [10de:2684] (rev a1)
# The first bracketed four-digit code is the PCI class; the vendor:device pair follows it.
_NOSLOT_RE = re.compile(r"\[(?P<code>[0-9A-Fa-f]{4})\]\s*:?\s*(?P<rest>.*)$")
_VENDOR_PREFIX_RE = re.compile(r"^\s*(?:NVIDIA|nVidia|Nvidia)(?:\s+Corporation)?\s*", re.IGNORECASE)
#: declared GPU: "10de:2684", "10DE:2684", "0x2684", "2684"
DECLARED_RE = re.compile(r"^\s*(?:(?:0x)?(?P<vid>[0-9A-Fa-f]{4}):)?(?:0x)?(?P<did>[0-9A-Fa-f]{4})\s*$")


# ----------------------------------------------------------------------- data


@functools.cache
def policy() -> dict[str, Any]:
    """nvidia_policy.yml, parsed once."""
    with open(POLICY_FILE, encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=_SafeLoader)
    return data


@functools.cache
def overlay() -> dict[str, Any]:
    """nvidia_overlay.yml, parsed once."""
    with open(OVERLAY_FILE, encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=_SafeLoader)
    return data


@functools.cache
def table_meta() -> dict[str, Any]:
    """The ``meta`` block of the generated table (sources and versions)."""
    return dict(_raw_table()["meta"])


@functools.cache
def _raw_table() -> dict[str, Any]:
    with open(DEVICES_FILE, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def _chip_row(chips: dict[str, Any], chip: str | None) -> dict[str, Any]:
    if not chip:
        return {}
    row = chips.get(chip)
    if row is None and chip.endswith("B"):
        row = chips.get(chip[:-1])
    return dict(row or {})


def _normalise_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        return name
    return name if name.upper().startswith("NVIDIA") else f"NVIDIA {name}"


@functools.cache
def devices() -> dict[str, dict[str, Any]]:
    """Device ID (4 lower-case hex digits) -> merged facts.

    Keys: name, chip, arch, cc, legacy_branch, kernelopen (bool or None when
    only pci.ids knows the device), open_only, min_branch, source.
    """
    raw = _raw_table()
    fields: list[str] = raw["fields"]
    ovl = overlay()
    chips: dict[str, Any] = ovl.get("chips") or {}
    extra: dict[str, Any] = ovl.get("devices") or {}
    merged: dict[str, dict[str, Any]] = {}
    for devid, row in raw["devices"].items():
        info = dict(zip(fields, row, strict=True))
        merged[devid] = info
    for devid, row in extra.items():
        key = str(devid).lower()
        info = merged.setdefault(
            key,
            {
                "name": None,
                "chip": None,
                "arch": "unknown",
                "legacy_branch": None,
                "kernelopen": None,
                "source": "overlay",
            },
        )
        for field in ("name", "chip", "arch", "legacy_branch"):
            if row.get(field) is not None:
                info[field] = row[field]
    for devid, info in merged.items():
        chip_row = _chip_row(chips, info.get("chip"))
        dev_row = dict(extra.get(devid) or {})
        info["name"] = _normalise_name(str(info.get("name") or ""))
        info["cc"] = dev_row.get("cc", chip_row.get("cc"))
        info["open_only"] = bool(dev_row.get("open_only", chip_row.get("open_only", False)))
        info["min_branch"] = dev_row.get("min_branch", chip_row.get("min_branch"))
    return merged


# -------------------------------------------------------------------- parsing


def _norm_slot(slot: str) -> str:
    slot = slot.lower()
    if slot.count(":") == 1:
        slot = "0000:" + slot
    return slot


def slot_key(slot: str | None) -> tuple[int, ...]:
    """Sort key for ``dddd:bb:dd.f`` (bus order)."""
    if not slot:
        return (1 << 62,)
    dom, bus, rest = slot.split(":")
    dev, fn = rest.split(".")
    return (int(dom, 16), int(bus, 16), int(dev, 16), int(fn, 16))


def _lspci_name(rest: str) -> str:
    """``NVIDIA Corporation AD102 [GeForce RTX 4090]`` -> ``GeForce RTX 4090``; ``Device 2b85`` kept."""
    text = _VENDOR_PREFIX_RE.sub("", rest).strip()
    bracket = re.search(r"\[([^\[\]]+)\]\s*$", text)
    if bracket:
        return bracket.group(1).strip()
    return text


def _nvidia_id(rest: str) -> tuple[str, str] | None:
    """``(devid, lspci name)`` from the text after the class code: its first ``[10de:xxxx]`` pair."""
    first = next((m for m in _ID_RE.finditer(rest) if m.group("vid").lower() == NVIDIA_VENDOR), None)
    if first is None:
        return None
    return first.group("did").lower(), _lspci_name(rest[: first.start()])


def parse_line(line: str) -> tuple[str | None, str, str] | None:
    """Return ``(slot, devid, lspci name)`` for an NVIDIA display function, else None.

    ``slot`` is None for a line without a bus address that still carries a display class code
    (``[0300]``, ``[0302]``, ``[0380]``) and NVIDIA's ``[10de:xxxx]`` pair.
    """
    match = _MM_RE.search(line)
    if match:
        if match.group("vid").lower() != NVIDIA_VENDOR or match.group("code") not in DISPLAY_CLASSES:
            return None
        return _norm_slot(match.group("slot")), match.group("did").lower(), _lspci_name(match.group("name"))
    match = _NN_RE.search(line)
    if match:
        if match.group("code") not in DISPLAY_CLASSES:
            return None
        found = _nvidia_id(match.group("rest"))
        return (_norm_slot(match.group("slot")), *found) if found else None
    match = _N_RE.search(line)
    if match:
        if match.group("vid").lower() != NVIDIA_VENDOR or match.group("code") not in DISPLAY_CLASSES:
            return None
        return _norm_slot(match.group("slot")), match.group("did").lower(), ""
    match = _NOSLOT_RE.search(line)
    if match:
        if match.group("code") not in DISPLAY_CLASSES:
            return None
        found = _nvidia_id(match.group("rest"))
        return (None, *found) if found else None
    return None


def describe(devid: str, slot: str | None, lspci_name: str = "") -> dict[str, Any]:
    """Public record of one GPU: slot, pci_id, name, arch, compute_capability."""
    if lspci_name.strip().lower() in ("", "device"):
        lspci_name = f"Device {devid}"
    info = devices().get(devid)
    if info is None:
        fallback = lspci_name
        return {
            "slot": slot,
            "pci_id": f"{NVIDIA_VENDOR}:{devid}",
            "name": _normalise_name(fallback),
            "arch": "unknown",
            "compute_capability": None,
        }
    return {
        "slot": slot,
        "pci_id": f"{NVIDIA_VENDOR}:{devid}",
        "name": info["name"] or _normalise_name(lspci_name),
        "arch": info["arch"],
        "compute_capability": info["cc"],
    }


def gpus_from_lines(lines: Iterable[str], declared_ok: bool = True) -> list[dict[str, Any]]:
    """Classify lspci lines (and, if ``declared_ok``, bare declared IDs such as ``10de:2684``).

    lspci functions come first in bus order (one per slot), then lspci lines without a bus
    address in the order given (each line is one GPU: nothing tells two such lines apart),
    declared IDs last in the order given (each counts, so eight ``10de:2330`` are eight GPUs).
    """
    found: dict[str, dict[str, Any]] = {}
    unplaced: list[dict[str, Any]] = []
    declared: list[dict[str, Any]] = []
    for raw in lines:
        for line in raw.splitlines() or [raw]:
            hit = parse_line(line)
            if hit is not None:
                slot, devid, name = hit
                if slot is None:
                    unplaced.append(describe(devid, None, name))
                else:
                    found.setdefault(slot, describe(devid, slot, name))
                continue
            if declared_ok:
                decl = DECLARED_RE.match(line)
                if decl and (decl.group("vid") or NVIDIA_VENDOR).lower() == NVIDIA_VENDOR:
                    declared.append(describe(decl.group("did").lower(), None))
    ordered = [found[s] for s in sorted(found, key=slot_key)]
    return ordered + unplaced + declared


class FilterModule:
    """No filters here: ansible's loader imports every file of a filter directory
    and warns about one without a FilterModule; this empty one keeps it quiet."""

    def filters(self) -> dict[str, Any]:
        return {}
