"""apt_mirror: switch to the loopback mirror, update, install, restore, fail safely, race mirrors.
The converge switched every host to the custom profile: Debian 12 to the loopback mirror of
tests/fixtures/fx_apt_mirror.py, Ubuntu to the simulated archive of tests/fixtures/fx_ubuntu_archive.py
(22.04: one-line sources.list; 24.04: deb822 ubuntu.sources). The cycle tests at the end re-run
`site.yml --tags mirrors` on one Debian host with other settings and leave it switched again."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import aiws_runs
import pytest
from machines import machine

ROOT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
PORT = os.environ.get("AIWS_APT_MIRROR_PORT", "8100")
MIRROR = f"http://127.0.0.1:{PORT}"
DEAD = "http://127.0.0.1:8119"  # nothing listens there (the port range 8100-8119 is this test's)
# Container names carry a suffix, as in molecule.yml (aiws-pascal-${AIWS_TEST_SUFFIX:-main}).
SUFFIX = "-" + (os.environ.get("AIWS_TEST_SUFFIX") or "main")
CYCLE_HOST = f"aiws-pascal{SUFFIX}"
IMAGE = os.environ.get("AIWS_TEST_IMAGE") or "localhost/aiws-debian12:latest"
CACHE = Path(os.environ.get("AIWS_TEST_CACHE", "/var/cache/aiws-test"))
SOURCES = "/etc/apt/sources.list.d/debian.sources"
BACKUPS = "/var/backups/aiws/apt-mirror"
UBUNTU_PORT = os.environ.get("AIWS_UBUNTU_ARCHIVE_PORT") or str(int(PORT) + 10)
UBUNTU = f"http://127.0.0.1:{UBUNTU_PORT}/ubuntu"
UBUNTU_IMAGES = {"ubuntu22.04": "AIWS_TEST_IMAGE_UBUNTU2204", "ubuntu24.04": "AIWS_TEST_IMAGE_UBUNTU2404"}


def image_original(path: str = "/etc/apt/sources.list", image: str = IMAGE) -> bytes:
    """A file as the distribution image has it (what debootstrap or the image builder wrote)."""
    out = subprocess.run(["podman", "run", "--rm", "--network", "none", image, "cat", path], check=True, capture_output=True)
    return out.stdout


def debian(host) -> None:
    if machine(host).family != "debian":
        pytest.skip("Debian's sources; the Ubuntu tests are below")


def ubuntu(host):
    m = machine(host)
    if m.family != "ubuntu":
        pytest.skip("Ubuntu's sources")
    return m


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the converged state (both hosts) ---------------------------------------------------------


def test_debian_sources_point_at_the_loopback_mirror(host) -> None:
    debian(host)
    text = host.file(SOURCES).content_string
    assert host.file(SOURCES).mode == 0o644
    assert text.startswith("#\n# Ansible managed")
    stanzas = [s for s in text.split("\n\n") if "Types:" in s]
    assert len(stanzas) == 2
    assert f"URIs: {MIRROR}/debian\n" in stanzas[0]
    assert "Suites: bookworm bookworm-updates bookworm-backports\n" in stanzas[0]
    assert "Components: main contrib non-free non-free-firmware\n" in stanzas[0]
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in stanzas[0]
    assert f"URIs: {MIRROR}/debian-security\n" in stanzas[1]
    assert "Suites: bookworm-security\n" in stanzas[1]
    assert all(s.count("Types: deb\n") == 1 for s in stanzas), "deb-src must be off"


def test_one_line_sources_list_is_neutralised(host) -> None:
    debian(host)
    text = host.file("/etc/apt/sources.list").content_string
    active = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert active == [], "sources.list still has active entries next to debian.sources"
    assert SOURCES in text


def test_original_is_backed_up_with_a_manifest(host) -> None:
    debian(host)
    snaps = host.run(f"ls -1 {BACKUPS}/snapshots").stdout.split()
    assert snaps, "no backup folder"
    oldest = f"{BACKUPS}/snapshots/{min(snaps)}"
    assert re.match(r"^\d{8}T\d{6}\d*Z$", min(snaps))
    assert host.file(oldest).mode == 0o700
    manifest = json.loads(host.file(f"{oldest}/manifest.json").content_string)
    entries = {f["path"]: f for f in manifest["files"]}
    original = image_original()
    assert entries["/etc/apt/sources.list"]["state"] == "present"
    assert entries["/etc/apt/sources.list"]["sha256"] == sha(original)
    assert entries[SOURCES]["state"] == "absent"
    backup = f"{oldest}/{entries['/etc/apt/sources.list']['backup']}"
    assert host.run(f"sha256sum {backup}").stdout.split()[0] == sha(original)


def test_apt_update_and_install_go_through_the_mirror(host) -> None:
    debian(host)
    update = host.run("apt-get update")
    assert update.rc == 0, update.stderr
    assert f"{MIRROR}/debian bookworm InRelease" in update.stdout
    assert not re.search(r"^(W|E):", update.stderr, re.MULTILINE), update.stderr
    policy = host.run("apt-cache policy").stdout
    assert f"{MIRROR}/debian bookworm/main amd64 Packages" in policy
    assert "deb.debian" not in policy and "security.debian" not in policy
    host.run("apt-get remove -y -q hello")
    install = host.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends hello")
    assert install.rc == 0, install.stderr
    assert f"Get:1 {MIRROR}/debian bookworm/main amd64 hello" in install.stdout
    assert host.package("hello").is_installed


def test_dpkg_lock_wait_is_configured(host) -> None:
    conf = host.file("/etc/apt/apt.conf.d/90aiws-lock-timeout")
    assert 'DPkg::Lock::Timeout "600";' in conf.content_string


def test_each_successful_apt_update_is_stamped(host) -> None:
    """apt leaves /var/lib/apt/lists alone when no index changed; the stamp gives the index's real age
    (the apt module's cache_valid_time, preflight's aiws_apt_index_age)."""
    conf = host.file("/etc/apt/apt.conf.d/15aiws-update-stamp")
    assert "APT::Update::Post-Invoke-Success" in conf.content_string and conf.mode == 0o644
    stamp = "/var/lib/apt/periodic/update-success-stamp"
    assert host.run(f"touch -d '-1 day' {stamp}").rc == 0
    update = host.run("apt-get update -q")
    assert update.rc == 0, update.stderr
    age = int(host.check_output(f"echo $(( $(date +%s) - $(stat -c %Y {stamp}) ))"))
    assert age < 300, f"apt-get update passed but the stamp is {age} s old"


def test_choice_is_recorded(host) -> None:
    debian(host)
    fact = json.loads(host.file("/etc/ansible/facts.d/aiws_apt_mirror.fact").content_string)
    assert fact["profile"] == "custom"
    assert fact["archive"] == f"{MIRROR}/debian"
    assert fact["sources"] == SOURCES


# --- Ubuntu: the official sources of the image replaced by the simulated archive -----------------


def test_ubuntu_sources_point_at_the_loopback_archive_in_the_release_format(host) -> None:
    m = ubuntu(host)
    codename = {"ubuntu22.04": "jammy", "ubuntu24.04": "noble"}[m.distro]
    if m.distro == "ubuntu22.04":
        text = host.file("/etc/apt/sources.list").content_string
        active = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        components = "main restricted universe multiverse"
        assert active == [f"deb {UBUNTU}/ {s} {components}" for s in (codename, f"{codename}-updates", f"{codename}-backports",
                                                                        f"{codename}-security")]
        assert not host.file("/etc/apt/sources.list.d/ubuntu.sources").exists
    else:
        text = host.file("/etc/apt/sources.list.d/ubuntu.sources").content_string
        stanzas = [s for s in text.split("\n\n") if "Types:" in s]
        assert len(stanzas) == 2
        assert f"URIs: {UBUNTU}\n" in stanzas[0] and f"Suites: {codename} {codename}-updates {codename}-backports\n" in stanzas[0]
        assert f"URIs: {UBUNTU}\n" in stanzas[1] and f"Suites: {codename}-security\n" in stanzas[1]
        assert all("Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg" in s for s in stanzas)
        legacy = host.file("/etc/apt/sources.list").content_string
        assert not [line for line in legacy.splitlines() if line.strip() and not line.startswith("#")]
    assert "archive.ubuntu.com" not in host.run("apt-cache policy").stdout


def test_ubuntu_original_sources_are_backed_up(host) -> None:
    m = ubuntu(host)
    image = os.environ.get(UBUNTU_IMAGES[m.distro]) or f"localhost/aiws-{m.distro}:latest"
    oldest = min(host.run(f"ls -1 {BACKUPS}/snapshots").stdout.split())
    manifest = json.loads(host.file(f"{BACKUPS}/snapshots/{oldest}/manifest.json").content_string)
    entries = {f["path"]: f for f in manifest["files"]}
    official = "/etc/apt/sources.list" if m.distro == "ubuntu22.04" else "/etc/apt/sources.list.d/ubuntu.sources"
    original = image_original(official, image)
    assert b"http://archive.ubuntu.com/ubuntu/" in original
    assert entries[official]["state"] == "present" and entries[official]["sha256"] == sha(original)


def test_ubuntu_apt_trusts_the_archive_and_installs_through_it(host) -> None:
    ubuntu(host)
    update = host.run("apt-get update")
    assert update.rc == 0, update.stderr
    assert not re.search(r"^(W|E):", update.stderr, re.MULTILINE), update.stderr
    assert f"{UBUNTU}" in update.stdout
    policy = host.run("apt-cache policy nvidia-utils-580").stdout
    assert re.search(r"500 http://127\.0\.0\.1:\d+/ubuntu \w+-updates/restricted amd64 Packages", policy), policy
    install = host.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends hello")
    assert install.rc == 0, install.stderr
    assert host.package("hello").is_installed


def test_ubuntu_choice_is_recorded(host) -> None:
    ubuntu(host)
    fact = json.loads(host.file("/etc/ansible/facts.d/aiws_apt_mirror.fact").content_string)
    assert fact["profile"] == "custom"
    assert fact["archive"] == UBUNTU


# --- cycle tests on one host: restore, fault, auto, back to the mirror ---------------------------


def converge(*extra: str, limit: str = CYCLE_HOST) -> subprocess.CompletedProcess[str]:
    """Run the real site.yml, mirrors stage only, against the molecule inventory."""
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    env = aiws_runs.env()
    cmd = ["ansible-playbook", str(ROOT / "site.yml"), "-i", str(inventory), "--tags", "mirrors", "--limit", limit, *extra]
    started = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    print(f"{' '.join(cmd[4:])}: rc={run.returncode} in {time.monotonic() - started:.0f}s")
    return run


def recap(run: subprocess.CompletedProcess[str], host: str = CYCLE_HOST) -> dict[str, int]:
    m = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", run.stdout, re.MULTILINE)
    assert m, run.stdout[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def task_results(run: subprocess.CompletedProcess[str], task: str) -> list[str]:
    """The result lines ("ok: [host]", "skipping: [host]") under one task of a run's output."""
    block = run.stdout.split(f"TASK [{task}]", 1)
    assert len(block) == 2, f"no task {task!r} in the output"
    return re.findall(r"^(?:ok|changed|skipping|failed|fatal): \[[^]]+\]", block[1].split("TASK [", 1)[0], re.MULTILINE)


REFRESH = "apt_mirror : Refresh the apt package index when it is stale (first of each kind)"


def read(path: str, name: str = CYCLE_HOST) -> bytes | None:
    out = subprocess.run(["podman", "exec", name, "cat", path], capture_output=True, check=False)
    return out.stdout if out.returncode == 0 else None


def extra(data: dict) -> list[str]:
    return ["-e", json.dumps(data)]


@pytest.fixture(scope="module")
def original() -> bytes:
    return image_original()


def test_cycle_1_restore_puts_the_original_back_byte_for_byte(original: bytes) -> None:
    run = converge("-e", "apt_mirror_restore=true")
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run)["failed"] == 0
    assert read("/etc/apt/sources.list") == original
    assert read(SOURCES) is None, "debian.sources did not exist before aiws and must be gone"
    listing = subprocess.run(["podman", "exec", CYCLE_HOST, "ls", "-1", f"{BACKUPS}/restored"], capture_output=True, text=True, check=False)
    assert listing.stdout.split(), "used backups must be kept under restored/"


def test_cycle_2_mirror_down_fails_clearly_and_leaves_the_original(original: bytes) -> None:
    # Preflight's URL probe would refuse the dead mirror before the stage (test_preflight.py proves it); off here,
    # so the stage's own check and rollback, the net for a mirror that fails after preflight, are tested.
    down = {"aiws_mirror_custom": {"apt": {"debian": f"{DEAD}/debian", "debian_security": f"{DEAD}/debian-security"}},
            "preflight_probe_urls": False}
    run = converge(*extra(down))
    assert run.returncode != 0
    assert recap(run)["failed"] == 1
    output = run.stdout + run.stderr  # ansible-core 2.19 prints the failure's message on stderr too
    assert f'apt-get update failed on the mirror "custom" ({DEAD}/debian)' in output
    assert f"failing URL {DEAD}/debian" in output
    assert "The previous sources are back in place" in output
    assert read("/etc/apt/sources.list") == original
    assert read(SOURCES) is None
    update = subprocess.run(["podman", "exec", CYCLE_HOST, "apt-get", "update"], capture_output=True, text=True, check=False)
    assert update.returncode == 0, update.stderr


def auto_vars(candidates: dict[str, str]) -> list[str]:
    return extra({
        "aiws_mirror_profile": "auto",
        "apt_mirror_auto_candidates": list(candidates),
        "apt_mirror_auto_profiles": {name: {"label": name, "apt": {"debian": url}} for name, url in candidates.items()},
        "apt_mirror_auto_timeout": 3,
    })


def test_cycle_3_auto_picks_the_fastest_healthy_mirror() -> None:
    candidates = {
        "slow": f"{MIRROR}/delay/900/debian",
        "dead": f"{DEAD}/debian",
        "lagging": f"{MIRROR}/stale/debian",   # answers fastest, but its Release is 30 days old
        "fast": f"{MIRROR}/delay/50/debian",
        "slower": f"{MIRROR}/delay/1500/debian",
    }
    run = converge(*auto_vars(candidates), "-e", "apt_mirror_security=official")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Chosen: fast" in run.stdout
    race = json.loads(read("/var/lib/aiws/apt-mirror-race.json") or b"{}")
    assert race["chosen"] == "fast"
    by_name = {r["name"]: r for r in race["results"]}
    assert by_name["fast"]["ok"] and by_name["slow"]["ok"] and by_name["slower"]["ok"]
    assert by_name["fast"]["seconds"] < by_name["slow"]["seconds"] < by_name["slower"]["seconds"]
    assert not by_name["dead"]["ok"] and not by_name["lagging"]["ok"]
    assert "stale" in by_name["lagging"]["reason"]
    assert race["elapsed"] < 3, "the probes must run in parallel"
    sources = (read(SOURCES) or b"").decode()
    assert f"URIs: {MIRROR}/delay/50/debian\n" in sources
    fact = json.loads(read("/etc/ansible/facts.d/aiws_apt_mirror.fact") or b"{}")
    assert fact["profile"] == "fast" and fact["auto_choice"] == "fast"
    again = converge(*auto_vars(candidates), "-e", "apt_mirror_security=official")
    assert recap(again)["changed"] == 0, "auto with a healthy previous choice must change nothing"
    # The first run's apt-get update left a fresh index (preflight's aiws_apt_index_age): no apt module call.
    assert task_results(again, REFRESH) == [f"skipping: [{CYCLE_HOST}]"]


def test_cycle_4_auto_keeps_the_current_sources_when_none_answers() -> None:
    before = read(SOURCES)
    run = converge(*auto_vars({"dead1": f"{DEAD}/debian", "dead2": "http://127.0.0.1:8118/debian"}))
    assert run.returncode == 0, run.stdout[-3000:]
    assert "none answered: the current sources stay" in run.stdout
    assert read(SOURCES) == before
    assert recap(run)["changed"] == 0


def test_cycle_4b_official_profile_adds_the_components_debians_driver_needs(original: bytes) -> None:
    """Profile official keeps the system's own archive, but Debian's driver (the plan for Pascal with CUDA 12.2)
    lives in non-free and contrib: the system's own entries are written with them added, backed up first."""
    snapshots = set(subprocess.run(["podman", "exec", CYCLE_HOST, "ls", "-1", f"{BACKUPS}/snapshots"],
                                   capture_output=True, text=True, check=False).stdout.split())
    run = converge("-e", "aiws_mirror_profile=official", "-e", "aiws_cuda_version=12.2")
    assert run.returncode == 0, run.stdout[-3000:]
    own = [line.split() for line in original.decode().splitlines() if line.startswith("deb ")]
    sources = (read(SOURCES) or b"").decode()
    assert f"URIs: {own[0][1].rstrip('/')}\n" in sources, "the system's own archive, not a mirror"
    assert "Components: main contrib non-free non-free-firmware\n" in sources
    assert "contrib non-free non-free-firmware added: the planned driver packages come from them" in sources
    after = set(subprocess.run(["podman", "exec", CYCLE_HOST, "ls", "-1", f"{BACKUPS}/snapshots"],
                               capture_output=True, text=True, check=False).stdout.split())
    assert len(after - snapshots) == 1, "the switch is backed up like any other"
    policy = subprocess.run(["podman", "exec", CYCLE_HOST, "apt-cache", "policy", "nvidia-kernel-dkms"],
                            capture_output=True, text=True, check=False).stdout
    assert re.search(r"535\.\S+ 500\n\s+500 \S+ bookworm/non-free amd64", policy), policy  # Debian's driver is visible
    again = converge("-e", "aiws_mirror_profile=official", "-e", "aiws_cuda_version=12.2")
    assert recap(again)["changed"] == 0


def test_cycle_5_back_to_the_converged_mirror() -> None:
    """Leaves the host as the converge did (the re-run with changed=0 is molecule's idempotence step)."""
    run = converge()
    assert run.returncode == 0, run.stdout[-3000:]
    # The index preflight found was fresh (cycle 4b's switch updated it): no apt module call.
    assert task_results(run, REFRESH) == [f"skipping: [{CYCLE_HOST}]"]
    assert f"URIs: {MIRROR}/debian\n" in (read(SOURCES) or b"").decode()
    assert f"URIs: {MIRROR}/debian-security\n" in (read(SOURCES) or b"").decode()

    # An index older than apt_mirror_cache_valid_time (3600 s; the apt module reads the lists folder's mtime
    # where apt leaves no update-success-stamp) is refreshed by a run that switches nothing.
    subprocess.run(["podman", "exec", CYCLE_HOST, "touch", "-d", "-2 hours", "/var/lib/apt/lists"], check=True)
    subprocess.run(["podman", "exec", CYCLE_HOST, "rm", "-f", "/var/lib/apt/periodic/update-success-stamp"], check=True)
    stale = converge()
    assert recap(stale)["changed"] == 0, stale.stdout[-3000:]
    assert task_results(stale, REFRESH) == [f"ok: [{CYCLE_HOST}]"]
    stamp = "/var/lib/apt/periodic/update-success-stamp"
    age = subprocess.run(["podman", "exec", CYCLE_HOST, "sh", "-c", f"echo $(( $(date +%s) - $(stat -c %Y {stamp}) ))"],
                         capture_output=True, text=True, check=True).stdout
    assert int(age) < 600, f"apt's index was not refreshed: {age} s old"
