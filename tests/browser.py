"""Launching Debian's chromium headless through Playwright (no browser download), for page tests."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def launch(playwright):  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium); .ci/run installs it")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
