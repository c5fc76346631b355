# Copyright (c) aiws contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the verification over an inventory with ansible-runner and write the fleet report.

    python -m aiws.report --inventory lab                       # every workstation of the lab
    python -m aiws.report -i inventories/mylab --limit ws01 --out /srv/reports

Runs `verify.yml` (preflight + verification, without the report play) through
`ansible_runner.run`, takes each host's result from the `aiws_verify` stats the verify role
publishes with `set_stats`, notes hosts that were unreachable or failed, and writes
aiws-report-<date>.{json,md,html}. Exit status: 0 every host verified and passing, 1 a host
failed a check or was not verified, 2 the run itself could not start (bad inventory, ...).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ansible.plugins.loader import init_plugin_loader

REPO = Path(__file__).resolve().parents[1]

# The report is the collection's shared code (plugins/plugin_utils/report.py), imported through
# ansible's own collection loader: a checkout finds itself as aiws.workstation through collections/,
# an installed collection through the configured collections paths.
init_plugin_loader([str(REPO / "collections")] if (REPO / "collections").is_dir() else None)
import ansible_collections.aiws.workstation.plugins.plugin_utils.report as fleet


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m aiws.report", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("-i", "--inventory", default="lab", help="inventory path (default: lab, relative to the repository)")
    p.add_argument("-l", "--limit", default=None, help="limit to these hosts or groups (ansible pattern)")
    p.add_argument("-o", "--out", default=None, help="report folder (default: <repository>/reports)")
    p.add_argument("-e", "--extra-vars", action="append", default=[], metavar="KEY=VALUE",
                   help="extra variable for the run (repeatable)")
    p.add_argument("--playbook", default=str(REPO / "verify.yml"), help="playbook to run (default: verify.yml)")
    p.add_argument("--private-data-dir", default=None,
                   help="ansible-runner's working folder (default: a temporary one, removed afterwards)")
    p.add_argument("-v", "--verbose", action="store_true", help="print ansible's output while it runs")
    return p.parse_args(argv)


def _inventory(value: str) -> str:
    path = Path(value)
    if not path.is_absolute() and not path.exists():
        path = REPO / value
    return str(path.resolve())


def _extravars(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--extra-vars wants KEY=VALUE; got {pair!r}")
        out[key] = value
    return out


class Collector:
    """Keeps what the report needs from ansible-runner's events: as the aiws_report callback does
    inside ansible-playbook, each host's last failure with its stage (play) and task."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.failures: dict[str, dict[str, str]] = {}
        self.planned: set[str] = set()
        self.hosts: set[str] = set()

    @property
    def problems(self) -> dict[str, str]:
        return {h: fleet.unverified_reason(f, h in self.planned) for h, f in self.failures.items()}

    def __call__(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        kind = event.get("event")
        host = data.get("host")
        if host and kind and kind.startswith("runner_on_"):
            self.hosts.add(host)
        res = data.get("res") or {}
        if kind == "runner_on_ok" and host and isinstance((res.get("ansible_facts") or {}).get("aiws_plan"), dict):
            self.planned.add(host)
        if kind == "runner_on_unreachable" and host:
            self.failures[host] = fleet.failure_record("unreachable", data.get("play", ""), data.get("task", ""), res,
                                                       data.get("role"))
        elif kind == "runner_on_failed" and host and not data.get("ignore_errors"):
            self.failures[host] = fleet.failure_record("failed", data.get("play", ""), data.get("task", ""), res,
                                                       data.get("role"))
        elif kind == "playbook_on_stats":
            stats = data.get("artifact_data") or {}
            self.results.update(stats.get("aiws_verify") or {})
            for key in ("ok", "dark", "failures", "processed"):
                self.hosts.update((data.get(key) or {}).keys())
        return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import ansible_runner
    except ImportError:
        print("aiws.report needs ansible-runner (pinned in requirements.txt): scripts/bootstrap.sh", file=sys.stderr)
        return 2
    collector = Collector()
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "ANSIBLE_NOCOLOR": "1"}
    with tempfile.TemporaryDirectory(prefix="aiws-runner-") as tmp:
        run_dir = Path(args.private_data_dir or tmp)
        run_dir.mkdir(parents=True, exist_ok=True)
        runner = ansible_runner.run(
            private_data_dir=str(run_dir),
            project_dir=str(REPO),
            playbook=str(Path(args.playbook).resolve()),
            inventory=_inventory(args.inventory),
            limit=args.limit,
            skip_tags="report",
            extravars=_extravars(args.extra_vars),
            envvars=env,
            event_handler=collector,
            quiet=not args.verbose,
            suppress_env_files=True,
        )
        status, rc = runner.status, runner.rc
        if not collector.hosts and not collector.results:
            print(f"aiws.report: the run ended {status} (rc={rc}) before any host was reached:", file=sys.stderr)
            print(runner.stdout.read()[-4000:] if runner.stdout else "", file=sys.stderr)
            return 2
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    data = fleet.fleet_report(collector.hosts, collector.results, collector.problems, generated, "python -m aiws.report")
    out_dir = Path(args.out) if args.out else REPO / "reports"
    paths = fleet.write_report(data, out_dir)
    s = data["summary"]
    print(f"{s['hosts']} host(s): {s['passed']} passed, {s['failed']} failed a check, {s['unverified']} not verified")
    for host, title, observed, hint in fleet.problem_rows(data):
        print(f"  {host}: {title}: {observed} -> {hint}")
    for path in paths:
        print(f"wrote {path}")
    return fleet.exit_code(data)


if __name__ == "__main__":
    sys.exit(main())
