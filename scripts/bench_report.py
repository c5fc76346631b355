"""Writers for make bench: the table (Markdown, CSV), the raw figures (JSON) and two plots (SVG).

    python3 scripts/bench_report.py bench/results.json    # rewrite the table and plots from the JSON

scripts/bench.py collects the figures; everything here is a pure function of its results dict.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from html import escape
from pathlib import Path
from typing import Any

MB = 1_000_000
RUNS = (("first", "first run"), ("rerun", "no-op re-run"))
COLORS = {("podman", "off"): "#1f77b4", ("podman", "on"): "#17becf", ("ssh", "off"): "#d62728", ("ssh", "on"): "#ff7f0e"}


def upstream(run: dict[str, Any]) -> int:
    """Bytes the fleet fetched from upstream: the loopback apt mirror plus the fixture server."""
    return int(run["bytes"]["mirror"]["bytes"] + run["bytes"]["fixture"]["bytes"])


def baseline(results: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    """The N=1 entry of the same connection and cache mode (ratios are taken against it)."""
    return next((e for e in results["runs"] if e["n"] == 1 and e["connection"] == entry["connection"]
                 and e["cache"] == entry["cache"] and "rerun" in e), None)


def ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}×" if b else "–"


def cpu(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.0f}"


def fmt_mb(n: float) -> str:
    return f"{n / MB:.1f}"


def complete(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in results["runs"] if "first" in e and "rerun" in e]


def stages(results: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for e in complete(results):
        for run, _ in RUNS:
            for name in e[run]["stages"]:
                if name not in names:
                    names.append(name)
    return names


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    runs = complete(results)
    lines = ["# make bench: site.yml on N containers", ""]
    if results.get("note"):
        lines += [f"**{results['note']}**", ""]
    lines += [
        (f"Machine: **{m['cores']} cores**, {m['memory_gib']} GiB; load average at the start "
        f"{' / '.join(str(x) for x in m['load_start'])} (1/5/15 min); {m['ansible']}; commit {m['commit']}; {m['date']}."),
        "Each figure is one run: wall time of `ansible-playbook site.yml` (first converge of fresh containers, then a",
        "no-op re-run), with the core count and the 1-minute load average when that run started beside it. Compare",
        "ratios, not seconds, across machines. CPU seconds (each container's cgroup; ansible-playbook with the",
        "ssh/podman clients it ran) grow far less than wall time when other work loads the machine.",
        "",
        "## Wall time",
        "",
        ("| N | connection | cache | first run | no-op re-run | re-run ÷ first | first ÷ N=1 | re-run ÷ N=1 "
        "| tasks/host (first, re-run) | module calls/host (first, re-run) | CPU s per host (first, re-run) "
        "| controller CPU s (first, re-run) | changed on re-run | warnings | cores | load at start |"),
        "|---:|---|---|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|---:|---|",
    ]
    for e in runs:
        f, r, b = e["first"], e["rerun"], baseline(results, e)
        warn = len(f["warnings"]) + len(r["warnings"])
        lines.append(
            f"| {e['n']} | {e['connection']} | {e['cache']} | {f['wall']:.0f} s | {r['wall']:.0f} s "
            f"| {ratio(r['wall'], f['wall'])} | {ratio(f['wall'], b['first']['wall'] if b else None)} "
            f"| {ratio(r['wall'], b['rerun']['wall'] if b else None)} | {f['tasks_per_host']:g}, {r['tasks_per_host']:g} "
            f"| {f['module_calls_per_host']:g}, {r['module_calls_per_host']:g} "
            f"| {cpu(f.get('host_cpu_per_host'))}, {cpu(r.get('host_cpu_per_host'))} "
            f"| {cpu(f.get('controller_cpu'))}, {cpu(r.get('controller_cpu'))} | {r['changed']} | {warn} "
            f"| {e['cores']} | {f['load_start']:.2f}, {r['load_start']:.2f} |")
    names = stages(results)
    lines += ["", "## Seconds per stage (timing callback: wall time of each stage's plays)", "",
              "| N | connection | cache | run | " + " | ".join(names) + " | cores | load at start |",
              "|---:|---|---|---|" + "---:|" * len(names) + "---:|---:|"]
    for e in runs:
        for run, title in RUNS:
            st = e[run]["stages"]
            cells = " | ".join(f"{st[n]:.0f}" if n in st else "–" for n in names)
            lines.append(f"| {e['n']} | {e['connection']} | {e['cache']} | {title} | {cells} | {e['cores']} "
                         f"| {e[run]['load_start']:.2f} |")
    lines += ["", "## Bytes fetched from upstream (MB)", "",
              "Upstream = the loopback apt mirror (fx_apt_mirror.py's log) + the fixture server (serve.py's log: NVIDIA's",
              "repository, installers, conda and pip). Per host = fleet total ÷ N (containers share the loopback, so the",
              "logs cannot tell hosts apart). With the cache, apt-cacher-ng's own log says what it fetched and served.",
              "",
              ("| N | connection | cache | run | apt mirror | fixture server (apt, other) | upstream total | per host "
              "| total ÷ N=1 | cache fetched | cache served | cores | load at start |"),
              "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in runs:
        b = baseline(results, e)
        for run, title in RUNS:
            x = e[run]["bytes"]
            total = upstream(e[run])
            acng = x.get("acng") or {}
            lines.append(
                f"| {e['n']} | {e['connection']} | {e['cache']} | {title} | {fmt_mb(x['mirror']['bytes'])} "
                f"| {fmt_mb(x['fixture']['bytes'])} ({fmt_mb(x['fixture']['apt_bytes'])}, {fmt_mb(x['fixture']['other_bytes'])}) "
                f"| {fmt_mb(total)} | {fmt_mb(total / e['n'])} | {ratio(total, upstream(b[run]) if b else None)} "
                f"| {fmt_mb(acng['in_bytes']) if acng else '–'} | {fmt_mb(acng['out_bytes']) if acng else '–'} "
                f"| {e['cores']} | {e[run]['load_start']:.2f} |")
    for connection in sorted({e["connection"] for e in runs}):
        last = max((e for e in runs if e["connection"] == connection), key=lambda e: (e["n"], e["cache"] == "off"))
        r = last["rerun"]
        lines += ["", f"## Slowest tasks of the no-op re-run (N={last['n']}, {connection}, cache {last['cache']})", "",
                  "| seconds | stage | role | task | action |", "|---:|---|---|---|---|"]
        lines += [f"| {t['seconds']:.1f} | {t['stage']} | {t['role'] or '–'} | {t['task']} | {t['action']} |"
                  for t in r["slowest_tasks"]]
        lines += ["", "Module calls per workstation on that re-run, by stage (round trips; loop items counted): ", "",
                  "| stage | calls | by action |", "|---|---:|---|"]
        for stage, actions in r["actions_per_stage"].items():
            lines.append(f"| {stage} | {sum(actions.values()):g} | "
                         + ", ".join(f"{a} {c:g}" for a, c in actions.items()) + " |")
    warned = sorted({w for e in runs for run, _ in RUNS for w in e[run]["warnings"]})
    lines += ["", "## Warnings", ""]
    lines += [f"- `{w}`" for w in warned] if warned else ["None: no run printed a `[WARNING]`."]
    lines += ["", "Plots: [wall.svg](wall.svg) (wall time against N), [bytes.svg](bytes.svg) (upstream bytes against N).", ""]
    return "\n".join(lines)


def csv_text(results: dict[str, Any]) -> str:
    names = stages(results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["n", "connection", "cache", "run", "wall_s", "ratio_to_n1", "rerun_over_first", "tasks_per_host",
                "module_calls_per_host", "host_cpu_per_host", "controller_cpu", "changed", "warnings", "upstream_bytes", "upstream_bytes_per_host",
                "mirror_bytes", "fixture_bytes", "acng_in_bytes", "acng_out_bytes", "cores", "load_start"]
               + [f"stage_{n}" for n in names])
    for e in complete(results):
        b = baseline(results, e)
        for run, _ in RUNS:
            r = e[run]
            acng = r["bytes"].get("acng") or {}
            w.writerow([e["n"], e["connection"], e["cache"], run, r["wall"],
                        round(r["wall"] / b[run]["wall"], 3) if b else "", round(e["rerun"]["wall"] / e["first"]["wall"], 3),
                        r["tasks_per_host"], r["module_calls_per_host"], r.get("host_cpu_per_host", ""),
                        r.get("controller_cpu", ""), r["changed"], len(r["warnings"]), upstream(r),
                        round(upstream(r) / e["n"]), r["bytes"]["mirror"]["bytes"], r["bytes"]["fixture"]["bytes"],
                        acng.get("in_bytes", ""), acng.get("out_bytes", ""), e["cores"], r["load_start"]]
                       + [r["stages"].get(n, "") for n in names])
    return buf.getvalue()


# -- a tiny SVG line chart ------------------------------------------------------------------
def nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10
    for mult in (1, 2, 2.5, 5, 10):
        if value <= step * mult * 5:
            return step * mult * 5
    return value


def svg_chart(title: str, subtitle: str, y_label: str, xs: list[int],
              series: list[tuple[str, str, bool, list[tuple[int, float]]]]) -> str:
    """series: (label, colour, dashed, [(x, y), ...]); xs are placed evenly (1, 2, 4, 8 are log-spaced)."""
    width, height, left, right, top, bottom = 820, 440, 70, 230, 60, 50
    pw, ph = width - left - right, height - top - bottom
    ymax = nice_max(max((y for *_, pts in series for _, y in pts), default=1.0))
    xpos = {x: left + (pw * (i + 0.5) / len(xs)) for i, x in enumerate(xs)}

    def ypos(y: float) -> float:
        return top + ph - ph * y / ymax

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="sans-serif" font-size="12">'),
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
           f'<text x="{left}" y="40" fill="#555">{escape(subtitle)}</text>']
    for i in range(6):
        y = ymax * i / 5
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{ypos(y):.1f}" y2="{ypos(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{ypos(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for x, px in xpos.items():
        out.append(f'<text x="{px:.1f}" y="{top + ph + 18}" text-anchor="middle">{x}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">N (workstations)</text>')
    out.append(f'<text transform="translate(16 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    for i, (label, colour, dashed, pts) in enumerate(series):
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        path = " ".join(f"{xpos[x]:.1f},{ypos(y):.1f}" for x, y in sorted(pts) if x in xpos)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for x, y in pts:
            if x in xpos:
                out.append(f'<circle cx="{xpos[x]:.1f}" cy="{ypos(y):.1f}" r="3" fill="{colour}"><title>{escape(label)}: '
                           f'N={x}, {y:g}</title></circle>')
        ly = top + 10 + i * 20
        out.append(f'<line x1="{left + pw + 15}" x2="{left + pw + 45}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{left + pw + 52}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def plots(results: dict[str, Any]) -> tuple[str, str]:
    runs = complete(results)
    m = results["machine"]
    xs = sorted({e["n"] for e in runs})
    sub = f"{m['cores']} cores, load average {m['load_start'][0]} at the start; {m['date']}"
    wall = []
    for (connection, cache), colour in COLORS.items():
        group = [e for e in runs if e["connection"] == connection and e["cache"] == cache]
        if not group:
            continue
        for run, title in RUNS:
            wall.append((f"{connection}, cache {cache}, {title}", colour, run == "rerun",
                         [(e["n"], e[run]["wall"]) for e in group]))
    volume = []
    for cache, colour in (("off", "#d62728"), ("on", "#2ca02c")):
        group = [e for e in runs if e["cache"] == cache]
        by_n: dict[int, float] = {}
        for e in group:  # one value per N: the first connection measured
            by_n.setdefault(e["n"], round(upstream(e["first"]) / MB, 1))
        if by_n:
            volume.append((f"first run, cache {cache}", colour, False, sorted(by_n.items())))
    return (svg_chart("site.yml wall time against fleet size", sub, "seconds", xs, wall),
            svg_chart("Bytes fetched from upstream, first run", sub, "MB (apt mirror + fixture server)", xs, volume))


def write_all(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(markdown(results))
    (out / "results.csv").write_text(csv_text(results))
    wall, volume = plots(results)
    (out / "wall.svg").write_text(wall)
    (out / "bytes.svg").write_text(volume)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    source = Path(sys.argv[1])
    write_all(json.loads(source.read_text()), source.parent)
