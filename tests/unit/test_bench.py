"""make bench's parts that need no container: log parsers, the generated inventory, the verdict on
a re-run, and the table, CSV and plots written from a results record (scripts/bench*.py)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import bench  # scripts/, on pytest's pythonpath (pyproject.toml)
import bench_controller
import bench_report

ROOT = Path(__file__).resolve().parents[2]

ANSIBLE_INVENTORY = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent)) or shutil.which("ansible-inventory") or ""


def test_mirror_log_bytes() -> None:
    lines = [
        '25/Nov/2026 17:24:00 "GET /debian/dists/bookworm/Release HTTP/1.1" 200 149266',
        '25/Nov/2026 17:24:00 "HEAD /debian/dists/bookworm/Release HTTP/1.1" 200 0',
        "25/Nov/2026 17:24:00 code 404, message Not Found",
        '25/Nov/2026 17:24:00 "GET /debian/nonexist HTTP/1.1" 404 0',
        '25/Nov/2026 17:24:01 "GET /debian/pool/main/h/hello/hello_2.10-3_amd64.deb HTTP/1.1" 200 53000 "Apt-Cacher-NG/3.7.4"',
        '25/Nov/2026 17:24:01 "GET /debian/old-format HTTP/1.1" 200 -',  # before the proxy logged bytes
    ]
    assert bench.mirror_bytes("\n".join(lines)) == {"requests": 5, "bytes": 149266 + 53000}


def test_fixture_log_bytes_split_apt_and_other() -> None:
    lines = [
        "1764000000.100 GET /nvidia/compute/cuda/repos/debian12/x86_64/InRelease 200 5000",
        "1764000000.200 GET /nvidia/compute/cuda/repos/debian12/x86_64/cuda-nvcc-12-4_12.4.131-1_amd64.deb 200 24000000",
        "1764000001.000 GET /anaconda/Anaconda3-2099.01-0-Linux-x86_64.sh 200 700000",
        "1764000001.500 HEAD /anaconda/Anaconda3-2099.01-0-Linux-x86_64.sh 200 0",
        "garbage line",
    ]
    assert bench.fixture_bytes("\n".join(lines)) == {"requests": 4, "bytes": 24705000, "apt_bytes": 24005000, "other_bytes": 700000}


def test_acng_log_bytes() -> None:
    lines = [
        "1764000000|I|53000|127.0.0.1|127.0.0.1:18700/debian/pool/main/h/hello/hello_2.10-3_amd64.deb",
        "1764000000|O|53500|127.0.0.1|127.0.0.1:18700/debian/pool/main/h/hello/hello_2.10-3_amd64.deb",
        "1764000001|O|53500|127.0.0.1|127.0.0.1:18700/debian/pool/main/h/hello/hello_2.10-3_amd64.deb",
        "1764000002|E|0|127.0.0.1|bad",
    ]
    assert bench.acng_bytes("\n".join(lines)) == {"in_requests": 1, "in_bytes": 53000, "out_requests": 2, "out_bytes": 107000}


def test_recap_and_warnings() -> None:
    out = """
[WARNING]: Could not match supplied host pattern, ignoring: apt_cache
PLAY RECAP *********************************************************************
aiws-bench1-x              : ok=120  changed=0    unreachable=0    failed=0    skipped=80   rescued=0    ignored=0
localhost                  : ok=5    changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0
"""
    assert bench.recap(out)["aiws-bench1-x"]["ok"] == 120
    assert bench.recap(out)["localhost"]["changed"] == 1
    assert bench.warnings_in(out) == ["[WARNING]: Could not match supplied host pattern, ignoring: apt_cache"]


def test_a_rerun_that_changed_something_fails_the_bench() -> None:
    assert bench.rerun_failure("n1-ssh-cache-off", {"changed": 0, "changed_tasks": []}) is None
    message = bench.rerun_failure("n2-ssh-cache-on", {"changed": 1, "changed_tasks": [
        {"host": "aiws-bench2-x", "stage": "Driver", "role": "nvidia_driver", "task": "driver | Hold"}]})
    assert message is not None
    assert "FAILED" in message and "n2-ssh-cache-on" in message and "aiws-bench2-x: Driver / nvidia_driver / driver | Hold" in message


def settings(tmp: Path) -> bench.Settings:
    return bench.Settings(suffix="t", image="img", mirror_port=18700, fixture_port=18789, cache_port=18701,
                          ssh_port_base=18710, cache_dir=tmp, fixture_log=tmp / "serve.log", scratch=tmp / "scratch",
                          timeout=60, keep=False)


@pytest.mark.parametrize("connection", ["ssh", "podman"])
def test_inventory_reuses_the_scenario_settings(tmp_path: Path, connection: str) -> None:
    fleet = bench.Fleet(settings(tmp_path), 3, connection, cache=True)
    fleet.plan()
    assert [h.name for h in fleet.hosts] == ["aiws-bench1-t", "aiws-bench2-t", "aiws-bench3-t", "aiws-benchacng-t"]
    assert len({h.ssh_port for h in fleet.hosts}) == 4  # containers share the host network
    path = fleet.inventory(tmp_path / "key")
    assert (path.parent / "group_vars").resolve() == (ROOT / "molecule/default/group_vars").resolve()
    data = json.loads(path.read_text())
    assert data["all"]["vars"]["apt_cache_upstream_ports"] == [80, 443, 18700, 18789]
    if not ANSIBLE_INVENTORY:
        pytest.skip("ansible-inventory not found")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    listed = json.loads(subprocess.run([ANSIBLE_INVENTORY, "-i", str(path), "--list"], cwd=ROOT, env=env,
                                       capture_output=True, text=True, check=True).stdout)
    assert listed["gpu_ada"]["hosts"] == ["aiws-bench1-t", "aiws-bench3-t"]
    assert listed["gpu_pascal"]["hosts"] == ["aiws-bench2-t"]
    assert listed["apt_cache"]["hosts"] == ["aiws-benchacng-t"]
    hostvars = listed["_meta"]["hostvars"]
    assert hostvars["aiws-bench1-t"]["aiws_gpus"] == ["10de:2684"]  # from molecule/default/group_vars/gpu_ada
    if connection == "ssh":
        assert hostvars["aiws-bench2-t"]["ansible_port"] == 18712
        assert hostvars["aiws-bench2-t"]["ansible_user"] == bench.SSH_USER
        assert "ansible_connection" not in hostvars["aiws-bench2-t"]  # ssh, with ansible.cfg's ssh_connection settings
    else:
        assert hostvars["aiws-bench2-t"]["ansible_connection"] == "containers.podman.podman"


def run_record(wall: float, tasks: float, mb: float, changed: int = 0, acng: bool = False) -> dict[str, Any]:
    return {
        "wall": wall, "load_start": 1.5, "load_end": 1.6, "host_cpu_per_host": wall / 5, "controller_cpu": wall / 10,
        "stages": {"Preflight": wall / 4, "Mirrors": wall / 2},
        "roles": {}, "tasks_per_host": tasks, "module_calls_per_host": tasks / 2, "actions_per_host": {"command": 3.0},
        "actions_per_stage": {"Preflight": {"command": 2.0, "stat": 1.0}}, "hosts": {}, "changed": changed,
        "changed_tasks": [], "warnings": [],
        "slowest_tasks": [{"stage": "Mirrors", "role": "apt_mirror", "task": "apply | update", "action": "command",
                           "seconds": 3.2}],
        "bytes": {"mirror": {"requests": 10, "bytes": int(mb * 1e6)},
                  "fixture": {"requests": 2, "bytes": 1_000_000, "apt_bytes": 600_000, "other_bytes": 400_000},
                  "acng": {"in_requests": 3, "in_bytes": 5_000_000, "out_requests": 6, "out_bytes": 9_000_000} if acng else None},
    }


def results() -> dict[str, Any]:
    return {
        "schema": 1, "note": "loaded machine", "machine": {"cores": 2, "load_start": [3.0, 2.0, 1.0], "memory_gib": 23.4,
                                                          "kernel": "6.1", "ansible": "ansible [core 2.19.14]",
                                                          "commit": "abc1234", "date": "2026-11-25 18:00:00 +0000"},
        "runs": [
            {"n": 1, "connection": "podman", "cache": "off", "cores": 2, "first": run_record(200, 230, 100),
             "rerun": run_record(100, 200, 5)},
            {"n": 2, "connection": "podman", "cache": "off", "cores": 2, "first": run_record(400, 230, 200),
             "rerun": run_record(150, 200, 10)},
            {"n": 2, "connection": "ssh", "cache": "on", "cores": 2, "first": run_record(300, 230, 110, acng=True),
             "rerun": run_record(90, 200, 5, acng=True)},
            {"n": 4, "connection": "ssh", "cache": "on", "cores": 2},  # an unfinished entry is left out
        ],
    }


def test_markdown_table_has_ratios_cores_and_load() -> None:
    md = bench_report.markdown(results())
    assert "**2 cores**" in md and "**loaded machine**" in md
    row = next(line for line in md.splitlines() if line.startswith("| 2 | podman | off | 400 s"))
    # re-run ÷ first, first ÷ N=1, re-run ÷ N=1, tasks, calls, CPU per host, controller CPU, changed, warnings,
    # cores, load
    assert "| 0.38× | 2.00× | 1.50× | 230, 200 | 115, 100 | 80, 30 | 40, 15 | 0 | 0 | 2 | 1.50, 1.50 |" in row
    assert "| 2 | ssh | on | 300 s | 90 s | 0.30× | – | – |" in md  # no N=1 of that kind: no ratio
    assert "| 2 | ssh | on | first run | 110.0 | 1.0 (0.6, 0.4) | 111.0 | 55.5 | – | 5.0 | 9.0 | 2 | 1.50 |" in md
    assert "| 3.2 | Mirrors | apt_mirror | apply | update | command |" in md
    assert "| Preflight | 3 | command 2, stat 1 |" in md
    assert "None: no run printed a `[WARNING]`." in md
    assert "| 4 |" not in md


def test_csv_has_one_row_per_run() -> None:
    rows = list(csv.DictReader(io.StringIO(bench_report.csv_text(results()))))
    assert len(rows) == 6
    second = next(r for r in rows if r["n"] == "2" and r["connection"] == "podman" and r["run"] == "rerun")
    assert second["ratio_to_n1"] == "1.5" and second["cores"] == "2" and second["stage_Mirrors"] == "75.0"
    assert second["upstream_bytes"] == str(10_000_000 + 1_000_000)


def test_plots_are_svg_with_a_line_per_series(tmp_path: Path) -> None:
    bench_report.write_all(results(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bytes.svg", "results.csv", "results.json", "results.md", "wall.svg"]
    ns = "{http://www.w3.org/2000/svg}"
    wall = ET.parse(tmp_path / "wall.svg").getroot()
    assert len(wall.findall(f"{ns}polyline")) == 4  # podman/off and ssh/on, first and re-run
    assert "2 cores" in ET.tostring(wall, encoding="unicode")
    volume = ET.parse(tmp_path / "bytes.svg").getroot()
    assert len(volume.findall(f"{ns}polyline")) == 2  # cache off and on
    # The JSON round-trips and the report can be rewritten from it alone.
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(tmp_path / "results.json", again)
    subprocess.run([sys.executable, str(ROOT / "scripts/bench_report.py"), str(again / "results.json")], check=True)
    assert (again / "results.md").read_text() == (tmp_path / "results.md").read_text()


def test_controller_table_compares_each_variant_with_the_shipped_settings() -> None:
    samples = {"ssh, ansible.cfg as shipped": [{"wall": 30.0, "controller_cpu": 10.0, "host_cpu": 3.0, "load": 2.0},
                                               {"wall": 34.0, "controller_cpu": 12.0, "host_cpu": 3.0, "load": 3.0}],
               "ssh, pipelining off": [{"wall": 60.0, "controller_cpu": 20.0, "host_cpu": 6.0, "load": 2.5}]}
    record = {"machine": results()["machine"], "hosts": 2, "calls_per_host": 30, "tasks_per_item": 10, "repeats": 2,
              "variants": {name: bench_controller.summarize(s, 30) for name, s in samples.items()}}
    assert record["variants"]["ssh, ansible.cfg as shipped"]["wall"] == 32.0  # the median
    md = bench_controller.markdown(record)
    assert "| ssh, ansible.cfg as shipped | 32.0 | 1067 | 1.00× | 11.0 | 1.00× | 100 | 1.00× | 2.0, 3.0 |" in md
    assert "| ssh, pipelining off | 60.0 | 2000 | 1.88× | 20.0 | 1.82× | 200 | 2.00× | 2.5 |" in md
    assert "**2 cores**" in md
    play = bench_controller.synthetic(7)
    assert "range(7)" in play and "TASKS" not in play
