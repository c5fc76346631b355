# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters for roles/verify and roles/report: thin wrappers around the collection's plugin_utils (checks, report).

aiws_verify_todo(plan, facts, pci_gpus, options)  which probes to run on a host, and why not (plugin_utils.checks.plan_probes)
aiws_verify_judge(probe)                          the host's checks and summary (plugin_utils.checks.judge)
aiws_fleet_report(hosts, hostvars, generated, source, others)
                                                  the fleet report from every host's verify_result, or the stage and
                                                  error that stopped it (aiws_failure; plugin_utils.report)
aiws_report_render(fleet, fmt="json")             the report as json, markdown or html text
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.aiws.workstation.plugins.plugin_utils import checks, report

_plain = report.plain


def aiws_verify_todo(plan: Any, facts: Any = None, pci_gpus: Any = 0, options: Any = None) -> dict[str, Any]:
    return checks.plan_probes(_plain(plan), _plain(facts), _plain(pci_gpus), _plain(options))


def aiws_verify_judge(probe: Any) -> dict[str, Any]:
    return checks.judge(_plain(probe))


def aiws_fleet_report(hosts: Any, hostvars: Any, generated: str, source: str = "ansible-playbook",
                      others: Any = None) -> dict[str, Any]:
    """The report for `hosts`, plus every host of `others` that failed or was unreachable (aiws_failure,
    noted by the aiws_report callback), each with its result or the stage and error that stopped it."""
    covered = [str(h) for h in hosts or []]
    for host in others or []:
        host = str(host)
        if host not in covered and _get(hostvars, host).get("aiws_failure"):
            covered.append(host)
    results: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for host in covered:
        try:
            hv = hostvars[host]
        except KeyError:
            problems[host] = "not in the inventory"
            continue
        result = hv.get("verify_result") if hasattr(hv, "get") else None
        if isinstance(result, Mapping):
            results[host] = _plain(result)
        else:
            failure = hv.get("aiws_failure")
            problems[host] = report.unverified_reason(_plain(failure) if isinstance(failure, Mapping) else None,
                                                      isinstance(hv.get("aiws_plan"), Mapping))
    return report.fleet_report(covered, results, problems, str(generated), str(source))


def _get(hostvars: Any, host: str) -> Any:
    try:
        hv = hostvars[host]
    except KeyError:
        return {}
    return hv if hasattr(hv, "get") else {}


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
