"""plugin_utils.checks: recorded outputs in, checks with statuses and hints out."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.aiws.workstation.plugins.plugin_utils import checks

FIX = Path(__file__).parent / "fixtures" / "verify"


def fx(name: str) -> str:
    return (FIX / name).read_text()


def ran(stdout: str = "", rc: int = 0, stderr: str = "") -> dict[str, Any]:
    """A registered ansible command result."""
    return {"changed": False, "rc": rc, "stdout": stdout, "stderr": stderr}


def slurped(text: str) -> dict[str, Any]:
    return {"content": base64.b64encode(text.encode()).decode(), "encoding": "base64"}


SKIPPED = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}


def gpu(name: str = "NVIDIA GeForce RTX 4090", arch: str = "ada", cc: str = "8.9") -> dict[str, Any]:
    return {"slot": None, "pci_id": "10de:2684", "name": name, "arch": arch, "compute_capability": cc}


def plan(*, container: bool = False, gpus: int = 1, branch: int = 535, flavor: str = "proprietary",
         cuda: str = "12.2", profile: str = "tuna") -> dict[str, Any]:
    mirror = {
        "profile": profile,
        "conda": {
            "default_channels": [
                "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main",
                "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/r",
                "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/msys2",
            ],
            "channel_base": "https://mirrors.tuna.tsinghua.edu.cn/anaconda/cloud",
        },
        "pypi": "https://pypi.tuna.tsinghua.edu.cn/simple",
    }
    return {
        "distro": "debian12",
        "container": container,
        "gpu_source": "declared" if container else "detected",
        "gpus": [gpu() for _ in range(gpus)],
        "stack": {"supported": True, "driver_branch": branch, "driver_flavor": flavor, "cuda_version": cuda,
                  "cudnn_version": "9.10"},
        "mirror": mirror,
    }


DRIVER_FACT = {"schema": 2, "branch": 535, "flavor": "proprietary", "boot_id": None,
               "mok": {"state": "not-needed", "certificate": None},
               "reboot": {"needed": False, "state": "current", "action": "none",
                          "reasons": ["the loaded nvidia module 535.288.01 is the one installed for kernel 6.1.0-28-amd64"]}}
FACTS_ALL = {
    "aiws_nvidia_driver": DRIVER_FACT,
    "aiws_cuda_toolkit": {"version": "12.2", "home": "/usr/local/cuda-12.2"},
    "aiws_cudnn": {"version": "9.10.2"},
    "aiws_anaconda": {"prefix": "/opt/anaconda3", "group": "anaconda", "users": ["alice"]},
    "aiws_python_mirrors": {
        "pypi": "https://pypi.tuna.tsinghua.edu.cn/simple",
        "conda_channels": [
            "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main",
            "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/r",
            "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/msys2",
        ],
    },
}


def good_gpu_probe(**over: Any) -> dict[str, Any]:
    """A healthy two-GPU host: the recorded 535 table and CSV query, all later stages fine."""
    p = plan(gpus=2)
    probe: dict[str, Any] = {
        "host": "ws01",
        "plan": p,
        "facts": FACTS_ALL,
        "pci_gpus": "2",
        "smi_table": ran(fx("nvidia-smi-535-2x4090.txt")),
        "smi_csv": ran(fx("nvidia-smi-query-2x4090.csv")),
        "proc_version": slurped(fx("proc-driver-version-proprietary.txt")),
        "diag": None,
        "nvcc": ran(fx("nvcc-12.2.txt")),
        "cuda_compile": ran("### compile rc=0"),
        "cuda_run": ran("### build rc=0\ndevices=2\n### run rc=0"),
        "mnist": ran("make output\n### build rc=0\n" + fx("mnistcudnn-pascal-2gpu-passed.txt").replace("8.0.5", "9.10.2")
                     + "\n### run rc=0"),
        "conda_info": ran(fx("conda-info-tuna.json")),
        "pip_config": ran(fx("pip-config-list-tuna.txt")),
        "pytorch": SKIPPED,
    }
    probe.update(over)
    return probe


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in result["checks"]}


def test_healthy_gpu_host_passes_every_check() -> None:
    result = checks.judge(good_gpu_probe())
    statuses = {name: c["status"] for name, c in by_name(result).items()}
    assert statuses == {name: "pass" for name in statuses}, statuses
    assert set(statuses) == set(checks.CHECK_TITLES) - {"pytorch_gpus"}
    assert result["status"] == "pass"
    assert result["summary"] == {"pass": 13, "fail": 0, "skip": 0}
    assert result["driver"]["pending"] == []
    assert result["driver"]["observed"] == "535.288.01"
    assert all(c["hint"] is None for c in result["checks"])


def test_every_check_has_the_structured_fields() -> None:
    for check in checks.judge(good_gpu_probe())["checks"]:
        assert set(check) == {"check", "title", "status", "expected", "observed", "hint"}


def test_container_skips_gpu_checks_with_the_reason_and_runs_the_rest() -> None:
    probe = {
        "host": "aiws-ada",
        "plan": plan(container=True, branch=580, flavor="open", cuda="12.4"),
        "facts": {"aiws_cuda_toolkit": {"version": "12.4", "home": "/usr/local/cuda-12.4"}},
        "pci_gpus": "0",
        "nvcc": ran(fx("nvcc-12.4.txt")),
        "cuda_compile": ran("### compile rc=0"),
    }
    result = by_name(checks.judge(probe))
    for name in ("nvidia_smi", "driver_branch", "gpu_count", "driver_flavor", "driver_cuda", "cuda_run"):
        assert result[name]["status"] == "skip"
        assert result[name]["hint"].startswith("container: no NVIDIA device")
        assert "NVIDIA GeForce RTX 4090" in result[name]["hint"]
    assert result["nvcc_version"]["status"] == "pass"
    assert result["nvcc_version"]["observed"] == "12.4 (V12.4.131)"
    assert result["cuda_compile"]["status"] == "pass"
    assert result["cuda_compile"]["expected"] == "object file for -gencode=arch=compute_89,code=sm_89"
    assert result["cudnn_mnist"]["status"] == "skip"
    assert "--tags cudnn" in result["cudnn_mnist"]["hint"]
    assert "--tags anaconda" in result["conda_info"]["hint"]


def test_container_without_any_stage_fact_skips_gpu_checks_for_the_gpu_reason() -> None:
    result = by_name(checks.judge({"host": "c", "plan": plan(container=True), "facts": {}, "pci_gpus": "0"}))
    assert {c["status"] for c in result.values()} == {"skip"}
    assert result["cuda_run"]["hint"].startswith("container:")
    assert "--tags cuda" in result["nvcc_version"]["hint"]


def test_golden_image_without_the_declared_gpu_skips() -> None:
    todo = checks.plan_probes(plan(), {}, "0")
    assert not todo["gpu"]["run"]
    assert "golden image" in todo["gpu"]["reason"]


def test_no_gpu_at_all() -> None:
    todo = checks.plan_probes(plan(gpus=0), {}, 0)
    assert todo["gpu"]["reason"] == "no NVIDIA GPU detected or declared on this host"
    assert checks.plan_probes(plan(), {}, "garbage")["gpu"]["run"] is False


def test_stage_facts_gate_the_probes() -> None:
    todo = checks.plan_probes(plan(), FACTS_ALL, "1", {"pytorch_env": "torch"})
    assert todo["cuda"]["run"] and todo["cudnn"]["run"] and todo["conda"]["run"] and todo["pip"]["run"]
    assert todo["conda"]["argv"] == ["runuser", "-l", "alice", "-c", "conda info --json"]
    assert todo["pip"]["argv"] == ["runuser", "-l", "alice", "-c", "/opt/anaconda3/bin/python -m pip config list"]
    assert todo["pytorch"]["run"] and todo["pytorch"]["argv"][:3] == ["runuser", "-l", "alice"]
    assert todo["cudnn"]["samples"] == "/usr/src/cudnn_samples_v9"
    # A fact file that is not JSON arrives as a string: treated as absent.
    assert checks.plan_probes(plan(), {"aiws_cuda_toolkit": "garbage"}, "1")["cuda"]["run"] is False


def test_conda_without_members_and_pip_without_conda() -> None:
    facts = dict(FACTS_ALL, aiws_anaconda={"prefix": "/opt/conda", "group": "anaconda", "users": []})
    todo = checks.plan_probes(plan(), facts, "1")
    assert not todo["conda"]["run"] and "verify_conda_user" in todo["conda"]["reason"]
    assert todo["pip"]["argv"] == ["python3", "-m", "pip", "config", "list"]
    assert checks.plan_probes(plan(), facts, "1", {"conda_user": "bob"})["conda"]["argv"][2] == "bob"


@pytest.mark.parametrize(
    ("diag", "words"),
    [
        ("nvidia_loaded=0\nnouveau_loaded=1\nsecure_boot=SecureBoot disabled\nreboot_required=0\n", ["nouveau", "update-initramfs"]),
        ("nvidia_loaded=0\nnouveau_loaded=0\nsecure_boot=SecureBoot enabled\nreboot_required=0\n", ["Secure Boot", "mokutil"]),
        ("nvidia_loaded=0\nnouveau_loaded=0\nsecure_boot=SecureBoot disabled\nreboot_required=1\n", ["reboot is pending"]),
        ("nvidia_loaded=0\nnouveau_loaded=0\nsecure_boot=SecureBoot disabled\nreboot_required=0\n", ["dkms status", "reboot"]),
    ],
)
def test_failing_nvidia_smi_explains_the_likely_cause(diag: str, words: list[str]) -> None:
    probe = good_gpu_probe(smi_table=ran(fx("nvidia-smi-failed.txt"), rc=9), smi_csv=SKIPPED,
                           proc_version={"failed": True, "msg": "file not found"}, diag=ran(diag), cuda_run=SKIPPED)
    result = checks.judge(probe)
    smi = by_name(result)["nvidia_smi"]
    assert smi["status"] == "fail"
    assert smi["observed"].startswith("NVIDIA-SMI has failed because it couldn't communicate")
    for word in words:
        assert word in smi["hint"]
    assert result["status"] == "fail"
    for name in ("driver_branch", "gpu_count", "driver_flavor", "driver_cuda"):
        assert by_name(result)[name]["status"] == "skip"


def test_version_mismatch_and_missing_nvidia_smi_hints() -> None:
    mismatch = checks.judge(good_gpu_probe(smi_table=ran(fx("nvidia-smi-mismatch.txt"), rc=18)))
    assert "reboot" in by_name(mismatch)["nvidia_smi"]["hint"]
    missing = checks.judge(good_gpu_probe(smi_table=ran("", rc=127, stderr="nvidia-smi: No such file or directory")))
    assert "--tags driver" in by_name(missing)["nvidia_smi"]["hint"]


def test_gpu_count_flavour_branch_and_cuda_mismatches_fail_with_hints() -> None:
    p = plan(gpus=3, branch=580, flavor="open", cuda="12.4")
    result = by_name(checks.judge(good_gpu_probe(plan=p)))
    assert result["gpu_count"]["status"] == "fail" and result["gpu_count"]["observed"] == 2
    assert "fallen off the bus" in result["gpu_count"]["hint"]
    assert result["driver_flavor"]["status"] == "fail"
    assert "aiws_driver_flavor=open" in result["driver_flavor"]["hint"]
    assert result["driver_branch"]["status"] == "fail" and result["driver_branch"]["expected"] == "branch 580"
    assert result["driver_cuda"]["status"] == "fail" and result["driver_cuda"]["observed"] == "12.2"


def test_driver_fact_pins_the_exact_version() -> None:
    facts = dict(FACTS_ALL, aiws_nvidia_driver={"branch": 535, "version": "535.230.02"})
    result = by_name(checks.judge(good_gpu_probe(facts=facts)))
    assert result["driver_branch"]["status"] == "fail"
    assert result["driver_branch"]["expected"] == "branch 535, version 535.230.02"


def test_nvcc_missing_or_wrong_version() -> None:
    missing = by_name(checks.judge(good_gpu_probe(nvcc=ran("", rc=127, stderr="bash: line 1: nvcc: command not found"))))
    assert missing["nvcc_version"]["status"] == "fail"
    assert "/etc/profile.d" in missing["nvcc_version"]["hint"]
    wrong = by_name(checks.judge(good_gpu_probe(nvcc=ran(fx("nvcc-12.4.txt")))))
    assert wrong["nvcc_version"]["status"] == "fail" and "update-alternatives" in wrong["nvcc_version"]["hint"]


def test_compile_failure_observed_has_no_per_run_path() -> None:
    out = "/root/.ansible/tmp/ansible-tmp-17953.80-13770-2127/cuda-sample.sh: line 40: nvcc: command not found\n### compile rc=127"
    result = by_name(checks.judge(good_gpu_probe(cuda_compile=ran(out))))
    assert result["cuda_compile"]["observed"] == "nvcc: command not found"
    assert "/etc/profile.d" in result["cuda_compile"]["hint"]


def test_compile_failure_hint() -> None:
    out = "nvcc fatal   : Unsupported gpu architecture 'compute_120'\n### compile rc=1"
    result = by_name(checks.judge(good_gpu_probe(cuda_compile=ran(out))))
    assert result["cuda_compile"]["status"] == "fail"
    assert "too old or too new" in result["cuda_compile"]["hint"]


def test_mnist_build_failure_names_the_missing_package() -> None:
    out = fx("mnistcudnn-build-no-freeimage.txt") + "### build rc=2\n"
    result = by_name(checks.judge(good_gpu_probe(mnist=ran(out))))
    assert result["cudnn_mnist"]["status"] == "fail"
    assert "libfreeimage-dev" in result["cudnn_mnist"]["hint"]
    assert "FreeImage.h" in result["cudnn_mnist"]["observed"]


def test_mnist_run_failure_skips_without_gpu_and_fails_with_one() -> None:
    out = "### build rc=0\ncudaGetDeviceCount returned 100\n### run rc=1\n"
    with_gpu = by_name(checks.judge(good_gpu_probe(mnist=ran(out))))
    assert with_gpu["cudnn_mnist"]["status"] == "fail"
    container = {"host": "c", "plan": plan(container=True), "facts": {"aiws_cudnn": {"version": "9.10.2"}},
                 "pci_gpus": "0", "mnist": ran(out)}
    skipped = by_name(checks.judge(container))["cudnn_mnist"]
    assert skipped["status"] == "skip" and skipped["hint"].startswith("built; running it needs a GPU")


def test_mnist_missing_samples() -> None:
    out = "/usr/src/cudnn_samples_v9/mnistCUDNN does not exist\n### missing rc=1\n"
    result = by_name(checks.judge(good_gpu_probe(mnist=ran(out))))
    assert result["cudnn_mnist"]["status"] == "fail" and "libcudnn9-samples" in result["cudnn_mnist"]["hint"]


def test_mnist_reports_another_cudnn_than_installed() -> None:
    out = "### build rc=0\n" + fx("mnistcudnn-pascal-2gpu-passed.txt") + "\n### run rc=0"
    result = by_name(checks.judge(good_gpu_probe(mnist=ran(out))))
    assert result["cudnn_mnist"]["status"] == "fail" and "8.0.5" in result["cudnn_mnist"]["observed"]


def test_conda_and_pip_off_the_mirror_fail() -> None:
    official = fx("conda-info-tuna.json").replace("https://mirrors.tuna.tsinghua.edu.cn/anaconda", "https://repo.anaconda.com")
    result = by_name(checks.judge(good_gpu_probe(conda_info=ran(official),
                                                 pip_config=ran("global.index-url='https://index.example.org/simple'\n"))))
    assert result["conda_info"]["status"] == "pass"
    assert result["conda_channels"]["status"] == "fail"
    assert "repo.anaconda.com" in result["conda_channels"]["hint"]
    assert result["pip_index"]["status"] == "fail" and "pip config debug" in result["pip_index"]["hint"]


def test_conda_not_on_path_for_the_user() -> None:
    result = by_name(checks.judge(good_gpu_probe(conda_info=ran("", rc=127, stderr="-bash: line 1: conda: command not found"))))
    assert result["conda_info"]["status"] == "fail" and "/etc/profile.d" in result["conda_info"]["hint"]
    assert result["conda_channels"]["status"] == "skip"


def test_official_profile_accepts_pypi_default() -> None:
    facts = dict(FACTS_ALL, aiws_python_mirrors={"pypi": None, "conda_channels": []})
    result = by_name(checks.judge(good_gpu_probe(facts=facts, pip_config=ran(""))))
    assert result["pip_index"]["status"] == "pass"
    assert result["pip_index"]["observed"] == "PyPI default (no index-url set)"


def test_pytorch_check_optional() -> None:
    on = good_gpu_probe(todo=None, options={"pytorch_env": "torch"},
                        pytorch=ran("cuda_available=True device_count=2\n"))
    on.pop("todo")
    assert by_name(checks.judge(on))["pytorch_gpus"]["status"] == "pass"
    cpu = dict(on, pytorch=ran("cuda_available=False device_count=0\n"))
    assert "CPU-only" in by_name(checks.judge(cpu))["pytorch_gpus"]["hint"]
    assert "pytorch_gpus" not in by_name(checks.judge(good_gpu_probe()))


def test_mnist_probe_gets_the_cmake_architectures_of_the_gpus() -> None:
    p = plan(gpus=2)
    p["gpus"].append(gpu("NVIDIA GeForce RTX 5090", "blackwell", "12.0"))
    todo = checks.plan_probes(p, FACTS_ALL, "3")
    assert todo["cudnn"]["archs"] == "120;89"
    assert checks.plan_probes(plan(gpus=0), FACTS_ALL, "0")["cudnn"]["archs"] == ""


def test_mnist_missing_build_system_is_a_skip_with_its_reason() -> None:
    why = "/usr/src/cudnn_samples_v9 builds with CMake 3.27 or newer (...), and this host's cmake is 3.22.1"
    result = by_name(checks.judge(good_gpu_probe(mnist=ran(why + "\n### skip rc=0\n"))))
    assert result["cudnn_mnist"]["status"] == "skip"
    assert result["cudnn_mnist"]["hint"].startswith("/usr/src/cudnn_samples_v9 builds with CMake 3.27")


BOOT = "3f2b0c1e-8d6a-4a51-9f0e-6b1d2c3a4e5f"


def pending_probe(**fact: Any) -> dict[str, Any]:
    driver = {**DRIVER_FACT, "boot_id": BOOT, **fact}
    return good_gpu_probe(facts={**FACTS_ALL, "aiws_nvidia_driver": driver}, boot_id=slurped(BOOT + "\n"))


def test_mok_enrollment_pending_fails_with_the_steps_at_the_console() -> None:
    result = checks.judge(pending_probe(
        mok={"state": "pending", "certificate": "/var/lib/dkms/mok.pub"},
        reboot={"needed": True, "state": "current", "action": "ask",
                "reasons": ["MOK enrollment pending: confirm it in MokManager at the console during the next boot"]}))
    check = by_name(result)["driver_pending"]
    assert check["status"] == "fail"
    assert check["observed"].startswith("MOK enrollment")
    assert "MokManager" in check["hint"] and "/var/lib/dkms/mok.pub" in check["hint"]
    assert result["driver"]["pending"] == ["MOK enrollment", "reboot"]
    assert result["status"] == "fail"


def test_reboot_pending_fails_until_the_host_boots_again() -> None:
    reboot = {"needed": True, "state": "reboot", "action": "ask",
              "reasons": ["the nvidia module installed for kernel 6.8.0-62-generic is 580.95.05, the loaded one is 580.65.06"]}
    check = by_name(checks.judge(pending_probe(reboot=reboot)))["driver_pending"]
    assert check["status"] == "fail" and "580.65.06" in check["observed"] and "reboot" in check["hint"]
    rebooted = pending_probe(reboot=reboot)
    rebooted["boot_id"] = slurped("another-boot\n")
    check = by_name(checks.judge(rebooted))["driver_pending"]
    assert check["status"] == "pass" and "booted since" in check["observed"]


def test_container_records_no_pending_reboot_and_a_host_without_the_driver_stage_skips() -> None:
    probe = {"host": "c", "plan": plan(container=True), "pci_gpus": "0",
             "facts": {"aiws_nvidia_driver": {**DRIVER_FACT, "reboot": {"needed": True, "state": "reboot", "action": "container"}}}}
    assert by_name(checks.judge(probe))["driver_pending"]["status"] == "pass"
    probe["facts"] = {}
    assert "--tags driver" in by_name(checks.judge(probe))["driver_pending"]["hint"]
