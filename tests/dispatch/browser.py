"""Headless Chromium for the browser tests: Debian's build, launched with the flags every
browser test uses, and the folder their screenshots go to."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def artifacts(name: str) -> Path:
    """``$DISPATCH_TEST_ARTIFACTS/name`` (default ``test-artifacts/name``), created."""
    folder = Path(os.environ.get("DISPATCH_TEST_ARTIFACTS") or "test-artifacts") / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Any]:
    """A Playwright browser, closed on the way out."""
    # Imported here: collecting the tests must not need Playwright.
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()
