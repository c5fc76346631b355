# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""URLs safe to print: shared by the URL-probe module (on the host) and the input checks (on the controller)."""

from __future__ import annotations

import re

# The scheme, then the user information up to the authority's last @ (a password may hold a raw @);
# the authority ends at the first /, ? or #.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")


def redact(url: str | None) -> str:
    """The URL with any user name and password replaced by ***."""
    return _USERINFO.sub(r"\1***@", url or "")
