# Copyright (c) aiws contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""aiws controller-side Python: verification parsers and checks, the fleet report and its CLI."""

__version__ = "1.0.0"
