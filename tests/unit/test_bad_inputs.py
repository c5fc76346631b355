"""Every bad inventory value is refused by preflight, before anything changes, naming the variable.

One ansible-playbook run covers all of them: the inventory has one host per bad input (all of them
this machine over a local connection), each with the shipped lab settings, a baseline that passes
preflight (URLs on a loopback web server, so even the URL probe passes) and one bad value in its
host_vars. A `good` host with the baseline alone must pass, and prove the baseline sound. The run is
playbooks/plan.yml, the preflight play that site.yml runs first, so nothing can change whatever
happens; each bad host must fail inside that play with a message naming the variable.

The count (tried / refused) is printed at the end of the run (pytest -s) for the issue's record.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.aiws.workstation.plugins.plugin_utils import inputs
from conftest import serve_www

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
FPR = "EB693B3035CD5710E231E123A4B469963BF863CC"
GOOD = "good"
TYPO = "typo"

# A user's home on this machine that only the host check (getent) can refuse.
USER_HOME = next((p.pw_dir for p in pwd.getpwall() if p.pw_dir.count("/") >= 2 and not inputs.path_errors(p.pw_dir, "x", "prefix")),
                 "/var/list")

# (id, host vars, substrings every one of which the failure message must hold, substrings it must not hold)
CASES: list[tuple[str, dict[str, Any], list[str], list[str]]] = [
    # 4. mirror profile keys and URLs
    ("custom-key-debain", {"aiws_mirror_profile": "custom", "aiws_mirror_custom": {"debain": "https://m.example/debian"}},
     ["aiws_mirror_custom.debain", "aiws_mirror_custom.apt.debian"], []),
    ("custom-key-pypy", {"aiws_mirror_profile": "custom", "aiws_mirror_custom": {"pypy": "https://m.example/simple"}},
     ["aiws_mirror_custom.pypy", "did you mean aiws_mirror_custom.pypi"], []),
    ("custom-apt-debain", {"aiws_mirror_profile": "custom", "aiws_mirror_custom": {"apt": {"debain": "https://m.example/d"}}},
     ["aiws_mirror_custom.apt.debain", "aiws_mirror_custom.apt.debian"], []),
    ("custom-url-htps", {"aiws_mirror_profile": "custom", "aiws_mirror_custom": {"apt": {"debian": "htps//m.example/debian"}}},
     ["aiws_mirror_custom.apt.debian", "is not a URL"], []),
    ("custom-url-ftp", {"aiws_mirror_profile": "custom", "aiws_mirror_custom": {"pypi": "ftp://m.example/simple"}},
     ["aiws_mirror_custom.pypi", "ftp://"], []),
    ("custom-http-no-opt-in", {"aiws_mirror_profile": "custom", "aiws_mirror_allow_http": False,
                               "aiws_mirror_custom": {"pypi": "http://m.example/simple"}},
     ["aiws_mirror_custom.pypi", "aiws_mirror_allow_http"], []),
    ("custom-credentials", {"aiws_mirror_profile": "custom",
                            "aiws_mirror_custom": {"pypi": "https://lab:s3cr3t-custom@m.example/simple"}},
     ["aiws_mirror_custom.pypi", "user name or password"], ["s3cr3t-custom"]),
    ("custom-channels-string", {"aiws_mirror_profile": "custom",
                                "aiws_mirror_custom": {"conda": {"default_channels": "https://m.example/main"}}},
     ["aiws_mirror_custom.conda.default_channels", "YAML list"], []),
    ("custom-empty", {"aiws_mirror_profile": "custom", "aiws_mirror_custom": {}}, ["aiws_mirror_custom"], []),
    ("pymirror-key-pypy", {"python_mirrors_mirror": {"pypy": "https://m.example/simple"}},
     ["python_mirrors_mirror.pypy", "python_mirrors_mirror.pypi"], []),
    ("pymirror-key-apt", {"python_mirrors_mirror": {"apt": {"debian": "https://m.example/debian"}}},
     ["python_mirrors_mirror.apt"], []),
    ("pymirror-bad-host", {"python_mirrors_mirror": {"pypi": "https://mirror_lab/simple"}},
     ["python_mirrors_mirror.pypi", "host name"], []),
    ("pymirror-channel-bsae", {"python_mirrors_mirror": {"conda": {"channel_bsae": "https://m.example/cloud"}}},
     ["python_mirrors_mirror.conda.channel_bsae", "channel_base"], []),
    ("auto-profile-key", {"apt_mirror_auto_profiles": {"campus": {"apt": {"ubunut": "https://m.example/ubuntu"}}}},
     ["apt_mirror_auto_profiles.campus.apt.ubunut", "apt_mirror_auto_profiles.campus.apt.ubuntu"], []),
    ("cuda-repo-ftp", {"cuda_toolkit_repo_base": "ftp://m.example/cuda"}, ["cuda_toolkit_repo_base", "ftp://"], []),
    ("cuda-repo-http-no-opt-in", {"cuda_toolkit_repo_base": "http://m.example/cuda", "aiws_mirror_allow_http": False},
     ["cuda_toolkit_repo_base", "aiws_mirror_allow_http"], []),
    ("installer-url-htp", {"anaconda_installer_url": "htp:/m.example/Anaconda3.sh"}, ["anaconda_installer_url"], []),
    # 5. privileged groups and system paths
    *[(f"group-{g}", {"anaconda_group": g}, ["anaconda_group", g, "privileged"], [])
      for g in ("sudo", "root", "wheel", "adm", "docker", "lxd", "disk", "shadow")],
    *[(f"prefix-{name}", {"anaconda_prefix": p}, ["anaconda_prefix"], [])
      for name, p in (("usr", "/usr"), ("usr-lib", "/usr/lib"), ("var-lib", "/var/lib"), ("etc", "/etc"), ("slash", "/"),
                      ("home", "/home"), ("var-lib-conda", "/var/lib/conda"), ("dotdot-usr-lib", "/opt/../usr/lib/conda"),
                      ("root-home", "/root"))],
    ("prefix-relative", {"anaconda_prefix": "opt/conda"}, ["anaconda_prefix", "absolute"], []),
    ("prefix-top-level", {"anaconda_prefix": "/data/"}, ["anaconda_prefix", "top-level"], []),
    # a home directory the path rules alone let through (Debian's list user: /var/list): the host's users are read
    ("prefix-a-users-home", {"anaconda_prefix": USER_HOME}, ["anaconda_prefix", "home directory"], []),
    # 7. a string or null where a list or mapping is expected
    ("users-string", {"anaconda_users": "alice"}, ["anaconda_users", "must be a YAML list", '["alice"]'], []),
    ("gpus-null", {"aiws_gpus": None}, ["aiws_gpus", "null"], ["NoneType"]),
    ("gpus-string", {"aiws_gpus": "10de:2684"}, ["aiws_gpus", "must be a YAML list"], []),
    ("components-string", {"apt_mirror_components": "main"}, ["apt_mirror_components", "must be a YAML list"], []),
    ("extra-cuda-string", {"cuda_toolkit_extra_versions": "12.6"}, ["cuda_toolkit_extra_versions", "YAML list"], []),
    ("channels-null", {"python_mirrors_conda_channels": None}, ["python_mirrors_conda_channels", "null"], []),
    ("tunnel-hosts-string", {"apt_cache_https_hosts": "developer.download.nvidia.com"},
     ["apt_cache_https_hosts", "YAML list"], []),
    # (ansible's own check of the preflight role's arguments refuses this one first, naming it too)
    ("custom-as-string", {"aiws_mirror_custom": "https://m.example"}, ["aiws_mirror_custom", "dict"], []),
    ("pymirror-null", {"python_mirrors_mirror": None}, ["python_mirrors_mirror", "null"], []),
    ("stages-string", {"preflight_stages": "apt_mirror"}, ["preflight_stages", "YAML list"], []),
    # 9. the key's fingerprint
    ("fingerprint-short", {"cuda_toolkit_key_fingerprint": "3bf863cc"}, ["cuda_toolkit_key_fingerprint", "40 hex"], []),
    ("fingerprint-not-hex", {"cuda_toolkit_key_fingerprint": "ZB693B3035CD5710E231E123A4B469963BF863CC"},
     ["cuda_toolkit_key_fingerprint"], []),
    # 10. folders compared after normalising
    ("backup-etc-apt-slash", {"apt_mirror_backup_dir": "/etc/apt/"}, ["apt_mirror_backup_dir", "/etc/apt"], []),
    ("backup-etc-dot-dot", {"apt_mirror_backup_dir": "/var/../etc//apt/."}, ["apt_mirror_backup_dir"], []),
    ("backup-tmp", {"apt_mirror_backup_dir": "/tmp/aiws-backups"}, ["apt_mirror_backup_dir", "/tmp"], []),
    ("state-dir-var", {"verify_state_dir": "/var/"}, ["verify_state_dir", "system directory"], []),
    ("pymirror-state-var-lib", {"python_mirrors_state_dir": "/var/lib//"}, ["python_mirrors_state_dir"], []),
    ("download-dir-var-cache", {"anaconda_download_dir": "/var/cache"}, ["anaconda_download_dir"], []),
    # 11. one failing rule, one message
    ("retries-zero", {"anaconda_download_retries": 0}, ["anaconda_download_retries"],
     ["anaconda_prefix", "anaconda_installer_sha256", "names match"]),
    ("extra-cuda-11", {"cuda_toolkit_extra_versions": ["11.8"]}, ["cuda_toolkit_extra_versions"],
     ["cuda_toolkit_key_fingerprint", "cuda_toolkit_repo_base"]),
    # 14. URLs that do not answer
    ("probe-cuda-404", {"cuda_toolkit_repo_base": "{{ fixture }}/no-such-repo"},
     ["cuda_toolkit_repo_base", "/no-such-repo/", "HTTP 404"], []),
    ("probe-pypi-refused", {"python_mirrors_mirror": {"pypi": "http://127.0.0.1:9/simple"}},
     ["python_mirrors_mirror.pypi", "127.0.0.1:9", "connection refused"], []),
    ("probe-installer-404", {"anaconda_installer_url": "{{ fixture }}/anaconda/missing.sh"},
     ["anaconda_installer_url", "missing.sh"], []),
    ("probe-apt-mirror-404", {"aiws_mirror_profile": "custom", "aiws_mirror_custom": {"apt": {"debian": "{{ fixture }}/nodebian"}}},
     ["aiws_mirror_custom.apt.debian", "/nodebian/dists/"], []),
    ("probe-conda-hangs", {"python_mirrors_mirror": {"conda": {"channel_base": "{{ fixture }}/slow/cloud",
                                                               "custom_channels": ["conda-forge"]}},
                           "python_mirrors_conda_channels": ["conda-forge"]},
     ["python_mirrors_mirror.conda", "no answer within"], []),
    ("probe-unresolvable", {"cuda_toolkit_repo_base": "https://cuda-mirror.invalid/repos"},
     ["cuda_toolkit_repo_base", "cuda-mirror.invalid"], []),
    # the existing rules, through the same gate
    ("cudnn-unquoted", {"aiws_cudnn_version": 9.1}, ["aiws_cudnn_version", "quoted"], []),
    ("cuda-11", {"aiws_cuda_version": "11.8"}, ["aiws_cuda_version"], []),
    ("gpu-amd", {"aiws_gpus": ["1002:744c"]}, ["aiws_gpus"], []),
    ("flavor-nouveau", {"aiws_driver_flavor": "nouveau"}, ["aiws_driver_flavor"], []),
    ("key-file-path", {"cuda_toolkit_key_file": "../../etc/passwd"}, ["cuda_toolkit_key_file"], []),
    ("cache-host-url", {"apt_cache_proxy_host": "http://cache:3142"}, ["apt_cache_proxy_host"], []),
    ("user-with-space", {"anaconda_users": ["Alice Smith"]}, ["anaconda_users", "Alice Smith"], []),
    ("sha256-short", {"anaconda_installer_sha256": "abc123"}, ["anaconda_installer_sha256"], []),
    ("auto-candidate-unknown", {"apt_mirror_auto_candidates": ["official", "campus"]},
     ["apt_mirror_auto_candidates", "campus"], []),
]


def _channel(www: Path, path: str) -> None:
    (www / path).mkdir(parents=True, exist_ok=True)
    (www / path / "repodata.json").write_text('{"info": {}, "packages": {}}\n')


@pytest.fixture(scope="module")
def fixture_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback web server with the files the baseline's URLs name; /slow/ answers after 30 s."""
    www = tmp_path_factory.mktemp("www")
    for distro in ("debian12", "ubuntu2204", "ubuntu2404"):
        for arch in ("x86_64", "sbsa"):
            repo = www / "nvidia/repos" / distro / arch
            repo.mkdir(parents=True)
            (repo / "InRelease").write_text("Origin: NVIDIA\n")
            (repo / "3bf863cc.pub").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    (www / "anaconda").mkdir()
    (www / "anaconda/installer.sh").write_text("#!/bin/sh\n")
    (www / "pypi/simple").mkdir(parents=True)
    (www / "pypi/simple/index.html").write_text("<html></html>\n")
    for channel in ("conda/pkgs/main/noarch", "conda/cloud/conda-forge/noarch", "slow/cloud/conda-forge/noarch"):
        _channel(www, channel)
    with serve_www(www, "--delay", "/slow/=30") as base:
        yield base


def baseline(base: str, tmp: Path) -> dict[str, Any]:
    """Settings on top of the lab inventory that pass preflight on this machine, URL probe included."""
    return {
        "aiws_gpus": ["10de:2684"],
        "aiws_mirror_allow_http": True,
        "cuda_toolkit_repo_base": f"{base}/nvidia/repos",
        "anaconda_installer_url": f"{base}/anaconda/installer.sh",
        "anaconda_installer_sha256": "0" * 64,
        "python_mirrors_mirror": {
            "pypi": f"{base}/pypi/simple",
            "conda": {"default_channels": [f"{base}/conda/pkgs/main"], "channel_base": f"{base}/conda/cloud",
                      "custom_channels": ["conda-forge"]},
        },
        "preflight_probe_timeout": 3,
        "report_dir": str(tmp / "reports"),
    }


def write_inventory(tmp: Path, base: str, hosts: dict[str, dict[str, Any]]) -> Path:
    inv = tmp / "inventory"
    shutil.copytree(ROOT / "inventories/lab/group_vars", inv / "group_vars")
    (inv / "group_vars/all/zz_baseline.yml").write_text(yaml.safe_dump(baseline(base, tmp)))
    (inv / "host_vars").mkdir()
    for name, values in hosts.items():
        text = yaml.safe_dump(values).replace("{{ fixture }}", base)
        (inv / "host_vars" / f"{name}.yml").write_text(text)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False}
    (inv / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"children": {"workstations": {"hosts": {name: local for name in hosts}}, "apt_cache": {"hosts": {}}}}}))
    return inv


def run_plan(tmp: Path, inv: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp / "facts"), ANSIBLE_FORKS="8", ANSIBLE_NOCOLOR="1")
    run = subprocess.run([ANSIBLE_PLAYBOOK, "playbooks/plan.yml", "-i", str(inv), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1500, check=False)
    try:
        return run, json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON from ansible-playbook (rc={run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")


def outcome(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per host: the play and task where it failed and the message, or ok; and every debug message it printed."""
    hosts: dict[str, dict[str, Any]] = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                entry = hosts.setdefault(host, {"failed": False, "messages": []})
                msg = result.get("msg")
                text = "\n".join(map(str, msg)) if isinstance(msg, list) else str(msg or "")
                if result.get("failed") and not entry["failed"]:
                    entry.update(failed=True, play=play["play"]["name"], task=task["task"]["name"], msg=text)
                if text:
                    entry["messages"].append(text)
    return hosts


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory, fixture_base: str) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    hosts = {case_id: values for case_id, values, _, _ in CASES}
    hosts[GOOD] = {}
    hosts[TYPO] = {"aiws_cuda_verison": "12.4", "anaconda_grup": "conda"}
    inv = write_inventory(tmp, fixture_base, hosts)
    run, data = run_plan(tmp, inv)
    results = outcome(data)
    stats = data.get("stats", {})
    refused = [c for c, *_ in CASES if results.get(c, {}).get("failed") and results[c]["play"].startswith("Preflight")]
    print(f"\nbad inputs tried: {len(CASES)}, refused by preflight before any change: {len(refused)}")
    return {"run": run, "results": results, "stats": stats}


def test_the_baseline_passes_preflight(bad_run: dict[str, Any]) -> None:
    good = bad_run["results"][GOOD]
    assert not good["failed"], good
    assert bad_run["stats"][GOOD]["changed"] == 0


@pytest.mark.parametrize(("case_id", "must", "must_not"), [(c, m, n) for c, _, m, n in CASES], ids=[c for c, *_ in CASES])
def test_bad_input_is_refused_in_preflight_naming_the_variable(
        bad_run: dict[str, Any], case_id: str, must: list[str], must_not: list[str]) -> None:
    result = bad_run["results"][case_id]
    assert result["failed"], f"{case_id} passed preflight"
    assert result["play"].startswith("Preflight"), result
    assert bad_run["stats"][case_id]["changed"] == 0
    for text in must:
        assert text in result["msg"], f"{case_id}: {text!r} not in {result['msg']!r} (task {result['task']})"
    for text in must_not:
        assert text not in result["msg"], f"{case_id}: {text!r} in {result['msg']!r}"
    for raw in ("Traceback", "NoneType", "object of type", "The filter plugin", "is undefined"):
        assert raw not in result["msg"], f"{case_id}: raw error {raw!r} in {result['msg']!r}"


def test_enough_bad_inputs_are_tried() -> None:
    assert len(CASES) >= 45


def test_a_misspelt_variable_is_named_with_the_closest_known_one(bad_run: dict[str, Any]) -> None:
    warnings = [m for r in bad_run["results"].values() for m in r["messages"] if "WARNING:" in m]
    text = "\n".join(warnings)
    assert f"aiws_cuda_verison (set for {TYPO})" in text and "did you mean aiws_cuda_version?" in text
    assert f"anaconda_grup (set for {TYPO})" in text and "did you mean anaconda_group?" in text
    # Nothing else is named: the lab inventory, the baseline and every internal variable are known.
    named = {line.split("WARNING: ", 1)[1].split(" ", 1)[0] for m in warnings for line in m.splitlines() if "WARNING: " in line}
    assert named == {"aiws_cuda_verison", "anaconda_grup"}
    assert not bad_run["results"][TYPO]["failed"], "a warning, not a refusal"
