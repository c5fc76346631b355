"""apt_cache: four workstations provisioned at once through one apt-cacher-ng fetch from upstream
within 1.1x of the bytes one of them needs (a package installed one host after the other: exactly
once); removing the cache host from the inventory removes the proxy on the next run.

Runs its own five containers (one cache host, four workstations) from the scenario's image, next
to the molecule ones, converges `site.yml --tags mirrors` on them and removes them afterwards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import aiws_runs as ar
import pytest
import yaml
from aiws_runs import wait_booted

PORT = os.environ.get("AIWS_APT_MIRROR_PORT", "8100")
MIRROR = f"http://127.0.0.1:{PORT}"
CACHE_PORT = int(os.environ.get("AIWS_APT_CACHE_PORT", "8101"))
# Container names carry a suffix, as in molecule.yml (aiws-pascal-${AIWS_TEST_SUFFIX:-main}).
SUFFIX = "-" + (os.environ.get("AIWS_TEST_SUFFIX") or "main")
IMAGE = os.environ.get("AIWS_TEST_IMAGE") or "localhost/aiws-debian12:latest"
CACHE_HOST = f"aiws-acng{SUFFIX}"
CLIENTS = [f"aiws-ws{i}{SUFFIX}" for i in range(1, 5)]
PROXY_LOG = Path(os.environ.get("AIWS_TEST_CACHE", "/var/cache/aiws-test")) / f"apt-mirror/proxy-{PORT}.log"
# fx_apt_mirror.py's access log: '<date> <time> "GET <path> HTTP/1.1" <status> <bytes> "<User-Agent>"'.
MIRROR_GET = re.compile(r'"GET (?P<path>/\S+\.deb) HTTP/[\d.]+" 200 (?P<bytes>\d+) "(?P<agent>[^"]*)"$')
PACKAGE = "figlet"  # installed by no other test: the shared proxy's log counts its downloads


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


def inventory(path: Path, with_cache: bool) -> Path:
    data = {
        "all": {
            "vars": {
                "ansible_connection": "containers.podman.podman",
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_become": True,
                "aiws_gpus": ["10de:2684"],
                "aiws_cuda_version": "12.4",
                "aiws_mirror_profile": "custom",
                "aiws_mirror_allow_http": True,
                "aiws_mirror_custom": {"apt": {"debian": f"{MIRROR}/debian", "debian_security": f"{MIRROR}/debian-security"}},
                "apt_mirror_security": "mirror",
                "apt_cache_port": CACHE_PORT,
                "apt_cache_bind_address": "127.0.0.1",
                "apt_cache_proxy_host": "127.0.0.1",
                "apt_cache_upstream_ports": [80, 443, int(PORT)],
                # Preflight checks every stage's inputs; these hosts get Miniforge, which has no terms to accept.
                "anaconda_flavor": "miniforge",
            },
            "children": {
                "workstations": {"hosts": {c: None for c in CLIENTS}},
                "apt_cache": {"hosts": {CACHE_HOST: None} if with_cache else {}},
            },
        }
    }
    path.write_text(yaml.safe_dump(data))
    return path


def play(inv: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The mirrors stage on the whole fleet at once (five hosts, so more forks than ansible's five)."""
    return ar.play(*extra, inv=inv, limit=None, tags="mirrors", forks=10)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    names = [CACHE_HOST, *CLIENTS]
    podman("rm", "-f", *names, check=False)
    for name in names:
        podman("run", "-d", "--name", name, "--hostname", name, "--network", "host", "--systemd", "always",
               "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", IMAGE, "/sbin/init")
    for name in names:
        wait_booted(name)
    yield tmp_path_factory.mktemp("fleet")
    podman("rm", "-f", *names, check=False)


def proxy_log_lines() -> list[str]:
    return PROXY_LOG.read_text(errors="replace").splitlines() if PROXY_LOG.exists() else []


def test_four_workstations_fetch_about_one_hosts_worth_through_the_cache(fleet: Path) -> None:
    start = len(proxy_log_lines())
    run = play(inventory(fleet / "with-cache.yml", with_cache=True))
    assert run.returncode == 0, run.stdout[-4000:]
    for client in CLIENTS:
        proxy = podman("exec", client, "cat", "/etc/apt/apt.conf.d/01aiws-proxy").stdout
        assert f'Acquire::http::Proxy "http://127.0.0.1:{CACHE_PORT}/";' in proxy
        assert 'Acquire::https::Proxy "DIRECT";' in proxy
        # apt retries what the cache fails at once: its delayed retry after apt-cacher-ng's 503 never came.
        config = podman("exec", client, "apt-config", "dump").stdout
        assert 'Acquire::Retries::Delay "false";' in config, config[-2000:]
    for client in CLIENTS:  # one after the other, so only the first can miss the cache
        install = podman("exec", "-e", "DEBIAN_FRONTEND=noninteractive", client,
                         "apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE, check=False)
        assert install.returncode == 0, install.stderr
    deb = re.compile(rf"/pool/main/{PACKAGE[0]}/{PACKAGE}/{PACKAGE}_[^|/]+\.deb$")
    # apt-cacher-ng writes its log lines after the transfer ends, buffered: on a loaded machine the
    # last client's line may come a little after its apt-get returned.
    deadline = time.monotonic() + 60
    while True:
        log = podman("exec", CACHE_HOST, "cat", "/var/log/apt-cacher-ng/apt-cacher.log").stdout.splitlines()
        fetched = [line for line in log if "|I|" in line and deb.search(line)]
        served = [line for line in log if "|O|" in line and deb.search(line)]
        if len(served) >= len(CLIENTS) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert len(fetched) == 1, "\n".join(log[-40:])
    assert len(served) == len(CLIENTS), "\n".join(log[-40:])
    upstream = [line for line in proxy_log_lines()[start:] if f"/pool/main/{PACKAGE[0]}/{PACKAGE}/" in line]
    assert len(upstream) == 1, upstream
    # What the four concurrent runs cost upstream, counted where the bytes leave it: the mirror's access log,
    # by apt-cacher-ng's own User-Agent ("Apt-Cacher-NG/3.7.4" on bookworm; the other worker's machines reach
    # the same mirror directly, as apt). apt-cacher-ng does not always join a download already under way:
    # with four clients asking for the same .deb within the same second it has fetched one twice (seen in CI
    # and here: python3-apt and python-apt-common, 223 kB over 3.1 MB). The project's target (issue 14) is
    # the fleet's upstream bytes within 1.1x of one host's; and no package may go upstream once per client.
    fetched_by_cache = [(m["path"], int(m["bytes"])) for line in proxy_log_lines()[start:]
                        if (m := MIRROR_GET.search(line)) and "Apt-Cacher-NG/" in m["agent"]]
    assert fetched_by_cache, "apt-cacher-ng fetched nothing from the mirror"
    times = Counter(path for path, size in fetched_by_cache if size)  # requests it dropped after the headers cost nothing
    whole: dict[str, int] = {}
    for path, size in fetched_by_cache:
        whole[path] = max(size, whole.get(path, 0))
    one_host_bytes = sum(whole.values())  # each package once, whole: what one host needed
    fleet_bytes = sum(size for _path, size in fetched_by_cache)
    print(f"fleet cache: {len(times)} packages, {fleet_bytes} bytes from upstream for {len(CLIENTS)} clients, "
          f"{fleet_bytes / one_host_bytes:.2f}x one host's {one_host_bytes}; fetched more than once: "
          f"{ {path: n for path, n in times.items() if n > 1} }")
    assert max(times.values()) < len(CLIENTS), times
    assert fleet_bytes <= 1.1 * one_host_bytes, (fleet_bytes, one_host_bytes, times)
    # apt's index in two turns (aiws_plan.apt_cache_turn): the first client's apt-get update fills the cache,
    # then the other three read the index files from it.
    first_turn = run.stdout.split("Check the new sources with apt-get update (first of each kind)]", 1)[1]
    first_turn = first_turn.split("TASK [", 1)[0]
    results = sorted(re.findall(r"^(\w+): \[([^]]+)\]", first_turn, re.MULTILINE), key=lambda r: r[1])
    assert results == [("changed", CLIENTS[0])] + [("skipping", c) for c in CLIENTS[1:]], first_turn


def test_removing_the_cache_host_removes_the_proxy(fleet: Path) -> None:
    run = play(inventory(fleet / "without-cache.yml", with_cache=False))
    assert run.returncode == 0, run.stdout[-4000:]
    for client in CLIENTS:
        assert podman("exec", client, "test", "-e", "/etc/apt/apt.conf.d/01aiws-proxy", check=False).returncode == 1
        update = podman("exec", client, "apt-get", "update", check=False)
        assert update.returncode == 0, update.stderr
        fact = json.loads(podman("exec", client, "cat", "/etc/ansible/facts.d/aiws_apt_mirror.fact").stdout)
        assert fact["archive"] == f"{MIRROR}/debian"
