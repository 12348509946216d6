"""The web UI in a real browser (Debian's Chromium via Playwright) against a real server."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from uihelpers import XSS, XSS_IMG, project_path

from tallymark.query import QueryError, parse

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _rows(pg):
    return pg.locator("#experiments tbody tr[data-key]")


def _names(pg):
    return [t.strip() for t in pg.locator("#experiments tbody tr[data-key] a.exp-name").all_inner_texts()]


def _query(pg) -> dict[str, list[str]]:
    return parse_qs(urlparse(pg.url).query)


def test_workspaces_and_projects_link_to_the_table(page):
    pg, _ = page
    pg.goto("/")
    pg.get_by_role("link", name="demo", exact=True).click()
    pg.get_by_role("link", name="fraud-detection").click()
    assert urlparse(pg.url).path == project_path()
    assert _rows(pg).count() == 2


def test_table_lists_both_and_sorts(page):
    pg, watch = page
    pg.goto(project_path())
    assert sorted(_names(pg)) == ["xgb-baseline", "xgb-deeper-slower"]
    assert pg.locator("#total").inner_text() == "2 experiments"
    header = pg.locator('th[data-field="params.learning_rate"] a.sort')
    header.click()
    pg.wait_for_url("**sort=params.learning_rate**")
    assert _names(pg) == ["xgb-deeper-slower", "xgb-baseline"]  # 0.05 before 0.15
    pg.locator('th[data-field="params.learning_rate"] a.sort').click()
    pg.wait_for_url("**sort=-params.learning_rate**")
    assert _names(pg) == ["xgb-baseline", "xgb-deeper-slower"]
    assert "▼" in pg.locator('th[data-field="params.learning_rate"]').inner_text()
    assert watch.errors == []


def test_filter_with_a_good_and_a_bad_query(page):
    pg, watch = page
    pg.goto(project_path())
    pg.fill("#q", "params.learning_rate = 0.15 and metrics.validation_auc > 0.9")
    pg.press("#q", "Enter")
    pg.wait_for_url("**q=params.learning_rate**")
    assert _names(pg) == ["xgb-baseline"]
    assert pg.locator("#total").inner_text() == "1 experiment match"
    assert pg.locator('th[data-field="metrics.validation_auc"]').count() == 1  # the filtered field shows

    bad = "metrics.validation_auc > and tags exists"
    with pytest.raises(QueryError) as err:
        parse(bad)
    pg.fill("#q", bad)
    pg.press("#q", "Enter")
    box = pg.locator("#query-error")
    box.wait_for()
    assert f"at column {err.value.column}" in box.inner_text()
    assert err.value.message in box.inner_text()
    assert box.get_attribute("data-column") == str(err.value.column)
    assert "^" in box.locator("pre").inner_text()
    assert pg.locator("#q").input_value() == bad  # the query stays in the box, caret at the column
    assert pg.evaluate("document.getElementById('q').selectionStart") == err.value.column - 1
    assert _rows(pg).count() == 0
    assert watch.errors == []


def test_table_state_is_restored_from_the_url(page):
    pg, _ = page
    cols = "params.max_depth,metrics.test_auc_pr,tags"
    pg.goto(project_path() + f"?q=tags+%3D+%27xgboost%27&sort=-metrics.test_auc_pr&cols={cols}&per_page=25")
    assert pg.locator("#q").input_value() == "tags = 'xgboost'"
    fields = pg.locator("#experiments thead th[data-field]").evaluate_all(
        "els => els.map(e => e.dataset.field)"
    )
    assert fields == ["params.max_depth", "metrics.test_auc_pr", "tags"]
    assert _names(pg) == ["xgb-deeper-slower", "xgb-baseline"]  # 0.846 before 0.812
    assert pg.locator("select[name=per_page]").input_value() == "25"
    # the column picker writes ?cols=
    pg.locator("#column-picker summary").click()
    pg.locator('#column-picker input[value="params.learning_rate"]').check()
    pg.locator("#column-picker button[type=submit]").click()
    pg.wait_for_url("**cols=**")
    assert "params.learning_rate" in _query(pg)["cols"][0]
    assert pg.locator('th[data-field="params.learning_rate"]').count() == 1


def test_compare_page(page, ui_server):
    pg, watch = page
    pg.goto(project_path())
    for box in pg.locator("input.row-check").all():
        box.check()
    assert pg.locator("#selected-count").inner_text() == "2 selected"
    pg.locator("#compare-btn").click()
    pg.wait_for_url("**/compare?keys=**")
    keys = _query(pg)["keys"][0].split(",")
    assert sorted(keys) == sorted(ui_server.keys)

    differs = pg.locator("#param-diff tr.differs").evaluate_all("rs => rs.map(r => r.dataset.param)")
    assert set(differs) == {"learning_rate", "max_depth", "scale_pos_weight"}
    assert pg.locator('#param-diff tr[data-param="objective"]').get_attribute("class") is None

    chart = pg.locator('.chart-card[data-metric="validation_auc"] .chart')
    pg.wait_for_selector('.chart-card[data-metric="validation_auc"] .chart[data-state="drawn"]')
    assert chart.get_attribute("data-series") == "2"
    assert chart.locator("canvas").count() == 1
    legend = chart.locator(".u-legend .u-series").all_inner_texts()
    assert any("xgb-baseline" in t for t in legend) and any("xgb-deeper-slower" in t for t in legend)
    assert int(chart.get_attribute("data-points")) == 120  # 60 rounds x 2 runs
    chart.locator(".u-over").hover()  # hover shows every series' value at that step in the legend
    values = chart.locator(".u-legend .u-series .u-value").all_inner_texts()
    assert len(values) == 3 and all(re.fullmatch(r"0\.9\d*", v) for v in values[1:]), values

    cms = pg.locator("#confusion figure.cm")
    assert cms.count() == 2
    counts = cms.locator("td.cell").evaluate_all("tds => tds.map(t => t.dataset.count)")
    assert counts[:4] in (["56840", "24", "19", "79"], ["56829", "35", "12", "86"])
    assert sorted([counts[:4], counts[4:]]) == sorted(
        [["56840", "24", "19", "79"], ["56829", "35", "12", "86"]]
    )
    assert "80.6%" in pg.locator("#confusion").inner_text()  # row percentage of 79 / 98

    roc = pg.locator('.chart-card[data-curve="roc_curve"] .chart')
    pg.wait_for_selector('.chart-card[data-curve="roc_curve"] .chart[data-state="drawn"]')
    assert roc.get_attribute("data-series") == "2"
    assert roc.locator("canvas").count() == 1
    pg.wait_for_selector('.chart-card[data-curve="pr_curve"] .chart[data-state="drawn"]')
    assert watch.errors == []


def test_compare_controls_live_in_the_url(page, ui_server):
    pg, _ = page
    keys = ",".join(ui_server.keys)
    pg.goto(f"{project_path()}/compare?keys={keys}&smooth=0.6&log=1&params=diff")
    assert pg.locator("#smooth").input_value() == "0.6"
    assert pg.locator("#log-y").is_checked()
    rows = pg.locator("#param-diff tbody tr")
    assert rows.count() == 3  # only the parameters that differ
    pg.wait_for_selector('.chart-card[data-metric="validation_auc"] .chart[data-state="drawn"]')
    # smoothing draws raw (faint) and smoothed series: 4 uPlot series for 2 experiments
    n = pg.locator('.chart-card[data-metric="validation_auc"] .u-legend .u-series').count()
    assert n == 1 + 4
    pg.select_option("#x-axis", "time")
    pg.wait_for_function("location.search.includes('x=time')")
    pg.uncheck("#log-y")
    pg.wait_for_function("!location.search.includes('log=')")


def test_experiment_tabs(page, ui_server):
    pg, watch = page
    key = ui_server.keys[0]
    base = f"{project_path()}/{key}"
    pg.goto(base)
    assert pg.locator("h1").inner_text() == "xgb-baseline"
    assert "test_auc_pr" in pg.locator("#metric-summary").inner_text()
    pg.locator('nav.tabs a[data-tab="code"]').click()
    pg.wait_for_url("**tab=code")
    assert "def log_run" in pg.locator("pre.code").inner_text()
    pg.locator('nav.tabs a[data-tab="environment"]').click()
    assert "python.version" in pg.locator("#environment").inner_text()
    assert pg.locator("#packages tbody tr").count() > 5
    assert "fastapi" in pg.locator("#packages").inner_text()
    pg.fill("input.row-filter", "fastapi")
    assert pg.locator("#packages tbody tr:visible").count() == 1
    pg.locator('nav.tabs a[data-tab="stdout"]').click()
    assert "training xgb-baseline for 60 rounds" in pg.locator("#stdout").inner_text()
    pg.locator('nav.tabs a[data-tab="git"]').click()
    assert "commit" in pg.locator("#tab-git").inner_text()
    pg.goto(base + "?tab=metrics&smooth=0.5")
    pg.wait_for_selector('.chart-card[data-metric="train_auc"] .chart[data-state="drawn"]')
    assert pg.locator("#smooth").input_value() == "0.5"
    pg.goto(base + "?tab=system")
    pg.wait_for_selector('.chart-card[data-metric="sys.cpu.percent"] .chart[data-state="drawn"]')
    pg.goto(base + "?tab=confusion")
    assert "56840" in pg.locator("figure.cm").inner_text()
    pg.goto(base + "?tab=curves")
    pg.wait_for_selector('.chart-card[data-curve="roc_curve"] .chart[data-state="drawn"]')
    pg.goto(base + "?tab=assets")
    assert "feature_importance.csv" in pg.locator("#tab-assets").inner_text()
    for tab in ("artifacts", "lineage"):
        pg.goto(base + f"?tab={tab}")
        assert pg.locator(f"#tab-{tab}").inner_text().strip()
    assert watch.errors == []


def test_custom_panels_render_and_a_failing_one_shows_its_error(page, ui_server):
    pg, watch = page
    pg.goto(f"{project_path()}/compare?keys={','.join(ui_server.keys)}#panels")
    card = pg.locator('.panel-card[data-panel="precision at k"]')
    card.locator('.panel-body[data-state="drawn"]').wait_for()
    assert card.locator("canvas").count() == 1
    assert card.locator(".chart").get_attribute("data-series") == "2"
    plotly = pg.locator('.panel-card[data-panel="final AUC (Plotly)"]')
    plotly.locator('.panel-body[data-state="drawn"]').wait_for()
    assert plotly.locator("canvas").count() == 1
    vega = pg.locator('.panel-card[data-panel="validation AUC (Vega-Lite)"]')
    vega.locator('.panel-body[data-state="drawn"]').wait_for()
    assert vega.locator(".chart").get_attribute("data-series") == "2"
    png = pg.locator('.panel-card[data-panel="a PNG image"]')
    png.locator('.panel-body[data-state="drawn"]').wait_for()
    assert png.locator("img.panel-img").evaluate("img => img.naturalWidth") == 8

    failing = pg.locator('.panel-card[data-panel="failing panel"]')
    failing.locator('.panel-body[data-state="error"]').wait_for()
    text = failing.inner_text()
    assert "ValueError: boom from panel with 2 experiments" in text
    assert "Traceback" in text
    assert "this panels file is broken" in pg.locator("#panels").inner_text()  # a file that fails to import
    # the rest of the page is unaffected
    pg.wait_for_selector('.chart-card[data-metric="validation_auc"] .chart[data-state="drawn"]')
    assert watch.errors == []


def test_stored_script_never_runs(page, ui_server):
    pg, watch = page
    key, other = ui_server.xss_key, ui_server.xss_other_key
    base = f"{project_path('safety')}/{key}"
    pg.goto(project_path("safety") + "?cols=params.payload,others.note,tags," + "params.`" + XSS_IMG + "`")
    assert XSS in pg.locator("#experiments").inner_text()
    assert XSS_IMG in pg.locator("#experiments").inner_text()
    pg.goto(base)
    assert pg.locator("h1").inner_text() == XSS
    assert pg.locator("script:not([src]):not([type='application/json'])").count() == 0
    for tab in ("parameters", "confusion", "curves", "assets", "code", "stdout", "metrics"):
        pg.goto(f"{base}?tab={tab}")
        pg.wait_for_load_state("load")
    pg.goto(f"{base}?tab=assets")
    assert XSS in pg.locator("#assets-table").inner_text()  # asset metadata, as text
    for link in pg.locator("#assets-table tbody tr td:first-child a").all():
        pg.goto(ui_server.url + link.get_attribute("href"))
        assert pg.locator("#asset-preview").count() == 1
        pg.goto(f"{base}?tab=assets")
    pg.goto(f"{project_path('safety')}/compare?keys={key},{other}")
    pg.wait_for_selector('.chart-card[data-metric="loss"] .chart[data-state="drawn"]')
    assert XSS in pg.locator("#compare-legend").inner_text()
    assert XSS in pg.locator("#confusion").inner_text()
    pg.wait_for_timeout(300)
    assert watch.dialogs == []
    assert watch.errors == []


def test_pages_and_assets_are_served_safely(ui_server):
    key = ui_server.xss_key
    with httpx.Client(base_url=ui_server.url) as c:
        r = c.get(project_path(), headers={"Origin": "https://evil.example"})
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in r.headers
        assets = c.get(f"/api/v1/experiments/{key}/assets").json()["assets"]
        for a in assets:
            r = c.get(f"/api/v1/experiments/{key}/assets/{a['assetId']}/content")
            if a["fileName"] in ("evil.html", "evil.svg"):
                assert r.headers["content-type"] == "application/octet-stream"
                assert r.headers["content-disposition"].startswith("attachment")
            assert r.headers["x-content-type-options"] == "nosniff"
        assert c.get("/docs").status_code == 200
        assert c.get("/api/v1/openapi.json").json()["openapi"]
        assert c.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"
