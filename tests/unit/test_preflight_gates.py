"""Runs that cannot do their job stop at once, saying why: an inventory without workstations, a report
folder the controller cannot write; and a fingerprint written in lower case means the same key in
preflight and in the CUDA stage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import serve_www

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def playbook(*args: str, tmp: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    run_env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp / "facts"), **(env or {}))
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=ROOT, env=run_env, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.mark.parametrize("kind", ["missing", "empty", "no-workstations"])
def test_an_inventory_without_workstations_stops_naming_it(tmp_path: Path, kind: str) -> None:
    inventory = tmp_path / "inventory"
    if kind == "empty":
        inventory.mkdir()
        (inventory / "hosts.yml").write_text("all:\n  children:\n    workstations:\n      hosts: {}\n")
    elif kind == "no-workstations":
        inventory.mkdir()
        (inventory / "hosts.yml").write_text("all:\n  children:\n    gpu_nodes:\n      hosts:\n        ws01: {}\n")
    reports = tmp_path / "reports"
    run = playbook("site.yml", "-i", str(inventory), "-e", f"report_dir={reports}", tmp=tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]
    assert f"The inventory read ({inventory})" in out and "no host in the group workstations" in out
    assert "Traceback" not in out
    assert not reports.exists(), "no report of 0 hosts"


def local_inventory(tmp: Path, values: dict) -> Path:
    inv = tmp / "inv"
    shutil.copytree(ROOT / "inventories/lab/group_vars", inv / "group_vars")
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"workstations": {"hosts": {"gate": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "aiws_gpus": ["10de:2684"], **values}}}}}}))
    return inv


def test_a_report_folder_the_controller_cannot_write_stops_in_preflight(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    inv = local_inventory(tmp_path, {"report_dir": str(blocker / "reports")})
    run = playbook("site.yml", "-i", str(inv), "--check", "--tags", "preflight", tmp=tmp_path)
    assert run.returncode != 0, run.stdout[-3000:]
    assert f"report_dir {blocker}/reports cannot be written on the controller ({blocker} is not a folder)" in run.stdout
    assert "Preflight | check inputs and plan each host" in run.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder")
def test_a_read_only_report_folder_stops_in_preflight(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    inv = local_inventory(tmp_path, {"report_dir": str(locked / "reports")})
    run = playbook("site.yml", "-i", str(inv), "--check", "--tags", "preflight", tmp=tmp_path)
    assert run.returncode != 0 and "cannot write" in run.stdout


@pytest.fixture(scope="module")
def signed_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A throwaway signing key: its armored public key file and its fingerprint (upper case, as gpg prints it)."""
    if not shutil.which("gpg"):
        pytest.skip("gpg is needed")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "aiws test <aiws@example.invalid>",
                    "ed25519", "sign", "never"], env=env, check=True, capture_output=True)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env, check=True,
                             capture_output=True, text=True).stdout
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    key = home / "key.pub"
    key.write_text(subprocess.run(["gpg", "--batch", "--armor", "--export", fpr], env=env, check=True,
                                  capture_output=True, text=True).stdout)
    return key, fpr


def test_a_lower_case_fingerprint_is_the_same_key_in_the_cuda_stage(tmp_path: Path, signed_key: tuple[Path, str]) -> None:
    key, fpr = signed_key
    repo = tmp_path / "www/repos/debian12/x86_64"
    repo.mkdir(parents=True)
    shutil.copy(key, repo / "test.pub")
    with serve_www(tmp_path / "www") as base:
        run = check_repository_tasks(tmp_path, base, fpr)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # The key was fetched and compared (it is not installed here), and it matched.
    assert "TASK [cuda_toolkit : repository | Refuse a key that is not the pinned one]" in run.stdout


def check_repository_tasks(tmp_path: Path, base: str, fpr: str) -> subprocess.CompletedProcess[str]:
    """The cuda_toolkit role's input checks and repository tasks, in check mode, with fpr in lower case."""
    play = tmp_path / "repository.yml"
    play.write_text(yaml.safe_dump([{
        "name": "The CUDA stage's repository tasks, in check mode",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {
            "ansible_python_interpreter": sys.executable,
            "aiws_plan": {"distro": "debian12", "cuda_repo": "debian12/x86_64", "stack": {"driver_repo": "debian"},
                          "mirror": {"profile": "official", "nvidia_cuda": "https://unused.invalid"}},
            "aiws_mirror_allow_http": True,
            "cuda_toolkit_repo_base": f"{base}/repos",
            "cuda_toolkit_key_file": "test.pub",
            "cuda_toolkit_keyring": str(tmp_path / "keyring.gpg"),
            # gpg's spaced form in lower case, as an admin may paste it
            "cuda_toolkit_key_fingerprint": " ".join(fpr[i:i + 4] for i in range(0, 40, 4)).lower(),
        },
        "tasks": [
            {"name": "Check the inputs as preflight does",
             "ansible.builtin.include_role": {"name": "cuda_toolkit", "tasks_from": "assert.yml"}},
            {"name": "Fetch and check the key",
             "ansible.builtin.include_role": {"name": "cuda_toolkit", "tasks_from": "repository.yml"}},
        ],
    }]))
    return playbook(str(play), "-i", "localhost,", "--check", tmp=tmp_path)
