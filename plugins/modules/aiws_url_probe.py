#!/usr/bin/python
# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ansible module: probe the URLs a run will download from, all at once, through the host's proxy."""

from __future__ import annotations

DOCUMENTATION = r"""
module: aiws_url_probe
short_description: Probe the URLs a run will use, concurrently, through the host's proxy
description:
  - Sends one small GET (header C(Range) C(bytes=0-0)) to each URL from the host, all at the same time, each with a
    short timeout, and reports every URL that does not answer with a success, with the variable or mirror
    profile that set it. Changes nothing, so it runs in check mode too.
  - URLs apt will fetch (I(via=apt)) go through apt's proxy (C(Acquire::http::Proxy), C(Acquire::https::Proxy)
    and their per-host forms, C(DIRECT) for none, read with C(apt-config dump)), else through the environment's
    (C(http_proxy), C(https_proxy), C(no_proxy)); other URLs go through the environment's, as curl and
    get_url do.
  - User names and passwords in URLs and proxies never appear in the result.
options:
  urls:
    description:
      - The URLs, each a dict with C(url), C(set_by) (the variable or mirror profile that chose it, for the
        message) and C(via) (C(apt) or C(direct), default direct).
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds each probe may take.
    type: float
    default: 10
  workers:
    description: Probes at the same time at most.
    type: int
    default: 16
author: aiws contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Probe every URL the plan will use
  aiws.workstation.aiws_url_probe:
    urls:
      - {url: "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/InRelease",
         set_by: "mirror profile official (nvidia_cuda)", via: apt}
      - {url: "https://mirrors.tuna.tsinghua.edu.cn/pypi/simple/", set_by: "mirror profile tuna (pypi)"}
    timeout: 10
"""

RETURN = r"""
results:
  description: One entry per URL, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: The URL, credentials replaced by ***.
      type: str
    set_by:
      description: What set it.
      type: str
    ok:
      description: Whether it answered with a success (2xx, 3xx followed, 416).
      type: bool
    status:
      description: HTTP status, or null when no answer came.
      type: int
    error:
      description: Why it failed, in words.
      type: str
    proxy:
      description: The proxy used (credentials replaced), or DIRECT.
      type: str
    seconds:
      description: How long the probe took.
      type: float
    line:
      description: "The outcome in one line: URL, answer or error, what set it, the proxy."
      type: str
failed_urls:
  description: The results that failed.
  returned: always
  type: list
  elements: dict
"""

import concurrent.futures
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aiws.workstation.plugins.module_utils.redact import redact

USER_AGENT = "aiws-preflight (url probe)"


def apt_proxy_config(text: str) -> dict[str, str]:
    """Acquire::http(s)::Proxy settings from `apt-config dump` output: {'http': url, 'https::host': 'DIRECT', ...}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r'^Acquire::(https?)::Proxy(?:::(\S+))?\s+"(.*)";\s*$', line.strip(), re.IGNORECASE)
        if m:
            scheme, host, value = m.group(1).lower(), m.group(2), m.group(3)
            out[scheme + ("::" + host.lower() if host else "")] = value
    return out


def _no_proxy(host: str, env: dict[str, str]) -> bool:
    entries = [e.strip().lower() for e in (env.get("no_proxy") or env.get("NO_PROXY") or "").split(",") if e.strip()]
    host = host.lower()
    for entry in entries:
        entry = entry.split(":", 1)[0] if not entry.startswith("[") else entry
        if entry == "*" or host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")):
            return True
    return False


def proxy_for(url: str, via: str, apt: dict[str, str], env: dict[str, str]) -> str:
    """The proxy the downloading tool would use for this URL ('' for none): apt's settings for apt, else the environment's.
    apt reads Acquire::<scheme>::Proxy::<host>, then Acquire::<scheme>::Proxy (https defaulting to http's), then
    the environment; DIRECT means none."""
    parts = urllib.parse.urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if via == "apt":
        order = [f"{scheme}::{host}", scheme] if scheme == "http" else [f"https::{host}", f"http::{host}", "https", "http"]
        for key in order:
            if key in apt:
                value = apt[key].strip()
                return "" if value.upper() == "DIRECT" or not value else value
    if _no_proxy(host, env):
        return ""
    return env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY") or ""


def describe(err: BaseException, timeout: float) -> str:
    """An error of urllib in words, without a traceback."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    reason: Any = getattr(err, "reason", err)
    if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, socket.gaierror):
        return f"the host name does not resolve ({reason.strerror or reason})"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({reason.verify_message or reason})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({reason.reason or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def probe(item: dict[str, Any], timeout: float, apt: dict[str, str], env: dict[str, str]) -> dict[str, Any]:
    url = str(item.get("url") or "")
    via = str(item.get("via") or "direct")
    proxy = proxy_for(url, via, apt, env)
    result: dict[str, Any] = {
        "url": redact(url), "set_by": str(item.get("set_by") or ""), "via": via,
        "proxy": redact(proxy) if proxy else "DIRECT", "ok": False, "status": None, "error": "", "seconds": 0.0,
    }
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    handlers: list[Any] = [urllib.request.ProxyHandler({scheme: proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"Range": "bytes=0-0", "User-Agent": USER_AGENT})
    started = time.monotonic()
    try:
        with opener.open(request, timeout=timeout) as answer:
            answer.read(1)
            result.update(ok=True, status=answer.status)
    except urllib.error.HTTPError as err:
        result.update(status=err.code, ok=err.code == 416, error="" if err.code == 416 else describe(err, timeout))
    except (urllib.error.URLError, OSError, ValueError) as err:
        result["error"] = describe(err, timeout)
    except Exception as err:  # noqa: BLE001 - a probe never raises; the message says what happened
        result["error"] = f"{type(err).__name__}: {err}"
    result["seconds"] = round(time.monotonic() - started, 3)
    if result["error"]:
        # urllib names the proxy, credentials included, in some messages: never let them through.
        result["error"] = result["error"].replace(proxy, redact(proxy)) if proxy else result["error"]
        result["error"] = result["error"].replace(url, redact(url))
    shown_proxy = "no proxy" if result["proxy"] == "DIRECT" else f"proxy {result['proxy']}"
    outcome = f"answers (HTTP {result['status']})" if result["ok"] else result["error"]
    result["line"] = f"{result['url']}: {outcome} (set by {result['set_by'] or 'the plan'}; {shown_proxy})"
    return result


def read_apt_proxies() -> dict[str, str]:
    tool = shutil.which("apt-config")
    if not tool:
        return {}
    try:
        dump = subprocess.run([tool, "dump"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return apt_proxy_config(dump)


def run_probes(urls: list[dict[str, Any]], timeout: float, workers: int, env: dict[str, str] | None = None,
               apt: dict[str, str] | None = None) -> list[dict[str, Any]]:
    env = dict(os.environ) if env is None else env
    if apt is None:
        apt = read_apt_proxies() if any(str(u.get("via")) == "apt" for u in urls) else {}
    if not urls:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(urls)))) as pool:
        return list(pool.map(lambda item: probe(item, timeout, apt, env), urls))


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "urls": {"type": "list", "elements": "dict", "required": True},
            "timeout": {"type": "float", "default": 10.0},
            "workers": {"type": "int", "default": 16},
        },
        supports_check_mode=True,
    )
    urls = [u for u in module.params["urls"] if u.get("url")]
    results = run_probes(urls, module.params["timeout"], module.params["workers"])
    failed = [r for r in results if not r["ok"]]
    module.exit_json(changed=False, results=results, failed_urls=failed)


if __name__ == "__main__":
    main()
