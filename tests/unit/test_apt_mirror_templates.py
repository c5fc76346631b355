"""apt_mirror: render every profile x distribution x architecture and compare with expected files;
check the entries against the mirrors' help pages; unit-test the role's filters.

Regenerate the expected files after an intended template change with
    AIWS_REGEN_EXPECTED=1 python -m pytest tests/unit/test_apt_mirror_templates.py
and review the diff (git diff tests/unit/expected/apt/).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from conftest import load_file

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/apt_mirror"
EXPECTED = Path(__file__).parent / "expected/apt"
F = load_file("apt_mirror_filters", ROOT / "plugins/filter/apt_mirror.py")

DATA = yaml.safe_load((ROOT / "data/mirrors.yml").read_text())["profiles"]
PROFILES = ["official", "aliyun", "tuna", "ustc", "nju", "huaweicloud", "tencent"]
TARGETS = [  # (distro, codename, deb_arch)
    ("ubuntu22.04", "jammy", "amd64"),
    ("ubuntu22.04", "jammy", "arm64"),
    ("ubuntu24.04", "noble", "amd64"),
    ("ubuntu24.04", "noble", "arm64"),
    ("debian12", "bookworm", "amd64"),
    ("debian12", "bookworm", "arm64"),
]
# Stands for the system's own security source (read from the host's original sources at run
# time, what the official-security policy keeps on Debian); the project writes no Debian host name.
SYSTEM_SECURITY = "http://security.system-sources.invalid/debian-security"

# What each mirror's help page prescribes (see data/mirrors.yml `help`): host of the mirror and the
# layout: /ubuntu for amd64, /ubuntu-ports for arm64 and other ports, /debian and /debian-security.
HELP_HOSTS = {
    "aliyun": "mirrors.aliyun.com",
    "tuna": "mirrors.tuna.tsinghua.edu.cn",
    "ustc": "mirrors.ustc.edu.cn",
    "nju": "mirrors.nju.edu.cn",
    "huaweicloud": "mirrors.huaweicloud.com",
    "tencent": "mirrors.tencent.com",
}
OFFICIAL_SECURITY = {"amd64": "http://security.ubuntu.com/ubuntu", "arm64": "http://ports.ubuntu.com/ubuntu-ports"}
UBUNTU_COMPONENTS = ["main", "restricted", "universe", "multiverse"]
DEBIAN_COMPONENTS = ["main", "contrib", "non-free", "non-free-firmware"]


def mirror(profile: str) -> dict[str, Any]:
    """aiws_plan.mirror as preflight builds it: official <- site, recursively."""
    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out
    return merge(DATA["official"], DATA[profile]) | {"profile": profile, "allow_http": False}


def render(profile: str, distro: str, codename: str, arch: str, **policy: Any) -> tuple[dict[str, Any], str]:
    security = policy.get("security", "official")
    result = F.apt_mirror_sources(mirror(profile), distro, codename, arch, system_security=[SYSTEM_SECURITY], **policy)
    if result["keep_system"]:
        return result, ""
    variables = {
        "ansible_managed": "Ansible managed",
        "__apt_mirror_render": result,
        "__apt_mirror_profile": profile,
        "__apt_mirror_label": DATA[profile]["label"],
        "__apt_mirror_codename": codename,
        "apt_mirror_security": security,
        "apt_mirror_proposed": policy.get("proposed", False),
        "apt_mirror_deb_src": policy.get("deb_src", False),
        "apt_mirror_backup_dir": "/var/backups/aiws/apt-mirror",
    }
    name = {"oneline": "sources.list.j2", "deb822": "sources.deb822.j2"}[result["format"]]
    text = trust_as_template((ROLE / "templates" / name).read_text())
    templar = Templar(loader=DataLoader(), variables=variables)
    return result, templar.template(text)


CASES = [(p, *t) for p in PROFILES for t in TARGETS]


@pytest.mark.parametrize(("profile", "distro", "codename", "arch"), CASES, ids=lambda v: str(v))
def test_rendered_sources_match_the_expected_file(profile: str, distro: str, codename: str, arch: str) -> None:
    result, text = render(profile, distro, codename, arch)
    if result["keep_system"]:
        assert profile == "official" and distro == "debian12", "only official on Debian keeps the system's sources"
        return
    expected = EXPECTED / f"{profile}-{distro}-{arch}.{'list' if result['format'] == 'oneline' else 'sources'}"
    if os.environ.get("AIWS_REGEN_EXPECTED"):
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_text(text)
    assert expected.exists(), f"missing {expected}; run with AIWS_REGEN_EXPECTED=1 and review"
    assert text == expected.read_text()


@pytest.mark.parametrize(("profile", "distro", "codename", "arch"), CASES, ids=lambda v: str(v))
def test_entries_follow_the_mirrors_help_pages(profile: str, distro: str, codename: str, arch: str) -> None:
    result, text = render(profile, distro, codename, arch)
    if result["keep_system"]:
        return
    entries = F.apt_mirror_parse_sources(text)
    got = {(e["uri"].rstrip("/"), s, " ".join(e["components"])) for e in entries for s in e["suites"]}
    pockets = [codename, f"{codename}-updates", f"{codename}-backports"]
    if distro.startswith("ubuntu"):
        archive = "ubuntu-ports" if arch == "arm64" else "ubuntu"
        if profile == "official":
            base = "http://ports.ubuntu.com/ubuntu-ports" if arch == "arm64" else "http://archive.ubuntu.com/ubuntu"
        else:
            base = f"https://{HELP_HOSTS[profile]}/{archive}"
        comps = " ".join(UBUNTU_COMPONENTS)
        want = {(base, p, comps) for p in pockets} | {(OFFICIAL_SECURITY[arch], f"{codename}-security", comps)}
        keyring = "/usr/share/keyrings/ubuntu-archive-keyring.gpg"
    else:
        base = f"https://{HELP_HOSTS[profile]}/debian"
        comps = " ".join(DEBIAN_COMPONENTS)
        want = {(base, p, comps) for p in pockets} | {(SYSTEM_SECURITY, f"{codename}-security", comps)}
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert got == want
    assert all(e["types"] == ["deb"] for e in entries), "deb-src must be off by default"
    assert "proposed" not in text.replace("-proposed: off", "")
    if result["format"] == "deb822":
        assert text.count(f"Signed-By: {keyring}\n") == len(result["stanzas"])
        assert result["path"].endswith(("ubuntu.sources", "debian.sources"))
        assert result["other"] == "/etc/apt/sources.list"
    else:
        assert distro == "ubuntu22.04" and result["path"] == "/etc/apt/sources.list"
        assert all(line.startswith(("#", "deb ")) or not line for line in text.splitlines())


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "official"])
def test_security_from_the_mirror_on_request(profile: str) -> None:
    for distro, codename, arch in TARGETS:
        result, text = render(profile, distro, codename, arch, security="mirror")
        sec = [s for s in result["stanzas"] if s["role"] == "security"]
        assert len(sec) == 1
        if distro.startswith("ubuntu"):
            assert sec[0]["uri"] == result["stanzas"][0]["uri"]
        else:
            assert sec[0]["uri"] == f"https://{HELP_HOSTS[profile]}/debian-security"
        assert "Security updates come from the mirror" in text


def test_proposed_and_deb_src_are_opt_in() -> None:
    result, text = render("tuna", "ubuntu22.04", "jammy", "amd64", proposed=True, deb_src=True)
    assert "deb https://mirrors.tuna.tsinghua.edu.cn/ubuntu/ jammy-proposed main restricted universe multiverse" in text
    assert "deb-src https://mirrors.tuna.tsinghua.edu.cn/ubuntu/ jammy main restricted universe multiverse" in text
    assert "deb-src http://security.ubuntu.com/ubuntu/ jammy-security main restricted universe multiverse" in text
    result, text = render("ustc", "ubuntu24.04", "noble", "arm64", proposed=True, deb_src=True)
    assert "Types: deb deb-src\nURIs: https://mirrors.ustc.edu.cn/ubuntu-ports\n" in text
    assert "Suites: noble noble-updates noble-backports noble-proposed\n" in text
    result, _ = render("tuna", "debian12", "bookworm", "amd64", proposed=True)
    assert all("proposed" not in s for st in result["stanzas"] for s in st["suites"]), "Debian has no -proposed pocket"


def test_https_bootstrap_and_cache_forms() -> None:
    boot = F.apt_mirror_sources(mirror("aliyun"), "ubuntu24.04", "noble", "amd64", http_bootstrap=True)
    assert boot["stanzas"][0]["uri"] == "http://mirrors.aliyun.com/ubuntu"
    cached = F.apt_mirror_sources(mirror("aliyun"), "ubuntu24.04", "noble", "amd64", cache_proxy="http://cache:3142")
    assert cached["stanzas"][0]["uri"] == "http://HTTPS///mirrors.aliyun.com/ubuntu"
    assert cached["stanzas"][1]["uri"] == "http://security.ubuntu.com/ubuntu", "http repositories stay as they are"
    assert F.apt_mirror_via_cache("https://developer.download.nvidia.com/compute/cuda/repos", "") .startswith("https://")


def test_official_debian_keeps_the_system_sources_and_custom_is_required_to_name_an_archive() -> None:
    assert F.apt_mirror_sources(mirror("official"), "debian12", "bookworm", "amd64")["keep_system"]
    with pytest.raises(F.AptMirrorError):
        F.apt_mirror_sources({"profile": "custom", "apt": {}}, "ubuntu22.04", "jammy", "amd64")
    with pytest.raises(F.AptMirrorError):
        F.apt_mirror_sources(mirror("tuna"), "ubuntu26.04", "resolute", "amd64")
    note = F.apt_mirror_sources(mirror("tuna"), "debian12", "bookworm", "amd64", system_security=[])
    assert len(note["stanzas"]) == 1 and "no security entry" in note["notes"][0]


# What the Debian 12 installer writes without contrib or non-free (the archive host is the system's own).
INSTALLER_SOURCES = (
    "deb http://archive.system-sources.invalid/debian/ bookworm main non-free-firmware\n"
    "deb-src http://archive.system-sources.invalid/debian/ bookworm main non-free-firmware\n\n"
    f"deb {SYSTEM_SECURITY} bookworm-security main non-free-firmware\n"
    "deb http://archive.system-sources.invalid/debian/ bookworm-updates main non-free-firmware\n"
)


def test_official_debian_adds_the_components_the_driver_needs_to_the_systems_own_sources() -> None:
    entries = F.apt_mirror_parse_sources(INSTALLER_SOURCES)
    need = ["main", "contrib", "non-free", "non-free-firmware"]
    result, text = render("official", "debian12", "bookworm", "amd64", required_components=need, system_entries=entries)
    assert result["keep_system"] is False
    assert result["path"] == "/etc/apt/sources.list.d/debian.sources"
    assert [(s["role"], s["types"], s["uri"], s["suites"], s["components"]) for s in result["stanzas"]] == [
        ("archive", ["deb"], "http://archive.system-sources.invalid/debian", ["bookworm", "bookworm-updates"],
         ["main", "non-free-firmware", "contrib", "non-free"]),
        ("archive", ["deb-src"], "http://archive.system-sources.invalid/debian", ["bookworm"],
         ["main", "non-free-firmware", "contrib", "non-free"]),
        ("security", ["deb"], SYSTEM_SECURITY, ["bookworm-security"], ["main", "non-free-firmware", "contrib", "non-free"]),
    ]
    assert "contrib non-free added" in text
    assert "Components: main non-free-firmware contrib non-free" in text
    # Sources that already carry them stay the system's own; so does a plan that needs nothing.
    full = F.apt_mirror_parse_sources(INSTALLER_SOURCES.replace("main non-free-firmware", "main contrib non-free non-free-firmware"))
    assert F.apt_mirror_sources(mirror("official"), "debian12", "bookworm", "amd64", required_components=need,
                                system_entries=full)["keep_system"]
    assert F.apt_mirror_sources(mirror("official"), "debian12", "bookworm", "amd64", required_components=[],
                                system_entries=entries)["keep_system"]


def test_required_components_join_a_mirrors_components() -> None:
    result = F.apt_mirror_sources(mirror("tuna"), "debian12", "bookworm", "amd64", components=["main"],
                                  required_components=["main", "contrib", "non-free"], system_security=[SYSTEM_SECURITY])
    assert {tuple(s["components"]) for s in result["stanzas"]} == {("main", "contrib", "non-free")}


def test_parse_sources_reads_both_formats() -> None:
    one = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\n" \
          "deb-src http://m.example/debian bookworm main\n#deb http://off.example/debian bookworm main\n"
    assert F.apt_mirror_parse_sources(one) == [
        {"types": ["deb"], "uri": "http://m.example/debian", "suites": ["bookworm"], "components": ["main", "contrib"]},
        {"types": ["deb-src"], "uri": "http://m.example/debian", "suites": ["bookworm"], "components": ["main"]},
    ]
    deb822 = "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n" \
             "Types: deb\nURIs: http://s.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n" \
             "Enabled: no\nTypes: deb\nURIs: http://x.example/debian\nSuites: bookworm\n"
    entries = F.apt_mirror_parse_sources(deb822)
    assert [e["uri"] for e in entries] == ["http://m.example/debian", "http://s.example/debian-security"]
    assert F.apt_mirror_security_uris(entries, "bookworm") == ["http://s.example/debian-security"]


def test_parse_sources_keeps_one_line_entries_beside_a_deb822_file() -> None:
    """read.yml reads sources.list and debian.sources as one text: a host with entries in both (and no
    blank line between the files) must give all of them, in the order they stand."""
    text = "deb http://one.example/debian bookworm main\n# deb http://off.example/debian bookworm main\n" \
           "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm\nComponents: main\n\n" \
           "Types: deb\nURIs: http://s.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    entries = F.apt_mirror_parse_sources(text)
    assert [e["uri"] for e in entries] == ["http://one.example/debian", "http://m.example/debian",
                                           "http://s.example/debian-security"]
    assert entries[0] == {"types": ["deb"], "uri": "http://one.example/debian", "suites": ["bookworm"],
                          "components": ["main"]}
    assert F.apt_mirror_security_uris(entries, "bookworm") == ["http://s.example/debian-security"]


def test_failed_urls_name_only_the_mirrors_own_failures() -> None:
    stderr = (
        "E: Failed to fetch http://127.0.0.1:8119/debian/dists/bookworm/InRelease  Could not connect\n"
        "E: Failed to fetch https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/InRelease  403\n"
        "E: Some index files failed to download.\n"
    )
    render_ = {"stanzas": [{"uri": "http://127.0.0.1:8119/debian"}]}
    assert F.apt_mirror_failed_urls(stderr) == [
        "http://127.0.0.1:8119/debian/dists/bookworm/InRelease",
        "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/InRelease",
    ]
    assert F.apt_mirror_failed_urls(stderr, render_) == ["http://127.0.0.1:8119/debian/dists/bookworm/InRelease"]
    assert F.apt_mirror_failed_urls(stderr, {"stanzas": [{"uri": "http://127.0.0.1:8119/debian-security"}]}) == []
    # apt 2.6 reports some failures as warnings and exits 0: they still count.
    warned = "W: Failed to fetch http://127.0.0.1:8119/debian/dists/bookworm-updates/InRelease  Unable to connect\n"
    assert F.apt_mirror_failed_urls(warned, render_) == ["http://127.0.0.1:8119/debian/dists/bookworm-updates/InRelease"]
    # A mirror answering 404: apt's Err: lines go to stdout, stderr only says which suites lack a Release file.
    missing = ("E: The repository 'http://127.0.0.1:8119/debian bookworm Release' does not have a Release file.\n"
               "N: Updating from such a repository can't be done securely, and is therefore disabled by default.\n"
               "E: The repository 'http://127.0.0.1:8119/debian bookworm-updates Release' does not have a Release file.\n")
    assert F.apt_mirror_failed_urls(missing, render_) == ["http://127.0.0.1:8119/debian/dists/bookworm/Release",
                                                          "http://127.0.0.1:8119/debian/dists/bookworm-updates/Release"]


def test_every_profile_names_its_help_pages() -> None:
    for name, profile in DATA.items():
        assert profile.get("help"), f"data/mirrors.yml profile {name} lacks `help` (the pages its URLs follow)"
