"""What a person checks by hand on a freshly provisioned container, stage-independent."""

from __future__ import annotations


def test_systemd_is_pid_1_and_running(host) -> None:
    assert host.process.get(pid=1).comm == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in {"running", "degraded"}


def test_apt_index_was_fetched(host) -> None:
    lists = host.run("find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' | wc -l")
    assert int(lists.stdout.strip()) > 0


def test_state_dir_is_root_only_writable(host) -> None:
    state = host.file("/var/lib/aiws")
    assert state.is_directory
    assert state.user == "root" and state.group == "root"
    assert state.mode == 0o755
