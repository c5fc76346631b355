"""Preflight's checks of the host itself, before any stage: the run lock (one run at a time), dpkg's
state (another apt run, an interrupted one) and the apt cache host (reachable, also under --check).

The playbooks run against this machine over a local connection, with the lock in a temporary
directory; dpkg's state is read from a fake dpkg database. Nothing outside tmp_path changes.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import run_playbook

ROOT = Path(__file__).resolve().parents[2]
DPKG_STATE = ROOT / "roles/preflight/files/dpkg-state.py"
MACHINE_ID = Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the plays run with become; as root no sudo is needed")


def flat(text: str) -> str:
    return " ".join(text.split())


def inventory(tmp: Path, cache: dict | None = None, **host_vars) -> Path:
    ws = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
          "verify_state_dir": str(tmp / "state"), "verify_fact_path": str(tmp / "facts.d"),
          "preflight_lock_file": str(tmp / "lock/run.lock"), **host_vars}
    (tmp / "facts.d").mkdir(exist_ok=True)
    children: dict = {"workstations": {"hosts": {"ws-local": ws}}}
    if cache is not None:
        children["apt_cache"] = {"hosts": cache}
    inv = tmp / "inventory.yml"
    # offline: the URL probes of preflight would stop every run here
    inv.write_text(yaml.safe_dump({"all": {"children": children,
                                           "vars": {"anaconda_flavor": "miniforge", "preflight_probe_urls": False}}}))
    return inv


def play(tmp: Path, inv: Path, *extra: str, playbook: str = "verify.yml") -> subprocess.CompletedProcess[str]:
    return run_playbook(tmp, inv, *extra, playbook=playbook)


def proc_start(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def boot() -> str:
    return f"{Path('/proc/sys/kernel/random/boot_id').read_text().strip()}/{proc_start(1)}"


def lock_of(pid: int, **more) -> dict:
    return {"run_id": f"other-{pid}", "pid": pid, "pid_start": proc_start(pid) if Path(f"/proc/{pid}").exists() else "1",
            "started_text": "2026-01-02 03:04:05 UTC", "user": "otheradmin", "controller": "ctl-b",
            "machine_id": MACHINE_ID, "boot": boot(), **more}


# --- the run lock ---------------------------------------------------------------------------------

@root_only
def test_a_second_run_is_refused_while_the_first_holds_the_lock_and_takes_it_once_gone(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    lock = tmp_path / "lock/run.lock"
    lock.parent.mkdir()
    other = subprocess.Popen(["sleep", "120"])  # the other run's ansible-playbook, still running here
    try:
        lock.write_text(json.dumps(lock_of(other.pid)))
        refused = play(tmp_path, inv, "--tags", "preflight")
        assert refused.returncode == 2, refused.stdout[-3000:]
        text = flat(refused.stdout)
        assert (f"ws-local is locked by another aiws run: pid {other.pid} on ctl-b, started 2026-01-02 03:04:05 UTC "
                f"by otheradmin ({lock}). It is still running: wait for it to finish.") in text, text[-2000:]
        assert json.loads(lock.read_text())["run_id"] == f"other-{other.pid}", "a refused run must not touch the lock"
    finally:
        other.kill()
        other.wait()
    taken = play(tmp_path, inv, "--tags", "preflight")
    assert taken.returncode == 0, taken.stdout[-3000:]
    assert f"Took over the run lock of ws-local from pid {other.pid} on ctl-b" in flat(taken.stdout)
    assert f"its process {other.pid} is gone" in flat(taken.stdout)
    assert not lock.exists(), "the run gives its lock back at the end"


@root_only
def test_a_lock_from_before_a_restart_is_taken_over(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    lock = tmp_path / "lock/run.lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps(lock_of(1, machine_id="another-machine", boot="an-earlier-boot/1")))
    run = play(tmp_path, inv, "--tags", "preflight")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "the host has restarted since that run took the lock" in flat(run.stdout)


@root_only
def test_a_lock_of_another_controller_needs_preflight_lock_break(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    lock = tmp_path / "lock/run.lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps(lock_of(1, machine_id="another-machine")))
    refused = play(tmp_path, inv, "--tags", "preflight")
    assert refused.returncode == 2
    assert "started from another machine, so this one cannot tell whether it still runs" in flat(refused.stdout)
    assert "-e preflight_lock_break=true" in refused.stdout
    taken = play(tmp_path, inv, "--tags", "preflight", "-e", "preflight_lock_break=true")
    assert taken.returncode == 0, taken.stdout[-3000:]
    assert "Took over the run lock of ws-local from pid 1 on ctl-b" in flat(taken.stdout)


@root_only
def test_check_mode_only_reads_the_lock(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    lock = tmp_path / "lock/run.lock"
    lock.parent.mkdir()
    other = subprocess.Popen(["sleep", "120"])
    try:
        lock.write_text(json.dumps(lock_of(other.pid)))
        before = lock.read_bytes()
        run = play(tmp_path, inv, "--tags", "preflight", "--check")
        assert run.returncode == 0, run.stdout[-3000:]
        assert f"ws-local is locked by another aiws run: pid {other.pid} on ctl-b" in flat(run.stdout)
        assert lock.read_bytes() == before
    finally:
        other.kill()
        other.wait()


# --- dpkg's state -----------------------------------------------------------------------------------

def fake_dpkg(tmp: Path, status: str = "installed") -> Path:
    admin = tmp / "dpkg"
    (admin / "updates").mkdir(parents=True)
    (admin / "info").mkdir()
    (admin / "available").touch()
    (admin / "status").write_text(f"Package: aiws-demo\nStatus: install ok {status}\nVersion: 1.0\nArchitecture: all\n"
                                  "Maintainer: aiws\nDescription: demo\n\n")
    for name in ("list", "md5sums"):
        (admin / "info" / f"aiws-demo.{name}").write_text("")
    return admin


def dpkg_state(admin: Path, *extra: str) -> dict:
    out = subprocess.run([sys.executable, str(DPKG_STATE), "--admindir", str(admin), *extra],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_dpkg_state_finds_an_interrupted_run(tmp_path: Path) -> None:
    assert dpkg_state(fake_dpkg(tmp_path / "ok"))["interrupted"] is False
    half = dpkg_state(fake_dpkg(tmp_path / "half", "half-configured"))
    assert half["interrupted"] is True and "only half configured" in half["audit"] and "aiws-demo" in half["audit"]
    journal = fake_dpkg(tmp_path / "journal")
    (journal / "updates/0001").write_text("Package: aiws-demo\nStatus: install ok unpacked\n\n")
    assert dpkg_state(journal)["journal"] == 1 and dpkg_state(journal)["interrupted"] is True


def test_dpkg_state_waits_for_the_process_holding_the_lock(tmp_path: Path) -> None:
    admin = fake_dpkg(tmp_path)
    lockfile = admin / "lock-frontend"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.lockf(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(3)"), str(lockfile)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        busy = dpkg_state(admin)
        assert busy["holder"]["pid"] == holder.pid and busy["holder"]["lock"] == str(lockfile)
        assert "import fcntl" in busy["holder"]["command"] and busy["audit"] == "", "no audit while another run holds it"
        started = time.monotonic()
        waited = dpkg_state(admin, "--wait", "30")
        assert waited["holder"] is None and waited["first_holder"]["pid"] == holder.pid
        assert 1 <= time.monotonic() - started < 20 and waited["interrupted"] is False
    finally:
        holder.kill()
        holder.wait()
    with lockfile.open("w") as f:  # held by this test process: another process to dpkg-state.py
        fcntl.lockf(f, fcntl.LOCK_EX)
        assert dpkg_state(admin)["holder"]["pid"] == os.getpid()


# --- the apt cache host ----------------------------------------------------------------------------

DEAD_CACHE = {"cache-dead": {"ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_connection": "ssh",
                             "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}}


@root_only
def test_check_mode_stops_when_the_apt_cache_host_is_unreachable(tmp_path: Path) -> None:
    run = play(tmp_path, inventory(tmp_path, cache=DEAD_CACHE), "--check", playbook="site.yml")
    assert run.returncode == 2, run.stdout[-3000:]
    text = flat(run.stdout)
    assert "The apt cache host cache-dead (group apt_cache) is unreachable:" in text, text[-3000:]
    assert "PLAY [Mirrors" not in run.stdout, "it must stop in preflight"


@pytest.fixture
def acng(tmp_path: Path):
    """A stand-in for apt-cacher-ng's report page on 127.0.0.1 (serve.py), as the cache host itself sees it."""
    www = tmp_path / "acng"
    www.mkdir()
    (www / "acng-report.html").write_text("<html>apt-cacher-ng</html>\n")
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/fixtures/serve.py"), "--root", str(www), "--port", "0",
                               "--log", str(tmp_path / "acng.log")], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline().split()[1].rstrip("/").rsplit(":", 1)[1])
    yield port
    server.terminate()
    server.wait(timeout=10)


LOCAL_CACHE = {"cache-local": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                               "ansible_become": False}}


@root_only
def test_check_mode_stops_when_the_running_cache_is_out_of_the_workstations_reach(tmp_path: Path, acng: int) -> None:
    # The cache answers on the cache host (127.0.0.1), but clients are sent to 127.0.0.2, where nothing listens.
    inv = inventory(tmp_path, cache=LOCAL_CACHE, apt_cache_port=acng, apt_cache_proxy_host="127.0.0.2")
    run = play(tmp_path, inv, "--check", playbook="playbooks/plan.yml")
    assert run.returncode == 2, run.stdout[-3000:]
    assert (f"apt-cacher-ng answers on cache-local, but not at http://127.0.0.2:{acng} from ws-local"
            in flat(run.stdout)), run.stdout[-3000:]
    reachable = inventory(tmp_path, cache=LOCAL_CACHE, apt_cache_port=acng, apt_cache_proxy_host="127.0.0.1")
    assert play(tmp_path, reachable, "--check", playbook="playbooks/plan.yml").returncode == 0


@root_only
def test_a_cache_not_installed_yet_is_noted_not_refused(tmp_path: Path) -> None:
    inv = inventory(tmp_path, cache=LOCAL_CACHE, apt_cache_port=9, apt_cache_check_timeout=2)
    run = play(tmp_path, inv, "--check", playbook="playbooks/plan.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert ("apt-cacher-ng does not answer on cache-local yet" in flat(run.stdout)
            and "the mirrors stage of a run without --check installs and starts it" in flat(run.stdout))
