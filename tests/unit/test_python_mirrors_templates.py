"""python_mirrors' templates rendered for every mirror profile of data/mirrors.yml, then parsed.

One ansible-playbook run on localhost (connection local, files written to a temporary directory
only) renders /etc/conda/.condarc, /etc/pip.conf and /etc/uv/uv.toml as the role would, with the
role's own defaults and vars and the profile resolved the way preflight resolves it
(official ⊕ site). The results must parse and carry exactly the profile's URLs.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/python_mirrors"
PROFILES = yaml.safe_load((ROOT / "data/mirrors.yml").read_text())["profiles"]
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook")


def merged(name: str) -> dict:
    """official ⊕ site, as preflight builds aiws_plan.mirror (recursive combine)."""
    def combine(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = combine(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out
    return combine(PROFILES["official"], PROFILES[name]) | {"profile": name, "allow_http": False}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if ANSIBLE_PLAYBOOK is None:
        pytest.fail("ansible-playbook not found (scripts/bootstrap.sh --test)")
    out = tmp_path_factory.mktemp("rendered")
    playbook = out / "playbook.yml"
    cases = [{"name": n, "mirror": merged(n), "channels": ch}
             for n in PROFILES for ch in (["defaults"],)] + [
        {"name": "tuna-miniforge", "mirror": merged("tuna"), "channels": ["conda-forge"]},
        {"name": "internal-http", "mirror": merged("official") | {"pypi": "http://devpi.lab.example:3141/root/pypi/+simple/"},
         "channels": []},
    ]
    playbook.write_text(yaml.safe_dump([{
        "name": "Render python_mirrors templates for every profile",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable, "cases": cases, "role": str(ROLE),
                 "templates": [{"src": "condarc.j2", "dest": "condarc"}, {"src": "pip.conf.j2", "dest": "pip.conf"},
                               {"src": "uv.toml.j2", "dest": "uv.toml"}]},
        "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
        "tasks": [
            {"name": "Render every template for every case in one go", "ansible.builtin.copy": {
                "dest": f"{out}/rendered.json", "mode": "0644",
                "content": "{% set r = {} %}{% for c in cases %}{% for t in templates %}"
                           "{% set _ = r.update({c.name ~ '/' ~ t.dest: lookup('ansible.builtin.template', role ~ '/templates/' ~ t.src,"
                           " template_vars={'aiws_plan': {'mirror': c.mirror},"
                           " 'python_mirrors_condarc_channels': c.channels})}) %}"
                           "{% endfor %}{% endfor %}{{ r | to_json }}"}},
        ],
    }]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(out / "tmp"))
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(playbook)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for path, text in json.loads((out / "rendered.json").read_text()).items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text)
    return out


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_condarc_carries_the_profile(rendered: Path, name: str) -> None:
    text = (rendered / name / "condarc").read_text()
    data = yaml.safe_load(text)
    conda = merged(name)["conda"]
    assert data["channels"] == ["defaults"]
    assert data["show_channel_urls"] is True and data["channel_priority"] == "strict"
    assert data.get("default_channels", []) == conda.get("default_channels", [])
    base = conda.get("channel_base")
    if base and conda.get("custom_channels"):
        assert data["custom_channels"] == {ch: base for ch in conda["custom_channels"]}
        assert data["channel_alias"] == base
    else:
        assert "custom_channels" not in data and "channel_alias" not in data
    for key in ("default_channels", "custom_channels", "channel_alias"):
        for line in text.splitlines():
            if line.startswith(key + ":"):
                assert line.rstrip().endswith("#!final"), line
    assert "Managed by aiws (python_mirrors)" in text


def test_miniforge_searches_conda_forge_through_the_mirror(rendered: Path) -> None:
    data = yaml.safe_load((rendered / "tuna-miniforge" / "condarc").read_text())
    assert data["channels"] == ["conda-forge"]
    assert data["custom_channels"]["conda-forge"] == "https://mirrors.tuna.tsinghua.edu.cn/anaconda/cloud"


# `official` names no PyPI index: the role then writes no pip.conf/uv.toml (it restores the system's).
@pytest.mark.parametrize("name", sorted(n for n in PROFILES if merged(n).get("pypi")))
def test_pip_and_uv_carry_the_profile_index(rendered: Path, name: str) -> None:
    pypi = merged(name)["pypi"]
    parser = configparser.ConfigParser()
    parser.read_string((rendered / name / "pip.conf").read_text())
    assert parser["global"]["index-url"] == pypi
    assert "trusted-host" not in parser["global"], "https mirrors need no trusted-host"
    assert "extra-index-url" not in parser["global"], "no global extra index (PyTorch's belongs to projects)"
    uv = tomllib.loads((rendered / name / "uv.toml").read_text())
    assert uv == {"index": [{"url": pypi, "default": True}]}


def test_http_mirror_gets_trusted_host(rendered: Path) -> None:
    parser = configparser.ConfigParser()
    parser.read_string((rendered / "internal-http" / "pip.conf").read_text())
    assert parser["global"]["index-url"] == "http://devpi.lab.example:3141/root/pypi/+simple/"
    assert parser["global"]["trusted-host"] == "devpi.lab.example"
    data = yaml.safe_load((rendered / "internal-http" / "condarc").read_text())
    assert "channels" not in data and "default_channels" not in data
