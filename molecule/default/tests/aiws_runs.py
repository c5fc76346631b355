"""Helpers for the tests that run the real site.yml again against the converged containers
(test_apt_mirror.py's cycles, the driver, Anaconda and apt cache re-runs, test_zy_ubuntu_driver.py,
test_zz_faults.py): ansible-playbook with the
project's plugins and molecule's inventory, the play recap, files read through podman, the simulated
Ubuntu archive's switches and each machine's EFI variables."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
# The checkout as the collection aiws.workstation, as molecule.yml and ansible.cfg find it.
COLLECTIONS_PATH = f"{ROOT / 'collections'}:~/.ansible/collections:/usr/share/ansible/collections"
SUFFIX = "-" + (os.environ.get("AIWS_TEST_SUFFIX") or "main")
CACHE = Path(os.environ.get("AIWS_TEST_CACHE", "/var/cache/aiws-test"))
SECURE_BOOT = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
MOK_NEW = "MokNew-605dab50-e046-4300-abb6-3dd810dd8b23"


def env(**extra: str) -> dict[str, str]:
    """ansible-playbook's environment: molecule's settings plus the project's collection (as molecule.yml
    sets them), and any further ANSIBLE_* settings a test needs (ANSIBLE_FORKS for a fleet)."""
    return dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
        ANSIBLE_CALLBACKS_ENABLED="aiws.workstation.aiws_report",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        **extra,
    )


def inventory() -> Path:
    return Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent


def argv(*extra: str, limit: str | None, tags: str | None = None, playbook: str = "site.yml",
         inv: Path | None = None) -> list[str]:
    """The command line; limit=None runs on every host of the inventory (a fleet of the test's own)."""
    cmd = ["ansible-playbook", str(ROOT / playbook), "-i", str(inv or inventory())]
    if limit is not None:
        cmd += ["--limit", limit]
    if tags:
        cmd += ["--tags", tags]
    return cmd + list(extra)


def play(*extra: str, limit: str | None, tags: str | None = None, playbook: str = "site.yml", inv: Path | None = None,
         timeout: int = 1800, forks: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run a playbook to its end; prints what ran and how long it took."""
    cmd = argv(*extra, limit=limit, tags=tags, playbook=playbook, inv=inv)
    settings = env(ANSIBLE_FORKS=str(forks)) if forks else env()
    started = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, env=settings, cwd=ROOT, timeout=timeout, check=False)
    print(f"{' '.join(cmd[3:])}: rc={run.returncode} in {time.monotonic() - started:.0f}s")
    return run


def start(*extra: str, limit: str, tags: str | None = None, playbook: str = "site.yml",
          inv: Path | None = None, log: Path) -> subprocess.Popen[bytes]:
    """Start a playbook in its own process group (so it can be killed with everything it started)."""
    cmd = argv(*extra, limit=limit, tags=tags, playbook=playbook, inv=inv)
    out = log.open("wb")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env(), cwd=ROOT, start_new_session=True)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ansible-playbook and every process it started on this machine (podman exec clients included)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def recap(run: subprocess.CompletedProcess[str] | str, host: str) -> dict[str, int]:
    text = run if isinstance(run, str) else run.stdout
    m = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", text, re.MULTILINE)
    assert m, text[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def flat(text: str) -> str:
    return " ".join(text.split())


def sh(container: str, script: str, check: bool = False, privileged: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = ["podman", "exec"] + (["--privileged"] if privileged else []) + [container, "sh", "-c", script]
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def read(container: str, path: str) -> bytes | None:
    out = subprocess.run(["podman", "exec", container, "cat", path], capture_output=True, check=False)
    return out.stdout if out.returncode == 0 else None


def read_json(container: str, path: str) -> Any:
    data = read(container, path)
    return json.loads(data) if data else None


def wait_for(what: str, probe, timeout: float, every: float = 0.2) -> Any:
    """Poll probe() until it returns something true; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def archive(*args: str) -> None:
    """A switch of the simulated Ubuntu archive: `publish kernel-update`, `retract kernel-update`."""
    subprocess.run([sys.executable, str(ROOT / "tests/fixtures/fx_ubuntu_archive.py"), *args], check=True, capture_output=True)


def firmware(container: str) -> Path:
    """The machine's EFI variable store on this side (molecule.yml and scripts/molecule.sh mount it as /sys/firmware)."""
    return CACHE / "machines" / container / "firmware" / "efi" / "efivars"


def secure_boot(container: str, on: bool) -> None:
    """Turn the machine's Secure Boot on or off (the EFI variable's last byte), as its firmware setup would."""
    (firmware(container) / SECURE_BOOT).write_bytes(b"\x06\x00\x00\x00" + (b"\x01" if on else b"\x00"))


def wait_booted(container: str, timeout: float = 300) -> None:
    """Wait until the container's systemd has finished starting up (running or degraded).

    Right after `podman run` or `podman restart`, systemctl may not reach systemd yet and then answers
    "offline" at once instead of waiting; so ask again until systemd itself answers with its final state.
    """
    def state() -> str:
        left = max(1, int(deadline - time.monotonic()))
        run = subprocess.run(["podman", "exec", container, "timeout", str(left), "systemctl", "is-system-running", "--wait"],
                             capture_output=True, text=True, check=False)
        return run.stdout.strip() if run.stdout.strip() in ("running", "degraded") else ""

    deadline = time.monotonic() + timeout
    wait_for(f"{container} to boot (systemctl is-system-running: running or degraded)", state, timeout, every=0.5)


def podman_restart(container: str) -> None:
    """Restart the machine (the simulated Ubuntu boots its newest kernel) and wait until systemd is up."""
    subprocess.run(["podman", "restart", container], check=True, capture_output=True)
    wait_booted(container)
