"""Regenerate docs/screenshots/*.png: demo-like data, a real server, Debian's Chromium.

.venv/bin/python tests/ui/make_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from demo_data import PROJECT, WORKSPACE, log_demo_like  # noqa: E402
from uihelpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

from servers import ServerProcess  # noqa: E402

SHOTS = {  # file -> (path, full page, what to wait for)
    "table.png": ("/{ws}/{project}", False, None),
    "experiment.png": ("/{ws}/{project}/{key0}", False, None),
    "experiment-metrics.png": ("/{ws}/{project}/{key0}?tab=metrics", False, ".chart[data-state=drawn]"),
    "compare.png": (
        "/{ws}/{project}/compare?keys={key0},{key1}",
        True,
        "#panels .panel-body[data-state=drawn]",
    ),
    "artifacts.png": ("/{ws}/artifacts/fraud-dataset", True, None),
    "models.png": ("/{ws}/models/fraud-xgb", True, None),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=HERE.parent.parent / "docs" / "screenshots")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        keys = log_demo_like(home, rounds=100)
        (home / "panels").mkdir()
        example = home / "panels" / "example_panels.py"
        shutil.copy(HERE / "panels_fixture.py", example)
        with example.open("a") as f:  # the test-only panels would only distract in the docs
            f.write(
                "\nfor _name in ('failing panel', 'a PNG image'):\n    tallymark.panels.unregister(_name)\n"
            )
        with ServerProcess(home) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1440, "height": 900}, base_url=server.url)
            for name, (path, full, wait) in SHOTS.items():
                url = path.format(ws=WORKSPACE, project=PROJECT, key0=keys[0], key1=keys[1])
                page.goto(url)
                if name == "table.png":
                    for box in page.locator("input.row-check").all():
                        box.check()
                if name == "models.png":  # bob approves alice's 2.0.0 request; 1.0.0's stays pending
                    page.fill("#acting-as-user", "bob")
                    row = page.locator('#pending tr[data-version="2.0.0"]')
                    row.locator("input.decision-comment").fill("reviewed metrics and data lineage")
                    row.get_by_role("button", name="Approve").click()
                    page.wait_for_selector('#versions tr[data-version="2.0.0"][data-status="production"]')
                if wait:
                    page.wait_for_selector(wait)
                page.wait_for_timeout(400)
                page.screenshot(path=str(args.out / name), full_page=full)
                print(args.out / name)
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
