"""The artifact and model-registry pages in a real browser (Debian's Chromium via Playwright).

The demo-like data (``demo_data.log_demo_like``) holds ``fraud-dataset`` 1.0.0 (``raw``) and 2.0.0
(``preprocessed``), consumed by the data-prep and the two training experiments, and ``fraud-xgb``
1.0.0 and 2.0.0 with production requested by ``alice`` for both. The tests below run in file order:
the last ones approve and reject those requests.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from demo_data import WORKSPACE
from uihelpers import XSS, XSS_IMG

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HOSTILE_WS = "hostile"
ARTIFACTS = f"/{WORKSPACE}/artifacts"
MODELS = f"/{WORKSPACE}/models"


def _sha(path: os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _versions(pg) -> list[str]:
    return [v for v in pg.locator("#versions tbody tr").evaluate_all("rs => rs.map(r => r.dataset.version)")]


@pytest.fixture(scope="module")
def hostile(ui_server) -> Iterator[None]:
    """An artifact and a model whose names, metadata, files, tags and comments are hostile, logged
    over HTTP through the SDK against the test server."""
    from tallymark import API, Artifact, Experiment

    saved = {k: os.environ.get(k) for k in ("TALLYMARK_HOME", "TALLYMARK_URL", "TALLYMARK_USER")}
    os.environ["TALLYMARK_URL"] = ui_server.url
    os.environ["TALLYMARK_USER"] = "mallory"
    quiet = {"log_code": False, "log_git": False, "log_env": False, "log_system_metrics": False}
    data = ui_server.home / "hostile.txt"
    data.write_text(XSS)
    try:
        with Experiment(
            project_name="safety", workspace=HOSTILE_WS, name=XSS, capture_stdout=False, **quiet
        ) as exp:
            art = Artifact(
                XSS_IMG,
                artifact_type="dataset",
                aliases=["raw"],
                version_tags=[XSS],
                metadata={XSS: XSS, "nested": {XSS_IMG: [XSS]}},
            )
            art.add(data, logical_path=XSS_IMG)
            art.add_remote(f"https://evil.example/{XSS_IMG}", logical_path="remote-" + XSS_IMG)
            exp.log_artifact(art)
            exp.get_artifact(XSS_IMG, "raw")
            exp.log_model(XSS_IMG, data, metadata={"note": XSS})
            exp.register_model(XSS_IMG, description=XSS, tags=[XSS])
        api = API()
        try:
            api.get_model(HOSTILE_WS, XSS_IMG).request_status("1.0.0", "production", comment=XSS)
        finally:
            api.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield


def test_workspace_page_links_to_artifacts_and_models(page):
    pg, watch = page
    pg.goto(f"/{WORKSPACE}")
    pg.locator("#workspace-links").get_by_role("link", name="Artifacts").click()
    pg.wait_for_url(f"**{ARTIFACTS}")
    row = pg.locator('#artifacts tbody tr[data-name="fraud-dataset"]')
    assert "dataset" in row.inner_text() and "2" in row.locator("td.num").inner_text()
    pg.goto(f"/{WORKSPACE}")
    pg.locator("#workspace-links").get_by_role("link", name="Models").click()
    pg.wait_for_url(f"**{MODELS}")
    row = pg.locator('#models tbody tr[data-name="fraud-xgb"]')
    cells = row.locator("td").all_inner_texts()
    assert cells[:3] == ["fraud-xgb", "2", "2.0.0"]
    assert cells[3] == "none" and cells[4] == "2"  # nothing in production, two pending requests
    assert watch.errors == []


def test_artifact_versions_show_aliases_sha_and_consumers(page, ui_server):
    pg, watch = page
    pg.goto(ARTIFACTS)
    pg.get_by_role("link", name="fraud-dataset").click()
    pg.wait_for_url(f"**{ARTIFACTS}/fraud-dataset")
    assert _versions(pg) == ["2.0.0", "1.0.0"]  # newest first
    assert pg.locator('#versions tr[data-version="2.0.0"] .alias').all_inner_texts() == ["preprocessed"]
    assert pg.locator('#versions tr[data-version="1.0.0"] .alias').all_inner_texts() == ["raw"]
    assert pg.locator("#versions tr.selected").get_attribute("data-version") == "2.0.0"
    detail = pg.locator("#version-detail")
    assert detail.get_attribute("data-version") == "2.0.0"
    assert "70/30 stratified" in pg.locator("#metadata").inner_text()
    assert "scaler.Amount" in pg.locator("#metadata").inner_text()  # nested metadata, flattened
    full = _sha(ui_server.home / "demo-files" / "splits" / "train.csv")
    sha = pg.locator(f'#files code.sha[data-sha="{full}"]')
    assert sha.inner_text() == full[:12] + "…" and sha.get_attribute("title") == full
    assert "splits/train.csv" in pg.locator("#files").inner_text()
    # consumers: both training runs, linked to their experiment pages
    hrefs = pg.locator("#consumers a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert sorted(urlparse(h).path.rsplit("/", 1)[-1] for h in hrefs) == sorted(ui_server.keys)
    pg.locator("#consumers a", has_text="xgb-baseline").click()
    pg.wait_for_url(f"**/{ui_server.keys[0]}")
    assert pg.locator("h1").inner_text() == "xgb-baseline"

    # ?version= selects a version (an alias works too) and is restored from the URL
    pg.goto(f"{ARTIFACTS}/fraud-dataset?version=raw")
    assert pg.locator("#version-detail").get_attribute("data-version") == "1.0.0"
    files = pg.locator("#files").inner_text()
    assert "s3://bank-data/creditcard.csv" in files and "original/creditcard.csv" in files
    raw_sha = _sha(ui_server.home / "demo-files" / "creditcard.csv")
    assert pg.locator(f'#files code.sha[data-sha="{raw_sha}"]').count() == 1
    assert "kaggle" in pg.locator("#metadata").inner_text()
    assert pg.locator("#consumers").inner_text().strip().startswith("fraud-data-prep")
    source = pg.locator("#version-detail dl.facts a.exp-link")
    assert source.inner_text() == "fraud-data-prep"
    pg.locator('#versions tr[data-version="2.0.0"] td:first-child a').click()
    pg.wait_for_url("**version=2.0.0")
    assert parse_qs(urlparse(pg.url).query) == {"version": ["2.0.0"]}
    pg.reload()
    assert pg.locator("#version-detail").get_attribute("data-version") == "2.0.0"
    assert pg.locator("#versions tr.selected").get_attribute("data-version") == "2.0.0"
    pg.goto(f"{ARTIFACTS}/fraud-dataset?version=9.9.9")
    assert "no version or alias '9.9.9'" in pg.locator(".error-text").inner_text()
    assert watch.errors == []


def test_model_page_shows_pending_requests_versions_and_history(page):
    pg, watch = page
    pg.goto(f"{MODELS}/fraud-xgb")
    rows = pg.locator("#pending tbody tr")
    assert rows.count() == 2
    assert rows.locator("td.requested-by").all_inner_texts() == ["alice", "alice"]
    text = pg.locator("#pending").inner_text()
    assert "beats 1.0.0 on AUC-PR" in text and "production" in text
    assert _versions(pg) == ["2.0.0", "1.0.0"]
    assert pg.locator("#versions tbody tr").evaluate_all("rs => rs.map(r => r.dataset.status)") == [
        "development",
        "development",
    ]
    assert "xgb-deeper-slower" in pg.locator('#versions tr[data-version="2.0.0"]').inner_text()
    assert pg.locator("#versions code.sha").count() == 2
    assert pg.locator("#history tbody tr").count() == 2  # registered, both
    assert "No version is in production" in pg.locator("#lineage").inner_text()
    assert watch.errors == []


def _request_row(pg, version: str):
    return pg.locator(f'#pending tbody tr[data-version="{version}"]')


def test_four_eyes_then_approve_as_bob_and_reject_another(page):
    pg, watch = page
    pg.goto(f"{MODELS}/fraud-xgb")
    pg.fill("#acting-as-user", "alice")
    row = _request_row(pg, "2.0.0")
    row.get_by_role("button", name="Approve").click()
    error = row.locator(".decision-error")
    error.wait_for()
    assert "four eyes" in error.inner_text() and "alice requested this change" in error.inner_text()
    assert pg.locator('#versions tr[data-version="2.0.0"]').get_attribute("data-status") == "development"

    pg.reload()  # the identity is kept in this browser
    assert pg.locator("#acting-as-user").input_value() == "alice"
    pg.fill("#acting-as-user", "bob")
    row = _request_row(pg, "2.0.0")
    row.locator("input.decision-comment").fill("reviewed metrics and data lineage")
    row.get_by_role("button", name="Approve").click()
    pg.wait_for_selector('#versions tr[data-version="2.0.0"][data-status="production"]')
    assert "approved by bob" in pg.locator("#decision-status").inner_text()
    first = pg.locator("#history tbody tr").first.locator("td").all_inner_texts()
    assert first[0] == "2.0.0" and "production" in first[1] and first[2] == "bob"
    assert first[4] == "reviewed metrics and data lineage"
    assert _request_row(pg, "2.0.0").count() == 0 and _request_row(pg, "1.0.0").count() == 1
    # lineage: the production version's training data, with hashes
    card = pg.locator('#lineage .input-card[data-artifact="fraud-dataset"][data-version="2.0.0"]')
    assert card.locator(".alias").inner_text() == "preprocessed"
    assert card.locator("code.sha").count() == 2
    assert pg.locator('#lineage .input-card[data-version="1.0.0"] .alias').inner_text() == "raw"

    _request_row(pg, "1.0.0").get_by_role("button", name="Reject").click()
    pg.wait_for_selector("#requests .empty-note")
    assert "rejected by bob" in pg.locator("#decision-status").inner_text()
    assert pg.locator('#versions tr[data-version="1.0.0"]').get_attribute("data-status") == "development"
    decided = pg.locator("#decided tbody tr")
    assert decided.evaluate_all("rs => rs.map(r => r.dataset.state)") == ["rejected", "approved"]
    assert "bob" in decided.first.inner_text()

    pg.goto(MODELS)
    cells = pg.locator('#models tr[data-name="fraud-xgb"] td').all_inner_texts()
    assert cells[3] == "2.0.0" and cells[4] == "0"
    assert watch.errors == []


def test_stored_script_never_runs_on_registry_pages(page, hostile):
    pg, watch = page
    pg.goto(f"/{HOSTILE_WS}/artifacts")
    assert pg.locator("#artifacts").inner_text().startswith("artifact")
    assert XSS_IMG in pg.locator("#artifacts").inner_text()
    pg.locator("#artifacts tbody a").first.click()
    pg.wait_for_load_state("load")
    assert pg.locator("h1").inner_text() == XSS_IMG
    assert XSS in pg.locator("#metadata").inner_text()  # keys and values, as text
    assert XSS in pg.locator("#version-detail .tags").inner_text()
    files = pg.locator("#files").inner_text()
    assert XSS_IMG in files and f"https://evil.example/{XSS_IMG}" in files
    assert pg.locator("#files a").count() == 0  # remote URIs are text, never links
    assert XSS in pg.locator("#consumers").inner_text()  # the consuming experiment's name
    assert pg.locator("script:not([src]):not([type='application/json'])").count() == 0
    pg.goto(f"/{HOSTILE_WS}/models")
    assert XSS_IMG in pg.locator("#models").inner_text()
    pg.locator("#models tbody a").first.click()
    pg.wait_for_load_state("load")
    assert pg.locator("h1").inner_text() == XSS_IMG
    assert XSS in pg.locator(".description").inner_text()
    assert XSS in pg.locator("#pending td.comment").inner_text()
    assert XSS in pg.locator("#versions .tags").inner_text()
    assert XSS in pg.locator("#versions a.exp-link").inner_text()
    # a decision re-renders the body from the server: still escaped
    pg.fill("#acting-as-user", "bob")
    pg.locator("#pending input.decision-comment").fill(XSS_IMG)
    pg.get_by_role("button", name="Reject").click()
    pg.wait_for_selector("#decided")
    assert XSS_IMG in pg.locator("#decided").inner_text()
    assert pg.locator("#model-body img").count() == 0
    pg.wait_for_timeout(300)
    assert watch.dialogs == []
    assert watch.errors == []
