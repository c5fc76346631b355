"""Preflight in the containers: a mirror that does not answer is refused before any change, named with
the variable that set it (its URL probe); the scenario's own URLs all answered, or nothing converged."""

from __future__ import annotations

import json

from test_apt_mirror import DEAD, SOURCES, converge, read, recap


def test_an_unreachable_mirror_is_refused_before_anything_changes() -> None:
    before = read(SOURCES)
    down = {"aiws_mirror_custom": {"apt": {"debian": f"{DEAD}/debian", "debian_security": f"{DEAD}/debian-security"}}}
    run = converge("-e", json.dumps(down))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"{DEAD}/debian/dists/bookworm/InRelease: connection refused (set by aiws_mirror_custom.apt.debian; no proxy)" in output
    assert f"{DEAD}/debian-security/dists/bookworm-security/InRelease: connection refused" in output
    assert "nothing was changed" in output
    assert "Mirrors | point apt at the cache and the chosen mirror" not in run.stdout, "the mirrors stage must not start"
    counts = recap(run)
    assert counts["failed"] == 1 and counts["changed"] == 0
    assert read(SOURCES) == before
