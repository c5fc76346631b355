"""make bench ARGS=--controller: what the controller's settings cost per task, measured cheaply.

Two containers from the bench image (sshd on their own ports), a synthetic playbook of small
module tasks (command, stat, file, and set_fact on the controller), and one ansible-playbook run
per variant of the settings, repeated and interleaved so that a machine loaded by other work
affects every variant alike. Writes OUT/controller.{md,json}. Called by scripts/bench.py.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PLAYBOOK = """
- name: Synthetic | small module tasks
  hosts: all
  gather_facts: false
  become: true
  tasks:
    - name: Run a command
      ansible.builtin.command: "true"
      changed_when: false
      loop: "{{ range(TASKS) | list }}"
    - name: Read a file's state
      ansible.builtin.stat:
        path: /etc/hostname
      loop: "{{ range(TASKS) | list }}"
    - name: Keep a folder
      ansible.builtin.file:
        path: /var/tmp
        state: directory
      loop: "{{ range(TASKS) | list }}"
    - name: Set a fact on the controller
      ansible.builtin.set_fact:
        synthetic_x: "{{ item }}"
      loop: "{{ range(TASKS) | list }}"
"""

# Name -> (connection, environment). The first is the project's own ansible.cfg over ssh.
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "ssh, ansible.cfg as shipped": ("ssh", {}),
    "ssh, pipelining off": ("ssh", {"ANSIBLE_PIPELINING": "false"}),
    "ssh, no ControlMaster/ControlPersist": ("ssh", {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ServerAliveInterval=30"}),
    "ssh, internal_poll_interval 0.01": ("ssh", {"ANSIBLE_INTERNAL_POLL_INTERVAL": "0.01"}),
    "ssh, internal_poll_interval 0.1": ("ssh", {"ANSIBLE_INTERNAL_POLL_INTERVAL": "0.1"}),
    "ssh, strategy free": ("ssh", {"ANSIBLE_STRATEGY": "free"}),
    # (An empty callbacks list makes ansible-core 2.19 fail: "A non-empty plugin name is required".)
    "ssh, profile_tasks off (timer only)": ("ssh", {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.timer"}),
    "ssh, default result format": ("ssh", {"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}),
    "podman exec (the container tests)": ("podman", {}),
}


def synthetic(tasks: int) -> str:
    """The playbook with TASKS loop items per task (loops: one task header, many module calls)."""
    return PLAYBOOK.replace("TASKS", str(tasks))


def one_run(root: Path, inventory: Path, playbook: Path, env: dict[str, str], work: Path,
            hosts: list[str], container_cpu: Callable[[str], float | None]) -> dict[str, float]:
    hosts_before = [container_cpu(h) for h in hosts]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    run = subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook)], cwd=root, env=env,
                         capture_output=True, text=True, check=False, timeout=3600)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        (work / "failed.stdout").write_text(run.stdout + run.stderr)
        raise SystemExit(f"bench: the synthetic playbook failed (output: {work / 'failed.stdout'}):\n{run.stdout[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    used = [(a - b) for a, b in zip([container_cpu(h) for h in hosts], hosts_before, strict=True)
            if a is not None and b is not None]
    return {"wall": round(wall, 2), "controller_cpu": round(cpu, 2),
            "host_cpu": round(sum(used) / len(used), 2) if used else -1.0, "load": round(os.getloadavg()[0], 2)}


def summarize(samples: list[dict[str, float]], calls: int) -> dict[str, Any]:
    wall = statistics.median(s["wall"] for s in samples)
    cpu = statistics.median(s["controller_cpu"] for s in samples)
    host = statistics.median(s.get("host_cpu", -1.0) for s in samples)
    return {"samples": samples, "wall": round(wall, 2), "controller_cpu": round(cpu, 2), "host_cpu": round(host, 2),
            "ms_per_call": round(1000 * wall / calls), "host_cpu_ms_per_call": round(1000 * host / calls) if host >= 0 else None}


def markdown(record: dict[str, Any]) -> str:
    m = record["machine"]
    base = record["variants"][next(iter(record["variants"]))]
    lines = [
        "# Controller settings: cost per module call", "",
        (f"Machine: **{m['cores']} cores**, load average at the start {' / '.join(str(x) for x in m['load_start'])}; "
        f"{m['ansible']}; {m['date']}."),
        (f"Synthetic playbook: {record['hosts']} hosts × {record['calls_per_host']} module calls each (command, stat, file "
        f"in loops) plus {record['tasks_per_item']} set_fact items; median of {record['repeats']} interleaved runs per variant."),
        "Wall time swings with the load others put on the machine; the CPU seconds (ansible-playbook with its",
        "ssh/podman clients; each container's cgroup) are the steadier figures.",
        "", ("| variant | wall (s) | ms per module call and host | ÷ shipped | controller CPU (s) | ÷ shipped "
        "| CPU ms per call in the host | ÷ shipped | load at the runs |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, v in record["variants"].items():
        loads = ", ".join(f"{s['load']:.1f}" for s in v["samples"])
        host = v.get("host_cpu_ms_per_call")
        base_host = base.get("host_cpu_ms_per_call")
        lines.append(f"| {name} | {v['wall']:.1f} | {v['ms_per_call']} | {v['wall'] / base['wall']:.2f}× "
                     f"| {v['controller_cpu']:.1f} | {v['controller_cpu'] / base['controller_cpu']:.2f}× "
                     f"| {host if host is not None else '–'} "
                     f"| {f'{host / base_host:.2f}×' if host is not None and base_host else '–'} | {loads} |")
    return "\n".join(lines) + "\n"


def run(root: Path, fleet: Any, image: str, key: Path, out: Path, repeats: int, tasks: int,
        machine: dict[str, Any], container_cpu: Callable[[str], float | None]) -> dict[str, Any]:
    """fleet: a bench.Fleet of the ssh connection (its hosts serve both ssh and podman variants)."""
    work = fleet.workdir
    work.mkdir(parents=True, exist_ok=True)
    fleet.start(image, key)
    ssh_inventory = fleet.inventory(key)
    podman_inventory = work / "podman.yml"
    podman_inventory.write_text(json.dumps({"all": {
        "vars": {"ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3"},
        "hosts": {h.name: {} for h in fleet.hosts}}}))
    playbook = work / "synthetic.yml"
    playbook.write_text(synthetic(tasks))
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    try:
        for i in range(repeats):
            for k, (name, (connection, extra)) in enumerate(VARIANTS.items()):
                # Every run opens its own ssh connections, as a fresh ansible-playbook on a lab does.
                env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory",
                           ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / f"cp-{i}-{k}"), **extra)
                inventory = ssh_inventory if connection == "ssh" else podman_inventory
                sample = one_run(root, inventory, playbook, env, work, [h.name for h in fleet.hosts], container_cpu)
                samples[name].append(sample)
                print(f"bench: controller {i + 1}/{repeats}: {name}: {sample['wall']:.1f}s (load {sample['load']})", flush=True)
    finally:
        fleet.remove()
    calls = 3 * tasks
    record = {"machine": machine, "hosts": len(fleet.hosts), "calls_per_host": calls, "tasks_per_item": tasks,
              "repeats": repeats, "variants": {n: summarize(s, calls) for n, s in samples.items()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "controller.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "controller.md").write_text(markdown(record))
    return record
