# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report: every host's verification in one JSON, Markdown and self-contained HTML page.

    python -m aiws.report --inventory lab [--limit ws01] [--out reports]   # see aiws/cli.py

`fleet_report()` builds the report from per-host results (roles/verify); `render()` turns it into
text; `write_report()` writes the three files named by date. The report role uses the same
functions through plugins/filter/aiws_verify.py, so both routes write identical files.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA = 1
FORMATS = {"json": "json", "markdown": "md", "html": "html"}
STATE_TEXT = {
    "pass": "passed",
    "fail": "failed a check",
    "unverified": "not verified",
}


def plain(value: Any) -> Any:
    """Ansible's lazy or tagged containers as plain dicts, lists and strings (what this package works on)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def report_basename(generated: str) -> str:
    """aiws-report-<date>: one report per day; a later run on the same day replaces it."""
    return f"aiws-report-{generated}"


def fleet_report(
    hosts: Iterable[str],
    results: Mapping[str, Any],
    problems: Mapping[str, str] | None = None,
    generated: str = "",
    source: str = "",
) -> dict[str, Any]:
    """The report for `hosts`: each host's result, or why it has none (unreachable, failed earlier)."""
    problems = problems or {}
    entries = []
    for host in sorted(set(hosts) | set(results)):
        result = results.get(host)
        if isinstance(result, Mapping) and result.get("checks") is not None:
            entry = dict(result)
            entry["host"] = host
            entry["state"] = entry.get("status", "pass")
            entry["reason"] = None
        else:
            entry = {
                "host": host,
                "state": "unverified",
                "status": "unverified",
                "reason": problems.get(host)
                or "no verification result: the host was unreachable or failed in an earlier stage (see the play recap)",
                "summary": {"pass": 0, "fail": 0, "skip": 0},
                "gpus": [],
                "checks": [],
            }
        entries.append(entry)
    totals = {s: sum(e["summary"].get(s, 0) for e in entries) for s in ("pass", "fail", "skip")}
    summary = {
        "hosts": len(entries),
        "passed": sum(1 for e in entries if e["state"] == "pass"),
        "failed": sum(1 for e in entries if e["state"] == "fail"),
        "unverified": sum(1 for e in entries if e["state"] == "unverified"),
        "checks": totals,
    }
    return {"schema": SCHEMA, "generated": generated, "source": source, "summary": summary, "hosts": entries}


# --------------------------------------------------------------------------- why a host has no result

# Messages that say nothing by themselves; the command's own output says more.
_GENERIC_MSGS = ("non-zero return code", "MODULE FAILURE", "All items completed", "One or more items failed")
_ERROR_CHARS = 600


def stage_of(play: str) -> str:
    """The stage a play belongs to: its name up to " | " ("CUDA | install ..." -> "CUDA")."""
    name = " ".join(str(play or "").split())
    return name.split(" | ", 1)[0] if " | " in name else (name or "unnamed play")


def error_text(result: Mapping[str, Any] | None) -> str:
    """One line saying what went wrong in a failed or unreachable task result."""
    result = result or {}
    text = " ".join(str(result.get("msg") or result.get("reason") or "").split())
    failed_items = [r for r in result.get("results") or []
                    if isinstance(r, Mapping) and (r.get("failed") or r.get("unreachable"))]
    if failed_items and (not text or text.startswith(_GENERIC_MSGS)):
        return error_text(failed_items[0])
    if not text or text.startswith(_GENERIC_MSGS):
        for key in ("stderr", "module_stderr", "stdout"):
            lines = [line.strip() for line in str(result.get(key) or "").splitlines() if line.strip()]
            if lines:
                text = f"{text}: {' / '.join(lines[-3:])}" if text else " / ".join(lines[-3:])
                break
        if result.get("rc") not in (None, 0):
            text = f"{text} (rc={result['rc']})"
    text = text.strip() or "no message"
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def failure_record(kind: str, play: str, task: str, result: Mapping[str, Any] | None, role: str | None = None) -> dict[str, str]:
    """What the report says about a host whose run stopped: failed or unreachable, where, and the error."""
    return {
        "kind": "unreachable" if kind == "unreachable" else "failed",
        "stage": stage_of(play),
        "play": " ".join(str(play or "").split()),
        "task": " ".join(str(task or "").split()),
        "role": str(role or ""),
        "error": error_text(result),
    }


def unverified_reason(failure: Mapping[str, Any] | None, planned: bool, stopped: str | None = None) -> str:
    """Why a host has no verification result, for the report's "not verified" line."""
    if failure:
        where = f"in stage {failure.get('stage')} (task '{failure.get('task')}')"
        return f"{failure.get('kind', 'failed')} {where}: {failure.get('error') or 'no message'}"
    if stopped:
        return f"{'planned' if planned else 'not planned'} but not verified: {stopped}"
    if planned:
        return "planned but not verified: failed in a stage before verification (see the play recap)"
    return "no plan and no verification result: unreachable, or failed in preflight (see the play recap)"


def exit_code(report: Mapping[str, Any]) -> int:
    """0 when every host was verified and passed every check; 1 otherwise."""
    summary = report["summary"]
    return 1 if summary["failed"] or summary["unverified"] or not summary["hosts"] else 0


# --------------------------------------------------------------------------- cells shared by md and html


def _gpus(entry: Mapping[str, Any]) -> str:
    gpus = entry.get("gpus") or []
    if not gpus:
        return "-"
    counted: dict[str, int] = {}
    for g in gpus:
        label = f"{g.get('name') or g.get('pci_id')} ({g.get('arch') or '?'})"
        counted[label] = counted.get(label, 0) + 1
    return ", ".join(f"{n}× {label}" if n > 1 else label for label, n in counted.items())


def _driver(entry: Mapping[str, Any]) -> str:
    d = entry.get("driver") or {}
    pending = "".join(f"; {p} pending" for p in d.get("pending") or [])
    if d.get("observed"):
        return str(d["observed"]) + pending
    return (f"{d['branch']} (planned{pending})" if d.get("branch") else "-")


def _versions(entry: Mapping[str, Any], key: str) -> str:
    v = entry.get(key) or {}
    if v.get("installed"):
        return str(v["installed"])
    return f"{v['planned']} (planned)" if v.get("planned") else "-"


def _checks_cell(entry: Mapping[str, Any]) -> str:
    s = entry.get("summary") or {}
    return f"{s.get('pass', 0)} passed, {s.get('fail', 0)} failed, {s.get('skip', 0)} skipped"


def _row(entry: Mapping[str, Any]) -> list[str]:
    host = str(entry["host"]) + (" (container)" if entry.get("container") else "")
    return [
        host,
        _gpus(entry),
        _driver(entry),
        str((entry.get("driver") or {}).get("flavor") or "-"),
        _versions(entry, "cuda"),
        _versions(entry, "cudnn"),
        _checks_cell(entry),
        STATE_TEXT[entry["state"]],
    ]


HEADERS = ["Host", "GPUs (architecture)", "Driver", "Flavour", "CUDA", "cuDNN", "Checks", "Status"]


def problem_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(host, check title, observed, hint) for every failed check and every unverified host."""
    rows = []
    for e in report["hosts"]:
        if e["state"] == "unverified":
            rows.append((e["host"], "verification", "no result", e["reason"]))
        for c in e.get("checks") or []:
            if c["status"] == "fail":
                rows.append((e["host"], c["title"], str(c.get("observed") or ""), str(c.get("hint") or "")))
    return rows


# --------------------------------------------------------------------------- renderers


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _md(text: Any) -> str:
    return str(text if text is not None else "-").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping[str, Any]) -> str:
    s = report["summary"]
    lines = [
        f"# aiws fleet report — {report['generated']}",
        "",
        (
            f"{s['hosts']} host(s): {s['passed']} passed, {s['failed']} failed a check, {s['unverified']} not verified. "
            f"Checks: {s['checks']['pass']} passed, {s['checks']['fail']} failed, {s['checks']['skip']} skipped."
        ),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(_md(c) for c in _row(e)) + " |" for e in report["hosts"]]
    problems = problem_rows(report)
    lines += ["", "## Failures", ""]
    if problems:
        lines += [f"- **{_md(h)}** — {_md(t)}: {_md(o)}. Hint: {_md(hint)}" for h, t, o, hint in problems]
    else:
        lines.append("None.")
    for e in report["hosts"]:
        lines += ["", f"## {e['host']}", ""]
        if e["state"] == "unverified":
            lines.append(f"Not verified: {_md(e['reason'])}")
            continue
        lines += ["| Check | Status | Expected | Observed | Hint |", "|---|---|---|---|---|"]
        for c in e["checks"]:
            lines.append(
                f"| {_md(c['title'])} | {c['status']} | {_md(c.get('expected'))} | {_md(c.get('observed'))} | {_md(c.get('hint') or '')} |"
            )
    return "\n".join(lines) + "\n"


_CSS = """
:root { color-scheme: light; --pass: #1b7f3b; --fail: #b3261e; --skip: #6b6b6b; --line: #d9d9d9; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 78rem;
       padding: 0 1rem; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.summary { color: #444; margin-bottom: 1.2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid var(--line); padding: .45rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f6; font-weight: 600; }
tr.fail td, tr.unverified td { background: #fdecea; }
tr.fail td:first-child, tr.unverified td:first-child { border-left: 4px solid var(--fail); }
tr.pass td:first-child { border-left: 4px solid var(--pass); }
.badge { display: inline-block; border-radius: .8rem; padding: 0 .6rem; font-size: .85rem; color: #fff; }
.badge.pass { background: var(--pass); } .badge.fail, .badge.unverified { background: var(--fail); }
.badge.skip { background: var(--skip); }
.hint { color: #5a1a14; } td.check-skip { color: var(--skip); }
details { margin: .3rem 0 1rem; } summary { cursor: pointer; font-weight: 600; }
code { font-size: .9em; }
"""


def _h(text: Any) -> str:
    return html.escape(str(text if text is not None else "-"))


def render_html(report: Mapping[str, Any]) -> str:
    s = report["summary"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>aiws fleet report {_h(report['generated'])}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>aiws fleet report — {_h(report['generated'])}</h1>",
        (
            f'<p class="summary" id="summary">{s["hosts"]} host(s): {s["passed"]} passed, {s["failed"]} failed a check, '
            f"{s['unverified']} not verified. Checks: {s['checks']['pass']} passed, {s['checks']['fail']} failed, "
            f"{s['checks']['skip']} skipped.</p>"
        ),
        '<table id="fleet">',
        "<thead><tr>" + "".join(f"<th>{_h(h)}</th>" for h in HEADERS) + "</tr></thead>",
        "<tbody>",
    ]
    for e in report["hosts"]:
        cells = _row(e)
        status = f'<span class="badge {e["state"]}">{_h(cells[-1])}</span>'
        out.append(
            f'<tr class="host {e["state"]}" data-host="{_h(e["host"])}">'
            + "".join(f"<td>{_h(c)}</td>" for c in cells[:-1])
            + f"<td>{status}</td></tr>"
        )
    out += ["</tbody>", "</table>", '<h2 id="failures">Failures</h2>']
    problems = problem_rows(report)
    if problems:
        out.append('<table id="problems"><thead><tr><th>Host</th><th>Check</th><th>Observed</th><th>Likely cause and fix</th></tr></thead><tbody>')
        out += [
            f'<tr class="problem" data-host="{_h(h)}"><td>{_h(h)}</td><td>{_h(t)}</td><td>{_h(o)}</td><td class="hint">{_h(hint)}</td></tr>'
            for h, t, o, hint in problems
        ]
        out.append("</tbody></table>")
    else:
        out.append('<p id="no-failures">None.</p>')
    out.append('<h2>Hosts</h2>')
    for e in report["hosts"]:
        opened = " open" if e["state"] != "pass" else ""
        out.append(f'<details class="host-detail" data-host="{_h(e["host"])}"{opened}><summary>{_h(e["host"])} — {_h(STATE_TEXT[e["state"]])}</summary>')
        if e["state"] == "unverified":
            out.append(f'<p class="hint">{_h(e["reason"])}</p></details>')
            continue
        out.append('<table class="checks"><thead><tr><th>Check</th><th>Status</th><th>Expected</th><th>Observed</th><th>Hint</th></tr></thead><tbody>')
        for c in e["checks"]:
            out.append(
                f'<tr class="check {c["status"]}" data-check="{_h(c["check"])}"><td>{_h(c["title"])}</td>'
                f'<td><span class="badge {c["status"]}">{_h(c["status"])}</span></td><td>{_h(c.get("expected"))}</td>'
                f'<td>{_h(c.get("observed"))}</td><td class="hint">{_h(c.get("hint") or "")}</td></tr>'
            )
        out.append("</tbody></table></details>")
    out += [f"<p><small>Written by aiws ({_h(report.get('source') or 'aiws')}), schema {SCHEMA}.</small></p>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def render(report: Mapping[str, Any], fmt: str) -> str:
    """The report as `json`, `markdown` or `html` text."""
    renderers = {"json": render_json, "markdown": render_markdown, "html": render_html}
    if fmt not in renderers:
        raise ValueError(f"report format must be one of {', '.join(renderers)}; got {fmt!r}")
    return renderers[fmt](report)


def write_report(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write the three files into out_dir (created 0755); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, ext in FORMATS.items():
        path = out_dir / f"{report_basename(report['generated'])}.{ext}"
        path.write_text(render(report, fmt), encoding="utf-8")
        path.chmod(0o644)
        paths.append(path)
    return paths
