"""plugin_utils.inputs, behind the aiws_*_errors and aiws_unknown_vars filters: each problem one message naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.aiws.workstation.plugins.plugin_utils import inputs

ROOT = Path(__file__).resolve().parents[2]
MIRRORS = yaml.safe_load((ROOT / "data/mirrors.yml").read_text())
SCHEMA = MIRRORS["schema"]


@pytest.mark.parametrize("name", sorted(MIRRORS["profiles"]))
def test_every_shipped_profile_follows_the_schema(name: str) -> None:
    profile = MIRRORS["profiles"][name]
    # The official Ubuntu archives are http as Ubuntu ships them (apt checks their signatures).
    assert inputs.url_errors(profile, f"profiles.{name}", allow_http=(name == "official"), schema=SCHEMA) == []


def test_plain_http_in_the_shipped_profiles_is_only_ubuntus_signed_archives() -> None:
    text = json.dumps(MIRRORS["profiles"])
    hosts = {u.split("/")[2] for u in __import__("re").findall(r'"(http://[^"]+)"', text)}
    assert hosts <= {"archive.ubuntu.com", "ports.ubuntu.com", "security.ubuntu.com"}, hosts


@pytest.mark.parametrize(("value", "expected"), [
    ({"debain": "https://m.example/debian"}, ("aiws_mirror_custom.debain is not a key of a mirror profile of data/mirrors.yml"
                                             " (valid here: label, help, apt, nvidia_cuda, anaconda_archive, miniforge,"
                                             " conda, pypi); did you mean aiws_mirror_custom.apt.debian?")),
    ({"pypy": "https://m.example/simple"}, "did you mean aiws_mirror_custom.pypi?"),
    ({"apt": {"ubunut": "https://m.example/u"}}, "did you mean aiws_mirror_custom.apt.ubuntu?"),
    ({"conda": {"custom_channel": ["conda-forge"]}}, "did you mean aiws_mirror_custom.conda.custom_channels?"),
    ({"apt": {"debian": "htps//m.example/debian"}}, 'aiws_mirror_custom.apt.debian: "htps//m.example/debian" is not a URL'),
    ({"pypi": "ftp://m.example/simple"}, "uses ftp://"),
    ({"pypi": "http://m.example/simple"}, "is plain http: set aiws_mirror_allow_http: true"),
    ({"pypi": "https://u:pw@m.example/simple"}, '"https://***@m.example/simple" carries a user name or password'),
    ({"pypi": "https://m.example:99999/simple"}, "invalid port"),
    ({"pypi": "https:///simple"}, "no valid host name"),
    ({"pypi": "https://m.example/a b"}, "without spaces"),
    ({"conda": {"custom_channels": ["conda forge"]}}, "must be a channel name"),
    ({"conda": {"default_channels": "https://m.example/main"}}, 'must be a YAML list, e.g. ["https://m.example/main"]'),
    ({"apt": "https://m.example/ubuntu"}, "aiws_mirror_custom.apt must be a YAML mapping"),
])
def test_a_bad_mirror_profile_is_named_key_by_key(value: dict, expected: str) -> None:
    problems = inputs.url_errors(value, "aiws_mirror_custom", schema=SCHEMA)
    assert len(problems) == 1 and expected in problems[0], problems
    assert "pw@" not in problems[0]


def test_python_mirrors_take_only_their_part_of_the_schema() -> None:
    problems = inputs.url_errors({"apt": {}, "pypi": "https://m.example/simple"}, "python_mirrors_mirror",
                                 schema=SCHEMA, keys=["pypi", "conda"])
    assert problems == ["python_mirrors_mirror.apt is not a key of python_mirrors_mirror (valid here: conda, pypi)."]


def test_each_profile_of_a_mapping_is_checked() -> None:
    problems = inputs.url_errors({"campus": {"apt": {"ubuntu": "https://m.example/ubuntu"}}, "bad": {"pypy": "x"}},
                                 "apt_mirror_auto_profiles", schema=SCHEMA, each=True)
    assert len(problems) == 1 and problems[0].startswith("apt_mirror_auto_profiles.bad.pypy is not a key")


@pytest.mark.parametrize("url", ["https://mirrors.tuna.tsinghua.edu.cn/ubuntu", "https://10.0.0.5:8443/debian/",
                                 "https://[fd00::5]/pypi/simple", "http://127.0.0.1:18589/conda/pkgs/main"])
def test_good_urls_pass(url: str) -> None:
    assert inputs.url_problem(url, allow_http=True) is None
    assert inputs.url_errors("", "cuda_toolkit_repo_base") == [] and inputs.url_errors(None, "x") == []


@pytest.mark.parametrize(("path", "kind", "expected"), [
    ("/etc/apt/", "dir", "apt_mirror_backup_dir is /etc/apt/ (that is /etc/apt), a system directory"),
    ("//etc//apt/.", "dir", "(that is /etc/apt)"),
    ("/opt/../etc/apt", "dir", "(that is /etc/apt)"),
    ("/tmp/backups", "backup", "inside /tmp, which is emptied at boot"),
    ("/var/tmp/backups", "backup", "inside /var/tmp"),
    ("/run/aiws", "dir", "inside /run, which belongs to the kernel or the running system"),
    ("backups", "dir", "must be an absolute path"),
    ("/usr/lib", "prefix", "a system directory"),
    ("/usr/lib/anaconda3", "prefix", "inside /usr, which the system and its package manager own"),
    ("/var/lib/conda", "prefix", "inside /var/lib"),
    ("/etc/conda/x", "prefix", "inside /etc"),
    ("/home/anaconda3", "prefix", "directly under /home"),
    ("/data", "prefix", "a top-level folder"),
    ("/", "prefix", "the root directory"),
])
def test_system_paths_are_refused_after_normalising(path: str, kind: str, expected: str) -> None:
    problems = inputs.path_errors(path, "apt_mirror_backup_dir", kind)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(("path", "kind"), [
    ("/var/backups/aiws/apt-mirror", "dir"), ("/var/lib/aiws", "dir"), ("/srv/backups/", "dir"),
    ("/opt/anaconda3", "prefix"), ("/opt/conda/", "prefix"), ("/usr/local/anaconda3", "prefix"),
    ("/srv/conda", "prefix"), ("/home/shared/anaconda3", "prefix"), ("/data/conda", "prefix"),
    ("/etc/conda/.condarc", "absolute"), ("/tmp/pytest/state", "dir"),
])
def test_folders_of_their_own_pass(path: str, kind: str) -> None:
    assert inputs.path_errors(path, "x", kind) == []


def test_the_suggested_folder_is_the_default() -> None:
    (problem,) = inputs.path_errors("/var/lib/", "anaconda_prefix", "prefix")
    assert "e.g. the default /opt/anaconda3" in problem


@pytest.mark.parametrize(("values", "expected"), [
    ({"anaconda_users": "alice"}, 'anaconda_users must be a YAML list, e.g. ["alice"]; got the string "alice".'),
    ({"anaconda_users": "alice, bob"}, 'e.g. ["alice", "bob"]'),
    ({"aiws_gpus": None}, "aiws_gpus is empty (null): write aiws_gpus: [] for none"),
    ({"apt_cache_upstream_ports": 80}, "apt_cache_upstream_ports must be a YAML list, e.g. []; got a number."),
    ({"python_mirrors_mirror": None}, "python_mirrors_mirror is empty (null): write python_mirrors_mirror: {} for none"),
    ({"aiws_mirror_custom": ["https://m.example"]}, "aiws_mirror_custom must be a YAML mapping of key: value"),
])
def test_a_string_or_null_where_a_list_or_mapping_belongs(values: dict, expected: str) -> None:
    (problem,) = inputs.shape_errors(values)
    assert expected in problem


def test_lists_and_mappings_of_every_spec_are_checked() -> None:
    kinds = {n: s["type"] for n, s in inputs.specs().items() if s.get("type") in ("list", "dict")}
    assert {"anaconda_users", "aiws_gpus", "preflight_stages", "apt_mirror_components", "cuda_toolkit_extra_versions",
            "python_mirrors_conda_final_keys", "apt_cache_https_hosts", "aiws_mirror_custom", "python_mirrors_mirror",
            "apt_mirror_auto_profiles"} <= set(kinds)
    assert inputs.shape_errors({name: ([] if kind == "list" else {}) for name, kind in kinds.items()}) == []


def test_a_misspelt_variable_is_named_with_the_closest_declared_one() -> None:
    messages = inputs.unknown_vars({"ws01": ["aiws_cuda_verison", "ansible_host"], "ws02": ["aiws_cuda_verison"]})
    assert messages == [
        ("aiws_cuda_verison (set for every host) is not a variable of this project: no role's meta/argument_specs.yml"
        " declares it, so it changes nothing; did you mean aiws_cuda_version?")]
    (far,) = inputs.unknown_vars({"ws01": ["cudnn_whatever_else"]})
    assert "see the variable reference in README.md" in far


def _inventory_names(inventory: Path) -> dict[str, list[str]]:
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    return {host: list(values) for host, values in data["_meta"]["hostvars"].items()}


@pytest.mark.parametrize("inventory", ["inventories/lab", "inventories/example-fleet"])
def test_the_shipped_inventories_raise_no_warning(inventory: str) -> None:
    assert inputs.unknown_vars(_inventory_names(ROOT / inventory)) == []


def test_the_container_scenario_raises_no_warning() -> None:
    names = [name for f in (ROOT / "molecule/default/group_vars").glob("*/*.yml") for name in yaml.safe_load(f.read_text())]
    assert inputs.unknown_vars({"molecule": names}) == []


def test_what_the_roles_set_while_running_is_not_taken_for_a_typo() -> None:
    internal = inputs.internal_names()
    assert {"aiws_plan", "anaconda_record_raw", "cuda_toolkit_key_installed", "preflight_pci", "verify_result",
            "report_fleet", "preflight_mirror_data", "apt_mirror_probe_urls"} <= internal
    names = sorted(n for n in internal if n.startswith(tuple(inputs.prefixes())))
    assert inputs.unknown_vars({"ws01": names}) == []


def test_urls_are_attributed_to_the_profile_that_named_them() -> None:
    entries = [{"url": "https://x/InRelease", "key": "nvidia_cuda", "stages": ["cuda"]},
               {"url": "https://y/simple/", "key": "pypi", "stages": ["pymirrors"]},
               {"url": "https://z/a.sh", "set_by": "anaconda_installer_url", "stages": ["anaconda"]},
               {"url": "http://m/debian/dists/jammy/InRelease", "key": "apt.ubuntu", "via": "apt", "stages": ["mirrors"]}]
    tuna = {e["url"]: e["set_by"] for e in inputs.url_origins(entries, "tuna")}
    assert tuna["https://x/InRelease"] == "mirror profile official (data/mirrors.yml nvidia_cuda; tuna has none)"
    assert tuna["https://y/simple/"] == "mirror profile tuna (data/mirrors.yml pypi)"
    assert tuna["https://z/a.sh"] == "anaconda_installer_url"
    custom = {e["url"]: e["set_by"] for e in inputs.url_origins(entries, "custom", {"apt": {"ubuntu": "http://m/"}})}
    assert custom["http://m/debian/dists/jammy/InRelease"] == "aiws_mirror_custom.apt.ubuntu"
    # Only the stages the tags run; nothing apt fetches through the fleet's cache; auto races its mirrors itself.
    assert [e["url"] for e in inputs.url_origins(entries, "tuna", run_tags=["cuda"])] == ["https://x/InRelease"]
    assert len(inputs.url_origins(entries, "tuna", skip_tags=["cuda", "pymirrors"])) == 2
    assert len(inputs.url_origins(entries, "tuna", apt_cache=True)) == 3
    assert [e["url"] for e in inputs.url_origins(entries, "auto")] == ["https://z/a.sh"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://alice:s3cret@mirror.example.org/pypi/simple", "https://***@mirror.example.org/pypi/simple"),
        ("http://alice:p@ss@proxy.example.org:3128/", "http://***@proxy.example.org:3128/"),
        ("http://token@mirror.example.org", "http://***@mirror.example.org"),
        ("https://mirror.example.org/path/user@example", "https://mirror.example.org/path/user@example"),
        ("https://mirror.example.org?who=a@b", "https://mirror.example.org?who=a@b"),
        ("https://mirror.example.org/", "https://mirror.example.org/"),
    ],
)
def test_redact_hides_the_whole_userinfo_even_with_an_at_sign_in_the_password(url: str, shown: str) -> None:
    assert inputs.redact(url) == shown
    assert "s3cret" not in shown and "p@ss" not in shown
