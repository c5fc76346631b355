# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Callback aiws_report: a fleet report whatever happened to the run."""

from __future__ import annotations

DOCUMENTATION = r"""
name: aiws_report
type: aggregate
short_description: Note why each host stopped, and write the fleet report even when the run ends early
description:
  - Notes, for every host, the stage (play), task and error of its last failure or unreachable
    result, and hands it to later plays as the host fact C(aiws_failure). The report role lists it
    for each host that was not verified.
  - ansible-core ends a playbook as soon as every host of a play has failed or was unreachable, so
    the report play at the end of C(site.yml) and C(verify.yml) never runs then. When the playbook
    has a report play (a play running the C(report) role) that did not start, and the tags would
    have run it, this callback writes the same report at the end of the run from what it noted
    (verification results, which hosts had a plan, each failure), with the collection's plugin_utils.report.
  - ansible-playbook still exits non-zero in that case (hosts failed); under C(--check) the
    report is only shown, as the report role does.
version_added: "0.1.0"
requirements:
  - enabled in ansible.cfg (C(callbacks_enabled = aiws_report)); the repository's ansible.cfg does
"""

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible.template import Templar

try:  # ansible-core 2.19 templates only what is marked trusted
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - older ansible-core

    def trust_as_template(value: Any) -> Any:
        return value

from ansible_collections.aiws.workstation.plugins.plugin_utils import report

REPORT_ROLE = "report"
SOURCE = "ansible-playbook"


def _is_report_play(play: Any) -> bool:
    return any(role.get_name() == REPORT_ROLE for role in play.get_roles())


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "aiws_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._report_play: Any = None
        self._report_started = False
        self._play: Any = None
        self._variable_manager: Any = None
        self._failures: dict[str, dict[str, str]] = {}
        self._planned: set[str] = set()
        self._results: dict[str, Any] = {}
        self._seen: set[str] = set()
        self._stopped: str | None = None

    # -- the run ---------------------------------------------------------------------------------

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._report_play = next((p for p in playbook.get_plays() if _is_report_play(p)), None)

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play
        self._variable_manager = play.get_variable_manager()
        if self._report_play is not None and _is_report_play(play):
            self._report_started = True

    def _note(self, kind: str, result: Any) -> None:
        host = result._host.get_name()
        task = result._task
        role = task._role.get_name() if getattr(task, "_role", None) else None
        name = str(getattr(result, "task_name", "") or task.name or task.action)
        if role and name.startswith(f"{role} : "):
            name = name[len(role) + 3:]
        record = report.failure_record(kind, self._play.get_name() if self._play else "", name, report.plain(result._result), role)
        self._failures[host] = record
        if self._variable_manager is not None:
            self._variable_manager.set_nonpersistent_facts(host, {"aiws_failure": record})

    def _saw(self, result: Any) -> None:
        host = result._host.get_name()
        self._seen.add(host)
        facts = result._result.get("ansible_facts") if isinstance(result._result, Mapping) else None
        if isinstance(facts, Mapping):
            if isinstance(facts.get("aiws_plan"), Mapping):
                self._planned.add(host)
            if isinstance(facts.get("verify_result"), Mapping):
                self._results[host] = report.plain(facts["verify_result"])

    def v2_runner_on_ok(self, result: Any) -> None:
        self._saw(result)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._seen.add(result._host.get_name())

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._seen.add(result._host.get_name())
        if not ignore_errors:
            self._note("failed", result)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        # Noted even where ignore_unreachable lets the run go on (the apt cache host in preflight):
        # the host is still unreachable, and the report says so if it has no result.
        self._seen.add(result._host.get_name())
        self._note("unreachable", result)

    def v2_runner_on_async_failed(self, result: Any) -> None:
        self._seen.add(result._host.get_name())
        self._note("failed", result)

    # -- the end ---------------------------------------------------------------------------------

    def _report_vars(self) -> dict[str, Any]:
        """report_dir and report_group as the report play would see them (its role defaults included)."""
        vm = self._variable_manager
        localhost = vm._inventory.get_host("localhost")
        templar = Templar(loader=self._report_play.get_loader(), variables=vm.get_vars(play=self._report_play, host=localhost))
        return {name: templar.template(trust_as_template(f"{{{{ {name} }}}}")) for name in ("report_dir", "report_group")}

    def _would_run(self) -> bool:
        """Whether the tags of this run select the report role's tasks (ansible's rule for a task with the role's tags)."""
        role = next(r for r in self._report_play.get_roles() if r.get_name() == REPORT_ROLE)
        tags = set(role.tags or []) | set(self._report_play.tags or [])
        only = set(context.CLIARGS.get("tags") or ["all"])
        skip = set(context.CLIARGS.get("skip_tags") or [])
        run = "always" in tags or ("all" in only and "never" not in tags) or bool(tags & only) or (
            "tagged" in only and bool(tags) and "never" not in tags)
        if run and skip:
            run = not (("all" in skip and ("always" not in tags or "always" in skip)) or tags & skip or ("tagged" in skip and tags))
        return run

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if self._report_play is None or self._report_started or self._variable_manager is None:
            return
        if not self._would_run():
            return
        names = self._report_vars()
        group = set(self._variable_manager._inventory.get_groups_dict().get(str(names["report_group"]), []))
        custom = (stats.custom or {}).get("_run", {}).get("aiws_verify") or {}
        results = {**report.plain(custom), **self._results}
        # The report is of the report group's hosts (the workstations) and the fleet's apt cache host, whose
        # failure stops them; the controller's own check of the inventory is neither, and an inventory
        # without workstations gets no report.
        fleet_hosts = group | set(self._variable_manager._inventory.get_groups_dict().get("apt_cache", []))
        hosts = sorted(h for h in set(self._seen) | set(self._failures) | set(results) if h in fleet_hosts)
        if not group or not hosts:
            return
        last = self._play.get_name() if self._play else "?"
        stopped = (f"the run stopped after the play '{' '.join(last.split())}', where every host failed or was "
                   "unreachable (ansible-core ends a playbook then)")
        problems = {h: report.unverified_reason(self._failures.get(h), h in self._planned, stopped)
                    for h in hosts if h not in results}
        fleet = report.fleet_report(hosts, results, problems, dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"), SOURCE)
        s = fleet["summary"]
        lines = [f"aiws_report: {stopped}; the report play did not run, so this callback writes the report.",
                 f"Fleet: {s['hosts']} host(s), {s['passed']} passed, {s['failed']} failed a check, {s['unverified']} not verified"]
        lines += [f"  {h}: {title}: {observed} -> {hint}" for h, title, observed, hint in report.problem_rows(fleet)]
        if context.CLIARGS.get("check"):
            lines.append("Report: not written under --check")
        else:
            out_dir = Path(str(names["report_dir"]))
            paths = report.write_report(fleet, out_dir)
            lines.append(f"Report: {out_dir}/{report.report_basename(fleet['generated'])}.{{json,md,html}}"
                         f" ({len(paths)} files)")
        self._display.display("\n".join(lines), stderr=False)
