"""Debian's Chromium as Playwright drives it here (the browser tests, `make screenshots`)."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""The browser: Debian's package (`make test` installs it as root); Playwright downloads none."""

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Chromium as this sandbox lets it run: no sandbox (root), no GPU, and none of its own traffic
to the network (there is none here; the pages it opens are on loopback)."""
