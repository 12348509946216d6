"""Constants and helpers of the UI tests (a module of its own: test files import it by name,
which ``conftest`` cannot safely be when several test folders have one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from demo_data import PROJECT, WORKSPACE

CHROMIUM = "/usr/bin/chromium"
REQUIRE_ENV = "TALLYMARK_REQUIRE_BROWSER"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
XSS = "<script>alert('xss')</script>"
XSS_IMG = "<img src=x onerror=alert('img')>"
PANELS_SOURCE = Path(__file__).resolve().parent / "panels_fixture.py"


def browser_unavailable() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


def require_browser() -> None:
    reason = browser_unavailable()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but no browser: {reason}", pytrace=False)
    pytest.skip(f"browser tests need Chromium: {reason} (set {REQUIRE_ENV}=1 to make this an error)")


def project_path(project: str = PROJECT) -> str:
    return f"/{WORKSPACE}/{project}"
