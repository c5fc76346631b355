"""The security pass on a provisioned host: nothing the roles manage is writable by every user, and
every apt source is signed, the third-party one by exactly its pinned key."""

from __future__ import annotations

import os
import re

# Everything the stages write or create (the CUDA toolkits' own trees included).
MANAGED = ["/etc/apt", "/etc/conda", "/etc/pip.conf", "/etc/uv", "/etc/profile.d", "/etc/ld.so.conf.d",
           "/etc/ansible/facts.d", "/etc/modprobe.d", "/etc/bash.bashrc", "/usr/share/keyrings", "/opt/anaconda3",
           "/var/lib/aiws", "/var/backups/aiws", "/var/cache/aiws", "/usr/local/cuda-*"]


def test_nothing_the_roles_manage_is_world_writable(host) -> None:
    found = host.run("find " + " ".join(MANAGED) + " -xdev -perm -0002 ! -type l -print 2>/dev/null")
    assert found.stdout.strip() == "", "world-writable:\n" + found.stdout
    # The shared installation's default ACL gives others nothing (anaconda_others_access: none).
    # (getfacl -d prints the default entries without their "default:" prefix)
    acl = host.check_output("getfacl -p --omit-header -d /opt/anaconda3")
    assert re.search(r"^other::---$", acl, re.MULTILINE), acl


def sources(host) -> list[dict]:
    """Every enabled apt source entry: uri and signed-by, from one-line and deb822 files."""
    entries = []
    for path in host.check_output("ls -1 /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true").split():
        text = host.file(path).content_string
        if path.endswith(".sources"):
            for block in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", block, re.MULTILINE))
                if fields.get("URIs") and fields.get("Enabled", "yes") != "no":
                    entries += [{"file": path, "uri": u, "signed_by": fields.get("Signed-By", "")} for u in fields["URIs"].split()]
        else:
            for m in re.finditer(r"^deb(?:-src)?\s+(?:\[([^\]]*)\]\s+)?(\S+)", text, re.MULTILINE):
                signed = re.search(r"signed-by=(\S+)", m.group(1) or "")
                entries.append({"file": path, "uri": m.group(2), "signed_by": signed.group(1) if signed else ""})
    return entries


def test_every_apt_source_is_signed_and_the_third_party_key_is_the_pinned_one(host) -> None:
    entries = sources(host)
    assert entries
    for entry in entries:
        assert "trusted=yes" not in host.file(entry["file"]).content_string
        if entry["signed_by"]:
            assert host.file(entry["signed_by"]).exists, entry
            continue
        # Only the distribution's own archive may go without signed-by: Ubuntu 22.04's one-line
        # sources.list, which apt checks with the distribution's keyring in /etc/apt/trusted.gpg.d as
        # Ubuntu ships it. A third-party source always names its key.
        assert "/nvidia/" not in entry["uri"], f"{entry['file']}: {entry['uri']} has no signed-by"
        assert entry["file"] == "/etc/apt/sources.list", f"{entry['file']}: {entry['uri']} has no signed-by"
        assert host.run("ls /etc/apt/trusted.gpg.d/ | grep -e ubuntu -e debian").stdout.strip(), entry
    third_party = [e for e in entries if "/nvidia/" in e["uri"]]
    assert third_party, entries
    pinned = os.environ["AIWS_FIXTURE_NVIDIA_FPR"].upper()
    for entry in third_party:
        listing = host.check_output(f"gpg --batch --show-keys --with-colons {entry['signed_by']}")
        fingerprints = {line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")}
        pubs = [line for line in listing.splitlines() if line.startswith("pub:")]
        assert len(pubs) == 1 and pinned in fingerprints, (entry, fingerprints)
    # No key of ours among the keys apt trusts for every source.
    assert host.run("ls /etc/apt/trusted.gpg.d/ | grep -i -e cuda -e nvidia").stdout == ""
    assert not host.file("/etc/apt/trusted.gpg").exists or "NVIDIA" not in host.run("gpg --show-keys /etc/apt/trusted.gpg").stdout
