"""The fault suite: faults injected into a converged workstation, each followed by a normal re-run
that must converge with nothing lost.

Runs last (test_zz_*) on the ada container, after every other check has read the converged state,
and leaves it converged again. Users' files (homes, a conda environment in the shared prefix) are
fingerprinted first and checked after every fault: "files lost" counts those missing or changed.

  dpkg lock held by another process     the run waits for it, then succeeds; a second run is refused
  mirror answering 500, 404, hanging    rollback, a clear message, sources byte for byte as before
  mirror switch killed before its check the next run checks it again and rolls back
  SIGKILL during the package installs   dpkg interrupted; the next run finishes it and installs
  truncated installer download          resumed, verified, installed
  corrupted installer download          refused before it runs, deleted, nothing installed
  filesystem too small for the prefix   refused before the installer runs, nothing written there
  SIGKILL during the Anaconda install   the next run finishes the half-installed prefix
  reinstall (fresh root, old /home /opt) users' environments and files kept and working
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiws_runs as ar
import pytest
import yaml

HOST = f"aiws-ada{ar.SUFFIX}"
REINSTALLED = f"aiws-reinstalled{ar.SUFFIX}"
CACHE = Path(os.environ.get("AIWS_TEST_CACHE", "/var/cache/aiws-test"))
MIRROR = f"http://127.0.0.1:{os.environ.get('AIWS_APT_MIRROR_PORT', '8100')}"
SOURCES = "/etc/apt/sources.list.d/debian.sources"
RECORD = "/var/backups/aiws/apt-mirror/verified.json"
PREFIX = "/opt/anaconda3"
INSTALLER = f"Anaconda3-2099.01-0-Linux-{platform.machine()}.sh"
DOWNLOADED = f"/var/cache/aiws/anaconda/{INSTALLER}"
COUNTS = {"injected": 0, "survived": 0, "files_lost": 0}
LOST: list[str] = []
NOTES: list[str] = []  # what each fault left behind, printed with the counts

# Users' files that must outlive every fault: path -> owner (made in fingerprint()).
PRECIOUS = {
    "/home/alice/thesis.txt": "alice",
    "/home/bob/data.csv": "bob",
    f"{PREFIX}/envs/alice-proj/notes.txt": "alice",
    "/home/alice/.condarc": "alice",
}


def mirror(path: str) -> str:
    """A mirror that fails after preflight: preflight's URL probes (which would stop the run before any
    change, tested in tests/unit) are off, so the switch, its apt-get update and the rollback run."""
    return json.dumps({"aiws_mirror_custom": {"apt": {"debian": f"{MIRROR}/{path}/debian",
                                                       "debian_security": f"{MIRROR}/{path}/debian-security"}},
                       "preflight_probe_urls": False})


def sums(container: str = HOST) -> dict[str, str]:
    out = ar.sh(container, "sha256sum " + " ".join(PRECIOUS) + " 2>/dev/null; true").stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines() if len(line.split()) == 2}


@pytest.fixture(scope="module")
def fingerprint() -> dict[str, str]:
    """Users' work on the converged host: files in their homes and an environment in the shared prefix."""
    for path, user in PRECIOUS.items():
        if path.endswith("notes.txt"):
            script = f"{{ test -d {PREFIX}/envs/alice-proj || conda create -y -n alice-proj >/dev/null; }} && echo results > {path}"
        elif path.endswith(".condarc"):  # a member's own conda settings (test_anaconda.py may have written them)
            script = f"test -s {path} || printf 'channels:\\n  - alice-own\\n' > {path}"
        else:
            script = f"echo {user} was here $RANDOM > {path}"
        made = ar.sh(HOST, f"su - {user} -c {shlex.quote(script)}")
        assert made.returncode == 0, made.stdout + made.stderr
    before = sums()
    assert set(before) == set(PRECIOUS)
    return before


def survived(fingerprint: dict[str, str], container: str = HOST) -> None:
    """Count the fault as survived if every user's file is still there, unchanged."""
    now = sums(container)
    lost = sorted(p for p, digest in fingerprint.items() if now.get(p) != digest)
    COUNTS["files_lost"] += len(lost)
    LOST.extend(f"{container}:{p}" for p in lost)
    assert not lost, f"files lost or changed: {lost}"
    COUNTS["survived"] += 1


def normal_rerun(tags: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """The re-run after a fault: the inventory's own settings, which must converge and then change nothing."""
    run = ar.play(*extra, limit=HOST, tags=tags)
    assert run.returncode == 0, run.stdout[-4000:]
    return run


# --- dpkg lock, run lock -------------------------------------------------------------------------

def test_dpkg_lock_held_by_another_process_is_waited_for(fingerprint, tmp_path: Path) -> None:
    COUNTS["injected"] += 1
    hold = 40
    holder = ar.sh(HOST, (
        "nohup python3 -c 'import fcntl,time; f=open(\"/var/lib/dpkg/lock-frontend\",\"w\"); "
        f"fcntl.lockf(f, fcntl.LOCK_EX); time.sleep({hold})' >/dev/null 2>&1 & echo $!"))
    holder_pid = holder.stdout.strip()
    assert holder_pid.isdigit(), holder.stderr
    started = time.monotonic()
    first = ar.start(limit=HOST, tags="mirrors", log=tmp_path / "first.log")
    try:
        def first_holds_it() -> dict | None:
            lock = ar.read_json(HOST, "/var/lib/aiws/run.lock")
            return lock if lock and lock.get("pid") == first.pid else None

        lock = ar.wait_for("the first run to take the lock", first_holds_it, timeout=300)
        # A second run on the same host while the first holds the lock: refused, naming the first.
        second = ar.play(limit=HOST, tags="mirrors")
        assert second.returncode == 2, second.stdout[-3000:]
        text = ar.flat(second.stdout + second.stderr)
        assert f"{HOST} is locked by another aiws run: pid {first.pid} on {lock['controller']}, started" in text
        assert f"by {lock['user']}" in text and "It is still running: wait for it to finish." in text
        assert first.wait(timeout=900) == 0, (tmp_path / "first.log").read_text()[-4000:]
    finally:
        if first.poll() is None:
            ar.kill(first)
    took = time.monotonic() - started
    out = ar.flat((tmp_path / "first.log").read_text())
    assert "to release /var/lib/dpkg/lock-frontend" in out and f"for pid {holder_pid} (python3 -c" in out, out[-3000:]
    assert took >= hold - 5
    assert ar.read(HOST, "/var/lib/aiws/run.lock") is None, "the run must give the lock back"
    again = normal_rerun("mirrors")
    assert ar.recap(again, HOST)["changed"] == 0
    survived(fingerprint)


# --- the mirror fails ----------------------------------------------------------------------------

@pytest.mark.parametrize(("fault", "path", "expected"), [
    ("500", "status/500", "failing URL {url}"),
    ("404", "status/404", "failing URL {url}"),
    ("hang", "hang", "it did not finish within 20 s (the mirror accepts connections but does not answer)"),
])
def test_mirror_failure_rolls_back(fingerprint, fault: str, path: str, expected: str) -> None:
    COUNTS["injected"] += 1
    before, record = ar.read(HOST, SOURCES), ar.read(HOST, RECORD)
    run = ar.play("-e", mirror(path), "-e", "apt_mirror_update_timeout=20", limit=HOST, tags="mirrors")
    assert run.returncode == 2, run.stdout[-3000:]
    text = ar.flat(run.stdout + run.stderr)
    url = f"{MIRROR}/{path}/debian"
    assert f'apt-get update failed on the mirror "custom" ({url}):' in text, text[-3000:]
    assert expected.format(url=url) in text
    assert "The previous sources are back in place (backup /var/backups/aiws/apt-mirror/snapshots/" in text
    assert ar.read(HOST, SOURCES) == before, "the sources must be as they were, byte for byte"
    assert ar.read(HOST, RECORD) == record, "back to the verified sources: their record stands"
    again = normal_rerun("mirrors")
    assert ar.recap(again, HOST)["changed"] == 0
    survived(fingerprint)


def test_interrupted_mirror_switch_is_checked_again(fingerprint, tmp_path: Path) -> None:
    COUNTS["injected"] += 1
    before = ar.read(HOST, SOURCES)
    killed = ar.start("-e", mirror("hang"), "-e", "apt_mirror_update_timeout=600", limit=HOST, tags="mirrors",
                      log=tmp_path / "killed.log")
    try:
        ar.wait_for("the new sources written and apt-get update waiting on them", lambda: (
            b"/hang/debian" in (ar.read(HOST, SOURCES) or b"")
            and ar.sh(HOST, "pgrep -f '[a]pt-get update'").returncode == 0), timeout=600)
    finally:
        ar.kill(killed)
    ar.sh(HOST, "pkill -KILL -f '[a]pt-get update'; pkill -KILL -f '[/]usr/lib/apt/methods/'; true")
    assert (ar.read_json(HOST, RECORD) or {}).get("state") == "pending"
    assert b"/hang/debian" in (ar.read(HOST, SOURCES) or b""), "the interrupted switch left its sources"
    # The same settings again: nothing left to write, but the switch was never checked.
    rerun = ar.play("-e", mirror("hang"), "-e", "apt_mirror_update_timeout=20", limit=HOST, tags="mirrors")
    assert rerun.returncode == 2, rerun.stdout[-3000:]
    text = ar.flat(rerun.stdout + rerun.stderr)
    assert "were written by a switch that was interrupted before apt-get update checked them: checking them now" in text
    assert "it did not finish within 20 s" in text and "The previous sources are back in place" in text
    assert ar.read(HOST, SOURCES) == before
    again = normal_rerun("mirrors")
    assert ar.recap(again, HOST)["changed"] == 0
    survived(fingerprint)


# --- killed during the package installs ---------------------------------------------------------

TOOLKIT_12_6 = ("cuda-toolkit-12-6 cuda-compiler-12-6 cuda-libraries-12-6 cuda-libraries-dev-12-6 cuda-nvcc-12-6 "
                "cuda-crt-12-6 cuda-cudart-12-6 cuda-cudart-dev-12-6 cuda-toolkit-12-6-config-common")


def test_killed_during_the_package_installs(fingerprint, tmp_path: Path) -> None:
    COUNTS["injected"] += 1
    purge = ar.sh(HOST, f"DEBIAN_FRONTEND=noninteractive apt-get purge -y -q {TOOLKIT_12_6}")
    assert purge.returncode == 0, purge.stderr
    killed = ar.start(limit=HOST, tags="cuda", log=tmp_path / "killed.log")
    try:
        # dpkg unpacking or configuring the toolkit: kill the run, and the remote processes with it
        # (as an ssh session's processes die with it).
        ar.wait_for("dpkg installing the toolkit", lambda: ar.sh(HOST, "pgrep -x dpkg").returncode == 0,
                    timeout=900, every=0.1)
    finally:
        ar.kill(killed)
    ar.sh(HOST, "pkill -KILL -x dpkg; pkill -KILL -x apt-get; pkill -KILL -f '[/]usr/lib/apt/methods/'; true")
    audit = ar.sh(HOST, "dpkg --audit; ls /var/lib/dpkg/updates").stdout.strip()
    NOTES.append(f"killed during the package installs: {ar.flat(audit)[:300] or 'dpkg consistent (killed between two packages)'}")
    rerun = normal_rerun("cuda")
    if audit:
        assert "Finished the interrupted dpkg run" in rerun.stdout, rerun.stdout[-4000:]
    assert ar.sh(HOST, "dpkg --audit").stdout.strip() == ""
    assert "release 12.6" in ar.sh(HOST, "/usr/local/cuda-12.6/bin/nvcc -V").stdout
    again = normal_rerun("cuda")
    assert ar.recap(again, HOST)["changed"] == 0
    survived(fingerprint)


# --- the installer: truncated, corrupted, too little space, killed -------------------------------

@pytest.fixture(scope="module")
def installer_server(tmp_path_factory: pytest.TempPathFactory):
    """The fixture installer served by serve.py on a free port: cut off once under /trunc/, with other
    bytes (same name, same published sum) under /corrupt/."""
    www = tmp_path_factory.mktemp("installer-www")
    genuine = CACHE / "www/anaconda" / INSTALLER
    for sub in ("trunc", "good", "corrupt"):
        (www / sub).mkdir()
        shutil.copy(genuine, www / sub / INSTALLER)
    data = bytearray((www / "corrupt" / INSTALLER).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (www / "corrupt" / INSTALLER).write_bytes(bytes(data))
    server = subprocess.Popen([sys.executable, str(ar.ROOT / "tests/fixtures/serve.py"), "--root", str(www), "--port", "0",
                               "--log", str(www / "access.log"), "--truncate", f"/trunc/={len(data) // 3}"],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    base = server.stdout.readline().split()[1].rstrip("/")
    yield base, www
    server.terminate()
    server.wait(timeout=10)


def conda_at(prefix: str, url: str) -> list[str]:
    return ["-e", f"anaconda_prefix={prefix}", "-e", f"anaconda_installer_url={url}"]


def test_truncated_installer_download_is_resumed(fingerprint, installer_server) -> None:
    COUNTS["injected"] += 1
    base, www = installer_server
    ar.sh(HOST, f"rm -f {DOWNLOADED}")
    run = ar.play(*conda_at("/opt/conda-fault-a", f"{base}/trunc/{INSTALLER}"), limit=HOST, tags="anaconda")
    assert run.returncode == 0, run.stdout[-4000:]
    log = (www / "access.log").read_text().splitlines()
    # "<time> GET <path> <status> <bytes>"; preflight's URL probe asks for one byte (206 1) before any change
    served = [(line.split()[3], int(line.split()[4])) for line in log if "/trunc/" in line]
    downloads = [entry for entry in served if entry != ("206", 1)]
    assert [status for status, _ in downloads] == ["200", "206"], log
    assert sum(size for _, size in downloads) == (www / "trunc" / INSTALLER).stat().st_size, log
    assert ar.sh(HOST, "/opt/conda-fault-a/bin/conda --version").stdout.strip() == "conda 99.1.0"
    again = ar.play(*conda_at("/opt/conda-fault-a", f"{base}/trunc/{INSTALLER}"), limit=HOST, tags="anaconda")
    assert again.returncode == 0 and ar.recap(again, HOST)["changed"] == 0, again.stdout[-3000:]
    survived(fingerprint)


def test_corrupted_installer_is_refused_before_it_runs(fingerprint, installer_server) -> None:
    COUNTS["injected"] += 1
    base, _ = installer_server
    ar.sh(HOST, f"rm -f {DOWNLOADED}")
    run = ar.play(*conda_at("/opt/conda-fault-b", f"{base}/corrupt/{INSTALLER}"), limit=HOST, tags="anaconda")
    assert run.returncode == 2, run.stdout[-3000:]
    text = ar.flat(run.stdout + run.stderr)
    assert f"Checksum mismatch for {INSTALLER}" in text and "The file was deleted and nothing was installed" in text
    assert ar.sh(HOST, "test -e /opt/conda-fault-b").returncode != 0, "nothing may be written to the prefix"
    assert ar.read(HOST, DOWNLOADED) is None
    rerun = ar.play(*conda_at("/opt/conda-fault-b", f"{base}/good/{INSTALLER}"), limit=HOST, tags="anaconda")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert ar.sh(HOST, "/opt/conda-fault-b/bin/conda --version").stdout.strip() == "conda 99.1.0"
    survived(fingerprint)


def test_too_little_space_for_the_prefix_stops_before_the_installer(fingerprint, installer_server) -> None:
    COUNTS["injected"] += 1
    base, _ = installer_server
    small = "/opt/conda-fault-c"
    mounted = ar.sh(HOST, f"mkdir -p {small} && mount -t tmpfs -o size=8m,mode=0755 aiws-small {small}", privileged=True)
    assert mounted.returncode == 0, mounted.stderr
    try:
        run = ar.play(*conda_at(small, f"{base}/good/{INSTALLER}"), limit=HOST, tags="anaconda")
        assert run.returncode == 2, run.stdout[-3000:]
        text = ar.flat(run.stdout + run.stderr)
        assert f"Not enough space for anaconda 2099.01-0 in {small}: the filesystem mounted at {small} has" in text
        assert "The installer did not run; nothing changed" in text
        assert ar.sh(HOST, f"ls -A {small}").stdout.strip() == ""
    finally:
        ar.sh(HOST, f"umount {small} && rmdir {small}", privileged=True)
    normal_rerun("anaconda,pymirrors")
    survived(fingerprint)


def test_killed_during_the_anaconda_install(fingerprint, installer_server, tmp_path: Path) -> None:
    COUNTS["injected"] += 1
    base, _ = installer_server
    prefix = "/opt/conda-fault-d"
    settings = conda_at(prefix, f"{base}/good/{INSTALLER}")
    killed = ar.start(*settings, limit=HOST, tags="anaconda", log=tmp_path / "killed.log")
    try:
        ar.wait_for("the installer running", lambda: ar.sh(HOST, f"pgrep -f '[b]ash {DOWNLOADED}'").returncode == 0,
                    timeout=600, every=0.1)
    finally:
        ar.kill(killed)
    # [x]yz: a pattern that does not match the shell running pkill itself.
    ar.sh(HOST, f"pkill -KILL -f '[b]ash {DOWNLOADED}'; pkill -KILL -f '[{prefix[0]}]{prefix[1:]}/bin/python'; true")
    state = ar.sh(HOST, f"ls -A {prefix}; test -e {prefix}/conda-meta/history && echo INSTALLER-FINISHED").stdout.split()
    NOTES.append(f"killed during the Anaconda install: {prefix} holds {' '.join(state)}")
    assert ".aiws-installing.json" in state and ".aiws-install.json" not in state, state
    rerun = ar.play(*settings, limit=HOST, tags="anaconda")
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert "Run the installer in batch mode (repair)" in rerun.stdout
    assert ar.sh(HOST, f"{prefix}/bin/conda --version").stdout.strip() == "conda 99.1.0"
    assert ar.read(HOST, f"{prefix}/.aiws-installing.json") is None
    assert ar.read_json(HOST, f"{prefix}/.aiws-install.json")["version"] == "2099.01-0"
    # Back to the inventory's own prefix: converged, and changing nothing the second time.
    normal_rerun("anaconda,pymirrors")
    again = normal_rerun("anaconda,pymirrors")
    assert ar.recap(again, HOST)["changed"] == 0
    survived(fingerprint)


# --- the host is reinstalled: a fresh root, the old /home and /opt -------------------------------

@pytest.fixture(scope="module")
def reinstalled(tmp_path_factory: pytest.TempPathFactory):
    """A fresh container from the same image, with copies of the old host's /home and /opt as volumes."""
    keep = Path(tempfile.mkdtemp(prefix="aiws-reinstall-", dir=str(CACHE)))
    copy = subprocess.run(f"podman exec {HOST} tar --acls --xattrs -cpf - /home /opt | tar --acls --xattrs -xpf - -C {keep}",
                          shell=True, capture_output=True, text=True, check=False)
    assert copy.returncode == 0, copy.stderr
    image = subprocess.run(["podman", "inspect", "-f", "{{.ImageName}}", HOST], capture_output=True, text=True,
                           check=True).stdout.strip()
    subprocess.run(["podman", "rm", "-f", REINSTALLED], capture_output=True, check=False)
    subprocess.run(["podman", "run", "-d", "--name", REINSTALLED, "--hostname", "aiws-reinstalled", "--systemd=always",
                    "--network", "host", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
                    "-v", f"{keep}/home:/home", "-v", f"{keep}/opt:/opt", image, "/sbin/init"],
                   check=True, capture_output=True)
    inv = tmp_path_factory.mktemp("reinstall") / "inventory.yml"
    group_vars = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent / "group_vars"
    inv.write_text(yaml.safe_dump({"all": {"children": {"workstations": {"children": {"gpu_ada": {"hosts": {
        REINSTALLED: {"ansible_connection": "podman", "ansible_podman_executable": "podman"}}}}}}}}))
    (inv.parent / "group_vars").symlink_to(group_vars)
    try:
        yield inv
    finally:
        subprocess.run(["podman", "rm", "-f", REINSTALLED], capture_output=True, check=False)
        shutil.rmtree(keep, ignore_errors=True)


def test_reprovisioning_after_a_reinstall_keeps_users_environments(fingerprint, reinstalled) -> None:
    COUNTS["injected"] += 1
    ar.wait_booted(REINSTALLED)
    # The old host's users come back first, in the same order (as a directory service would keep them).
    for user in ("labuser", "alice", "bob"):
        uid, gid = ar.sh(HOST, f"id -u {user}; id -g {user}").stdout.split()
        made = ar.sh(REINSTALLED, f"groupadd --gid {gid} {user} && useradd --uid {uid} --gid {gid} --shell /bin/bash {user}")
        assert made.returncode == 0, made.stderr
    # The stages that hold users' work; the GPU stages keep nothing of theirs and are proven from a
    # fresh container by the converge itself.
    run = ar.play(limit=REINSTALLED, tags="mirrors,anaconda,pymirrors", inv=reinstalled)
    assert run.returncode == 0, run.stdout[-4000:]
    assert "Run the installer in batch mode (keep)" in run.stdout, "the kept installation must not be reinstalled"
    again = ar.play(limit=REINSTALLED, tags="mirrors,anaconda,pymirrors", inv=reinstalled)
    assert again.returncode == 0 and ar.recap(again, REINSTALLED)["changed"] == 0, again.stdout[-3000:]
    # Still working: alice sees and uses her environment and can write to it; her files are hers.
    use = ar.sh(REINSTALLED, "su - alice -c 'conda env list && conda activate alice-proj && python -c \"print(6*7)\" "
                             f"&& touch {PREFIX}/envs/alice-proj/written-after-reinstall'")
    assert use.returncode == 0, use.stdout + use.stderr
    assert "alice-proj" in use.stdout and "42" in use.stdout
    owners = ar.sh(REINSTALLED, "stat -c '%U %n' /home/alice/thesis.txt /home/bob/data.csv").stdout
    assert "alice /home/alice/thesis.txt" in owners and "bob /home/bob/data.csv" in owners
    survived(fingerprint, container=REINSTALLED)


def test_zz_fault_counts(record_property) -> None:
    # printed at the end of the run by conftest.py (aiws_summary), also from a worker of pytest -n
    record_property("aiws_summary", "".join(f"  {note}\n" for note in NOTES)
                    + f"fault suite: faults injected {COUNTS['injected']}, survived {COUNTS['survived']}, "
                    f"files lost {COUNTS['files_lost']}{' ' + ', '.join(LOST) if LOST else ''}")
    out = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if out:
        Path(out, "fault-counts.json").write_text(json.dumps(dict(COUNTS, lost=LOST, notes=NOTES), indent=2) + "\n")
    assert COUNTS["injected"] > 0 and COUNTS["injected"] == COUNTS["survived"] and COUNTS["files_lost"] == 0
