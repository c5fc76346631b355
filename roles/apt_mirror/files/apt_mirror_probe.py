#!/usr/bin/env python3
"""Probe apt mirrors in parallel and print the fastest healthy one as JSON (stdlib only).

Each candidate is asked for the first KiB of dists/<codename>/InRelease (a range request on the
repository's own index, so the timing is that of the repository, not of a speed-test file). A
candidate is healthy when it answers within the timeout, the file names the codename, and its
Date is no more than --max-lag-hours older than the reference (the official archive) when the
reference answers. The fastest healthy candidate wins; none healthy -> "chosen": null.

usage: apt_mirror_probe.py --codename C [--timeout S] [--max-lag-hours H] [--reference URL] NAME=URL...
"""

from __future__ import annotations

import argparse
import concurrent.futures
import email.utils
import json
import re
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def probe(name: str, base: str, codename: str, timeout: float) -> dict[str, Any]:
    url = base.rstrip("/") + f"/dists/{codename}/InRelease"
    result: dict[str, Any] = {"name": name, "url": url, "ok": False, "seconds": None, "date": None, "reason": ""}
    request = urllib.request.Request(url, headers={"Range": "bytes=0-1023", "User-Agent": "aiws-apt-mirror-probe"})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            head = response.read(4096).decode("utf-8", "replace")
            result["status"] = response.status
    except urllib.error.HTTPError as err:
        result["reason"] = f"HTTP {err.code}"
        return result
    except (urllib.error.URLError, OSError) as err:
        result["reason"] = str(getattr(err, "reason", err))
        return result
    result["seconds"] = round(time.monotonic() - start, 3)
    if not re.search(rf"(?m)^(Codename|Suite): {re.escape(codename)}\s*$", head):
        result["reason"] = f"InRelease does not name {codename}"
        return result
    m = re.search(r"(?m)^Date: (.+)$", head)
    if not m:
        result["reason"] = "InRelease has no Date"
        return result
    try:
        result["date"] = email.utils.parsedate_to_datetime(m.group(1).strip()).timestamp()
    except (TypeError, ValueError):
        result["reason"] = f"unreadable Date {m.group(1)!r}"
        return result
    result["ok"] = True
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--codename", required=True)
    parser.add_argument("--timeout", type=float, default=5)
    parser.add_argument("--max-lag-hours", type=float, default=48)
    parser.add_argument("--reference", default="")
    parser.add_argument("candidates", nargs="*", help="NAME=URL")
    args = parser.parse_args()
    pairs = [c.split("=", 1) for c in args.candidates if "=" in c]
    jobs = list(pairs) + ([["__reference__", args.reference]] if args.reference else [])
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        results = list(pool.map(lambda p: probe(p[0], p[1], args.codename, args.timeout), jobs))
    reference = next((r for r in results if r["name"] == "__reference__"), None)
    results = [r for r in results if r["name"] != "__reference__"]
    ref_date = reference["date"] if reference and reference["ok"] else None
    for r in results:
        if r["ok"] and ref_date is not None:
            r["lag_hours"] = round(max(0.0, ref_date - r["date"]) / 3600, 1)
            if r["lag_hours"] > args.max_lag_hours:
                r["ok"] = False
                r["reason"] = f"stale: {r['lag_hours']} h behind the official Release (limit {args.max_lag_hours:g} h)"
    healthy = sorted((r for r in results if r["ok"]), key=lambda r: r["seconds"])
    print(json.dumps({
        "chosen": healthy[0]["name"] if healthy else None,
        "reference": {"url": reference["url"], "ok": reference["ok"], "reason": reference["reason"]} if reference else None,
        "results": sorted(results, key=lambda r: (not r["ok"], r["seconds"] if r["seconds"] is not None else 1e9)),
        "elapsed": round(time.monotonic() - started, 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
