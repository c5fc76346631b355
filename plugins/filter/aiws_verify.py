# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters for roles/verify and roles/report: thin wrappers around the `aiws` package at the repository root.

aiws_verify_todo(plan, facts, pci_gpus, options)  which probes to run on a host, and why not (aiws.checks.plan_probes)
aiws_verify_judge(probe)                          the host's checks and summary (aiws.checks.judge)
aiws_fleet_report(hosts, hostvars, generated)     the fleet report from every host's verify_result (aiws.report)
aiws_report_render(report, format)                the report as json, markdown or html text
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from aiws import checks, report


def _plain(value: Any) -> Any:
    """Ansible's lazy/tagged containers as plain dicts and lists (the aiws package expects plain data)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def aiws_verify_todo(plan: Any, facts: Any = None, pci_gpus: Any = 0, options: Any = None) -> dict[str, Any]:
    return checks.plan_probes(_plain(plan), _plain(facts), _plain(pci_gpus), _plain(options))


def aiws_verify_judge(probe: Any) -> dict[str, Any]:
    return checks.judge(_plain(probe))


def aiws_fleet_report(hosts: Any, hostvars: Any, generated: str, source: str = "ansible-playbook") -> dict[str, Any]:
    results: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for host in hosts or []:
        host = str(host)
        try:
            hv = hostvars[host]
        except KeyError:
            problems[host] = "not in the inventory"
            continue
        result = hv.get("verify_result") if hasattr(hv, "get") else None
        if isinstance(result, Mapping):
            results[host] = _plain(result)
        elif not isinstance(hv.get("aiws_plan"), Mapping):
            problems[host] = "no plan and no verification result: unreachable, or failed in preflight (see the play recap)"
        else:
            problems[host] = "planned but not verified: failed in a stage before verification (see the play recap)"
    return report.fleet_report([str(h) for h in hosts or []], results, problems, str(generated), str(source))


def aiws_report_render(fleet: Any, fmt: str = "json") -> str:
    return report.render(_plain(fleet), str(fmt))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "aiws_verify_todo": aiws_verify_todo,
            "aiws_verify_judge": aiws_verify_judge,
            "aiws_fleet_report": aiws_fleet_report,
            "aiws_report_render": aiws_report_render,
        }
