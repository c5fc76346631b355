"""plugin_utils.report (the fleet report) and the report filters the report role uses."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from aiws_verify import FilterModule  # plugins/filter is on pytest's pythonpath
from ansible_collections.aiws.workstation.plugins.plugin_utils import checks, report

GEN = "2026-11-22"


def host(name: str, statuses: dict[str, str], container: bool = False) -> dict[str, Any]:
    items = [
        {"check": c, "title": checks.CHECK_TITLES[c], "status": s, "expected": "x", "observed": f"<{c}>",
         "hint": None if s == "pass" else f"hint for {c}"}
        for c, s in statuses.items()
    ]
    plan = {"container": container, "gpus": [{"name": "NVIDIA GeForce RTX 4090", "pci_id": "10de:2684", "arch": "ada",
                                              "compute_capability": "8.9"}] * 2,
            "stack": {"driver_branch": 580, "driver_flavor": "open", "cuda_version": "12.4", "cudnn_version": "9.10"}}
    return checks.host_result(name, plan, {"aiws_cuda_toolkit": {"version": "12.4"}}, items)


@pytest.fixture
def fleet() -> dict[str, Any]:
    results = {
        "ws01": host("ws01", {"nvidia_smi": "pass", "nvcc_version": "pass", "cuda_run": "pass"}),
        "ws02": host("ws02", {"nvidia_smi": "fail", "nvcc_version": "pass", "cuda_run": "skip"}),
    }
    return report.fleet_report(["ws01", "ws02", "ws03"], results, {"ws03": "unreachable (Gathering Facts): timed out"},
                               GEN, "test")


def test_summary_and_states(fleet: dict[str, Any]) -> None:
    assert fleet["summary"] == {"hosts": 3, "passed": 1, "failed": 1, "unverified": 1,
                                "checks": {"pass": 4, "fail": 1, "skip": 1}}
    assert [h["state"] for h in fleet["hosts"]] == ["pass", "fail", "unverified"]
    assert fleet["hosts"][2]["reason"] == "unreachable (Gathering Facts): timed out"
    assert report.exit_code(fleet) == 1


def test_exit_code_zero_only_when_every_host_passes() -> None:
    ok = report.fleet_report(["a"], {"a": host("a", {"nvidia_smi": "pass", "cuda_run": "skip"})}, {}, GEN)
    assert report.exit_code(ok) == 0
    assert report.exit_code(report.fleet_report([], {}, {}, GEN)) == 1
    unverified = report.fleet_report(["a", "b"], {"a": host("a", {"nvidia_smi": "pass"})}, {}, GEN)
    assert report.exit_code(unverified) == 1
    assert "unreachable or failed" in unverified["hosts"][1]["reason"]


def test_json_is_stable_and_complete(fleet: dict[str, Any]) -> None:
    text = report.render(fleet, "json")
    assert text == report.render(json.loads(text), "json")
    data = json.loads(text)
    assert data["generated"] == GEN
    failing = data["hosts"][1]["checks"][0]
    assert failing == {"check": "nvidia_smi", "title": "nvidia-smi answers", "status": "fail", "expected": "x",
                       "observed": "<nvidia_smi>", "hint": "hint for nvidia_smi"}


def test_markdown_has_the_fleet_table_and_hints(fleet: dict[str, Any]) -> None:
    md = report.render(fleet, "markdown")
    assert "| Host | GPUs (architecture) | Driver | Flavour | CUDA | cuDNN | Checks | Status |" in md
    assert "| ws02 | 2× NVIDIA GeForce RTX 4090 (ada) | 580 (planned) | open | 12.4 | 9.10 (planned) | " \
           "1 passed, 1 failed, 1 skipped | failed a check |" in md
    assert "- **ws02** — nvidia-smi answers: <nvidia_smi>. Hint: hint for nvidia_smi" in md
    assert "- **ws03** — verification: no result. Hint: unreachable (Gathering Facts): timed out" in md


def test_html_is_self_contained_and_escaped(fleet: dict[str, Any]) -> None:
    page = report.render(fleet, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script|<link|src=|https?://", page)
    assert "&lt;nvidia_smi&gt;" in page and "<nvidia_smi>" not in page
    assert '<tr class="host fail" data-host="ws02">' in page
    assert '<tr class="host unverified" data-host="ws03">' in page


def test_unknown_format_is_refused(fleet: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="json, markdown, html"):
        report.render(fleet, "pdf")


def test_write_report_names_files_by_date(tmp_path: Path, fleet: dict[str, Any]) -> None:
    paths = report.write_report(fleet, tmp_path / "reports")
    assert [p.name for p in paths] == [f"aiws-report-{GEN}.json", f"aiws-report-{GEN}.md", f"aiws-report-{GEN}.html"]
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644


class HostVars(dict):
    """hostvars as the filter sees it: a mapping of host -> mapping with .get()."""


def test_report_filters_read_hostvars_and_explain_missing_results() -> None:
    filters = FilterModule().filters()
    ok = host("ws01", {"nvidia_smi": "pass"})
    hv = HostVars(ws01={"verify_result": ok, "aiws_plan": {}}, ws02={"aiws_plan": {"distro": "debian12"}}, ws03={})
    fleet = filters["aiws_fleet_report"](["ws01", "ws02", "ws03", "ghost"], hv, GEN)
    states = {h["host"]: (h["state"], h["reason"]) for h in fleet["hosts"]}
    assert states["ws01"] == ("pass", None)
    assert states["ws02"][0] == "unverified" and "failed in a stage before verification" in states["ws02"][1]
    assert states["ws03"][0] == "unverified" and "unreachable, or failed in preflight" in states["ws03"][1]
    assert states["ghost"] == ("unverified", "not in the inventory")
    assert filters["aiws_report_render"](fleet, "markdown").startswith(f"# aiws fleet report — {GEN}")


def test_verify_filters_match_the_package() -> None:
    filters = FilterModule().filters()
    plan = {"container": True, "gpus": [], "stack": {}}
    assert filters["aiws_verify_todo"](plan, {}, "0", {}) == checks.plan_probes(plan, {}, "0", {})
    assert filters["aiws_verify_judge"]({"host": "h", "plan": plan})["summary"]["fail"] == 0


def test_pending_mok_enrollment_and_reboot_show_in_the_fleet_table() -> None:
    plan = {"gpus": [{"name": "NVIDIA GeForce RTX 4090", "pci_id": "10de:2684", "arch": "ada", "compute_capability": "8.9"}],
            "stack": {"driver_branch": 580, "driver_flavor": "open", "cuda_version": "12.4", "cudnn_version": "9.10"}}
    facts = {"aiws_nvidia_driver": {"schema": 2, "boot_id": "b1", "mok": {"state": "pending", "certificate": "/c"},
                                    "reboot": {"needed": True, "action": "ask", "reasons": ["MOK enrollment pending"]}}}
    result = checks.judge({"host": "ws04", "plan": plan, "facts": facts, "pci_gpus": "1",
                           "boot_id": {"content": "YjEK", "encoding": "base64"},  # b1
                           "smi_table": {"rc": 9, "stdout": "", "stderr": "NVIDIA-SMI has failed"}})
    fleet = report.fleet_report(["ws04"], {"ws04": result}, {}, GEN)
    md = report.render(fleet, "markdown")
    assert "| ws04 | NVIDIA GeForce RTX 4090 (ada) | 580 (planned; MOK enrollment pending; reboot pending) | open |" in md
    assert "no reboot or MOK enrollment pending for the driver: MOK enrollment and reboot" in md
    assert "MokManager" in report.render(fleet, "html")
