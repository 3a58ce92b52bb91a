#!/usr/bin/env python3
"""Container health check (the image's HEALTHCHECK, compose's healthchecks): exit 0 when a URL answers 2xx.

    yuqing-healthcheck [URL]    # default: $YUQING_HEALTHCHECK_URL, else the worker's /healthz

Standard library only, so the slim image (no curl) runs it too. A 503 from /readyz or /healthz, a refused
connection or a timeout is unhealthy (exit 1, the reason on stderr).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8600/healthz"


def check(url: str, timeout_s: float) -> str | None:
    """None when healthy, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, unreachable, timed out, a malformed URL
        return str(exc)
    return None if 200 <= status < 300 else f"HTTP {status}"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("YUQING_HEALTHCHECK_URL", DEFAULT_URL)
    problem = check(url, float(os.environ.get("YUQING_HEALTHCHECK_TIMEOUT_S", "4")))
    if problem is not None:
        print(f"unhealthy: {url}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
