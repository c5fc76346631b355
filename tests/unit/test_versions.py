"""plugin_utils.versions: the version comparison the plan (nvidia_stack) and the checks share."""

from __future__ import annotations

import pytest
from ansible_collections.aiws.workstation.plugins.plugin_utils.versions import version_key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("12.4", (12, 4)),
        ("580.95.05", (580, 95, 5)),
        ("9.1.0.70", (9, 1, 0, 70)),
        (580, (580,)),
        ("CUDA Version: 12.8", (12, 8)),
        ("", ()),
        (None, ()),
        ("n/a", ()),
    ],
)
def test_version_key(text: object, key: tuple[int, ...]) -> None:
    assert version_key(text) == key


def test_minor_versions_order_as_numbers() -> None:
    assert sorted(["12.10", "12.4", "12.9", "13.0"], key=version_key) == ["12.4", "12.9", "12.10", "13.0"]
    assert max(["12.0", "12.8"], key=version_key) == "12.8"
