# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Parsers for what the verification commands print. Pure functions: text in, plain data out.

Every parser accepts odd or empty text and answers with an empty/None result instead of raising,
because its input is whatever a half-provisioned machine printed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

__all__ = [
    "channel_base",
    "nvidia_smi_failure",
    "parse_conda_info",
    "parse_driver_version_file",
    "parse_mnist",
    "parse_nvcc_version",
    "parse_nvidia_smi_csv",
    "parse_nvidia_smi_table",
    "parse_pip_config",
    "parse_sections",
    "split_key_values",
]

# "| NVIDIA-SMI 580.95.05   Driver Version: 580.95.05   CUDA Version: 13.0 |" and, from the
# 600 series, "| NVIDIA-SMI 610.57.04   KMD Version: 610.57.04   CUDA UMD Version: 13.3 |".
_SMI_HEADER = re.compile(
    r"NVIDIA-SMI\s+(?P<smi>[\d.]+)\s+(?:Driver|KMD)\s+Version:\s*(?P<driver>[\d.]+)"
    r"(?:\s+CUDA(?:\s+UMD)?\s+Version:\s*(?P<cuda>[\d.]+|N/A))?"
)
# "|   0  NVIDIA GeForce RTX 4090        Off | 00000000:3E:00.0 Off |   Off |"
_SMI_GPU_ROW = re.compile(
    r"^\|\s+(?P<index>\d+)\s+(?P<name>.+?)\s+(?:On|Off)\s+\|\s+(?P<bus>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)"
)
_NVCC_RELEASE = re.compile(r"release\s+(?P<release>\d+\.\d+),\s+V(?P<version>[\d.]+)")
_PROC_VERSION = re.compile(r"NVRM version:\s+NVIDIA UNIX\s+(?P<what>.*?Kernel Module)(?:\s+for\s+\S+)?\s+(?P<version>\d+\.\d+(?:\.\d+)?)")
_MNIST_VERSION = re.compile(r"cudnnGetVersion\(\)\s*:\s*(?P<lib>\d+)\s*,\s*CUDNN_VERSION from cudnn\.h\s*:\s*(?P<hdr>\d+)\s*\((?P<ver>[\d.]+)\)")
_MNIST_DEVICES = re.compile(r"There (?:are|is) (?P<n>\d+) CUDA capable devices?")
_SECTION = re.compile(r"^### (?P<name>[a-z_]+) rc=(?P<rc>-?\d+)\s*$")


def parse_nvidia_smi_table(text: str) -> dict[str, Any] | None:
    """The default `nvidia-smi` table: driver version, the driver's CUDA version and the GPU rows.

    Returns None when the text holds no nvidia-smi header (for example an error message).
    """
    header = _SMI_HEADER.search(text or "")
    if not header:
        return None
    gpus = []
    for line in text.splitlines():
        row = _SMI_GPU_ROW.match(line)
        if row:
            gpus.append({"index": int(row["index"]), "name": row["name"].strip(), "bus_id": row["bus"].upper()})
    cuda = header["cuda"]
    return {
        "driver_version": header["driver"],
        "cuda_version": None if cuda in (None, "N/A") else cuda,
        "gpus": gpus,
    }


def parse_nvidia_smi_csv(text: str) -> list[dict[str, str]]:
    """`nvidia-smi --query-gpu=a,b,c --format=csv` (with its header line): one dict per GPU.

    Keys are the query field names without their unit suffix (`memory.total [MiB]` -> `memory.total`).
    Values are stripped strings; "[N/A]" and "N/A" become "".
    """
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines or "," not in lines[0] and len(lines) < 2:
        return []
    rows = list(csv.reader(io.StringIO("\n".join(lines)), skipinitialspace=True))
    header = [re.sub(r"\s*\[.*\]$", "", h.strip()) for h in rows[0]]
    if not header or not all(re.fullmatch(r"[a-z_.]+", h) for h in header):
        return []
    gpus = []
    for row in rows[1:]:
        if len(row) != len(header):
            continue
        gpus.append({k: ("" if v.strip() in ("[N/A]", "N/A") else v.strip()) for k, v in zip(header, row, strict=True)})
    return gpus


def nvidia_smi_failure(text: str) -> str | None:
    """Classify an nvidia-smi failure: no_driver, version_mismatch, no_devices, not_found, or None."""
    low = (text or "").lower()
    if "couldn't communicate with the nvidia driver" in low or "couldn\u2019t communicate with the nvidia driver" in low:
        return "no_driver"
    if "driver/library version mismatch" in low:
        return "version_mismatch"
    if "no devices were found" in low:
        return "no_devices"
    if "command not found" in low or "no such file or directory" in low or "not found" in low:
        return "not_found"
    return None


def parse_driver_version_file(text: str) -> dict[str, str] | None:
    """/proc/driver/nvidia/version: the loaded module's flavour (open or proprietary) and version.

    Open modules print "NVIDIA UNIX Open Kernel Module for x86_64  565.57.01 ...", proprietary ones
    "NVIDIA UNIX x86_64 Kernel Module  575.64.03 ..." (NVIDIA's kernel_open README).
    """
    match = _PROC_VERSION.search(text or "")
    if not match:
        return None
    flavor = "open" if "open kernel module" in match["what"].lower() else "proprietary"
    return {"flavor": flavor, "version": match["version"]}


def parse_nvcc_version(text: str) -> dict[str, str] | None:
    """`nvcc -V`: {"release": "12.4", "version": "12.4.131"}, or None."""
    match = _NVCC_RELEASE.search(text or "")
    if not match:
        return None
    return {"release": match["release"], "version": match["version"]}


def parse_sections(text: str) -> dict[str, dict[str, Any]]:
    """Split the output of the role's scripts into sections.

    A script prints a step's output followed by a line `### <step> rc=<n>`; this returns
    {step: {"rc": n, "output": text}} in order.
    """
    sections: dict[str, dict[str, Any]] = {}
    chunk: list[str] = []
    for line in (text or "").splitlines():
        marker = _SECTION.match(line)
        if marker:
            sections[marker["name"]] = {"rc": int(marker["rc"]), "output": "\n".join(chunk).strip("\n")}
            chunk = []
        else:
            chunk.append(line)
    return sections


def parse_mnist(text: str, rc: int | None = 0) -> dict[str, Any]:
    """A run of cuDNN's mnistCUDNN sample: passed only when it exits 0, says "Test passed!" and never "Test failed".

    Also reports the cuDNN version it printed and how many CUDA devices it saw.
    """
    out = text or ""
    version = _MNIST_VERSION.search(out)
    devices = _MNIST_DEVICES.search(out)
    passes = out.count("Test passed!")
    failed = "Test failed" in out
    return {
        "passed": rc == 0 and passes > 0 and not failed,
        "passes": passes,
        "cudnn_version": version["ver"] if version else None,
        "versions_match": (version["lib"] == version["hdr"]) if version else None,
        "devices": int(devices["n"]) if devices else None,
    }


def parse_conda_info(text: str) -> dict[str, Any] | None:
    """`conda info --json`: the fields the checks need, or None when the text is not conda's JSON."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or "channels" not in data:
        return None
    return {
        "conda_version": data.get("conda_version"),
        "root_prefix": data.get("root_prefix"),
        "channels": [str(c) for c in data.get("channels") or []],
        "config_files": [str(c) for c in data.get("config_files") or []],
        "sys_rc_path": data.get("sys_rc_path"),
        "envs_dirs": [str(c) for c in data.get("envs_dirs") or []],
        "pkgs_dirs": [str(c) for c in data.get("pkgs_dirs") or []],
    }


_SUBDIR = re.compile(r"/(?:noarch|linux-64|linux-aarch64|linux-ppc64le|osx-64|osx-arm64|win-64)/?$")


def channel_base(url: str) -> str:
    """A conda channel URL without its platform subdirectory and trailing slash."""
    return _SUBDIR.sub("", str(url).strip()).rstrip("/")


def parse_pip_config(text: str) -> dict[str, str]:
    """`pip config list`: {"global.index-url": "https://...", ...} (pip prints key='value' per line)."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        match = re.match(r"^(?P<key>[\w.-]+)=(?P<q>['\"])(?P<value>.*)(?P=q)\s*$", line.strip())
        if match:
            values[match["key"]] = match["value"]
    return values


def split_key_values(text: str) -> dict[str, str]:
    """Lines of `key=value` (the role's diagnostics script) as a dict; other lines are ignored."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[a-z_]+", key.strip()):
            values[key.strip()] = value.strip()
    return values
