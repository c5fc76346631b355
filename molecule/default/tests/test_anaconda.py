"""The shared Anaconda as its users meet it: group members share, outsiders are kept out.

The installation is the fixture distribution of tests/fixtures/fx_anaconda.py (a fake conda
that keeps conda's layout, command line and index-cache behaviour). alice and bob are in the
group `anaconda` (the role created them); carol is created here, outside the group.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import aiws_runs as ar
import pytest

PREFIX = "/opt/anaconda3"
GROUP = "anaconda"
# A member's own configuration, which the roles must never touch (and whose default_channels the
# system file's #!final overrides).
USER_CONDARC = "channels:\\n  - alice-own\\ndefault_channels:\\n  - https://elsewhere.example/pkgs/main\\n"
USER_PIP = "[global]\\ntimeout = 7\\n"


def as_user(host, user: str, script: str, login: bool = True, umask: str = "022"):
    """Run a script as a user: a login shell (su -), or a non-login interactive bash like a new terminal."""
    if login:
        return host.run(f"su - {user} -s /bin/bash -c {quote(f'umask {umask}; {script}')}")
    env = f"env -i HOME=/home/{user} USER={user} LOGNAME={user} PATH=/usr/local/bin:/usr/bin:/bin TERM=dumb"
    return host.run(f"runuser -u {user} -- {env} bash -i -c {quote(f'umask {umask}; {script}')}")


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@pytest.fixture(scope="module")
def ct(host):
    """The container itself: conftest.py already addresses every host through `podman exec`."""
    return host


@pytest.fixture(scope="module")
def outsider(ct):
    ct.run("id carol >/dev/null 2>&1 || useradd --create-home --shell /bin/bash carol")
    return "carol"


def test_prefix_is_root_and_group_setgid_with_default_acl(ct) -> None:
    prefix = ct.file(PREFIX)
    assert prefix.user == "root" and prefix.group == GROUP
    assert prefix.mode == 0o2770
    acl = ct.run(f"getfacl -p {PREFIX}").stdout
    for entry in ("default:user::rwx", "default:group::rwx", "default:other::---"):
        assert entry in acl
    # Every directory below carries the same default ACL and the setgid bit.
    bad = ct.run(f"find {PREFIX} -type d ! -perm -2070 | head -5").stdout.strip()
    assert bad == ""
    with_acl = ct.run(f"getfacl -R -p -d {PREFIX} 2>/dev/null | grep -c '^group::rwx'").stdout.strip()
    dirs = ct.run(f"find {PREFIX} -type d | wc -l").stdout.strip()
    assert with_acl == dirs


def test_installed_version_and_record(ct) -> None:
    assert ct.run(f"{PREFIX}/bin/conda --version").stdout.strip() == "conda 99.1.0"
    record = json.loads(ct.file("/etc/ansible/facts.d/aiws_anaconda.fact").content_string)
    assert record["version"] == "2099.01-0" and record["flavor"] == "anaconda"
    assert record["prefix"] == PREFIX and record["group"] == GROUP
    manifest = Path(os.environ.get("AIWS_TEST_CACHE", "/var/cache/aiws-test")) / "www/anaconda/installers.json"
    assert record["sha256"] == json.loads(manifest.read_text())["installers"]["2099.01-0"]["sha256"]
    history = ct.file(f"{PREFIX}/conda-meta/history").content_string
    assert history.count("==> ") == 1, "the installer ran more than once"


def test_installer_was_downloaded_in_the_background_from_the_driver_stage(ct) -> None:
    """The driver stage started the download (tasks/prefetch.yml, async, beside the driver, CUDA and
    cuDNN installs) and the Anaconda stage waited for it: ansible's record of that job says it fetched
    the installer; the installer's own download task then found the file complete (one installer run)."""
    jobs = ct.run("grep -l -s fetch-installer.sh /root/.ansible_async/*").stdout.split()
    assert jobs, "no background download was started"
    results = [json.loads(ct.file(job).content_string) for job in jobs]
    assert any(r.get("rc") == 0 and "downloaded http" in r.get("stdout", "") for r in results), results


def test_listed_users_are_group_members(ct) -> None:
    for user in ("alice", "bob"):
        assert GROUP in ct.user(user).groups


def test_member_files_stay_group_writable_whatever_the_umask(ct) -> None:
    work = f"{PREFIX}/envs/lab-a/work"
    a = as_user(ct, "alice", f"""
        conda env list | grep -q lab-a || conda create -y -n lab-a numpy
        mkdir -p {work} && echo from-alice > {work}/a.txt""", umask="077")
    assert a.rc == 0, a.stderr
    assert ct.file(work).group == GROUP and ct.file(f"{work}/a.txt").group == GROUP
    assert ct.file(f"{work}/a.txt").mode == 0o660
    b = as_user(ct, "bob", f"""
        echo from-bob >> {work}/a.txt && touch {work}/b.txt && mkdir -p {work}/bob
        conda env list | grep -q lab-b || conda create -y -n lab-b""", umask="077")
    assert b.rc == 0, b.stderr
    assert "NotWritableError" not in b.stderr
    assert ct.file(f"{work}/a.txt").content_string.split() == ["from-alice", "from-bob"]
    # bob rewrote the index cache files alice's `conda create` left in the shared pkgs/cache.
    caches = ct.run(f"stat -c '%U %a' {PREFIX}/pkgs/cache/*.json").stdout.split("\n")
    assert all(line.endswith("660") for line in caches if line)


def test_outsider_has_no_access_and_a_working_shell(ct, outsider) -> None:
    listing = as_user(ct, outsider, f"ls {PREFIX}")
    assert listing.rc != 0 and "Permission denied" in listing.stderr
    write = as_user(ct, outsider, f"touch {PREFIX}/envs/intruder")
    assert write.rc != 0
    shell = as_user(ct, outsider, "type conda >/dev/null 2>&1 && echo has-conda; echo shell-ok")
    assert shell.rc == 0 and shell.stdout.strip() == "shell-ok" and shell.stderr.strip() == ""
    terminal = as_user(ct, outsider, "echo terminal-ok", login=False)
    assert terminal.rc == 0 and "terminal-ok" in terminal.stdout
    assert "conda" not in terminal.stderr


def test_conda_activate_in_login_and_non_login_shells(ct) -> None:
    login = as_user(ct, "alice", "conda activate lab-a && echo $CONDA_PREFIX && command -v python")
    assert login.rc == 0, login.stderr
    assert login.stdout.split() == [f"{PREFIX}/envs/lab-a", f"{PREFIX}/envs/lab-a/bin/python"]
    terminal = as_user(ct, "bob", "type conda | head -n1; conda activate && command -v pip", login=False)
    assert terminal.rc == 0, terminal.stderr
    assert "conda is a function" in terminal.stdout and f"{PREFIX}/bin/pip" in terminal.stdout


def test_shell_setup_files(ct) -> None:
    profile = ct.file("/etc/profile.d/aiws-conda.sh")
    assert profile.user == "root" and profile.mode == 0o644
    assert f"{PREFIX}/etc/profile.d/conda.sh" in profile.content_string
    assert "BEGIN aiws anaconda" in ct.file("/etc/bash.bashrc").content_string


@pytest.fixture(scope="module")
def rerun(ct):
    """Run the anaconda and pymirrors stages again on the host, after alice's environment exists (one
    host per run: the container checks run on two workers, each with its own machines)."""
    made = as_user(ct, "alice", "conda env list | grep -q keep-a || conda create -y -n keep-a; "
                                f"echo precious > {PREFIX}/envs/keep-a/notes.txt; "
                                f"printf '{USER_CONDARC}' > ~/.condarc; mkdir -p ~/.config/pip; "
                                f"printf '{USER_PIP}' > ~/.config/pip/pip.conf")
    assert made.rc == 0, made.stderr
    return ar.play(limit=ct.backend.name, tags="anaconda,pymirrors", timeout=900)


def test_rerun_keeps_member_environments(ct, rerun) -> None:
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-2000:]
    name = ct.backend.name
    recap = [line for line in rerun.stdout.splitlines() if line.startswith(name + " ")]
    assert recap and " changed=0 " in recap[-1], recap
    assert ct.file(f"{PREFIX}/envs/keep-a/notes.txt").content_string == "precious\n"
    assert ct.file(f"{PREFIX}/envs/keep-a/conda-meta/history").exists
    history = ct.file(f"{PREFIX}/conda-meta/history").content_string
    assert history.count("==> ") == 1, "the re-run ran the installer again"
    # The member's own files are untouched.
    assert ct.run("cat /home/alice/.condarc").stdout == USER_CONDARC.replace("\\n", "\n")
    assert ct.run("cat /home/alice/.config/pip/pip.conf").stdout == USER_PIP.replace("\\n", "\n")
    assert ct.file("/home/alice/.condarc").user == "alice"
