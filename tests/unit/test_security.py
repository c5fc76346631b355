"""The security pass, as tests: secrets never in the output, nothing world-writable, every third-party apt
source signed by a pinned key, plain http only with the opt-in, nothing that switches verification off.

The container scenario checks the same on provisioned hosts (molecule/default/tests/test_security.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
SECRET = re.compile(r"(password|passphrase|secret|token)", re.IGNORECASE)
TASK_FILES = sorted([*ROLES.glob("*/tasks/*.yml"), *ROLES.glob("*/handlers/*.yml"), *ROOT.glob("playbooks/*.yml")])


def tasks_of(node: Any) -> list[dict[str, Any]]:
    """Every task and block in a task file, nested blocks included."""
    out: list[dict[str, Any]] = []
    for item in node if isinstance(node, list) else []:
        if isinstance(item, dict):
            out.append(item)
            for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
                out.extend(tasks_of(item.get(key)))
    return out


def secret_options() -> set[str]:
    names: set[str] = set()
    for spec_file in ROLES.glob("*/meta/argument_specs.yml"):
        for entry in (yaml.safe_load(spec_file.read_text())["argument_specs"] or {}).values():
            names.update(n for n in (entry.get("options") or {}) if SECRET.search(n))
    return names


def test_secret_options_are_declared_no_log() -> None:
    for spec_file in ROLES.glob("*/meta/argument_specs.yml"):
        for entry in (yaml.safe_load(spec_file.read_text())["argument_specs"] or {}).values():
            for name, spec in (entry.get("options") or {}).items():
                if SECRET.search(name):
                    assert spec.get("no_log") is True, f"{spec_file}: {name} holds a secret: no_log: true"


# Task keys whose expressions are evaluated but never printed with their values (an assert prints the
# failed expression's text, not what it evaluated).
CONDITIONS = ("when", "that", "changed_when", "failed_when", "until")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _variables(text: str) -> set[str]:
    """The variables a templated string reads (string literals that merely name one do not count)."""
    import jinja2
    from jinja2 import nodes

    if "{{" not in text and "{%" not in text:
        return set()
    return {n.name for n in jinja2.Environment().parse(text).find_all(nodes.Name)}


def test_every_task_that_touches_a_secret_is_no_log() -> None:
    """A task whose printed arguments or result could carry a secret's value is no_log; a message that
    only names the variable (telling the admin what to set) may be shown."""
    names = secret_options() | {"nvidia_driver_mok_password"}
    offenders = []
    for path in TASK_FILES:
        for task in tasks_of(yaml.safe_load(path.read_text())):
            body = {k: v for k, v in task.items() if k not in ("block", "rescue", "always", "name", *CONDITIONS)}
            used = set().union(*(_variables(t) for t in _strings(body)))
            if used & names and task.get("no_log") is not True:
                offenders.append(f"{path.relative_to(ROOT)}: {task.get('name')}")
    assert not offenders, "tasks using a secret without no_log: true:\n" + "\n".join(offenders)


def test_the_secret_check_sees_a_secret_inside_an_expression_but_not_its_name_in_prose() -> None:
    assert _variables("{{ nvidia_driver_mok_password }}\n{{ x }}") == {"nvidia_driver_mok_password", "x"}
    assert _variables("{{ 'set nvidia_driver_mok_password' if pending else '' }}") == {"pending"}
    assert _variables("set nvidia_driver_mok_password in a vault") == set()


def _modes(value: Any) -> list[int]:
    """The octal modes a task's mode: can take (literals inside a Jinja expression too)."""
    return [int(m, 8) for m in re.findall(r"(?<![0-9])([0-7]{3,4})(?![0-9])", str(value))]


def test_no_role_creates_anything_world_writable() -> None:
    offenders = []
    for path in TASK_FILES:
        for task in tasks_of(yaml.safe_load(path.read_text())):
            for module, args in task.items():
                if isinstance(args, dict) and "mode" in args:
                    mode = str(args["mode"])
                    if any(m & 0o002 for m in _modes(mode)) or re.search(r"[oa][+=][rwxXst]*w", mode):
                        offenders.append(f"{path.relative_to(ROOT)}: {task.get('name')}: {module} mode {mode}")
    for script in [*ROLES.glob("*/files/*"), *ROLES.glob("*/templates/*")]:
        text = script.read_text(errors="replace")
        for m in re.finditer(r"chmod\s+(-\S+\s+)*([0-7]{3,4}|[ugoa]*[+=][rwxXst]*)", text):
            if any(x & 0o002 for x in _modes(m.group(2))) or re.search(r"^[oa]*[+=][rwxXst]*w", m.group(2)):
                offenders.append(f"{script.relative_to(ROOT)}: {m.group(0)}")
        for m in re.finditer(r"\bumask\s+([0-7]{1,4})\b", text):
            if not int(m.group(1), 8) & 0o002:
                offenders.append(f"{script.relative_to(ROOT)}: {m.group(0)} leaves new files writable by others")
    assert not offenders, "\n".join(offenders)


def test_the_shared_tree_never_grants_others_write() -> None:
    text = (ROLES / "anaconda/files/shared_tree.py").read_text()
    assert "want &= ~stat.S_IRWXO" in text and "S_IWOTH" not in text


@pytest.mark.parametrize("template", sorted(p.name for p in (ROLES / "cuda_toolkit/templates").glob("cuda-*.j2")
                                             if "pin" not in p.name))
def test_the_third_party_source_is_signed_by_its_pinned_key(template: str) -> None:
    text = (ROLES / "cuda_toolkit/templates" / template).read_text()
    assert re.search(r"(?i)signed-by", text), f"{template}: no signed-by"
    assert "cuda_toolkit_keyring" in text
    # The keyring is written only from a key whose fingerprint matched the pinned one.
    tasks = (ROLES / "cuda_toolkit/tasks/repository.yml").read_text()
    assert "__cuda_toolkit_key_fpr in cuda_toolkit_key_seen" in tasks
    assert re.fullmatch(r"[0-9A-F]{40}", yaml.safe_load((ROLES / "cuda_toolkit/defaults/main.yml").read_text())
                        ["cuda_toolkit_key_fingerprint"])


def test_the_distribution_sources_in_deb822_name_the_archive_keyring() -> None:
    # (Ubuntu 22.04's one-line sources.list stays as Ubuntu ships it: its archive key in trusted.gpg.d.)
    assert "Signed-By: {{ __apt_mirror_render.keyring }}" in (ROLES / "apt_mirror/templates/sources.deb822.j2").read_text()


def test_nothing_switches_verification_off() -> None:
    bad = re.compile(r"trusted=yes|allow_unauthenticated:\s*true|allow-unauthenticated|validate_certs:\s*false|"
                     r"--no-check-certificate|--insecure|\bcurl\b[^\n]*\s-k\b|ssl_verify:\s*false|trusted-host\s*=\s*\*|"
                     r"AllowInsecureRepositories|AllowDowngradeToInsecureRepositories|Verify-Peer\s*\"?false")
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in ROLES.rglob("*") if p.is_file()
             for m in bad.finditer(p.read_text(errors="replace"))]
    assert not found, "\n".join(found)


def test_plain_http_is_trusted_by_pip_only_with_the_opt_in() -> None:
    pip = (ROLES / "python_mirrors/templates/pip.conf.j2").read_text()
    assert "trusted-host" not in pip or re.search(r"{%-?\s*if[^%]*http", pip), pip


# --- the run itself, at -vvv ---------------------------------------------------------------------


def test_no_secret_reaches_the_output_at_vvv_and_the_probe_goes_through_the_proxies(
        tmp_path: Path, recording_proxy: Any) -> None:
    proxy = recording_proxy.address
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventories/lab/group_vars", inv / "group_vars")
    host = {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "aiws_gpus": ["10de:2684"],
        "aiws_mirror_allow_http": True,
        "aiws_mirror_profile": "custom",
        "aiws_mirror_custom": {"apt": {"debian": "http://deb.mirror.test/debian", "ubuntu": "http://ubu.mirror.test/ubuntu",
                                       "ubuntu_ports": "http://ubu.mirror.test/ubuntu-ports"}},
        "apt_mirror_security": "mirror",
        "cuda_toolkit_repo_base": "http://cuda.mirror.test/repos",
        "anaconda_installer_url": "http://dl.mirror.test/Anaconda3.sh",
        "anaconda_installer_sha256": "0" * 64,
        "python_mirrors_mirror": {"pypi": "http://pypi.mirror.test/simple",
                                  "conda": {"default_channels": ["http://conda.mirror.test/pkgs/main"]}},
        "report_dir": str(tmp_path / "reports"),
        # The driver role's MOK password: never shown, whatever the verbosity.
        "nvidia_driver_mok_password": "mok-pass-SENTINEL-1",
    }
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"workstations": {"hosts": {"sec": host}}}}}))
    apt_conf = tmp_path / "apt.conf"
    apt_conf.write_text(f'Acquire::http::Proxy "http://apt:apt-pass-SENTINEL-2@{proxy}/";\n')
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts"),
               APT_CONFIG=str(apt_conf), http_proxy=f"http://lab:env-pass-SENTINEL-3@{proxy}", no_proxy="")
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/plan.yml", "-i", str(inv),
                          "-vvv"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    for sentinel in ("mok-pass-SENTINEL-1", "apt-pass-SENTINEL-2", "env-pass-SENTINEL-3"):
        assert sentinel not in out, f"{sentinel} appears in the -vvv output"
    auth = {s["target"]: s["auth"] for s in recording_proxy.seen}

    def via(prefix: str) -> set[str]:
        return {a for t, a in auth.items() if t.startswith(prefix)}

    # apt's URLs through apt's proxy, the others through the environment's.
    assert via("http://deb.mirror.test/debian/dists/") | via("http://ubu.mirror.test/") == {"apt:apt-pass-SENTINEL-2"}, auth
    assert {a for t, a in auth.items() if t.startswith("http://cuda.mirror.test/") and t.endswith("/InRelease")} == {
        "apt:apt-pass-SENTINEL-2"}, auth
    assert {a for t, a in auth.items() if t.startswith("http://cuda.mirror.test/") and t.endswith("/3bf863cc.pub")} == {
        "lab:env-pass-SENTINEL-3"}, auth
    for url in ("http://dl.mirror.test/Anaconda3.sh", "http://pypi.mirror.test/simple/",
                "http://conda.mirror.test/pkgs/main/noarch/repodata.json"):
        assert auth.get(url) == "lab:env-pass-SENTINEL-3", (url, auth)
