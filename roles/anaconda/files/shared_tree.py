#!/usr/bin/env python3
"""Make everything below a shared conda prefix usable by one group, and report what changed.

  shared_tree.py --prefix /opt/anaconda3 --group anaconda --others none|read [--check]

For every directory and file below the prefix (symbolic links are left alone, and so are the
owners: a member keeps owning what they created):
  - group: the shared group;
  - directories: setgid, group rwx, and the prefix's default ACL (copied from the prefix itself,
    which the role sets with ansible.posix.acl), so new files are group-writable whatever the
    creator's umask;
  - files: group rw, plus x where the owner has x;
  - others: nothing (none) or read and traverse, never write.
The role's own marks at the top of the prefix (.aiws-install.json, .aiws-installing.json) stay
root's: members share the installation, not what the role reads to decide about it.
Prints one JSON object: {"changed": N, "checked": M, "examples": [...]}. With --check nothing is
changed and N counts what would be.
"""

import argparse
import grp
import json
import os
import stat
import sys

ACL_DEFAULT = "system.posix_acl_default"
ROLE_MARKS = {".aiws-install.json", ".aiws-installing.json"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--others", choices=["none", "read"], default="none")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    if not os.path.isdir(args.prefix):
        print(json.dumps({"changed": 0, "checked": 0, "examples": [], "missing": args.prefix}))
        return 0
    gid = grp.getgrnam(args.group).gr_gid
    try:
        reference = os.getxattr(args.prefix, ACL_DEFAULT)
    except OSError:
        reference = None
    changed, checked = 0, 0
    examples: list[str] = []

    def fix(path: str, st: os.stat_result, is_dir: bool) -> None:
        nonlocal changed
        mode = stat.S_IMODE(st.st_mode)
        want = mode | stat.S_IRGRP | stat.S_IWGRP
        if is_dir or mode & stat.S_IXUSR:
            want |= stat.S_IXGRP
        if is_dir:
            want |= stat.S_ISGID
        want &= ~stat.S_IRWXO
        if args.others == "read":
            want |= stat.S_IROTH | (stat.S_IXOTH if (is_dir or mode & stat.S_IXUSR) else 0)
        acl_wrong = False
        if is_dir and reference is not None:
            try:
                acl_wrong = os.getxattr(path, ACL_DEFAULT) != reference
            except OSError:
                acl_wrong = True
        if st.st_gid == gid and want == mode and not acl_wrong:
            return
        changed += 1
        if len(examples) < 10:
            examples.append(path)
        if args.check:
            return
        if st.st_gid != gid:
            os.chown(path, -1, gid, follow_symlinks=False)
        # chown clears setgid on some systems: always set the mode after it.
        os.chmod(path, want)
        if acl_wrong and reference is not None:
            os.setxattr(path, ACL_DEFAULT, reference)

    for root, dirs, files in os.walk(args.prefix):
        for name in dirs + files:
            if name in ROLE_MARKS and os.path.normpath(root) == os.path.normpath(args.prefix):
                continue
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            checked += 1
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                fix(path, st, stat.S_ISDIR(st.st_mode))
    print(json.dumps({"changed": changed, "checked": checked, "examples": examples, "check": args.check}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
