"""data/installers.yml is complete and well formed; the fixture installer keeps Anaconda's contract."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = yaml.safe_load((ROOT / "data/installers.yml").read_text())["installers"]
PATTERNS = {"anaconda": "Anaconda3-{v}-Linux-{a}.sh", "miniforge": "Miniforge3-{v}-Linux-{a}.sh"}


@pytest.mark.parametrize("flavor", ["anaconda", "miniforge"])
def test_installer_data(flavor: str) -> None:
    entry = DATA[flavor]
    assert entry["default"] in entry["versions"]
    for version, arches in entry["versions"].items():
        assert set(arches) == {"x86_64", "aarch64"}, f"{flavor} {version}: both architectures"
        for arch, item in arches.items():
            assert item["file"] == PATTERNS[flavor].format(v=version, a=arch)
            assert re.fullmatch(r"[0-9a-f]{64}", item["sha256"])
            assert item["source"].strip()
            assert isinstance(item["confirmed"], int) and item["confirmed"] >= 1
            if item["confirmed"] == 1:
                assert "UNCONFIRMED" in item["source"], f"{item['file']}: a single source must say UNCONFIRMED"
    sums = [i["sha256"] for a in entry["versions"].values() for i in a.values()]
    assert len(sums) == len(set(sums))


def test_role_reads_the_same_file_patterns() -> None:
    role_vars = yaml.safe_load((ROOT / "roles/anaconda/vars/main.yml").read_text())
    assert role_vars["__anaconda_file_patterns"] == {k: v.replace("{v}", "{version}").replace("{a}", "{arch}")
                                                      for k, v in PATTERNS.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fx") / "anaconda"
    subprocess.run([sys.executable, str(ROOT / "tests/fixtures/fx_anaconda.py"), "build", str(out)], check=True,
                   capture_output=True)
    return out, json.loads((out / "installers.json").read_text())


def sh(*argv: str | Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, check=False)


def test_fixture_is_reproducible_and_published_sums_match(built, tmp_path: Path) -> None:
    out, manifest = built
    again = tmp_path / "again"
    subprocess.run([sys.executable, str(ROOT / "tests/fixtures/fx_anaconda.py"), "build", str(again)], check=True,
                   capture_output=True)
    for item in manifest["installers"].values():
        assert (out / item["file"]).read_bytes() == (again / item["file"]).read_bytes()
        assert (out / f"{item['file']}.sha256").read_text().split()[0] == item["sha256"]
    bad = manifest["badsum"]
    assert bad["sha256"] != bad["actual_sha256"]
    assert (out / f"{bad['file']}.sha256").read_text().split()[0] == bad["sha256"]


def test_fixture_follows_anacondas_command_line(built, tmp_path: Path) -> None:
    out, manifest = built
    old = out / manifest["installers"]["2098.01-0"]["file"]
    new = out / manifest["installers"]["2099.01-0"]["file"]
    prefix = tmp_path / "anaconda3"
    assert sh("bash", old, "-h").returncode == 2
    assert "-u           update an existing installation" in sh("bash", old, "-h").stdout
    assert sh("bash", old, "-p", prefix).returncode == 1, "no batch mode, no install"
    assert sh("bash", old, "-b", "-p", prefix).returncode == 0
    for path in ("bin/conda", "bin/python", "bin/pip", "condabin/conda", "etc/profile.d/conda.sh", "conda-meta/history"):
        assert (prefix / path).exists(), path
    again = sh("bash", old, "-b", "-p", prefix)
    assert again.returncode == 1 and "use the -u option" in again.stderr
    assert sh(prefix / "bin/conda", "create", "-y", "-n", "kept").returncode == 0
    assert sh("bash", new, "-b", "-u", "-p", prefix).returncode == 0
    assert sh(prefix / "bin/conda", "--version").stdout.strip() == "conda 99.1.0"
    assert (prefix / "envs/kept/conda-meta/history").exists()
    assert (prefix / "conda-meta/history").read_text().count("==> ") == 2


def test_fixture_conda_reads_condarc_like_conda(built, tmp_path: Path) -> None:
    out, manifest = built
    prefix = tmp_path / "anaconda3"
    sh("bash", out / manifest["installers"]["2099.01-0"]["file"], "-b", "-p", prefix)
    system = tmp_path / "system.condarc"
    (prefix / ".condarc").write_text(
        "channels:\n  - defaults\ndefault_channels:  #!final\n  - https://m.example/pkgs/main\n"
        "custom_channels:  #!final\n  conda-forge: https://m.example/cloud\nchannel_alias: https://m.example/cloud\n")
    system.write_text("default_channels:\n  - https://elsewhere.example/main\nchannels:\n  - conda-forge\n  - bioconda\n")
    env = dict(os.environ, CONDARC=str(system), HOME=str(tmp_path))
    info = json.loads(sh(prefix / "bin/conda", "info", "--json", env=env).stdout)
    assert info["channels"] == [
        "https://m.example/cloud/conda-forge/linux-64", "https://m.example/cloud/conda-forge/noarch",
        "https://m.example/cloud/bioconda/linux-64", "https://m.example/cloud/bioconda/noarch",
        "https://m.example/pkgs/main/linux-64", "https://m.example/pkgs/main/noarch",
    ]
    assert str(system) in info["config_files"]
    assert sh(prefix / "bin/conda", "create", "-y", "-p", tmp_path / "env1", env=env).returncode == 0
    assert len(list((prefix / "pkgs/cache").glob("*.json"))) == 6
    assert sh(prefix / "bin/conda", "clean", "-i", "-y", env=env).stdout.strip() == "Removed 6 index cache files."
    hook = sh(prefix / "bin/conda", "shell.bash", "hook").stdout
    assert "conda()" in hook and f"{prefix}/condabin" in hook
    activate = sh("bash", "-c", f". {prefix}/etc/profile.d/conda.sh && conda activate {tmp_path / 'env1'} "
                  "&& echo $CONDA_PREFIX && command -v python", env=env)
    assert activate.stdout.split() == [str(tmp_path / "env1"), str(tmp_path / "env1/bin/python")]


def test_fixture_installs_into_an_existing_prefix_with_u_and_states_its_size(built, tmp_path: Path) -> None:
    """As constructor's header (3.7 and later): -u only lifts the "already exists" check, so an empty
    directory (a mount point, or one the role made) is installed into; the size is in the header."""
    out, manifest = built
    new = out / manifest["installers"]["2099.01-0"]["file"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sh("bash", new, "-b", "-u", "-p", empty).returncode == 0
    assert sh(empty / "bin/conda", "--version").stdout.strip() == "conda 99.1.0"
    stated = re.search(rb'^total_installation_size_kb="(\d+)"$', new.read_bytes()[:8192], re.MULTILINE)
    assert stated, "the header must state total_installation_size_kb"
    used = sum(f.lstat().st_size for f in empty.rglob("*") if f.is_file() and not f.is_symlink())
    assert used <= int(stated.group(1)) * 1024


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs in a private mount namespace: root only")
def test_fixture_refuses_a_filesystem_too_small_as_constructor_does(built, tmp_path: Path) -> None:
    out, manifest = built
    new = out / manifest["installers"]["2099.01-0"]["file"]
    small = tmp_path / "small"
    small.mkdir()
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             f"mount -t tmpfs -o size=8m aiws-small {small} && bash {new} -b -u -p {small}"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ERROR: Not enough free disk space. Only" in result.stderr and "(leaving a 50 MB buffer)" in result.stderr
