"""The run lock's script (roles/preflight/files/run-lock.py) and the aiws_run lookup, without Ansible:
who takes the lock, who is refused, which locks are stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import load_file

ROOT = Path(__file__).resolve().parents[2]


lock = load_file("aiws_run_lock", ROOT / "roles/preflight/files/run-lock.py")
lookup = load_file("aiws_run_lookup", ROOT / "plugins/lookup/aiws_run.py")


def run(run_id: str, **more) -> dict:
    return {"run_id": run_id, "pid": 1, "pid_start": "1", "started_text": "then", "user": "admin",
            "controller": "ctl", "machine_id": "other-machine", **more}


def test_free_lock_is_taken_and_reentered(tmp_path: Path) -> None:
    f = tmp_path / "aiws/run.lock"
    first = lock.take(f, run("a"), None)
    assert first["state"] == "taken"
    data = json.loads(f.read_text())
    assert data["run_id"] == "a" and data["boot"] == lock.this_boot()
    assert f.stat().st_mode & 0o777 == 0o644
    assert lock.take(f, run("a"), None)["state"] == "reentered"


def test_live_run_of_another_controller_is_held_until_taken_over_by_name(tmp_path: Path) -> None:
    f = tmp_path / "run.lock"
    lock.take(f, run("a"), None)
    held = lock.take(f, run("b"), None)
    assert held["state"] == "held" and held["holder"]["run_id"] == "a"
    # --takeover must name the holder: a lock taken by a third run meanwhile is not replaced.
    assert lock.take(f, run("b"), "someone-else")["state"] == "held"
    over = lock.take(f, run("b"), "a")
    assert over["state"] == "taken_over" and over["previous"]["run_id"] == "a"
    assert json.loads(f.read_text())["previous"]["run_id"] == "a"


def test_a_restart_makes_a_lock_stale(tmp_path: Path) -> None:
    f = tmp_path / "run.lock"
    lock.write(f, {**run("a"), "boot": "an-earlier-boot/1"})
    over = lock.take(f, run("b"), None)
    assert over["state"] == "taken_over" and "restarted" in over["reason"]


def test_a_local_run_whose_process_is_gone_is_stale_and_a_live_one_holds(tmp_path: Path) -> None:
    f = tmp_path / "run.lock"
    machine = Path("/etc/machine-id").read_text().strip()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = run("a", pid=sleeper.pid, pid_start=lock.proc_start(sleeper.pid), machine_id=machine)
        lock.take(f, live, None)
        assert lock.take(f, run("b"), None)["state"] == "held"
        assert lookup.run_state(live) == "alive"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert lookup.run_state(live) == "gone"
    over = lock.take(f, run("b"), None)
    assert over["state"] == "taken_over" and f"process {sleeper.pid} is gone" in over["reason"]
    assert lookup.run_state(run("x")) == "unknown", "a run of another machine cannot be checked here"


def test_an_unreadable_lock_is_replaced_and_said_so(tmp_path: Path) -> None:
    f = tmp_path / "run.lock"
    f.write_text("{half a lo")
    taken = lock.take(f, run("b"), None)
    assert taken["state"] == "taken" and "unreadable" in taken["reason"]


def test_release_only_removes_our_own_lock(tmp_path: Path) -> None:
    f = tmp_path / "run.lock"
    lock.take(f, run("a"), None)
    assert lock.release(f, run("b"))["state"] == "not_ours" and f.exists()
    assert lock.release(f, run("a"))["state"] == "released" and not f.exists()
    assert lock.release(f, run("a"))["state"] == "absent"


def test_two_runs_starting_together_cannot_both_take_it(tmp_path: Path) -> None:
    f = tmp_path / "run.lock"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def contender(n: int) -> None:
        barrier.wait()
        results.append(lock.take(f, run(f"r{n}"), None)["state"])

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["held"] * 7 + ["taken"]


def test_this_run_names_the_playbook_process_and_its_user() -> None:
    me = lookup.this_run()
    assert me["pid"] == os.getpid() and me["pid_start"] == lock.proc_start(os.getpid())
    assert me["run_id"].endswith(f"-{os.getpid()}-{me['pid_start']}")
    assert me["user"] and me["controller"] and me["started_text"]
    assert lookup.run_state(me) == "alive"


def test_script_command_line(tmp_path: Path) -> None:
    f = tmp_path / "run.lock"
    script = ROOT / "roles/preflight/files/run-lock.py"
    out = subprocess.run([sys.executable, str(script), "take", "--file", str(f), "--run", json.dumps(run("a"))],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["state"] == "taken"
    shown = subprocess.run([sys.executable, str(script), "show", "--file", str(f)], capture_output=True, text=True, check=True)
    assert json.loads(shown.stdout)["holder"]["run_id"] == "a"
    bad = subprocess.run([sys.executable, str(script), "take", "--file", str(f)], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "run_id" in bad.stderr


@pytest.mark.parametrize("term", ["a string", 3])
def test_lookup_refuses_a_term_that_is_not_a_run(term) -> None:
    from ansible.errors import AnsibleLookupError

    with pytest.raises(AnsibleLookupError, match="aiws_run: a term must be a run"):
        lookup.LookupModule().run([term])
