#!/usr/bin/env python3
"""make bench: time site.yml on 1, 2, 4 and 8 containers, first converge and no-op re-run.

Run through scripts/bench.sh (make bench), which prepares the fixtures and their servers exactly
as scripts/molecule.sh does (scripts/fixtures-env.sh). For each N, connection and cache mode:

  1. start N workstation containers (and, with the cache, one apt-cacher-ng host) from the
     project's image with a sudo user added (a derived image, cached by its inputs);
  2. run `ansible-playbook site.yml` on them with molecule/default's settings (its group_vars),
     over SSH as a lab is reached (sshd on its own port in each container, the project's
     ansible.cfg [ssh_connection] settings) or over podman exec as the container tests do;
  3. run it again, which must change nothing (the bench stops, loudly, when it does);
  4. read the timing callback (plugins/callback/aiws_timing.py), the fixture servers' access logs
     and apt-cacher-ng's own log, and remove the containers.

It writes bench/results.{json,md,csv} and bench/wall.svg, bench/bytes.svg (scripts/bench_report.py).
Every figure carries the machine's core count and its load average at the start of the run.

  scripts/bench.sh                       # N = 1, 2, 4, 8; podman and ssh; without and with the cache
  scripts/bench.sh --quick               # N = 1, 2
  scripts/bench.sh --hosts 1,4 --connections ssh --cache on
  scripts/bench.sh --controller          # cost per module call of controller settings (bench/controller.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_controller  # beside this script (python puts the script's folder first on sys.path)
import bench_report

ROOT = Path(__file__).resolve().parents[1]

SSH_USER = "aiwsadmin"
# What molecule's converge skips (its default skip tags), so both run the same tasks.
SKIP_TAGS = "molecule-notest,notest"
# Stamp of the derived image's recipe: change it and the image is rebuilt.
IMAGE_RECIPE = r"""
set -eu
# The test images carry openssh-server, its pam_loginuid fix and an ssh.service that starts where
# /etc/ssh/aiws-test/sshd.conf exists (molecule/images/build.sh). The bench adds the sudo user it logs
# in as, and takes out the image's host keys: start_sshd makes fresh ones in each container.
rm -f /etc/ssh/ssh_host_*
useradd -m -s /bin/bash aiwsadmin
echo 'aiwsadmin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/aiwsadmin
chmod 0440 /etc/sudoers.d/aiwsadmin
"""

MIRROR_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d+|-) (?P<bytes>\d+|-)(?: "(?P<agent>[^"]*)")?\s*$'
)


# -- small helpers ----------------------------------------------------------------------------
def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def sh(argv: list[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kwargs)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = sh(["podman", *args], check=False)
    if check and run.returncode != 0:
        raise SystemExit(f"bench: podman {' '.join(args[:3])} ... failed (rc={run.returncode}): {run.stderr.strip()}")
    return run


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_from(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", errors="replace")


# -- log parsers (unit-tested) ------------------------------------------------------------------
def mirror_bytes(text: str) -> dict[str, int]:
    """fx_apt_mirror.py's access log: requests and bytes sent ('"GET /debian/... HTTP/1.1" 200 1234')."""
    requests = sent = 0
    for line in text.splitlines():
        m = MIRROR_LINE.search(line)
        if m:
            requests += 1
            sent += int(m["bytes"]) if m["bytes"].isdigit() else 0
    return {"requests": requests, "bytes": sent}


def fixture_bytes(text: str) -> dict[str, int]:
    """serve.py's access log ('<epoch> <METHOD> <path> <status> <bytes>'), split into the apt
    repository (/nvidia/) and the rest (installers, conda and pip indexes)."""
    out = {"requests": 0, "bytes": 0, "apt_bytes": 0, "other_bytes": 0}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5 or not parts[4].isdigit():
            continue
        n = int(parts[4])
        out["requests"] += 1
        out["bytes"] += n
        out["apt_bytes" if parts[2].startswith("/nvidia/") else "other_bytes"] += n
    return out


def acng_bytes(text: str) -> dict[str, int]:
    """apt-cacher-ng's apt-cacher.log ('<time>|I|<size>|<client>|<path>'): I = fetched from upstream,
    O = served to clients."""
    out = {"in_requests": 0, "in_bytes": 0, "out_requests": 0, "out_bytes": 0}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 5 or parts[1] not in ("I", "O") or not parts[2].isdigit():
            continue
        key = "in" if parts[1] == "I" else "out"
        out[f"{key}_requests"] += 1
        out[f"{key}_bytes"] += int(parts[2])
    return out


def recap(text: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines: host -> counters."""
    hosts: dict[str, dict[str, int]] = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", text, re.MULTILINE):
        hosts[m[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[2])}
    return hosts


def warnings_in(text: str) -> list[str]:
    """Every [WARNING] line (and the continuation lines ansible indents under it)."""
    found: list[str] = []
    for line in text.splitlines():
        if line.startswith("[WARNING]"):
            found.append(line.strip())
    return found


# -- the fleet --------------------------------------------------------------------------------
@dataclass
class Settings:
    suffix: str
    image: str
    mirror_port: int
    fixture_port: int
    cache_port: int
    ssh_port_base: int
    cache_dir: Path
    fixture_log: Path
    scratch: Path
    timeout: int
    keep: bool

    @property
    def mirror_log(self) -> Path:
        return self.cache_dir / "apt-mirror" / f"proxy-{self.mirror_port}.log"


@dataclass
class Host:
    name: str
    group: str  # gpu_ada, gpu_pascal or apt_cache
    ssh_port: int


@dataclass
class Fleet:
    settings: Settings
    n: int
    connection: str
    cache: bool
    hosts: list[Host] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"n{self.n}-{self.connection}-cache-{'on' if self.cache else 'off'}"

    @property
    def workdir(self) -> Path:
        return self.settings.scratch / self.label

    @property
    def cache_host(self) -> Host | None:
        return next((h for h in self.hosts if h.group == "apt_cache"), None)

    def plan(self) -> None:
        s = self.settings
        self.hosts = [Host(f"aiws-bench{i}-{s.suffix}", "gpu_ada" if i % 2 else "gpu_pascal", s.ssh_port_base + i)
                      for i in range(1, self.n + 1)]
        if self.cache:
            self.hosts.append(Host(f"aiws-benchacng-{s.suffix}", "apt_cache", s.ssh_port_base))

    def remove(self) -> None:
        names = [h.name for h in self.hosts]
        if names:
            podman("rm", "-f", "-t", "2", *names, check=False)

    def start(self, image: str, key: Path) -> None:
        self.remove()
        for h in self.hosts:
            # The host name resolves, as on an installed machine (127.0.1.1 in /etc/hosts): otherwise sudo
            # warns "unable to resolve host" on every become, into the output over ssh's terminal.
            argv = ["run", "-d", "--name", h.name, "--hostname", h.name, "--add-host", f"{h.name}:127.0.1.1",
                    "--network", "host", "--systemd", "always",
                    "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", image, "/sbin/init"]
            if podman(*argv, check=False).returncode != 0:  # once more: a container of that name may be still going
                podman("rm", "-f", "-t", "2", h.name, check=False)
                time.sleep(5)
                podman(*argv)
        for h in self.hosts:
            # podman exec can fail while the container is still coming up: ask again for a minute.
            for _ in range(60):
                answer = podman("exec", h.name, "systemctl", "is-system-running", "--wait", check=False)
                if answer.stdout.strip() in ("running", "degraded"):
                    break
                time.sleep(1)
            else:
                raise SystemExit(f"bench: {h.name} did not boot: {answer.stdout.strip()} {answer.stderr.strip()}")
            # As molecule/default/converge.yml does before site.yml: an ordinary lab user.
            podman("exec", h.name, "useradd", "-m", "-s", "/bin/bash", "labuser")
            if self.connection == "ssh":
                self.start_sshd(h, key)
        if self.connection == "ssh":
            self.write_known_hosts()

    def start_sshd(self, h: Host, key: Path) -> None:
        pub = key.with_suffix(".pub").read_text()
        script = (
            # where the test images' ssh.service looks for its settings (molecule/images/build.sh)
            f"mkdir -p /etc/ssh/aiws-test && printf 'Port {h.ssh_port}\\nListenAddress 127.0.0.1\\nPasswordAuthentication no\\n'"
            " > /etc/ssh/aiws-test/sshd.conf && ssh-keygen -A >/dev/null"
            f" && install -d -m 0700 -o {SSH_USER} -g {SSH_USER} /home/{SSH_USER}/.ssh"
            f" && printf '%s' \"$1\" > /home/{SSH_USER}/.ssh/authorized_keys"
            f" && chown {SSH_USER}: /home/{SSH_USER}/.ssh/authorized_keys && systemctl enable --now ssh.service >/dev/null 2>&1"
        )
        podman("exec", h.name, "sh", "-c", script, "sh", pub)
        for _ in range(100):
            if sh(["ssh-keyscan", "-p", str(h.ssh_port), "127.0.0.1"], check=False).stdout.strip():
                return
            time.sleep(0.1)
        raise SystemExit(f"bench: sshd in {h.name} does not answer on 127.0.0.1:{h.ssh_port}")

    def write_known_hosts(self) -> None:
        lines = []
        for h in self.hosts:
            lines.append(sh(["ssh-keyscan", "-p", str(h.ssh_port), "127.0.0.1"], check=False).stdout)
        (self.workdir / "known_hosts").write_text("".join(lines))

    def inventory(self, key: Path) -> Path:
        s = self.settings
        inv = self.workdir / "inventory"
        inv.mkdir(parents=True, exist_ok=True)
        # molecule/default's settings (fixtures, mirrors, GPUs per group), not a copy of them.
        link = inv / "group_vars"
        if not link.exists():
            link.symlink_to(ROOT / "molecule" / "default" / "group_vars")
        if self.connection == "ssh":
            conn: dict[str, Any] = {
                "ansible_host": "127.0.0.1", "ansible_user": SSH_USER, "ansible_ssh_private_key_file": str(key),
                # Added to the project's ssh_args (ansible.cfg), which stay as they are.
                "ansible_ssh_extra_args": f"-o UserKnownHostsFile={self.workdir / 'known_hosts'} -o IdentitiesOnly=yes",
            }
        else:
            conn = {"ansible_connection": "containers.podman.podman"}
        hostvars = {h.name: ({"ansible_port": h.ssh_port} if self.connection == "ssh" else {}) for h in self.hosts}
        workstations = [h for h in self.hosts if h.group != "apt_cache"]
        children: dict[str, Any] = {
            "workstations": {"children": {g: {"hosts": {h.name: hostvars[h.name] for h in workstations if h.group == g}}
                                          for g in ("gpu_ada", "gpu_pascal") if any(h.group == g for h in workstations)}},
            "apt_cache": {"hosts": {h.name: hostvars[h.name] for h in self.hosts if h.group == "apt_cache"}},
        }
        cache_vars = {
            "apt_cache_port": s.cache_port, "apt_cache_bind_address": "127.0.0.1", "apt_cache_proxy_host": "127.0.0.1",
            # The loopback mirror and the fixture server (NVIDIA's repository) listen on their own ports.
            "apt_cache_upstream_ports": [80, 443, s.mirror_port, s.fixture_port],
        }
        data = {"all": {"vars": {**conn, "ansible_become": True, **cache_vars}, "children": children}}
        path = inv / "hosts.yml"
        path.write_text(json.dumps(data, indent=1) + "\n")  # JSON is YAML
        return path


# -- one run of site.yml -----------------------------------------------------------------------
def playbook(fleet: Fleet, inventory: Path, phase: str) -> dict[str, Any]:
    s = fleet.settings
    work = fleet.workdir
    timing = work / f"{phase}.timing.json"
    env = dict(
        os.environ,
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks,aiws.workstation.aiws_timing",
        AIWS_TIMING_FILE=str(timing),
        # Facts cached per fleet, as on a lab's controller: cold on the first run, warm on the re-run.
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(work / "facts"),
        # Each run opens its own SSH connections (no master left from the previous run).
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / f"cp-{phase}"),
        ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
        # molecule/default/group_vars/all/verify.yml writes the fleet report there.
        MOLECULE_EPHEMERAL_DIRECTORY=str(work),
    )
    offsets = {"mirror": size_of(s.mirror_log), "fixture": size_of(s.fixture_log)}
    acng_before = acng_log(fleet)
    load = os.getloadavg()[0]
    argv = ["ansible-playbook", "site.yml", "-i", str(inventory), "--skip-tags", SKIP_TAGS]
    log(f"{fleet.label}: {phase}: {' '.join(argv)} (load {load:.2f})")
    stdout, stderr = work / f"{phase}.stdout", work / f"{phase}.stderr"
    cpu_before = {h.name: container_cpu(h.name) for h in fleet.hosts}
    controller_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with stdout.open("w") as out, stderr.open("w") as err:  # written as it runs: tail -f to follow
        rc = subprocess.run(argv, cwd=ROOT, env=env, stdout=out, stderr=err, timeout=s.timeout, check=False).returncode
    wall = time.monotonic() - started
    controller_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    controller_cpu = (controller_after.ru_utime - controller_before.ru_utime
                      + controller_after.ru_stime - controller_before.ru_stime)
    host_cpu = {}
    for h in fleet.hosts:
        after, before = container_cpu(h.name), cpu_before[h.name]
        host_cpu[h.name] = round(after - before, 1) if after is not None and before is not None else None
    run = subprocess.CompletedProcess(argv, rc, stdout.read_text(errors="replace"), stderr.read_text(errors="replace"))
    log(f"{fleet.label}: {phase}: rc={rc} in {wall:.0f}s (output: {stdout})")
    if rc != 0:
        tail = "\n".join(run.stdout.splitlines()[-40:])
        raise SystemExit(f"bench: site.yml failed on {fleet.label} ({phase}), rc={rc}:\n{tail}\n{run.stderr[-2000:]}")
    record = json.loads(timing.read_text())
    acng_after = acng_log(fleet)
    workstations = [h.name for h in fleet.hosts if h.group != "apt_cache"]
    recap_hosts = recap(run.stdout)
    per_host = record["hosts"]
    return {
        "wall": round(wall, 1),
        "load_start": round(load, 2),
        "load_end": round(os.getloadavg()[0], 2),
        # CPU seconds: ansible-playbook and the ssh/podman clients it ran; each container's processes.
        "controller_cpu": round(controller_cpu, 1),
        "host_cpu": host_cpu,
        "host_cpu_per_host": mean_f([host_cpu[h] for h in workstations if host_cpu.get(h) is not None]),
        "stages": record["stages"],
        "roles": record["roles"],
        "tasks_per_host": mean([per_host[h]["tasks_run"] for h in workstations if h in per_host]),
        "module_calls_per_host": mean([per_host[h]["module_calls"] for h in workstations if h in per_host]),
        "actions_per_host": actions_per_host(record, workstations),
        "actions_per_stage": actions_per_stage(record, workstations),
        "hosts": {h: {k: per_host.get(h, {}).get(k) for k in ("tasks_run", "module_calls", "changed", "ok", "skipped")}
                  for h in [x.name for x in fleet.hosts]},
        "changed": sum(v.get("changed", 0) for v in recap_hosts.values()),
        "changed_tasks": record["changed"],
        "warnings": warnings_in(run.stdout + "\n" + run.stderr),
        "slowest_tasks": slowest(record, 12),
        "bytes": {
            "mirror": mirror_bytes(read_from(s.mirror_log, offsets["mirror"])),
            "fixture": fixture_bytes(read_from(s.fixture_log, offsets["fixture"])),
            "acng": acng_bytes("\n".join(acng_after.splitlines()[len(acng_before.splitlines()):])) if fleet.cache else None,
        },
    }


def rerun_failure(label: str, rerun: dict[str, Any]) -> str | None:
    """The bench's verdict on a re-run: None when it changed nothing, else the message it stops with."""
    if not rerun["changed"]:
        return None
    tasks = "\n".join(f"  {c['host']}: {c['stage']} / {c['role'] or '-'} / {c['task']}" for c in rerun["changed_tasks"])
    return (f"bench: FAILED: the no-op re-run on {label} changed {rerun['changed']} task(s); "
            f"a re-run must change nothing:\n{tasks}")


def container_cpu(name: str) -> float | None:
    """CPU seconds a container has used (processes started by podman exec count too), from its cgroup
    (v1 cpuacct or v2 cpu.stat); None when unreadable. Unlike wall time, it hardly grows with the load
    others put on the machine."""
    path = podman("inspect", "--format", "{{.State.CgroupPath}}", name, check=False).stdout.strip()
    if not path:
        return None
    v1 = Path("/sys/fs/cgroup/cpuacct") / path.lstrip("/") / "cpuacct.usage"
    v2 = Path("/sys/fs/cgroup") / path.lstrip("/") / "cpu.stat"
    try:
        if v1.exists():
            return int(v1.read_text()) / 1e9
        for line in v2.read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
    except (OSError, ValueError):
        return None
    return None


def acng_log(fleet: Fleet) -> str:
    host = fleet.cache_host
    if host is None:
        return ""
    return podman("exec", host.name, "cat", "/var/log/apt-cacher-ng/apt-cacher.log", check=False).stdout


def mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0


def mean_f(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 1) if known else None


def actions_per_host(record: dict[str, Any], hosts: list[str]) -> dict[str, float]:
    total: dict[str, int] = {}
    for h in hosts:
        for action, calls in record["hosts"].get(h, {}).get("actions", {}).items():
            total[action] = total.get(action, 0) + calls
    return dict(sorted(((a, round(c / max(len(hosts), 1), 1)) for a, c in total.items()), key=lambda x: -x[1]))


def actions_per_stage(record: dict[str, Any], hosts: list[str]) -> dict[str, dict[str, float]]:
    """Module calls per stage and action, per workstation (the round trips a stage makes)."""
    out: dict[str, dict[str, float]] = {}
    for task in record["tasks"]:
        for h, res in task["hosts"].items():
            if h in hosts and res.get("calls"):
                stage = out.setdefault(task["stage"], {})
                stage[task["action"]] = stage.get(task["action"], 0) + res["calls"]
    return {st: dict(sorted(((a, round(c / max(len(hosts), 1), 1)) for a, c in acts.items()), key=lambda x: -x[1]))
            for st, acts in out.items()}


def slowest(record: dict[str, Any], count: int) -> list[dict[str, Any]]:
    tasks = sorted(record["tasks"], key=lambda t: -t["duration"])[:count]
    return [{"stage": t["stage"], "role": t["role"], "task": t["name"], "action": t["action"], "seconds": t["duration"]}
            for t in tasks]


# -- the derived image and the SSH key ---------------------------------------------------------
def ssh_image(base: str, settings: Settings) -> str:
    base_id = podman("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    key = subprocess.run(["sha256sum"], input=f"{base_id}\n{IMAGE_RECIPE}", capture_output=True, text=True,
                         check=True).stdout[:16]
    image = f"localhost/aiws-bench-ssh:{key}"
    if podman("image", "exists", image, check=False).returncode == 0:
        log(f"{image} is up to date")
        return image
    builder = f"aiws-benchimg-{settings.suffix}"
    podman("rm", "-f", builder, check=False)
    log(f"building {image} from {base} (the sudo user, no host keys)")
    build = podman("run", "--name", builder, "--network", "none", base, "sh", "-c", IMAGE_RECIPE, check=False)
    if build.returncode != 0:
        podman("rm", "-f", builder, check=False)
        raise SystemExit(f"bench: could not build {image}:\n{build.stdout[-2000:]}{build.stderr[-2000:]}")
    podman("commit", "-q", "--change", 'CMD ["/sbin/init"]', "--change", f"LABEL aiws.bench-key={key}", builder, image)
    podman("rm", "-f", builder, check=False)
    return image


def ssh_key(directory: Path) -> Path:
    key = directory / "id_ed25519"
    if not key.exists():
        directory.mkdir(parents=True, exist_ok=True)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "aiws-bench", "-f", str(key)])
    return key


# -- main ---------------------------------------------------------------------------------------
def parse_list(text: str, allowed: set[str] | None = None) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if allowed is not None:
        bad = [x for x in items if x not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{', '.join(bad)} not in {', '.join(sorted(allowed))}")
    return items


def machine() -> dict[str, Any]:
    def out(argv: list[str]) -> str:
        try:
            return sh(argv, check=False).stdout.strip()
        except FileNotFoundError:
            return ""

    return {
        "cores": os.cpu_count(),
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": os.uname().release,
        "ansible": out(["ansible", "--version"]).splitlines()[0] if out(["ansible", "--version"]) else "",
        "commit": out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", default="1,2,4,8", help="numbers of workstations, comma-separated (default 1,2,4,8)")
    p.add_argument("--quick", action="store_true", help="N = 1,2 only")
    p.add_argument("--connections", default="podman,ssh", help="podman, ssh or both (default both)")
    p.add_argument("--cache", default="off,on", help="fleet cache: off, on or both (default both)")
    p.add_argument("--out", default=str(ROOT / "bench"), help="where the table and plots go (default bench/)")
    p.add_argument("--note", default="", help="a line printed above the table (e.g. what the machine was doing)")
    p.add_argument("--timeout", type=int, default=5400, help="seconds one playbook run may take")
    p.add_argument("--keep", action="store_true", help="leave the last fleet's containers running")
    p.add_argument("--controller", action="store_true",
                   help="instead of the matrix: the cost per module call of controller settings (OUT/controller.md)")
    p.add_argument("--repeats", type=int, default=3, help="with --controller: runs per variant (default 3)")
    p.add_argument("--append", action="store_true",
                   help="add to the runs already in OUT/results.json (a run of the same N, connection and cache replaces it)")
    args = p.parse_args(argv)
    try:
        counts = [int(x) for x in parse_list("1,2" if args.quick else args.hosts)]
        connections = parse_list(args.connections, {"podman", "ssh"})
        caches = parse_list(args.cache, {"off", "on"})
    except (ValueError, argparse.ArgumentTypeError) as err:
        p.error(str(err))
    if any(n < 1 or n > 60 for n in counts):
        p.error("--hosts: between 1 and 60 workstations")

    for name in ("AIWS_TEST_IMAGE", "AIWS_FIXTURE_NVIDIA_FPR", "AIWS_FIXTURE_LOG"):
        if not os.environ.get(name):
            print(f"bench: {name} is not set: run scripts/bench.sh (make bench), which prepares the fixtures", file=sys.stderr)
            return 2
    for tool in ("podman", "ssh", "ssh-keygen", "ssh-keyscan", "ansible-playbook"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found (scripts/bootstrap.sh --test; apt-get install openssh-client)", file=sys.stderr)
            return 2

    mirror_port = env_int("AIWS_APT_MIRROR_PORT", 8100)
    cache_dir = Path(os.environ["AIWS_TEST_CACHE"])
    scratch = cache_dir / "bench" / time.strftime("%Y%m%d-%H%M%S")
    settings = Settings(
        suffix=os.environ.get("AIWS_TEST_SUFFIX") or "main",
        image=os.environ["AIWS_TEST_IMAGE"],
        mirror_port=mirror_port,
        fixture_port=env_int("AIWS_FIXTURE_PORT", 8089),
        cache_port=env_int("AIWS_APT_CACHE_PORT", 8101),
        # sshd ports: the cache host on the base, workstation i on base + i (containers share the host network);
        # clear of the fixture servers' ports (the simulated Ubuntu archive is on the mirror's port + 10).
        ssh_port_base=env_int("AIWS_BENCH_SSH_PORT", mirror_port + 40),
        cache_dir=cache_dir,
        fixture_log=Path(os.environ["AIWS_FIXTURE_LOG"]),
        scratch=scratch,
        timeout=args.timeout,
        keep=args.keep,
    )
    servers = {settings.fixture_port, settings.mirror_port, settings.cache_port,
               env_int("AIWS_UBUNTU_ARCHIVE_PORT", mirror_port + 10)}
    sshd = set(range(settings.ssh_port_base, settings.ssh_port_base + 9))
    if servers & sshd:
        raise SystemExit(f"bench: sshd ports {min(sshd)}-{max(sshd)} overlap the fixture servers' {sorted(servers & sshd)}; "
                         "set AIWS_BENCH_SSH_PORT")
    scratch.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    results: dict[str, Any] = {"schema": 1, "machine": machine(), "note": args.note, "scratch": str(scratch),
                               "settings": {"hosts": counts, "connections": connections, "cache": caches,
                                            "skip_tags": SKIP_TAGS}, "runs": []}
    if args.append and (out / "results.json").exists():
        kept = [e for e in json.loads((out / "results.json").read_text())["runs"]
                if not (e["n"] in counts and e["connection"] in connections and e["cache"] in caches)]
        results["runs"] = kept
    log(f"{results['machine']['cores']} cores, load {results['machine']['load_start']}; scratch {scratch}")
    image = ssh_image(settings.image, settings)
    key = ssh_key(cache_dir / "bench" / "ssh")
    if args.controller:
        # Own names and ports, so it can run beside a matrix run.
        probe = Fleet(dataclasses.replace(settings, suffix=settings.suffix + "-ctl", ssh_port_base=settings.ssh_port_base + 20),
                      2, "ssh", False)
        probe.plan()
        bench_controller.run(ROOT, probe, image, key, out, args.repeats, 10, results["machine"], container_cpu)
        print((out / "controller.md").read_text())
        return 0
    fleet: Fleet | None = None
    try:
        for n in counts:
            for connection in connections:
                for cache in caches:
                    fleet = Fleet(settings, n, connection, cache == "on")
                    fleet.plan()
                    fleet.workdir.mkdir(parents=True, exist_ok=True)
                    log(f"{fleet.label}: starting {len(fleet.hosts)} containers from {image}")
                    fleet.start(image, key)
                    inventory = fleet.inventory(key)
                    entry: dict[str, Any] = {"n": n, "connection": connection, "cache": cache,
                                             "cores": results["machine"]["cores"], "date": time.strftime("%Y-%m-%d %H:%M")}
                    results["runs"].append(entry)
                    results["runs"].sort(key=lambda e: (e["n"], e["connection"], e["cache"]))
                    entry["first"] = playbook(fleet, inventory, "first")
                    entry["rerun"] = playbook(fleet, inventory, "rerun")
                    bench_report.write_all(results, out)
                    failure = rerun_failure(fleet.label, entry["rerun"])
                    if failure:
                        print(failure, file=sys.stderr)
                        return 1
                    if not settings.keep:
                        fleet.remove()
    finally:
        if fleet is not None and not settings.keep:
            fleet.remove()
    bench_report.write_all(results, out)
    log(f"wrote {out}/results.md, results.json, results.csv, wall.svg, bytes.svg")
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
