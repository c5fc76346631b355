# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: E402  (imports follow the documentation blocks, ansible style)

from __future__ import annotations

DOCUMENTATION = r"""
name: nvidia_stack
short_description: Plan the NVIDIA driver, CUDA 12 toolkit and cuDNN 9 for a list of GPUs
version_added: 0.1.0
author: aiws contributors
description:
  - Takes the list returned by P(nvidia_gpus#filter) and chooses one driver branch and kernel-module flavour that
    serve every GPU, the newest CUDA 12.x toolkit and cuDNN 9.x that fit, and the package names for the target
    distribution.
  - The rules and data (CUDA minimum drivers, branch ranges per architecture, open-module support, cuDNN ranges,
    what Ubuntu 22.04/24.04 and Debian 12 ship) live in C(data/nvidia_policy.yml) and C(data/nvidia_overlay.yml),
    each with its source.
  - On Ubuntu the driver comes from the Ubuntu archive (today branch 580 for every supported GPU; 535, 565 and 570
    are transitional packages there that install 580, and 590 installs 595). On Debian 12 Debian's own 535 driver is
    used when it can serve the GPUs and the requested CUDA; otherwise the plan switches to NVIDIA's CUDA repository
    (C(nvidia-open-580) or C(cuda-drivers-580)) and says why.
  - Malformed or out-of-scope options raise an error naming the option and its allowed values. A valid request the
    hardware or the distribution cannot meet returns C(supported=false) with reasons, never an error.
  - "With no GPU the plan is toolkit-only: C(supported=true), driver fields null and the reason
    C(no NVIDIA GPU detected or declared: driver skipped)."
options:
  _input:
    description: The list returned by P(nvidia_gpus#filter) (dictionaries with C(pci_id) and/or C(arch)).
    type: list
    elements: dictionary
    required: true
  cuda:
    description:
      - C(12) picks the newest CUDA 12.x that fits every GPU, the driver and the distribution's CUDA repository.
      - C(12.N) asks for exactly that release (12.0 to 12.9; there is no 12.7).
    type: str
    default: "12"
  driver_branch:
    description:
      - Force a driver branch (an integer such as C(580)). Null lets the filter choose.
      - A branch that Ubuntu only carries as a transitional package is resolved to the branch it installs,
        with a reason.
    type: int
  flavor:
    description: Kernel modules. C(auto) chooses open when every GPU supports it and the branch is 560 or newer.
    type: str
    choices: [auto, open, proprietary]
    default: auto
  server:
    description: Use Ubuntu's C(-server) (ERD) packages and C(ubuntu-drivers install --gpgpu). Ignored on Debian.
    type: bool
    default: false
  cudnn:
    description: C(9) picks the newest cuDNN 9.x that fits; C(9.N) asks for that minor release (quote it in YAML).
    type: str
    default: "9"
  distro:
    description: Target distribution.
    type: str
    choices: [ubuntu22.04, ubuntu24.04, debian12]
    default: ubuntu24.04
seealso:
  - plugin: nvidia_gpus
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Plan the stack for the detected GPUs
  ansible.builtin.set_fact:
    aiws_stack: "{{ aiws_lspci.stdout | nvidia_gpus | nvidia_stack(distro='ubuntu' ~ ansible_distribution_version) }}"

- name: Stop when the hardware cannot run CUDA 12
  ansible.builtin.assert:
    that: aiws_stack.supported
    fail_msg: "{{ aiws_stack.reasons | join('; ') }}"

- name: Data-centre host, pinned toolkit
  ansible.builtin.set_fact:
    aiws_stack: "{{ ['10de:2330'] * 8 | nvidia_gpus | nvidia_stack(cuda='12.8', server=true) }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dictionary
  contains:
    supported:
      description: True when one driver, CUDA 12 toolkit and cuDNN 9 serve every GPU.
      type: bool
    driver_branch:
      description: Driver branch to install (for example 580), null without GPUs or when unsupported.
      type: int
    driver_flavor:
      description: C(open) or C(proprietary) kernel modules, or null.
      type: str
    driver_repo:
      description: Where the driver comes from, C(ubuntu), C(debian) or C(cuda) (NVIDIA's CUDA repository), or null.
      type: str
    cuda_version:
      description: Chosen CUDA toolkit release C(12.N), or null.
      type: str
    cudnn_version:
      description: Chosen cuDNN release C(9.N), or null.
      type: str
    cuda_repo:
      description:
        - Directory of NVIDIA's CUDA repository for the distribution (C(ubuntu2204), C(ubuntu2404), C(debian12)).
      type: str
    packages:
      description:
        - C(driver), C(cuda) and C(cudnn) package lists (ansible.builtin.apt names).
        - On Ubuntu C(driver) names what ubuntu-drivers installs (C(nvidia-driver-<flavour>), with C(server) the
          headless C(nvidia-headless-no-dkms-<flavour>) of C(--gpgpu)) and C(nvidia-utils-<branch>[-server]).
        - cuDNN packages carry a version wildcard (C(cudnn9-cuda-12=9.10.*)) that keeps them on the chosen release.
      type: dict
    ubuntu_drivers:
      description: C({args} = [install, --gpgpu, nvidia:580-server-open]) for C(ubuntu-drivers), or null on Debian.
      type: dict
    apt_components:
      description:
        - Debian archive components the driver packages need (C(main contrib non-free non-free-firmware) for
          Debian's own driver), empty where the distribution's default sources carry them.
      type: list
      elements: str
    gpus:
      description: Number of GPUs planned for.
      type: int
    architectures:
      description: Architectures of those GPUs, oldest first.
      type: list
      elements: str
    reasons:
      description: Plain-language explanation of every choice, and of what blocks when C(supported) is false.
      type: list
      elements: str
"""

import importlib.util
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleFilterError

FLAVORS = ("auto", "open", "proprietary")


def load_common() -> ModuleType:
    """Load the shared helper beside this file once, under the fixed name ``_aiws_nvidia``."""
    name = "_aiws_nvidia"
    module = sys.modules.get(name)
    if module is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:  # pragma: no cover
            raise AnsibleFilterError(f"nvidia_stack: cannot load its helper {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            raise
    return module


def _ver(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _fail(option: str, allowed: str, value: Any) -> AnsibleFilterError:
    return AnsibleFilterError(f"nvidia_stack: option '{option}' must be {allowed}; got {value!r}")


# ------------------------------------------------------------------ options


def _check_cuda(value: Any, releases: list[str], major: str) -> str:
    allowed = f"'{major}' or one of {', '.join(releases)} (there is no 12.7)"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _fail("cuda", allowed, value)
    text = str(value).strip()
    if text != major and text not in releases:
        raise _fail("cuda", allowed, value)
    return text


def _check_cudnn(value: Any, releases: list[str], major: str) -> str:
    allowed = f"'{major}' or one of {', '.join(releases)} as a string (YAML reads 9.10 as the number 9.1)"
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or (value.strip() != major and value.strip() not in releases):
        raise _fail("cudnn", allowed, value)
    return value.strip()


def _check_branch(value: Any, known: list[int]) -> int | None:
    allowed = f"null or an integer driver branch, one of {', '.join(str(b) for b in known)}"
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    if isinstance(value, bool):
        raise _fail("driver_branch", allowed, value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if not isinstance(value, int) or value not in known:
        raise _fail("driver_branch", allowed, value)
    return value


def _check_bool(option: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise _fail(option, "a boolean (true or false)", value)


# --------------------------------------------------------------------- GPUs


@dataclass
class Gpu:
    """One GPU with the constraints the policy and the overlay put on it."""

    pci_id: str | None
    name: str
    arch: str
    cc: str | None
    label: str
    cuda12: bool = True
    legacy_branch: str | None = None
    last_cuda: str | None = None
    min_branch: int = 0
    max_branch: int | None = None
    flavors: frozenset[str] = frozenset()
    flavor_why: str = ""
    min_cuda: str = "12.0"
    count: int = 1

    def title(self) -> str:
        cc = f", CC {self.cc}" if self.cc else ""
        many = f" x{self.count}" if self.count > 1 else ""
        return f"{self.name} ({self.label}{cc}){many}"


def _resolve(gpus: Sequence[Any], common: ModuleType, pol: dict[str, Any]) -> list[Gpu]:
    table: dict[str, dict[str, Any]] = common.devices()
    arch_pol: dict[str, Any] = pol["architectures"]
    cc_cuda: dict[str, str] = pol["cuda"].get("min_cuda_for_cc") or {}
    grouped: dict[tuple[Any, ...], Gpu] = {}
    for index, item in enumerate(gpus):
        if not isinstance(item, Mapping) or not (item.get("pci_id") or item.get("arch")):
            raise AnsibleFilterError(
                "nvidia_stack expects the list returned by nvidia_gpus (dictionaries with 'pci_id' or 'arch');"
                f" item {index} is {item!r:.80}"
            )
        pci_id = str(item.get("pci_id") or "").lower() or None
        devid = pci_id.split(":")[-1] if pci_id else ""
        info = table.get(devid, {})
        arch = str(item.get("arch") or info.get("arch") or "unknown")
        cc = item.get("compute_capability") or info.get("cc")
        name = str(item.get("name") or info.get("name") or pci_id or arch)
        rules = arch_pol.get(arch)
        gpu = Gpu(
            pci_id=pci_id,
            name=name,
            arch=arch,
            cc=str(cc) if cc else None,
            label=str(rules.get("label", arch)) if rules else "unknown architecture",
        )
        if rules is None:
            gpu.cuda12 = False
        elif not rules.get("cuda12", False):
            gpu.cuda12 = False
            gpu.legacy_branch = info.get("legacy_branch") or rules.get("legacy_branch")
            gpu.last_cuda = rules.get("last_cuda")
        else:
            gpu.min_branch = max(int(rules.get("min_branch", 0)), int(info.get("min_branch") or 0))
            gpu.max_branch = rules.get("max_branch")
            flavors = set(rules.get("flavors", []))
            gpu.flavor_why = f"{gpu.label} GPUs support {' and '.join(sorted(flavors))} kernel modules"
            if info.get("open_only"):
                flavors = {"open"}
                gpu.flavor_why = "NVIDIA supports only the open kernel modules on it"
            elif info.get("kernelopen") is False and "open" in flavors:
                flavors.discard("open")
                gpu.flavor_why = "NVIDIA's supported-gpus.json does not list it for the open kernel modules"
            elif flavors == {"proprietary"}:
                gpu.flavor_why = f"the open kernel modules need Turing or newer; {gpu.label} needs the proprietary ones"
            gpu.flavors = frozenset(flavors)
            gpu.min_cuda = max([str(rules.get("min_cuda", "12.0")), cc_cuda.get(gpu.cc or "", "12.0")], key=_ver)
        key = (gpu.pci_id, gpu.name, gpu.arch, gpu.cc)
        if key in grouped:
            grouped[key].count += 1
        else:
            grouped[key] = gpu
    return list(grouped.values())


# --------------------------------------------------------------------- plan


@dataclass
class Candidate:
    """A driver branch the distribution can install, and where from."""

    requested: int
    branch: int
    repo: str
    note: str = ""
    blockers: list[str] = field(default_factory=list)


def _distro_candidates(
    dist: dict[str, Any], distro: str, forced: int | None, server: bool, reasons: list[str]
) -> list[Candidate] | str:
    """Branches to try in order, or a sentence saying why the forced one is not available."""
    branches: dict[int, Any] = {int(k): v for k, v in (dist.get("branches") or {}).items()}
    transitional: dict[int, int] = {int(k): int(v) for k, v in (dist.get("transitional") or {}).items()}
    family = dist["family"]

    def variant_ok(branch: int) -> bool:
        if family != "ubuntu":
            return True
        variants = branches[branch].get("variants", [])
        return any(v.startswith("-server") == server for v in variants)

    def repo_of(branch: int) -> str:
        return str(branches[branch].get("repo", dist["driver_repo"]))

    if forced is None:
        return [
            Candidate(b, b, repo_of(b), str(branches[b].get("note", "")))
            for b in dist["preferred_branches"]
            if b in branches and variant_ok(b)
        ]
    effective = forced
    if forced in transitional:
        effective = transitional[forced]
        reasons.append(
            f"driver_branch {forced}: on {distro} nvidia-driver-{forced}* is a transitional package that installs"
            f" {effective}, so the plan uses {effective}"
        )
    available = ", ".join(
        f"{b}{' (' + str(v.get('note')) + ')' if v.get('note') else ''}" for b, v in sorted(branches.items())
    )
    if effective not in branches:
        return f"driver branch {forced} is not packaged for {distro}; available: {available}"
    if not variant_ok(effective):
        kind = "-server" if server else "desktop (non -server)"
        return f"driver branch {effective} has no {kind} packages on {distro}; available: {available}"
    return [Candidate(forced, effective, repo_of(effective), str(branches[effective].get("note", "")))]


def _cudnn_fit(row: dict[str, Any], cuda: str, archs: set[str]) -> bool:
    low, high = row["cuda12"]
    return _ver(low) <= _ver(cuda) <= _ver(high) and archs <= set(row["architectures"])


def nvidia_stack(
    gpus: Any,
    cuda: Any = "12",
    driver_branch: Any = None,
    flavor: Any = "auto",
    server: Any = False,
    cudnn: Any = "9",
    distro: Any = "ubuntu24.04",
) -> dict[str, Any]:
    """Plan driver branch, kernel-module flavour, CUDA 12 toolkit and cuDNN 9 for ``gpus``."""
    common = load_common()
    pol: dict[str, Any] = common.policy()
    cuda_releases: dict[str, Any] = pol["cuda"]["releases"]
    cudnn_releases: dict[str, Any] = pol["cudnn"]["releases"]
    distros: dict[str, Any] = pol["distros"]

    if isinstance(gpus, (str, bytes)) or not isinstance(gpus, Sequence):
        raise AnsibleFilterError(f"nvidia_stack expects the list returned by nvidia_gpus; got {type(gpus).__name__}")
    cuda_req = _check_cuda(cuda, list(cuda_releases), str(pol["cuda"]["major"]))
    cudnn_req = _check_cudnn(cudnn, list(cudnn_releases), str(pol["cudnn"]["major"]))
    forced = _check_branch(driver_branch, [int(b) for b in pol["known_branches"]])
    if not isinstance(flavor, str) or flavor not in FLAVORS:
        raise _fail("flavor", "one of " + ", ".join(FLAVORS), flavor)
    server_b = _check_bool("server", server)
    if not isinstance(distro, str) or distro not in distros:
        raise _fail("distro", "one of " + ", ".join(distros), distro)

    dist: dict[str, Any] = distros[distro]
    family = dist["family"]
    resolved = _resolve(gpus, common, pol)
    total = sum(g.count for g in resolved)
    order = list(common.ARCHITECTURES)
    architectures = sorted({g.arch for g in resolved}, key=lambda a: order.index(a) if a in order else len(order))
    reasons: list[str] = []
    plan: dict[str, Any] = {
        "supported": False,
        "driver_branch": None,
        "driver_flavor": None,
        "driver_repo": None,
        "cuda_version": None,
        "cudnn_version": None,
        "cuda_repo": dist["cuda_repo"],
        "packages": {"driver": [], "cuda": [], "cudnn": []},
        "ubuntu_drivers": None,
        "apt_components": [],
        "gpus": total,
        "architectures": architectures,
        "reasons": reasons,
    }
    if server_b and family != "ubuntu":
        reasons.append(f"server: ignored on {distro}; -server (ERD) packages and ubuntu-drivers --gpgpu are Ubuntu's")

    # --- hardware that no CUDA 12 driver can serve
    blocked = False
    for gpu in resolved:
        if gpu.arch == "unknown" or gpu.label == "unknown architecture":
            blocked = True
            reasons.append(
                f"{gpu.name} ({gpu.pci_id or 'no PCI ID'}) is an NVIDIA device the table does not know, so no driver"
                " can be planned for it; regenerate the table (python3 tools/gen_gpu_table.py) or add it to"
                " plugins/filter/data/nvidia_overlay.yml"
            )
        elif not gpu.cuda12:
            blocked = True
            reasons.append(
                f"{gpu.title()} needs the legacy {gpu.legacy_branch} driver, which has no CUDA 12 (CUDA 12 needs"
                f" driver 525 or newer; last CUDA for it: {gpu.last_cuda}); keep this host on CUDA 11.x or older"
                " with that driver, or replace the card"
            )
    current = [g for g in resolved if g.cuda12 and g.arch != "unknown"]
    allowed = frozenset(FLAVORS[1:])
    for gpu in current:
        allowed &= gpu.flavors
    if current and not allowed:
        blocked = True
        opens = [g.title() for g in current if g.flavors == {"open"}]
        props = [g.title() for g in current if g.flavors == {"proprietary"}]
        reasons.append(
            "one driver cannot serve these GPUs together: "
            f"{', '.join(props)} need the proprietary kernel modules and {', '.join(opens)} need the open ones;"
            " put them in different hosts"
        )
    if current:
        low = max(g.min_branch for g in current)
        highs = [g for g in current if g.max_branch is not None]
        if highs and min(int(g.max_branch or 0) for g in highs) < low:
            blocked = True
            top = min(highs, key=lambda g: int(g.max_branch or 0))
            need = max(current, key=lambda g: g.min_branch)
            reasons.append(
                f"no driver branch serves both {top.title()} (last branch {top.max_branch}) and {need.title()}"
                f" (needs {need.min_branch} or newer); put them in different hosts"
            )
    if flavor != "auto" and current and allowed and flavor not in allowed:
        blocked = True
        for gpu in current:
            if flavor not in gpu.flavors:
                reasons.append(
                    f"flavor {flavor} cannot drive {gpu.title()}: {gpu.flavor_why}; use flavor auto or"
                    f" {'open' if flavor == 'proprietary' else 'proprietary'}"
                )
    if blocked:
        return plan

    # --- CUDA releases the request, the GPUs and the CUDA repository allow
    cuda_list = sorted(cuda_releases, key=_ver, reverse=True) if cuda_req == pol["cuda"]["major"] else [cuda_req]
    need_cuda = max([g.min_cuda for g in current] or ["12.0"], key=_ver)
    repo_min = str(dist.get("cuda_min", "12.0"))
    ok_cuda = [c for c in cuda_list if _ver(c) >= _ver(need_cuda) and _ver(c) >= _ver(repo_min)]
    if not ok_cuda:
        if _ver(cuda_req) < _ver(need_cuda):
            for gpu in current:
                if _ver(gpu.min_cuda) > _ver(cuda_req):
                    reasons.append(
                        f"CUDA {cuda_req} cannot drive {gpu.title()}: it needs CUDA {gpu.min_cuda} or newer;"
                        " ask for cuda '12' or a newer 12.x"
                    )
        if _ver(cuda_req) < _ver(repo_min):
            reasons.append(
                f"NVIDIA's {dist['cuda_repo']} repository carries CUDA {repo_min} and newer only, so CUDA"
                f" {cuda_req} cannot be installed on {distro}; ask for a newer 12.x or another distro"
            )
        return plan

    archs = {g.arch for g in current}
    cudnn_list = sorted(cudnn_releases, key=_ver, reverse=True) if cudnn_req == pol["cudnn"]["major"] else [cudnn_req]

    def pick_cudnn(cuda_ver: str) -> str | None:
        return next((c for c in cudnn_list if _cudnn_fit(cudnn_releases[c], cuda_ver, archs)), None)

    # --- no GPU: toolkit-only plan
    if not resolved:
        reasons.append("no NVIDIA GPU detected or declared: driver skipped")
        if forced is not None or flavor != "auto":
            reasons.append("driver_branch and flavor are ignored without a GPU")
        toolkit = next((c for c in ok_cuda if pick_cudnn(c)), ok_cuda[0])
        return _finish(
            plan,
            pol,
            dist,
            distro,
            None,
            None,
            toolkit,
            pick_cudnn(toolkit),
            cuda_req,
            cudnn_req,
            server_b,
            current,
            reasons,
        )

    # --- driver branch
    cands = _distro_candidates(dist, distro, forced, server_b, reasons)
    if isinstance(cands, str):
        reasons.append(cands)
        return plan
    chosen: Candidate | None = None
    chosen_cuda: str | None = None
    for cand in cands:
        b = cand.branch
        for check in (cand.requested, cand.branch):
            for gpu in current:
                if check < gpu.min_branch:
                    cand.blockers.append(f"{gpu.title()} needs driver {gpu.min_branch} or newer")
                if gpu.max_branch is not None and check > int(gpu.max_branch):
                    cand.blockers.append(
                        f"{gpu.title()} is supported up to the {gpu.max_branch} branch only"
                        f" (NVIDIA's last branch for {gpu.label})"
                    )
        fits = [c for c in ok_cuda if int(cuda_releases[c]["min_branch"]) <= b]
        if not fits:
            cand.blockers.append(
                f"CUDA {ok_cuda[-1] if cuda_req == pol['cuda']['major'] else cuda_req} needs driver"
                f" {cuda_releases[ok_cuda[-1]]['min_branch']} or newer"
            )
        cand.blockers = list(dict.fromkeys(cand.blockers))
        if not cand.blockers:
            chosen = cand
            with_cudnn = [c for c in fits if pick_cudnn(c)]
            chosen_cuda = (with_cudnn or fits)[0]
            break
    if chosen is None or chosen_cuda is None:
        for cand in cands:
            where = "NVIDIA's CUDA repository" if cand.repo == "cuda" else f"{distro}'s archive"
            what = f"driver {cand.branch} ({where})"
            if cand.requested != cand.branch:
                what = f"driver_branch {cand.requested} (installs {cand.branch} from {where})"
            reasons.append(f"{what} cannot be used: {'; '.join(cand.blockers)}")
        if forced is not None:
            reasons.append("drop driver_branch to let the filter choose a branch that fits")
        return plan
    for cand in cands:
        if cand is chosen:
            break
        reasons.append(
            f"{distro}'s own driver {cand.branch} is not enough: {'; '.join(cand.blockers)}; using driver"
            f" {chosen.branch} from NVIDIA's CUDA repository ({dist['cuda_repo']}) instead"
        )
    why = "forced by driver_branch" if forced is not None else "the preferred branch that serves every GPU"
    note = f" ({chosen.note})" if chosen.note else ""
    reasons.append(
        f"driver branch {chosen.branch}{note}: {why}; it supports CUDA up to"
        f" {max((c for c in cuda_releases if int(cuda_releases[c]['min_branch']) <= chosen.branch), key=_ver)}"
        + (f"; GPUs need at least {max(g.min_branch for g in current)}" if current else "")
    )

    # --- flavour
    default_from = int(pol["open_modules"]["default_from"])
    if flavor != "auto":
        chosen_flavor = flavor
        reasons.append(f"{flavor} kernel modules: forced by flavor")
    elif "open" in allowed and (chosen.branch >= default_from or "proprietary" not in allowed):
        chosen_flavor = "open"
        if "proprietary" not in allowed:
            who = [g.title() for g in current if g.flavors == {"open"}]
            reasons.append(f"open kernel modules: required by {', '.join(who)}")
        else:
            reasons.append(
                f"open kernel modules: NVIDIA's default from the {default_from} branch and every GPU supports them"
            )
    else:
        chosen_flavor = "proprietary"
        if "open" not in allowed:
            who = [f"{g.title()}: {g.flavor_why}" for g in current if "open" not in g.flavors]
            reasons.append(f"proprietary kernel modules: {'; '.join(who)}")
        else:
            reasons.append(
                f"proprietary kernel modules: the default before the {default_from} branch"
                f" (driver {chosen.branch}); set flavor open to use the open ones"
            )
    if chosen_flavor == "open" and chosen.branch < default_from:
        om = pol["open_modules"]
        geforce = [g.title() for g in current if re.search(str(om["geforce_pattern"]), g.name)]
        if geforce:
            stage = "alpha" if chosen.branch < int(om["geforce_alpha_below"]) else "beta"
            extra = " and need NVreg_OpenRmEnableUnsupportedGpus=1" if stage == "alpha" else ""
            reasons.append(
                f"warning: open kernel modules on GeForce/workstation GPUs ({', '.join(geforce)}) were {stage}"
                f" quality in the {chosen.branch} branch{extra}; they are supported from {default_from}"
            )
    return _finish(
        plan,
        pol,
        dist,
        distro,
        chosen,
        chosen_flavor,
        chosen_cuda,
        pick_cudnn(chosen_cuda),
        cuda_req,
        cudnn_req,
        server_b,
        current,
        reasons,
    )


def _finish(
    plan: dict[str, Any],
    pol: dict[str, Any],
    dist: dict[str, Any],
    distro: str,
    chosen: Candidate | None,
    chosen_flavor: str | None,
    chosen_cuda: str,
    chosen_cudnn: str | None,
    cuda_req: str,
    cudnn_req: str,
    server: bool,
    current: list[Gpu],
    reasons: list[str],
) -> dict[str, Any]:
    """Fill CUDA, cuDNN and package fields of a feasible plan."""
    cuda_releases = pol["cuda"]["releases"]
    cudnn_releases = pol["cudnn"]["releases"]
    if cuda_req == pol["cuda"]["major"]:
        limits = [f"repository {dist['cuda_repo']} from {dist.get('cuda_min', '12.0')}"]
        if chosen is not None:
            limits.append(f"driver {chosen.branch}")
        need = [g for g in current if _ver(g.min_cuda) > (12, 0)]
        if need:
            limits.append(", ".join(f"{g.title()} needs {g.min_cuda}+" for g in need))
        reasons.append(
            f"CUDA {chosen_cuda}: the newest 12.x that fits ({'; '.join(limits)}; needs driver"
            f" {cuda_releases[chosen_cuda]['min_driver']} or newer)"
        )
    else:
        reasons.append(f"CUDA {chosen_cuda}: requested (needs driver {cuda_releases[chosen_cuda]['min_driver']}+)")
    if chosen_cudnn is None:
        archs = ", ".join(sorted({g.label for g in current})) or "no GPU"
        if cudnn_req == pol["cudnn"]["major"]:
            reasons.append(f"no cuDNN 9 release fits CUDA {chosen_cuda} and {archs}")
        else:
            row = cudnn_releases[cudnn_req]
            missing = sorted({g.label for g in current if g.arch not in row["architectures"]})
            why = [f"it supports CUDA {row['cuda12'][0]} to {row['cuda12'][1]}"]
            if missing:
                why.append(f"it does not support {', '.join(missing)}")
            reasons.append(
                f"cuDNN {cudnn_req} does not fit CUDA {chosen_cuda} with {archs}: {'; '.join(why)};"
                " ask for cudnn '9' to get the newest that fits"
            )
        return plan
    row = cudnn_releases[chosen_cudnn]
    how = "the newest 9.x that fits" if cudnn_req == pol["cudnn"]["major"] else "requested"
    limits = [f"CUDA {row['cuda12'][0]}-{row['cuda12'][1]}"]
    old = sorted({g.label for g in current if g.arch in ("maxwell", "pascal", "volta")})
    if old and how != "requested":
        limits.append(f"{', '.join(old)} support ends with cuDNN 9.10")
    unconfirmed = "" if row.get("confirmed", True) else "; range not confirmed in NVIDIA's support matrix"
    reasons.append(f"cuDNN {chosen_cudnn}: {how} ({'; '.join(limits)}{unconfirmed})")

    major, minor = chosen_cuda.split(".")
    packages: dict[str, list[str]] = {
        "driver": [],
        "cuda": [str(pol["cuda_repo"]["toolkit_package"]).format(major=major, minor=minor)],
        "cudnn": [f"{p}={chosen_cudnn}.*" for p in pol["cudnn"]["packages"]] + list(pol["cudnn"]["sample_build_deps"]),
    }
    plan.update(supported=True, cuda_version=chosen_cuda, cudnn_version=chosen_cudnn, packages=packages)
    if chosen is None or chosen_flavor is None:
        return plan
    plan.update(driver_branch=chosen.branch, driver_flavor=chosen_flavor, driver_repo=chosen.repo)
    if dist["family"] == "ubuntu":
        names = pol["ubuntu_packages"]
        parts = {
            "branch": chosen.branch,
            "server": "-server" if server else "",
            "open": "-open" if chosen_flavor == "open" else "",
        }
        driver = names["gpgpu_driver"] if server else names["driver"]
        packages["driver"] = [driver.format(**parts), names["utils"].format(**parts)]
        args = ["install"] + (["--gpgpu"] if server else []) + [names["ubuntu_drivers"].format(**parts)]
        plan["ubuntu_drivers"] = {"args": args}
        if server:
            reasons.append(
                "server: Ubuntu's -server (ERD) packages, installed by ubuntu-drivers install --gpgpu"
                " (headless, prebuilt modules; needed for nvidia-fabricmanager)"
            )
    else:
        branch_row = dist["branches"][chosen.branch]
        packages["driver"] = [p.format(branch=chosen.branch) for p in branch_row["packages"][chosen_flavor]]
        plan["apt_components"] = list(branch_row.get("components") or [])
    return plan


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {"nvidia_stack": nvidia_stack}
