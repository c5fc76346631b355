# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The verification checks: what to probe on a host, and how to judge what the probes printed.

Two steps, both pure:

* `plan_probes(plan, facts, pci_gpus, options)` decides which probes the role runs on a host and,
  for those it leaves out, why (no GPU in a container, a stage that has not run, ...).
* `judge(probe)` turns the probes' registered results into checks
  `{check, title, status: pass|fail|skip, expected, observed, hint}` and a host summary.

The role (roles/verify) runs the commands; everything here is plain Python with unit tests.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from ansible_collections.aiws.workstation.plugins.plugin_utils import parsers
from ansible_collections.aiws.workstation.plugins.plugin_utils.versions import version_key

SCHEMA = 1
STATUSES = ("pass", "fail", "skip")

# Local facts written by the stages (/etc/ansible/facts.d/aiws_<role>.fact) and the tag that runs them.
STAGE_FACTS = {
    "driver": ("aiws_nvidia_driver", "driver"),
    "cuda": ("aiws_cuda_toolkit", "cuda"),
    "cudnn": ("aiws_cudnn", "cudnn"),
    "anaconda": ("aiws_anaconda", "anaconda"),
    "pymirrors": ("aiws_python_mirrors", "pymirrors"),
}

CHECK_TITLES = {
    "nvidia_smi": "nvidia-smi answers",
    "driver_branch": "driver branch and version match the plan",
    "gpu_count": "GPU count matches detection",
    "driver_flavor": "loaded module flavour matches the plan",
    "driver_cuda": "driver supports the planned CUDA",
    "driver_pending": "no reboot or MOK enrollment pending for the driver",
    "nvcc_version": "nvcc -V in a login shell reports the planned CUDA",
    "cuda_compile": "a CUDA program compiles (nvcc -c)",
    "cuda_run": "a CUDA program runs on every GPU",
    "cudnn_mnist": "mnistCUDNN builds and prints Test passed!",
    "conda_info": "conda info works for a member of the conda group",
    "conda_channels": "conda uses the mirror channels",
    "pip_index": "pip's configured index is the mirror",
    "pytorch_gpus": "PyTorch sees every GPU",
}

CUDNN_SAMPLES = "/usr/src/cudnn_samples_v9"


# --------------------------------------------------------------------------- helpers


def _fact(facts: Mapping[str, Any] | None, stage: str) -> dict[str, Any] | None:
    """A stage's local fact as a dict, or None when it is absent or unreadable."""
    name, _label = STAGE_FACTS[stage]
    value = (facts or {}).get(name)
    return dict(value) if isinstance(value, Mapping) and value else None


def _stage_missing(stage: str) -> str:
    name, tag = STAGE_FACTS[stage]
    return (
        f"the {tag} stage has not run on this host (no /etc/ansible/facts.d/{name}.fact): "
        f"run `ansible-playbook site.yml --tags {tag}` first"
    )


def _gpu_names(plan: Mapping[str, Any]) -> str:
    names = [str(g.get("name") or g.get("pci_id")) for g in plan.get("gpus") or []]
    return ", ".join(names) or "none"


def _sm_flags(plan: Mapping[str, Any]) -> str:
    """nvcc -gencode flags for the GPUs of the plan ("" = nvcc's default target)."""
    caps = sorted({str(g.get("compute_capability")) for g in plan.get("gpus") or [] if g.get("compute_capability")})
    flags = []
    for cap in caps:
        if re.fullmatch(r"\d+\.\d+", cap):
            sm = cap.replace(".", "")
            flags.append(f"-gencode=arch=compute_{sm},code=sm_{sm}")
    return " ".join(flags)


def _cmake_archs(plan: Mapping[str, Any]) -> str:
    """CMAKE_CUDA_ARCHITECTURES for the GPUs of the plan ("89;120"), "" = CMake's default."""
    caps = sorted({str(g.get("compute_capability")) for g in plan.get("gpus") or [] if g.get("compute_capability")})
    return ";".join(cap.replace(".", "") for cap in caps if re.fullmatch(r"\d+\.\d+", cap))


def _result(reg: Any) -> dict[str, Any] | None:
    """A registered task result as {rc, out, err}, or None when the task was skipped or absent."""
    if not isinstance(reg, Mapping) or reg.get("skipped") or not reg:
        return None
    rc = reg.get("rc")
    out = reg.get("stdout")
    if out is None and "content" in reg:  # slurp
        import base64

        out = base64.b64decode(str(reg["content"])).decode("utf-8", "replace")
    return {
        "rc": int(rc) if rc is not None else (1 if reg.get("failed") else 0),
        "out": str(out or ""),
        "err": str(reg.get("stderr") or reg.get("msg") or ""),
    }


_SCRIPT_PREFIX = re.compile(r"^/\S+\.sh: line \d+: ")


def _first_line(text: str, limit: int = 200) -> str:
    """The first non-empty line, without a shell's "/tmp/.../script.sh: line N: " prefix (a per-run path)."""
    for line in (text or "").splitlines():
        if line.strip():
            return _SCRIPT_PREFIX.sub("", line.strip())[:limit]
    return ""


def _check(check: str, status: str, expected: Any = None, observed: Any = None, hint: str | None = None) -> dict[str, Any]:
    if status not in STATUSES:
        raise ValueError(f"check {check}: status must be one of {', '.join(STATUSES)}; got {status!r}")
    return {
        "check": check,
        "title": CHECK_TITLES[check],
        "status": status,
        "expected": expected,
        "observed": observed,
        "hint": hint if status != "pass" else None,
    }


def _skip(check: str, reason: str, expected: Any = None) -> dict[str, Any]:
    return _check(check, "skip", expected, None, reason)


# --------------------------------------------------------------------------- step 1: what to probe


def plan_probes(
    plan: Mapping[str, Any] | None,
    facts: Mapping[str, Any] | None,
    pci_gpus: Any = 0,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Which probes to run on this host: {probe: {run: bool, reason: str|None, ...}}."""
    plan = plan or {}
    options = options or {}
    try:
        pci = int(str(pci_gpus).strip() or 0)
    except ValueError:
        pci = 0
    gpus = list(plan.get("gpus") or [])
    if plan.get("container"):
        gpu_reason: str | None = (
            f"container: no NVIDIA device or kernel module inside a container (declared GPUs: {_gpu_names(plan)})"
        )
    elif not gpus:
        gpu_reason = "no NVIDIA GPU detected or declared on this host"
    elif pci == 0:
        gpu_reason = (
            f"no NVIDIA GPU on this machine's PCI bus (declared: {_gpu_names(plan)}): "
            "a golden image or a host whose cards are not installed yet"
        )
    else:
        gpu_reason = None
    gpu = {"run": gpu_reason is None, "reason": gpu_reason, "count": len(gpus)}

    cuda_fact = _fact(facts, "cuda")
    cuda = {"run": cuda_fact is not None, "reason": None if cuda_fact else _stage_missing("cuda"), "flags": _sm_flags(plan)}
    cuda_run = {
        "run": cuda["run"] and gpu["run"],
        "reason": gpu_reason or cuda["reason"],  # a GPU check: no GPU is the reason that matters
    }

    cudnn_fact = _fact(facts, "cudnn")
    samples = str((cudnn_fact or {}).get("samples") or CUDNN_SAMPLES)
    cudnn = {
        "run": cudnn_fact is not None,
        "reason": None if cudnn_fact else _stage_missing("cudnn"),
        "samples": samples,
        "archs": _cmake_archs(plan),
    }

    conda_fact = _fact(facts, "anaconda")
    users = [str(u) for u in (conda_fact or {}).get("users") or []]
    user = str(options.get("conda_user") or (users[0] if users else ""))
    prefix = str((conda_fact or {}).get("prefix") or "")
    if conda_fact is None:
        conda_reason: str | None = _stage_missing("anaconda")
    elif not user:
        conda_reason = (
            f"no member of the conda group {conda_fact.get('group', '')!r} is known: list users in the anaconda stage "
            "or set verify_conda_user"
        )
    else:
        conda_reason = None
    conda = {
        "run": conda_reason is None,
        "reason": conda_reason,
        "user": user,
        "prefix": prefix,
        # A login shell of the member, so conda comes from /etc/profile.d as the user gets it.
        "argv": ["runuser", "-l", user, "-c", "conda info --json"] if user else [],
    }

    mirrors_fact = _fact(facts, "pymirrors")
    if mirrors_fact is None:
        pip = {"run": False, "reason": _stage_missing("pymirrors"), "user": user, "python": ""}
    else:
        # pip of the shared conda when there is one (run as its member), else the system's python3.
        python = f"{prefix}/bin/python" if conda["run"] and prefix else "python3"
        pip_cmd = f"{shlex.quote(python)} -m pip config list"
        pip = {
            "run": True,
            "reason": None,
            "user": user if conda["run"] else "",
            "python": python,
            "argv": ["runuser", "-l", user, "-c", pip_cmd] if conda["run"] else ["python3", "-m", "pip", "config", "list"],
        }

    env = str(options.get("pytorch_env") or "")
    if not env:
        torch_reason: str | None = "off: set verify_pytorch_env to a conda environment with PyTorch to check it"
    else:
        torch_reason = gpu_reason or conda_reason
    torch_code = (
        "import torch; print(f'cuda_available={torch.cuda.is_available()} device_count={torch.cuda.device_count()}')"
    )
    pytorch = {
        "enabled": bool(env),
        "run": bool(env) and torch_reason is None,
        "reason": torch_reason,
        "env": env,
        "argv": ["runuser", "-l", user, "-c", f"conda run -n {shlex.quote(env)} python -c {shlex.quote(torch_code)}"]
        if user and env else [],
    }

    return {
        "gpu": gpu,
        "cuda": cuda,
        "cuda_run": cuda_run,
        "cudnn": cudnn,
        "conda": conda,
        "pip": pip,
        "pytorch": pytorch,
    }


# --------------------------------------------------------------------------- step 2: judge


def driver_hint(kind: str | None, diag: Mapping[str, str] | None, plan: Mapping[str, Any]) -> str:
    """The likely cause and fix when nvidia-smi fails, from the failure and the driver diagnostics."""
    diag = diag or {}
    causes: list[str] = []
    nouveau = diag.get("nouveau_loaded") == "1"
    nvidia = diag.get("nvidia_loaded") == "1"
    secure_boot = "enabled" in diag.get("secure_boot", "").lower()
    reboot = diag.get("reboot_required") == "1"
    if kind == "not_found":
        return (
            "nvidia-smi is not installed: run the driver stage (`--tags driver`); with Ubuntu's headless or "
            "-server packages also install nvidia-utils-<branch>[-server]."
        )
    if kind == "version_mismatch":
        return (
            "the loaded kernel module and the user-space driver libraries differ (typical after an unattended "
            "driver update within the branch): reboot so the new module loads (the driver stage's branch pin keeps "
            "other branches out, not in-branch updates)."
        )
    if kind == "no_devices":
        flavor = (plan.get("stack") or {}).get("driver_flavor")
        return (
            "the driver loaded but found no GPU: usually the wrong kernel-module flavour for the card "
            f"(planned: {flavor}; Maxwell/Pascal/Volta need proprietary, Blackwell needs open) or a GPU that is "
            "unpowered or fell off the bus; see `dmesg | grep -i nvrm`."
        )
    if reboot:
        causes.append("a reboot is pending (/var/run/reboot-required): reboot so the new kernel module loads")
    if nouveau:
        causes.append(
            "nouveau is still loaded: blacklist it (/etc/modprobe.d), run `update-initramfs -u` and reboot"
        )
    if secure_boot and not nvidia:
        causes.append(
            "Secure Boot is enabled and the nvidia module is not loaded: the DKMS-built module is probably not "
            "signed by an enrolled key; enroll it (`mokutil --import` the DKMS key, confirm in MokManager at the "
            "next boot) or use Canonical's signed linux-modules-nvidia packages"
        )
    if not causes:
        causes.append(
            "the nvidia kernel module is not loaded: reboot after the driver install; if it still fails, check "
            "`dkms status` (needs linux-headers-$(uname -r)) and `dmesg | grep -i nvrm`"
        )
    return "; ".join(causes) + "."


def _judge_driver(probe: Mapping[str, Any], todo: Mapping[str, Any]) -> list[dict[str, Any]]:
    plan = probe.get("plan") or {}
    stack = plan.get("stack") or {}
    gpu = todo["gpu"]
    planned_count = len(plan.get("gpus") or [])
    branch = stack.get("driver_branch")
    flavor = stack.get("driver_flavor")
    cuda_planned = stack.get("cuda_version")
    exp_branch = f"branch {branch}" if branch else "the planned branch"
    names = ("nvidia_smi", "driver_branch", "gpu_count", "driver_flavor", "driver_cuda")
    expected = {
        "nvidia_smi": f"nvidia-smi lists {planned_count} GPU(s)",
        "driver_branch": exp_branch,
        "gpu_count": planned_count,
        "driver_flavor": flavor,
        "driver_cuda": f">= {cuda_planned}" if cuda_planned else None,
    }
    if not gpu["run"]:
        return [_skip(n, gpu["reason"], expected[n]) for n in names]

    table_res = _result(probe.get("smi_table"))
    csv_res = _result(probe.get("smi_csv"))
    table = parsers.parse_nvidia_smi_table(table_res["out"]) if table_res and table_res["rc"] == 0 else None
    if table is None:
        text = "\n".join(filter(None, [(table_res or {}).get("out"), (table_res or {}).get("err")]))
        kind = parsers.nvidia_smi_failure(text) or ("not_found" if table_res and table_res["rc"] == 127 else None)
        diag = parsers.split_key_values((_result(probe.get("diag")) or {}).get("out", ""))
        checks = [_check("nvidia_smi", "fail", expected["nvidia_smi"], _first_line(text) or "no output",
                         driver_hint(kind, diag, plan))]
        return checks + [_skip(n, "nvidia-smi did not answer", expected[n]) for n in names[1:]]

    rows = parsers.parse_nvidia_smi_csv(csv_res["out"]) if csv_res and csv_res["rc"] == 0 else []
    count = len(rows) if rows else len(table["gpus"])
    driver = table["driver_version"]
    listed = ", ".join(r.get("name", "") for r in rows) or ", ".join(g["name"] for g in table["gpus"])
    checks = [_check("nvidia_smi", "pass", expected["nvidia_smi"],
                     f"driver {driver}, CUDA {table['cuda_version'] or '-'}, {count} GPU(s): {listed}")]

    # Branch (and exact version when the driver stage recorded one).
    driver_fact = _fact(probe.get("facts"), "driver") or {}
    want_version = driver_fact.get("version")
    ok = (branch is None or version_key(driver)[:1] == (int(branch),)) and (not want_version or str(want_version) == driver)
    exp = exp_branch + (f", version {want_version}" if want_version else "")
    checks.append(_check("driver_branch", "pass" if ok else "fail", exp, driver,
                         None if ok else (
                             "the running driver is not the planned one: another driver was installed before, or the "
                             "host has not rebooted into the new one; run `--tags driver`, then reboot")))

    ok = count == planned_count
    checks.append(_check("gpu_count", "pass" if ok else "fail", planned_count, count,
                         None if ok else (
                             f"nvidia-smi sees {count} of the {planned_count} GPU(s) {plan.get('gpu_source', '')}: "
                             "a GPU without power, unseated or fallen off the bus (`dmesg | grep -i nvrm`), or one the "
                             "loaded module flavour cannot drive; if they were declared in aiws_gpus, fix the declaration")))

    proc = parsers.parse_driver_version_file((_result(probe.get("proc_version")) or {}).get("out", ""))
    if not flavor:
        checks.append(_skip("driver_flavor", "the plan names no module flavour", None))
    elif proc is None:
        checks.append(_check("driver_flavor", "fail", flavor, "unreadable /proc/driver/nvidia/version",
                             "the nvidia module is not loaded although nvidia-smi answered: reload it or reboot"))
    else:
        ok = proc["flavor"] == flavor
        checks.append(_check("driver_flavor", "pass" if ok else "fail", flavor, proc["flavor"],
                             None if ok else (
                                 f"the {proc['flavor']} module is loaded, the plan wants {flavor}: both flavours may be "
                                 f"installed; reinstall with aiws_driver_flavor={flavor} (`--tags driver`) and reboot")))

    smi_cuda = table["cuda_version"]
    if not cuda_planned:
        checks.append(_skip("driver_cuda", "the plan names no CUDA version"))
    elif not smi_cuda:
        checks.append(_check("driver_cuda", "fail", expected["driver_cuda"], "nvidia-smi shows no CUDA version",
                             "the driver's CUDA library (libcuda) is missing: reinstall the driver's user-space packages"))
    else:
        ok = version_key(smi_cuda)[:2] >= version_key(cuda_planned)[:2]
        checks.append(_check("driver_cuda", "pass" if ok else "fail", expected["driver_cuda"], smi_cuda,
                             None if ok else (
                                 f"driver {driver} supports CUDA up to {smi_cuda}: install a newer branch "
                                 f"(aiws_driver_branch) or plan an older toolkit (aiws_cuda_version)")))
    return checks


def driver_pending(fact: Mapping[str, Any] | None, boot_id: str = "", container: bool = False) -> list[str]:
    """What the driver stage recorded as still to do on the host: MOK enrollment, a reboot ([] when nothing,
    or when the host has booted since the record: boot_id differs)."""
    if not fact:
        return []
    recorded = str(fact.get("boot_id") or "")
    if recorded and boot_id and recorded != boot_id:
        return []
    pending = []
    if (fact.get("mok") or {}).get("state") == "pending":
        pending.append("MOK enrollment")
    reboot = fact.get("reboot") or {}
    if reboot.get("needed") and not container and reboot.get("action") != "rebooted":
        pending.append("reboot")
    return pending


def _judge_driver_pending(probe: Mapping[str, Any]) -> list[dict[str, Any]]:
    plan = probe.get("plan") or {}
    expected = "nothing pending"
    if not plan.get("gpus"):
        return [_skip("driver_pending", "no NVIDIA GPU detected or declared on this host", expected)]
    fact = _fact(probe.get("facts"), "driver")
    if fact is None:
        return [_skip("driver_pending", _stage_missing("driver"), expected)]
    boot_id = ((_result(probe.get("boot_id")) or {}).get("out") or "").strip()
    pending = driver_pending(fact, boot_id, bool(plan.get("container")))
    if not pending:
        reboot = fact.get("reboot") or {}
        observed = "nothing pending" + (f" ({reboot.get('state')})" if reboot.get("state") else "")
        if fact.get("boot_id") and boot_id and fact.get("boot_id") != boot_id:
            observed = "the host has booted since the driver stage recorded what was pending"
        return [_check("driver_pending", "pass", expected, observed)]
    mok = fact.get("mok") or {}
    reasons = "; ".join((fact.get("reboot") or {}).get("reasons") or [])
    steps = []
    if "MOK enrollment" in pending:
        steps.append(
            f"at the console, reboot; in the blue MokManager screen choose Enroll MOK, Continue, Yes and type the "
            f"password of nvidia_driver_mok_password (certificate {mok.get('certificate')}); MokManager waits only "
            "a few seconds, and a skipped enrollment leaves the module unloadable (the next run imports it again "
            "while it is not enrolled)")
    else:
        steps.append("reboot the host (`sudo reboot`), so the installed driver's module loads")
    return [_check("driver_pending", "fail", expected, " and ".join(pending) + (f": {reasons}" if reasons else ""),
                   "; ".join(steps) + "; then run `--tags verify` again.")]


def _judge_cuda(probe: Mapping[str, Any], todo: Mapping[str, Any]) -> list[dict[str, Any]]:
    plan = probe.get("plan") or {}
    fact = _fact(probe.get("facts"), "cuda") or {}
    planned = (plan.get("stack") or {}).get("cuda_version") or fact.get("version")
    checks: list[dict[str, Any]] = []
    if not todo["cuda"]["run"]:
        reason = todo["cuda"]["reason"]
        return [_skip("nvcc_version", reason, planned), _skip("cuda_compile", reason),
                _skip("cuda_run", todo["cuda_run"]["reason"])]

    res = _result(probe.get("nvcc")) or {"rc": 1, "out": "", "err": "not run"}
    nvcc = parsers.parse_nvcc_version(res["out"]) if res["rc"] == 0 else None
    if nvcc is None:
        checks.append(_check("nvcc_version", "fail", planned, _first_line(res["err"] or res["out"]) or f"rc={res['rc']}",
                             "nvcc is not on PATH in a fresh login shell: the cuda stage's /etc/profile.d script or the "
                             "/usr/local/cuda alternative is missing; rerun `--tags cuda` and open a new login shell"))
    else:
        ok = not planned or nvcc["release"] == str(planned)
        hint = None if ok else (
            f"a login shell finds CUDA {nvcc['release']} first: check `update-alternatives --display cuda` and the "
            f"PATH set in /etc/profile.d (installed: {fact.get('home', '?')})")
        checks.append(_check("nvcc_version", "pass" if ok else "fail", planned,
                             f"{nvcc['release']} (V{nvcc['version']})", hint))

    flags = todo["cuda"].get("flags") or "nvcc default target"
    comp = parsers.parse_sections((_result(probe.get("cuda_compile")) or {}).get("out", ""))
    step = comp.get("compile")
    if step is None:
        checks.append(_check("cuda_compile", "fail", f"object file for {flags}", "the compile script did not report",
                             "run the verify stage with -v to see the script's output"))
    elif step["rc"] == 0:
        checks.append(_check("cuda_compile", "pass", f"object file for {flags}", "compiled"))
    else:
        out = step["output"]
        if "unsupported GNU version" in out or "unsupported gnu version" in out.lower():
            hint = "the host compiler is newer than this CUDA supports: install an older g++ and point nvcc at it (-ccbin)"
        elif "nvcc" in out and "not found" in out:
            hint = "nvcc is not on PATH in a login shell: rerun `--tags cuda` (the /etc/profile.d script)"
        elif "gcc" in out and ("not found" in out or "No such file" in out) or "failed to find" in out.lower():
            hint = "no host C++ compiler: install build-essential"
        elif "Unsupported gpu architecture" in out:
            hint = f"this CUDA cannot build for {flags}: the plan's CUDA is too old or too new for the GPU"
        else:
            hint = "nvcc could not compile a minimal kernel: check the toolkit install (`--tags cuda`) and the output"
        checks.append(_check("cuda_compile", "fail", f"object file for {flags}", _first_line(out) or f"rc={step['rc']}", hint))

    if not todo["cuda_run"]["run"]:
        checks.append(_skip("cuda_run", todo["cuda_run"]["reason"]))
    else:
        runs = parsers.parse_sections((_result(probe.get("cuda_run")) or {}).get("out", ""))
        run = runs.get("run")
        want = todo["gpu"]["count"]
        seen = re.search(r"devices=(\d+)", run["output"]) if run else None
        ok = bool(run and run["rc"] == 0 and seen and int(seen.group(1)) == want)
        observed = (run["output"].splitlines() or [""])[-1][:200] if run else "not run (compile or link failed)"
        checks.append(_check("cuda_run", "pass" if ok else "fail", f"kernel runs, {want} device(s)", observed,
                             None if ok else (
                                 "the program built but could not use every GPU: see nvidia-smi's check; a driver older "
                                 "than the toolkit fails with 'CUDA driver version is insufficient'")))
    return checks


def _judge_cudnn(probe: Mapping[str, Any], todo: Mapping[str, Any]) -> list[dict[str, Any]]:
    fact = _fact(probe.get("facts"), "cudnn") or {}
    samples = todo["cudnn"]["samples"]
    expected = f"{samples}/mnistCUDNN builds and prints Test passed!"
    if not todo["cudnn"]["run"]:
        return [_skip("cudnn_mnist", todo["cudnn"]["reason"], expected)]
    sections = parsers.parse_sections((_result(probe.get("mnist")) or {}).get("out", ""))
    skipped = sections.get("skip")
    if skipped is not None:
        # The samples need a build system this host lacks (or a layout the check does not know): not a GPU fault.
        why = " ".join(skipped["output"].split())[:400] or "the samples could not be built here"
        return [_skip("cudnn_mnist", why, expected)]
    build = sections.get("build")
    if build is None:
        missing = sections.get("missing")
        why = missing["output"] if missing else "the script did not report"
        return [_check("cudnn_mnist", "fail", expected, why[:200],
                       "the cuDNN samples are not installed: rerun `--tags cudnn` (package libcudnn9-samples)")]
    system_line = re.search(r"^build system: (\S+)", build["output"], re.MULTILINE)
    system = system_line.group(1) if system_line else "make"
    if build["rc"] != 0:
        out = build["output"]
        if "FreeImage.h" in out or "-lfreeimage" in out or "libfreeimage" in out:
            hint = "FreeImage is missing: install libfreeimage-dev (the cudnn stage lists it)"
        elif "cudnn.h" in out or "-lcudnn" in out or "cuDNN" in out:
            hint = "cuDNN headers or library are missing: install libcudnn9-dev-cuda-12 (`--tags cudnn`)"
        elif any(w in out for w in ("cuda_runtime", "-lcudart", "nvcc", "CUDAToolkit", "CMAKE_CUDA_COMPILER")):
            hint = "the CUDA toolkit is missing or not on a login shell's PATH: rerun `--tags cuda`"
        else:
            hint = f"the sample does not build: see the {system} output with -v"
        error = next(
            (line.strip() for line in out.splitlines() if "error" in line.lower() and "build system:" not in line),
            _first_line(out),
        )
        return [_check("cudnn_mnist", "fail", expected, f"build failed ({system}): {error[:200]}", hint)]
    run = sections.get("run") or {"rc": 1, "output": ""}
    result = parsers.parse_mnist(run["output"], run["rc"])
    version = result["cudnn_version"]
    want = str(fact.get("version") or "")
    if result["passed"]:
        if want and version and not want.startswith(version) and not version.startswith(want):
            return [_check("cudnn_mnist", "fail", f"{expected} (cuDNN {want})", f"Test passed! with cuDNN {version}",
                           "the sample ran against another cuDNN than the stage installed: check `ldconfig -p | grep cudnn`")]
        return [_check("cudnn_mnist", "pass", expected, f"Test passed! (cuDNN {version or '?'}, built with {system})")]
    if not todo["gpu"]["run"]:
        return [_skip("cudnn_mnist", f"built; running it needs a GPU ({todo['gpu']['reason']})", expected)]
    return [_check("cudnn_mnist", "fail", expected, _first_line(run["output"]) or f"rc={run['rc']}",
                   "mnistCUDNN built but failed on the GPU: check the driver checks above; "
                   "'CUDNN_STATUS_ARCH_MISMATCH' or 'not supported' means this cuDNN dropped the GPU's architecture")]


def _judge_conda(probe: Mapping[str, Any], todo: Mapping[str, Any]) -> list[dict[str, Any]]:
    plan = probe.get("plan") or {}
    conda = todo["conda"]
    mirrors = _fact(probe.get("facts"), "pymirrors")
    plan_conda = (plan.get("mirror") or {}).get("conda") or {}
    want = [parsers.channel_base(c) for c in (mirrors or {}).get("conda_channels") or plan_conda.get("default_channels") or []]
    channel_base = str(plan_conda.get("channel_base") or "")
    exp_channels = ", ".join(want) if want else "the official channels (mirror profile official)"
    checks: list[dict[str, Any]] = []
    info = None
    hint: str | None
    if not conda["run"]:
        checks.append(_skip("conda_info", conda["reason"], "conda info --json works"))
        checks.append(_skip("conda_channels", conda["reason"], exp_channels))
    else:
        res = _result(probe.get("conda_info")) or {"rc": 1, "out": "", "err": "not run"}
        info = parsers.parse_conda_info(res["out"]) if res["rc"] == 0 else None
        expected = f"conda info --json works for {conda['user']}"
        if info is None:
            text = res["err"] or res["out"]
            if "command not found" in text:
                hint = (f"conda is not on PATH in {conda['user']}'s login shell: the anaconda stage's /etc/profile.d "
                        "hook is missing; rerun `--tags anaconda`")
            elif "ermission denied" in text or "NotWritable" in text:
                hint = (f"{conda['user']} cannot read or write the shared conda: check the group membership and the "
                        "setgid/ACL permissions the anaconda stage sets")
            else:
                hint = "conda info failed for the user: see the output with -v"
            checks.append(_check("conda_info", "fail", expected, _first_line(text) or f"rc={res['rc']}", hint))
            checks.append(_skip("conda_channels", "conda info did not answer", exp_channels))
        else:
            checks.append(_check("conda_info", "pass", expected,
                                 f"conda {info['conda_version']} at {info['root_prefix']}"))
            if mirrors is None:
                checks.append(_skip("conda_channels", _stage_missing("pymirrors"), exp_channels))
            else:
                seen = sorted({parsers.channel_base(c) for c in info["channels"]})
                prefixes = want + ([channel_base.rstrip("/")] if channel_base else [])
                if want:
                    stray = [c for c in seen if not any(c == p or c.startswith(p + "/") for p in prefixes)]
                    missing = [c for c in want if c not in seen]
                    ok = bool(seen) and not stray and not missing
                    hint = None if ok else (
                        "conda does not use the mirror: " + "; ".join(filter(None, [
                            f"not from the mirror: {', '.join(stray)}" if stray else "",
                            f"missing: {', '.join(missing)}" if missing else "",
                        ])) + ". A user ~/.condarc or CONDARC may override the system file "
                        f"({info['sys_rc_path'] or 'the prefix .condarc'}); check `conda config --show-sources`")
                else:
                    ok, hint = bool(seen), (None if seen else "conda lists no channels: check the system .condarc")
                checks.append(_check("conda_channels", "pass" if ok else "fail", exp_channels, ", ".join(seen) or "none", hint))

    pip = todo["pip"]
    pypi = (mirrors or {}).get("pypi") if mirrors is not None else (plan.get("mirror") or {}).get("pypi")
    exp_pip = pypi or "PyPI's default index (mirror profile official)"
    if not pip["run"]:
        checks.append(_skip("pip_index", pip["reason"], exp_pip))
    else:
        res = _result(probe.get("pip_config")) or {"rc": 1, "out": "", "err": "not run"}
        text = res["out"] + "\n" + res["err"]
        if res["rc"] != 0 and "No module named pip" in text:
            checks.append(_skip("pip_index", f"pip is not installed for {pip['python']}: nothing to check", exp_pip))
        elif res["rc"] != 0:
            checks.append(_check("pip_index", "fail", exp_pip, _first_line(text) or f"rc={res['rc']}",
                                 "pip config list failed: see the output with -v"))
        else:
            values = parsers.parse_pip_config(res["out"])
            index = values.get("global.index-url") or values.get("install.index-url")
            if pypi:
                ok = (index or "").rstrip("/") == str(pypi).rstrip("/")
                hint = None if ok else (
                    "pip's index is not the mirror: /etc/pip.conf is missing or a user/virtualenv pip.conf or "
                    "PIP_INDEX_URL overrides it; check `pip config debug`")
            else:
                ok, hint = True, None
            checks.append(_check("pip_index", "pass" if ok else "fail", exp_pip, index or "PyPI default (no index-url set)", hint))
    return checks


def _judge_pytorch(probe: Mapping[str, Any], todo: Mapping[str, Any]) -> list[dict[str, Any]]:
    torch = todo["pytorch"]
    if not torch["enabled"]:
        return []  # optional and off: not part of the host's checks
    want = todo["gpu"]["count"]
    expected = f"torch.cuda.device_count() == {want} in conda env {torch['env']}"
    if not torch["run"]:
        return [_skip("pytorch_gpus", torch["reason"], expected)]
    res = _result(probe.get("pytorch")) or {"rc": 1, "out": "", "err": "not run"}
    match = re.search(r"cuda_available=(\w+) device_count=(\d+)", res["out"])
    ok = bool(match and res["rc"] == 0 and match.group(1) == "True" and int(match.group(2)) == want)
    observed = match.group(0) if match else (_first_line(res["err"] or res["out"]) or f"rc={res['rc']}")
    return [_check("pytorch_gpus", "pass" if ok else "fail", expected, observed,
                   None if ok else (
                       "PyTorch does not see every GPU: a CPU-only build (install a CUDA build from the PyTorch "
                       "channel/index), a wheel built for a newer CUDA than the driver supports, or "
                       "CUDA_VISIBLE_DEVICES set for the user"))]


def judge(probe: Mapping[str, Any]) -> dict[str, Any]:
    """Every check for one host, with its summary; the structure the report reads."""
    plan = probe.get("plan") or {}
    todo = probe.get("todo") or plan_probes(plan, probe.get("facts"), probe.get("pci_gpus", 0), probe.get("options"))
    checks = (
        _judge_driver(probe, todo)
        + _judge_driver_pending(probe)
        + _judge_cuda(probe, todo)
        + _judge_cudnn(probe, todo)
        + _judge_conda(probe, todo)
        + _judge_pytorch(probe, todo)
    )
    boot_id = ((_result(probe.get("boot_id")) or {}).get("out") or "").strip()
    pending = driver_pending(_fact(probe.get("facts"), "driver"), boot_id, bool(plan.get("container")))
    return host_result(str(probe.get("host") or ""), plan, probe.get("facts"), checks, pending)


def host_result(host: str, plan: Mapping[str, Any], facts: Mapping[str, Any] | None, checks: list[dict[str, Any]],
                pending: list[str] | None = None) -> dict[str, Any]:
    """The per-host record: what was planned and installed, the checks and their counts."""
    stack = plan.get("stack") or {}
    summary = {s: sum(1 for c in checks if c["status"] == s) for s in STATUSES}
    observed_driver = next(
        (c["observed"] for c in checks if c["check"] == "driver_branch" and c["status"] != "skip"), None
    )
    return {
        "schema": SCHEMA,
        "host": host,
        "status": "fail" if summary["fail"] else "pass",
        "summary": summary,
        "container": bool(plan.get("container")),
        "distro": plan.get("distro"),
        "gpu_source": plan.get("gpu_source"),
        "gpus": [
            {k: g.get(k) for k in ("name", "pci_id", "arch", "compute_capability")} for g in plan.get("gpus") or []
        ],
        "driver": {
            "branch": stack.get("driver_branch"),
            "flavor": stack.get("driver_flavor"),
            "observed": observed_driver,
            "pending": list(pending or []),
        },
        "cuda": {"planned": stack.get("cuda_version"), "installed": (_fact(facts, "cuda") or {}).get("version")},
        "cudnn": {"planned": stack.get("cudnn_version"), "installed": (_fact(facts, "cudnn") or {}).get("version")},
        "checks": checks,
    }
