"""Screenshots of the real `make demo` output for the README (docs/screenshots/demo-*.png).

    TALLYMARK_HOME=/tmp/demohome tallymark demo            # first
    .venv/bin/python scripts/demo_screenshots.py /tmp/demohome
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ui")]

from servers import ServerProcess  # noqa: E402
from uihelpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


def main() -> int:
    home = Path(sys.argv[1])
    out = ROOT / "docs" / "screenshots"
    import os

    os.environ["TALLYMARK_HOME"] = str(home)
    import tallymark

    api = tallymark.API()
    exps = {e.name: e.key for e in api.get_experiments("demo", "fraud-detection")}
    keys = [exps["xgb-baseline"], exps["xgb-imbalance"]]
    from playwright.sync_api import sync_playwright

    shots = {
        "demo-table.png": ("/demo/fraud-detection", False, None),
        "demo-compare.png": (f"/demo/fraud-detection/compare?keys={keys[0]},{keys[1]}", True,
                             ".chart[data-state=drawn]"),
        "demo-models.png": ("/demo/models/fraud-xgb", True, None),
    }
    with ServerProcess(home) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, base_url=server.url)
        for name, (path, full, wait) in shots.items():
            page.goto(path)
            if wait:
                page.wait_for_selector(wait, timeout=20_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / name), full_page=full)
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
