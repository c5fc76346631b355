# Copyright (c) aiws contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report command: ``python -m aiws.report --inventory lab`` (see aiws/cli.py).

The report itself is the collection's shared code (plugins/plugin_utils/report.py), which the
aiws_report callback and the verify role's filters use too.
"""

from __future__ import annotations

import sys

from aiws.cli import main

if __name__ == "__main__":
    sys.exit(main())
