#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read what the driver stage decides from on a host, and decide it; print one JSON object (stdlib only).

usage: nvidia_driver_probe.py --source ubuntu|debian|cuda --branch B [--flavour 580-open] [--gpgpu]
                              [--mokutil CMD] [--efivars PATH] [--mok-cert PATH] [--container]

Read-only: dpkg-query, apt-cache, uname, modinfo, mokutil --sb-state / --test-key, sysfs, /run.
Every decision is a plain function below (unit-tested with real command outputs):

* ``boot_kernel``/``modules_choice``: the kernel ubuntu-drivers installs modules for and whether
  Canonical's prebuilt ``linux-modules-nvidia-<flavour>-<kernel>`` serves it, exactly as
  ubuntu-drivers-common's ``UbuntuDrivers/detect.py`` (``get_linux_modules_metapackage`` with
  ``kerneldetection.KernelDetection``, tags v0.9.6.2_0.22.04.9 and 0.9.7.6ubuntu3.3) decides:
    1. the newest installed ``linux-image-[unsigned-]<ver>-<abi>-<flavour>`` (``<ver>-<abi>``
       compared with ``dpkg --compare-versions``, the flavour ignored, names with "extra" skipped);
    2. its installed reverse dependency ``linux-image-*`` metapackage with the greatest name
       (``linux-image-generic``, ``linux-image-generic-hwe-24.04``);
    3. the *candidate* version of that metapackage's ``linux-image-<abi>`` dependency: the
       kernel apt installs next, which may be newer than any installed one;
    4. prebuilt when ``linux-modules-nvidia-<flavour>-<that abi>`` has a candidate and
       ``linux-modules-nvidia-<flavour>-<meta suffix>`` ("virtual" read as "generic") is among its
       reverse dependencies; otherwise ``nvidia-dkms-<flavour>`` (DKMS). Without an image
       metapackage (custom kernels, containers) ubuntu-drivers finds no modules package and the
       driver metapackage's own dependency brings nvidia-dkms.
* ``secure_boot``: ``mokutil --sb-state`` when mokutil exists, else the SecureBoot EFI variable
  (4 attribute bytes, then the value; 1 = enabled).
* ``foreign``: driver packages the plan's source would fight, by NVIDIA's names and by origin.
* ``reboot_decision``: reboot when /run/reboot-required exists or the module installed for the kernel
  that boots next is not the loaded one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# Runs a command, returns (rc, stdout, stderr); rc 127 when the program is missing.
Runner = Callable[[Sequence[str]], tuple[int, str, str]]

IMAGE_RE = re.compile(r"^linux-image-(?:unsigned-)?(.+)-([0-9]+)-(.+)$")

# NVIDIA's own driver package names: only NVIDIA's CUDA repository carries them (Driver Installation
# Guide, "Version locking" and "Ubuntu 590 and later packages"; the Debian distribution's own
# packages are nvidia-driver, nvidia-open-kernel-dkms ..., never these).
NVIDIA_ONLY = re.compile(r"^(nvidia-driver-pinning-[0-9]+|nvidia-open(-[0-9]+)?|cuda-drivers(-.+)?)$")
# From 590 NVIDIA's Ubuntu packages drop the branch from their names (guide, table "Ubuntu 590
# package renames": libnvidia-cfg1-580 -> libnvidia-cfg1 ... nvidia-dkms-580-open -> nvidia-dkms-open;
# the remaining components follow the same rule). Ubuntu's archive only ships them branch-named.
UBUNTU_UNVERSIONED = frozenset({
    "libnvidia-cfg1", "libnvidia-common", "libnvidia-compute", "libnvidia-decode", "libnvidia-encode",
    "libnvidia-extra", "libnvidia-fbc1", "libnvidia-gl", "libnvidia-gpucomp", "nvidia-dkms", "nvidia-dkms-open",
    "nvidia-driver", "nvidia-driver-open", "nvidia-headless", "nvidia-headless-open", "nvidia-headless-no-dkms",
    "nvidia-headless-no-dkms-open", "nvidia-kernel-common", "nvidia-kernel-source", "nvidia-kernel-source-open",
    "nvidia-utils", "nvidia-compute-utils", "nvidia-firmware", "xserver-xorg-video-nvidia",
})
# Names of NVIDIA driver packages in any source (Ubuntu's branch-named ones, Debian's and NVIDIA's).
DRIVER_NAME = re.compile(
    r"^(lib)?nvidia-|^libcuda1|^cuda-drivers|^firmware-nvidia-|^xserver-xorg-video-nvidia|"
    r"^lib(egl|gles|glx|gl1)-nvidia|^libxnvctrl|^libnvcuvid|^libnvoptix"
)
# ... that belong to other NVIDIA products, never to the driver.
NOT_DRIVER = re.compile(r"^(lib)?nvidia-(container|docker|fs|gds|cuda-|l4t)")
# The core of a driver installation (the kernel module, libcuda, the X/GL stack). NVIDIA-built
# copies of these beside the plan's source are a foreign driver; peripheral tools such as
# nvidia-settings or libxnvctrl0 from NVIDIA's repository are only reported.
CORE = re.compile(
    r"^(nvidia-(driver|headless|dkms|kernel|open|utils|compute-utils|firmware|alternative|smi)|"
    r"libnvidia-(compute|gl|cfg1|common|decode|encode|extra|fbc1|gpucomp|ml1|ptxjitcompiler)|"
    r"libcuda1|cuda-drivers|xserver-xorg-video-nvidia|firmware-nvidia-gsp)"
)
# A driver release as a package version: 580.65.06-1, 580.142-0ubuntu0.24.04.1, 1:535.261.03-1.
BRANCH_VERSION = re.compile(r"^(?:[0-9]+:)?([3-9][0-9]{2})\.")


# --------------------------------------------------------------------------- commands


def run(argv: Sequence[str]) -> tuple[int, str, str]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                              env=dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8"))
    except FileNotFoundError as err:
        return 127, "", str(err)
    except OSError as err:  # not executable
        return 126, "", str(err)
    return proc.returncode, proc.stdout, proc.stderr


def read_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


# --------------------------------------------------------------------------- parsers


def parse_dpkg_status(text: str) -> dict[str, dict[str, str]]:
    """dpkg-query -W -f '${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Maintainer}\\t${Depends}\\n'.

    Keeps packages that are installed (second status letter i, also half-configured ones) or held;
    value: {status, version, maintainer, depends, hold}.
    """
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        status, name, version = parts[0], parts[1], parts[2]
        maintainer = parts[3] if len(parts) > 3 else ""
        depends = parts[4] if len(parts) > 4 else ""
        installed = len(status) >= 2 and status[1] in "iUFWt"
        hold = status[:1] == "h"
        if installed or hold:
            out[name.split(":")[0]] = {"status": status.strip(), "version": version, "maintainer": maintainer,
                                       "depends": depends, "hold": "1" if hold else "", "installed": "1" if installed else ""}
    return out


def dep_names(depends: str) -> list[str]:
    """Package names of a Depends field, in order (alternatives flattened)."""
    names = []
    for group in depends.split(","):
        for alt in group.split("|"):
            name = re.sub(r"\s*\(.*?\)|\s*\[.*?\]|:\S+", "", alt).strip()
            if name:
                names.append(name)
    return names


def parse_show_depends(text: str) -> str:
    """The Depends field of the first record of apt-cache show output ('' when none)."""
    record = text.split("\n\n")[0]
    m = re.search(r"^Depends: (.*(?:\n .*)*)", record, re.MULTILINE)
    return re.sub(r"\n\s+", " ", m.group(1)) if m else ""


def parse_policy(text: str) -> dict[str, dict[str, Any]]:
    """apt-cache policy PKG...: {pkg: {installed, candidate, versions: [{version, sources: [url]}]}}."""
    out: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    version: dict[str, Any] | None = None
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):
            current = {"installed": None, "candidate": None, "versions": []}
            out[line[:-1].split(":")[0] if line.count(":") > 1 else line[:-1]] = current
            version = None
            continue
        if current is None:
            continue
        m = re.match(r"^\s+(Installed|Candidate): (.+)$", line)
        if m:
            value = m.group(2).strip()
            current[m.group(1).lower()] = None if value == "(none)" else value
            continue
        m = re.match(r"^ (\*\*\*| {3}) (\S+) (-?\d+)$", line)
        if m:
            version = {"version": m.group(2), "installed": m.group(1) == "***", "sources": []}
            current["versions"].append(version)
            continue
        m = re.match(r"^\s+(-?\d+) (\S+)(?: (\S+))?(?: (\S+))?", line)
        if m and version is not None:
            version["sources"].append(" ".join(filter(None, [m.group(2), m.group(3)])))
    return out


def parse_policy_sources(text: str) -> dict[str, dict[str, str]]:
    """apt-cache policy (no arguments): {"<url> <dist>": {o, l, a, n, c, ...}} of each package file."""
    out: dict[str, dict[str, str]] = {}
    key: str | None = None
    for line in text.splitlines():
        m = re.match(r"^\s*-?\d+ (\S+) (\S+?)/\S+ \S+ Packages$", line)  # URL dist/component arch
        flat = re.match(r"^\s*-?\d+ (\S+) +Packages$", line)  # flat repository (Suites: /)
        if m or flat:
            key = f"{m.group(1)} {m.group(2)}" if m else flat.group(1)  # type: ignore[union-attr]
            out[key] = {}
            continue
        m = re.match(r"^\s+release (.*)$", line)
        if m and key is not None:
            fields: dict[str, str] = {}
            for part in re.split(r",(?=[a-z]=)", m.group(1)):
                if "=" in part:
                    k, v = part.split("=", 1)
                    fields[k.strip()] = v.strip()
            out[key] = fields
        if line and not line.startswith(" "):
            key = None
    return out


def source_key(source: str) -> str:
    """'https://host/path  Packages' or 'http://host/ubuntu noble/main amd64 Packages' -> policy_sources key."""
    parts = source.split()
    if len(parts) >= 2 and "/" in parts[1]:
        return f"{parts[0]} {parts[1].split('/')[0]}"
    return parts[0] if parts else ""


# --------------------------------------------------------------------------- decisions


def branch_of(version: str) -> str | None:
    """'580' for a driver package version such as 580.65.06-1, else None."""
    m = BRANCH_VERSION.match(version)
    return m.group(1) if m else None


def dpkg_gt(runner: Runner, a: str, b: str) -> bool:
    if not b:
        return True
    rc, _out, _err = runner(["dpkg", "--compare-versions", a, "gt", b])
    return rc == 0


def boot_kernel(installed: Mapping[str, Mapping[str, str]], runner: Runner) -> dict[str, Any]:
    """The newest installed kernel image and its installed image metapackage (detect.py steps 1-2)."""
    version, image = "", ""
    for name in installed:
        if not name.startswith("linux-image") or "extra" in name or not installed[name].get("installed"):
            continue
        m = IMAGE_RE.match(name)
        if not m or m.group(3).endswith("-dbg"):
            continue
        current = f"{m.group(1)}-{m.group(2)}"
        if dpkg_gt(runner, current, version):
            version, image = current, name
    if not image:
        # Kernels ubuntu-drivers cannot see (a custom build named linux-image-6.9.3-lab): the newest by
        # package version still tells which one boots, for the reboot decision.
        newest, version = None, ""
        for name, info in installed.items():
            if (info.get("installed") and re.match(r"^linux-image-(unsigned-)?[0-9]", name)
                    and "extra" not in name and not name.endswith("-dbg")
                    and dpkg_gt(runner, info.get("version", ""), version)):
                newest, version = name, info.get("version", "")
        release = re.sub(r"^linux-image-(unsigned-)?", "", newest) if newest else None
        return {"image": newest, "release": release, "meta": None}
    release = re.sub(r"^linux-image-(unsigned-)?", "", image)
    metas = sorted(
        n for n, info in installed.items()
        if n.startswith("linux-image-") and not IMAGE_RE.match(n) and info.get("installed")
        and image in dep_names(info.get("depends", ""))
    )
    # detect.py keeps the greatest name after the prefix (linux-image-generic-hwe-24.04 > linux-image-generic).
    meta = max(metas, key=lambda n: n.replace("linux-image-", "")) if metas else None
    return {"image": image, "release": release, "meta": meta}


def meta_target(meta_depends: str) -> str | None:
    """The kernel release the image metapackage's candidate installs (its first linux-image-* dependency)."""
    for name in dep_names(meta_depends):
        if name.startswith("linux-image-"):
            return name.replace("linux-image-", "")
    return None


def modules_choice(
    flavour: str,
    meta: str | None,
    target: str | None,
    has_candidate: Mapping[str, bool],
    abi_rdepends: Iterable[str],
) -> dict[str, Any]:
    """The modules package ubuntu-drivers picks for `flavour` (detect.py get_linux_modules_metapackage)."""
    dkms = f"nvidia-dkms-{flavour}"
    if not meta or not target:
        return {"package": None, "prebuilt": False, "abi_package": None, "dkms_package": dkms,
                "why": "no installed linux-image metapackage: ubuntu-drivers finds no modules package, and the "
                       f"driver metapackage's dependency brings {dkms} (DKMS)"}
    abi_package = f"linux-modules-nvidia-{flavour}-{target}"
    suffix = meta.replace("linux-image-", "")
    if suffix == "virtual":
        suffix = "generic"
    prebuilt_meta = f"linux-modules-nvidia-{flavour}-{suffix}"
    if has_candidate.get(abi_package) and prebuilt_meta in set(abi_rdepends):
        return {"package": prebuilt_meta, "prebuilt": True, "abi_package": abi_package, "dkms_package": dkms,
                "why": f"Canonical ships {abi_package} for kernel {target} ({meta}): signed prebuilt modules"}
    why = (f"no {abi_package} in the archive" if not has_candidate.get(abi_package)
           else f"{prebuilt_meta} does not depend on {abi_package} yet")
    if has_candidate.get(dkms):
        return {"package": dkms, "prebuilt": False, "abi_package": abi_package, "dkms_package": dkms,
                "why": f"{why} for kernel {target}: the module is built by DKMS ({dkms})"}
    return {"package": None, "prebuilt": False, "abi_package": abi_package, "dkms_package": dkms,
            "why": f"{why}, and {dkms} has no candidate either"}


def ubuntu_drivers_result(flavour: str, gpgpu: bool, modules: Mapping[str, Any],
                          installed: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """What `ubuntu-drivers install [--gpgpu] nvidia:<flavour>` must have left installed, and what is missing.

    The driver metapackage: nvidia-driver-<flavour> (or, on 24.04, its nvidia-driver-lrm-<flavour> variant);
    with --gpgpu nvidia-headless-no-dkms-<flavour>. The modules: the prebuilt metapackage and its ABI
    package, or nvidia-dkms-<flavour>.
    """
    meta = f"nvidia-headless-no-dkms-{flavour}" if gpgpu else f"nvidia-driver-{flavour}"
    drivers = [meta] if gpgpu else [meta, f"nvidia-driver-lrm-{flavour}"]

    def have(name: str | None) -> bool:
        return bool(name and (installed.get(name) or {}).get("installed"))

    driver_installed = any(have(n) for n in drivers)
    want = [modules.get("package"), modules.get("abi_package")] if modules.get("prebuilt") else [modules.get("dkms_package")]
    modules_missing = [str(n) for n in want if n and not have(n)]
    missing = ([] if driver_installed else [" or ".join(drivers)]) + modules_missing
    return {"meta": meta, "driver_installed": driver_installed, "modules_missing": modules_missing, "missing": missing}


def secure_boot(mokutil: tuple[int, str, str] | None, efivar: bytes | None, efivars_path: str) -> dict[str, Any]:
    """Secure Boot state from `mokutil --sb-state` (None: mokutil absent) or the SecureBoot EFI variable."""
    if mokutil is not None and mokutil[0] != 127:
        text = (mokutil[1] + mokutil[2]).strip()
        first = text.splitlines()[0] if text else ""
        return {"enabled": "SecureBoot enabled" in text, "source": "mokutil", "detail": first}
    if efivar is None:
        return {"enabled": False, "source": "efivars", "detail": f"{efivars_path} absent (no UEFI Secure Boot)"}
    value = efivar[4:5] if len(efivar) >= 5 else efivar[-1:]
    enabled = value == b"\x01"
    return {"enabled": enabled, "source": "efivars",
            "detail": f"{efivars_path}: {'1 (enabled)' if enabled else (value.hex() or 'empty') + ' (disabled)'}"}


def mok_state(test_key: tuple[int, str, str] | None, cert_present: bool, cert: str) -> str:
    """enrolled | pending | not-enrolled | absent (no certificate) | unknown, from `mokutil --test-key CERT`."""
    if not cert_present:
        return "absent"
    if test_key is None or test_key[0] == 127:
        return "unknown"
    text = test_key[1] + test_key[2]
    if "already in the enrollment request" in text:
        return "pending"
    if "already enrolled" in text or "already in db" in text or "built-in trusted keyring" in text:
        return "enrolled"
    if test_key[0] == 0 and "is not enrolled" in text:
        return "not-enrolled"
    return "unknown"


def origin_of(pkg_policy: Mapping[str, Any] | None, sources: Mapping[str, Mapping[str, str]]) -> str | None:
    """'nvidia' when the installed version comes from NVIDIA's CUDA repository, 'other' when from another
    index, None when no index carries it any more (dpkg status only)."""
    if not pkg_policy:
        return None
    for ver in pkg_policy.get("versions", []):
        if not ver.get("installed"):
            continue
        fields = [sources.get(source_key(s), {}) for s in ver.get("sources", []) if not s.startswith("/var/lib/dpkg")]
        if any(f.get("l") == "NVIDIA CUDA" or f.get("o") == "NVIDIA" for f in fields):
            return "nvidia"
        if fields:
            return "other"
    return None


def foreign(
    source: str,
    installed: Mapping[str, Mapping[str, str]],
    policy: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, Mapping[str, str]],
) -> dict[str, list[dict[str, str]]]:
    """Driver packages the plan's source would fight: {refuse: [...], report: [...]} of {package, version, why}.

    Plan source ubuntu or debian: NVIDIA's own names (pinning, nvidia-open, cuda-drivers; on Ubuntu the
    unversioned 590+ names), and any driver package whose installed version came from NVIDIA's CUDA
    repository (origin o=NVIDIA / l=NVIDIA CUDA; maintainer at nvidia.com when no index carries it any
    more). Core components are refused; peripheral ones (nvidia-settings, libxnvctrl0 ...) reported.
    Plan source cuda: NVIDIA's repository is the plan's own source, nothing is foreign here.
    """
    refuse: list[dict[str, str]] = []
    report: list[dict[str, str]] = []
    if source == "cuda":
        return {"refuse": refuse, "report": report}
    for name, info in sorted(installed.items()):
        if not info.get("installed"):
            continue
        version = info.get("version", "")
        entry = {"package": name, "version": version}
        if NVIDIA_ONLY.match(name):
            refuse.append({**entry, "why": "NVIDIA's repository package name"})
            continue
        if source == "ubuntu" and name in UBUNTU_UNVERSIONED:
            refuse.append({**entry, "why": "NVIDIA's unversioned 590+ package name"})
            continue
        if not DRIVER_NAME.match(name) or NOT_DRIVER.match(name) or not BRANCH_VERSION.match(version):
            continue
        origin = origin_of(policy.get(name), sources)
        if origin is None and "@nvidia.com" in info.get("maintainer", ""):
            origin = "nvidia"
        if origin != "nvidia":
            continue
        (refuse if CORE.match(name) else report).append({**entry, "why": "installed from NVIDIA's CUDA repository"})
    for item in refuse + report:
        item["line"] = f"{item['package']} {item['version']} ({item['why']})"
    return {"refuse": refuse, "report": report}


def driver_version(installed: Mapping[str, str], branch: int | str) -> str:
    """The upstream version of the branch's installed driver ('580.95.05'), read from the package that ships
    libcuda (libnvidia-compute-<B>[-server] on Ubuntu, libcuda1 on Debian and NVIDIA's repository), else the
    newest of the branch's driver packages; '' when none is installed."""
    def upstream(version: str) -> str:
        return re.sub(r"^[0-9]+:", "", version).split("-")[0]

    for name in (f"libnvidia-compute-{branch}", f"libnvidia-compute-{branch}-server", "libcuda1", "libnvidia-compute"):
        if name in installed and branch_of(installed[name]) == str(branch):
            return upstream(installed[name])
    versions = sorted({upstream(v) for v in installed.values() if branch_of(v) == str(branch)},
                      key=lambda v: tuple(int(p) for p in re.findall(r"[0-9]+", v)))
    return versions[-1] if versions else ""


def module_version(runner: Runner, release: str | None) -> dict[str, str]:
    """The nvidia module installed for kernel `release` (modinfo -k; Debian names its DKMS module nvidia-current)."""
    if not release:
        return {"version": "", "file": ""}
    for name in ("nvidia", "nvidia-current"):
        rc, out, _err = runner(["modinfo", "-k", release, "-F", "version", name])
        version = out.strip().splitlines()[0] if rc == 0 and out.strip() else ""
        if version:
            rc, out, _err = runner(["modinfo", "-k", release, "-n", name])
            return {"version": version, "file": out.strip() if rc == 0 else ""}
    return {"version": "", "file": ""}


def reboot_decision(
    reboot_required: bool,
    reboot_pkgs: Sequence[str],
    boot_release: str | None,
    running: str,
    installed_module: str,
    loaded_module: str,
    container: bool,
    driver_installed: bool,
    nouveau_loaded: bool = False,
) -> dict[str, Any]:
    """Whether the host must reboot for the driver to run: {needed, reasons, state}."""
    reasons: list[str] = []
    if nouveau_loaded and not container:
        reasons.append("nouveau is loaded and holds the GPU until a reboot (it is blacklisted now)")
    if reboot_required:
        pkgs = ", ".join(reboot_pkgs[:8]) + (" ..." if len(reboot_pkgs) > 8 else "")
        reasons.append("/run/reboot-required exists" + (f" (for {pkgs})" if pkgs else ""))
    if installed_module and installed_module != loaded_module:
        reasons.append(
            f"the nvidia module installed for kernel {boot_release} is {installed_module}, "
            + (f"the loaded one is {loaded_module}" if loaded_module else "and no nvidia module is loaded")
        )
    if reasons:
        return {"needed": True, "reasons": reasons, "state": "reboot"}
    if installed_module:
        return {"needed": False, "reasons": [(f"the loaded nvidia module {loaded_module} is the one installed for "
                                             f"kernel {boot_release}")], "state": "current"}
    if container:
        return {"needed": False, "state": "container",
                "reasons": [("container: the host's kernel runs here, no NVIDIA module can be installed or loaded "
                            f"(kernel image: {boot_release or 'none installed'}, running {running})")]}
    if not driver_installed:
        return {"needed": False, "state": "not-installed", "reasons": ["the driver is not installed (yet)"]}
    if not boot_release:
        return {"needed": False, "state": "no-kernel",
                "reasons": [f"no kernel image package is installed (running {running}): nothing to compare"]}
    return {"needed": False, "state": "no-module",
            "reasons": [(f"no nvidia module is installed for kernel {boot_release}: DKMS did not build it "
                         "(see `dkms status` and /var/lib/dkms/nvidia*/*/build/make.log; are "
                         f"linux-headers-{boot_release} installed?)")]}


# --------------------------------------------------------------------------- the probe


def probe(args: argparse.Namespace, runner: Runner = run, read: Callable[[str], bytes | None] = read_file) -> dict[str, Any]:
    rc, out, _err = runner(["dpkg-query", "-W", "-f",
                            "${db:Status-Abbrev}\t${Package}\t${Version}\t${Maintainer}\t${Depends}\n"])
    installed = parse_dpkg_status(out if rc == 0 else "")
    rc, out, _err = runner(["uname", "-r"])
    running = out.strip()

    kernel = boot_kernel(installed, runner)
    target = None
    if kernel["meta"]:
        rc, out, _err = runner(["apt-cache", "show", "--no-all-versions", kernel["meta"]])
        target = meta_target(parse_show_depends(out)) if rc == 0 else None
        target = target or kernel["release"]
    kernel["target"] = target
    kernel["running"] = running
    boot_release = kernel["release"]
    if target and (f"linux-image-{target}" in installed or f"linux-image-unsigned-{target}" in installed):
        boot_release = target
    kernel["boot"] = boot_release

    modules: dict[str, Any] | None = None
    ud: dict[str, Any] | None = None
    if args.source == "ubuntu" and args.flavour:
        names = [f"nvidia-dkms-{args.flavour}"]
        abi = f"linux-modules-nvidia-{args.flavour}-{target}" if target else None
        if abi:
            names.append(abi)
        rc, out, _err = runner(["apt-cache", "policy", *names])
        pol = parse_policy(out) if rc == 0 else {}
        has = {n: bool((pol.get(n) or {}).get("candidate")) for n in names}
        rdeps: list[str] = []
        if abi and has.get(abi):
            rc, out, _err = runner(["apt-cache", "rdepends", abi])
            rdeps = [line.strip().lstrip("|") for line in out.splitlines()[2:]] if rc == 0 else []
        modules = modules_choice(args.flavour, kernel["meta"], target, has, rdeps)
        ud = ubuntu_drivers_result(args.flavour, args.gpgpu, modules, installed)
        modules["installed"] = not ud["modules_missing"]

    driverish = [n for n, i in installed.items() if i.get("installed") and DRIVER_NAME.match(n)]
    policy: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, str]] = {}
    if driverish and args.source != "cuda":
        rc, out, _err = runner(["apt-cache", "policy", *driverish])
        policy = parse_policy(out) if rc == 0 else {}
        rc, out, _err = runner(["apt-cache", "policy"])
        sources = parse_policy_sources(out) if rc == 0 else {}
    guard = foreign(args.source, installed, policy, sources)

    mok_rc = runner([*shlex.split(args.mokutil), "--sb-state"]) if args.mokutil else None
    mokutil_found = mok_rc is not None and mok_rc[0] not in (126, 127)
    sb = secure_boot(mok_rc if mokutil_found else None, read(args.efivars), args.efivars)
    mok: dict[str, Any] = {"certificate": args.mok_cert, "state": "not-needed", "mokutil": mokutil_found}
    if args.mok_cert:
        present = read(args.mok_cert) is not None
        test = runner([*shlex.split(args.mokutil), "--test-key", args.mok_cert]) if present and mokutil_found else None
        mok["state"] = mok_state(test, present, args.mok_cert)
        mok["detail"] = ((test[1] + test[2]).strip() if test else "")

    module = module_version(runner, boot_release)
    loaded = (read("/sys/module/nvidia/version") or b"").decode("utf-8", "replace").strip()
    reboot_file = read("/run/reboot-required")
    pkgs = (read("/run/reboot-required.pkgs") or b"").decode("utf-8", "replace").split()
    branch_pkgs = [n for n in driverish if branch_of(installed[n]["version"]) == str(args.branch)]
    nouveau = read("/sys/module/nouveau/initstate") is not None
    decision = reboot_decision(reboot_file is not None, pkgs, boot_release, running, module["version"], loaded,
                               args.container, bool(branch_pkgs), nouveau)
    holds = sorted(n for n, i in installed.items() if i.get("hold"))
    boot_id = (read("/proc/sys/kernel/random/boot_id") or b"").decode().strip()
    return {
        "kernel": kernel,
        "modules": modules,
        "ubuntu_drivers": ud,
        "foreign": guard,
        "secure_boot": sb,
        "mok": mok,
        "module": {"installed": module["version"], "file": module["file"], "loaded": loaded, "nouveau": nouveau},
        "reboot": decision,
        "holds": holds,
        "installed": {n: installed[n]["version"] for n in sorted(driverish)},
        "version": driver_version({n: installed[n]["version"] for n in driverish}, args.branch),
        "boot_id": boot_id,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["ubuntu", "debian", "cuda"], required=True)
    parser.add_argument("--branch", type=int, required=True)
    parser.add_argument("--flavour", default="", help="ubuntu-drivers flavour, e.g. 580-open or 580-server")
    parser.add_argument("--gpgpu", action="store_true", help="ubuntu-drivers install --gpgpu (headless metapackage)")
    parser.add_argument("--mokutil", default="mokutil", help="the mokutil command ('' to skip)")
    parser.add_argument("--efivars", default="/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")
    parser.add_argument("--mok-cert", default="", help="the DKMS signing certificate to test with mokutil --test-key")
    parser.add_argument("--container", action="store_true")
    args = parser.parse_args(argv)
    json.dump(probe(args), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
