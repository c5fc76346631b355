# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Version numbers as the plan and the checks compare them (driver 580.95.05, CUDA 12.4, cuDNN 9.1.0)."""

from __future__ import annotations

import re


def version_key(text: object) -> tuple[int, ...]:
    """The numbers of a version in order, for comparing: '12.4' -> (12, 4), '580.95.05' -> (580, 95, 5).

    '12.4' < '12.10' as tuples, as CUDA means it. Anything without digits gives (): None, '', 'n/a'.
    """
    return tuple(int(part) for part in re.findall(r"\d+", str(text if text is not None else "")))
