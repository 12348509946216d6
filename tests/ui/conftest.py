"""Fixtures for the UI tests: a real ``tallymark server`` over a home with demo-like data, custom
panels and hostile strings, and Debian's Chromium driven by Playwright.

Browser tests skip when ``/usr/bin/chromium`` or the ``playwright`` package is missing, unless
``TALLYMARK_REQUIRE_BROWSER=1`` (CI), which turns that into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from demo_data import WORKSPACE, log_demo_like
from uihelpers import CHROMIUM, CHROMIUM_ARGS, PANELS_SOURCE, XSS, XSS_IMG, require_browser

from servers import ServerProcess


@dataclass
class UIData:
    home: Path
    keys: list[str]
    xss_key: str
    xss_other_key: str
    url: str = ""
    names: dict[str, str] = field(default_factory=dict)


def _log_hostile(home: Path) -> tuple[str, str]:
    """Experiments whose name, tags, params, others, asset metadata, code and stdout are hostile."""
    os.environ["TALLYMARK_HOME"] = str(home)
    os.environ.pop("TALLYMARK_URL", None)
    from tallymark import Experiment

    keys = []
    for i in range(2):
        exp = Experiment(
            project_name="safety",
            workspace=WORKSPACE,
            name=XSS if i == 0 else f"plain {i}",
            tags=[XSS_IMG, "ok"],
            log_code=False,
            log_git=False,
            log_env=False,
            log_system_metrics=False,
            capture_stdout=False,
        )
        with exp:
            exp.log_parameters({"payload": XSS, "lr": 0.1 * (i + 1), XSS_IMG: 1})
            exp.log_other("note", XSS)
            exp.log_metric("loss", 1.0, step=1)
            exp.log_metric("loss", 0.5, step=2)
            exp.log_confusion_matrix(matrix=[[1, 2], [3, 4]], labels=[XSS, XSS_IMG], title=XSS)
            exp.log_curve(XSS, x=[0, 1], y=[0, 1])
            exp.log_table(XSS, [["col", XSS], [XSS_IMG, 1]])
            page = home / "page.html"
            page.write_text(f"<html><body>{XSS}</body></html>")
            exp.log_asset(page, file_name="evil.html", metadata={"note": XSS})
            svg = home / "evil.svg"
            svg.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">{XSS}</svg>')
            exp.log_asset(svg, file_name="evil.svg")
            text = home / "notes.txt"
            text.write_text(f"hello {XSS}\n")
            exp.log_asset(text, file_name="notes.txt")
            exp.log_code(str(PANELS_SOURCE))
            keys.append(exp.get_key())
    return keys[0], keys[1]


@pytest.fixture(scope="session")
def ui_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIData]:
    require_browser()
    home = tmp_path_factory.mktemp("ui") / "home"
    saved = {k: os.environ.get(k) for k in ("TALLYMARK_HOME", "TALLYMARK_URL", "TALLYMARK_USER")}
    os.environ["TALLYMARK_USER"] = "alice"
    try:
        keys = log_demo_like(home, rounds=60)
        xss_key, other = _log_hostile(home)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    panels = home / "panels"
    panels.mkdir()
    shutil.copy(PANELS_SOURCE, panels / "my_panels.py")
    (panels / "broken_panels.py").write_text(
        "import tallymark\nraise RuntimeError('this panels file is broken')\n"
    )
    yield UIData(home=home, keys=keys, xss_key=xss_key, xss_other_key=other)


@pytest.fixture(scope="session")
def ui_server(ui_data: UIData) -> Iterator[UIData]:
    server = ServerProcess(ui_data.home).start()
    ui_data.url = server.url
    try:
        yield ui_data
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(ui_server: UIData) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@dataclass
class PageWatch:
    """Everything a page did that a test may want to forbid: dialogs, script errors, CSP reports."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Any, ui_server: UIData) -> Iterator[tuple[Any, PageWatch]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=ui_server.url)
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    watch = PageWatch()

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(msg: Any) -> None:
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            watch.errors.append(msg.text)

    pg.on("dialog", on_dialog)
    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))
    try:
        yield pg, watch
    finally:
        context.close()
    assert watch.dialogs == [], f"a dialog opened: {watch.dialogs}"
