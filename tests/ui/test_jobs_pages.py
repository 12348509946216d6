"""The jobs and endpoints pages over real jobs: a built-in XGBoost training job that consumed a
dataset version (logged with ``log_training_job``, its model registered and deployed behind a
real endpoint process that served 20 requests), and a script job that fails with exit code 3, a
failure reason and hostile output. Pages are read in process (TestClient) and, at the end, in
Debian's Chromium against a real server, where a running job is stopped with the Stop button
(screenshots go to a temporary folder; ``TALLYMARK_SCREENSHOTS=docs/screenshots`` refreshes the
documentation's ``jobs-*.png`` and ``endpoints-*.png``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from uihelpers import require_browser

from servers import ServerProcess

WS = "risk"
HOSTILE = "<script>alert('job')</script>"
HTML = {"Accept": "text/html"}
SHOTS_ENV = "TALLYMARK_SCREENSHOTS"  # =docs/screenshots refreshes the docs' jobs-*/endpoints-* images
LOCAL = "http://127.0.0.1"

FAILING = f"""
import os, sys
print("starting {HOSTILE} \\x1b[31mred\\x1b[0m", flush=True)
with open(os.environ["SM_OUTPUT_FAILURE"], "w") as f:
    f.write("column V3 is missing <b>bold</b>")
sys.exit(3)
"""
SLOW = """
import time
for i in range(600):
    print("tick", i, flush=True)
    time.sleep(0.2)
"""


@dataclass
class World:
    home: Path
    trained: str  # the Completed XGBoost job
    failed: str
    exp_key: str
    endpoint: str
    endpoint_pid: int


def _env(home: Path) -> dict[str, str | None]:
    saved = {
        k: os.environ.get(k)
        for k in ("TALLYMARK_HOME", "TALLYMARK_URL", "TALLYMARK_USER", "TALLYMARK_WORKSPACE")
    }
    os.environ.update(TALLYMARK_HOME=str(home), TALLYMARK_USER="alice", TALLYMARK_WORKSPACE=WS)
    os.environ.pop("TALLYMARK_URL", None)
    return saved


def _restore(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _processes(marker: str) -> list[int]:
    """Pids whose command line names ``marker`` (the test's home): job supervisors, endpoints."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


def _reap(home: Path) -> None:
    """Stop what is still running of this home and kill anything left after 20 s."""
    from tallymark.sdk.transport import LocalTransport

    if (home / "tallymark.db").exists():
        t = LocalTransport(home)
        try:
            for j in t.call("list_jobs", workspace=WS, limit=1000):
                if j["status"] == "InProgress":
                    t.call("stop_job", workspace=WS, name=j["name"])
            for e in t.call("list_endpoints", workspace=WS):
                t.call("delete_endpoint", workspace=WS, name=e["name"])
        finally:
            t.close()
    end = time.monotonic() + 20
    while _processes(str(home)) and time.monotonic() < end:
        time.sleep(0.1)
    for pid in _processes(str(home)):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _until(predicate: Any, what: str, seconds: float = 30.0) -> Any:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import numpy as np

    from tallymark import Artifact, Experiment
    from tallymark.integration.jobs import deploy_job, log_training_job
    from tallymark.jobs import TrainingJob

    base = tmp_path_factory.mktemp("jobs-ui")
    home = base / "home"
    saved = _env(home)
    try:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(300, 4))
        y = (X[:, 0] > 0.5).astype(int)
        (base / "train").mkdir()
        np.savetxt(base / "train" / "part.csv", np.column_stack([y, X]), delimiter=",", fmt="%.6g")
        quiet = {"log_code": False, "log_env": False, "log_git": False, "log_system_metrics": False}
        with Experiment(project_name="fraud", workspace=WS, capture_stdout=False, **quiet) as exp:
            exp.log_artifact(
                Artifact("fraud-dataset", aliases=["preprocessed"]).add(base / "train" / "part.csv")
            )
        job = TrainingJob(
            algorithm="xgboost",
            workspace=WS,
            project="fraud",
            max_run=120,
            hyperparameters={"num_round": 5, "objective": "binary:logistic", "max_depth": 2},
            output_path=str(base / "out"),
        )
        job.fit({"train": "artifact://risk/fraud-dataset:preprocessed"})
        assert job.status == "Completed", job.failure_reason
        exp_key = log_training_job(job).get_key()
        ep = deploy_job(job, "fraud-xgb", endpoint_name="fraud-xgb-ep")
        for _ in range(20):
            ep.predict(X[:5])
        script = base / "failing.py"
        script.write_text(FAILING)
        bad = TrainingJob(entry_point=str(script), workspace=WS, max_run=60)
        bad.fit({"train": str(base / "train")})
        assert bad.status == "Failed"
        from tallymark.service import predictions
        from tallymark.service.caller import local_admin
        from tallymark.service.store import open_store
        from tallymark.settings import Settings

        store = open_store(Settings(home=home))
        try:  # the endpoint ships its log in batches: wait until all 100 rows are in the store
            _until(
                lambda: predictions.read_predictions(store, local_admin("t"), WS, ep.name).num_rows == 100,
                "the endpoint shipped its 100 prediction rows",
            )
        finally:
            store.close()
        info = ep.describe()
        yield World(home, job.job_name, bad.job_name, exp_key, ep.name, int(info["pid"]))
    finally:
        _restore(saved)
        _reap(home)


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    from tallymark.server.app import create_app
    from tallymark.settings import Settings

    with TestClient(create_app(Settings(home=world.home)), base_url=LOCAL) as c:
        yield c


def _no_raw_script(text: str) -> None:
    assert HOSTILE not in text and "<b>bold</b>" not in text
    assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", text)


def test_the_jobs_list_is_newest_first_filters_and_links(client: TestClient, world: World) -> None:
    r = client.get(f"/{WS}/jobs")
    assert r.status_code == 200
    assert re.findall(r'<tr data-job="([^"]+)"', r.text) == [world.failed, world.trained]
    assert f'href="/{WS}/jobs/{world.trained}"' in r.text
    assert f'href="/{WS}/fraud/{world.exp_key}"' in r.text  # the experiment log_training_job made
    assert 'data-section="jobs"' in r.text and 'href="/risk/endpoints"' in r.text  # the workspace nav
    failed = client.get(f"/{WS}/jobs", params={"status": "Failed"}).text
    assert re.findall(r'<tr data-job="([^"]+)"', failed) == [world.failed]
    none = client.get(f"/{WS}/jobs", params={"kind": "processing"}).text
    assert "No job matches this filter." in none
    assert client.get(f"/{WS}/jobs", params={"status": "<x>", "page": 7}).status_code == 200
    assert "Jobs" in client.get(f"/{WS}").text  # linked from the workspace page


def test_a_completed_job_shows_its_spec_log_timeline_and_lineage(client: TestClient, world: World) -> None:
    r = client.get(f"/{WS}/jobs/{world.trained}")
    assert r.status_code == 200
    page = r.text
    assert "built-in xgboost" in page and 'id="job-hyperparameters"' in page and ">num_round<" in page
    # the channel links to the dataset version it names, the lineage to what it made
    assert 'href="/risk/artifacts/fraud-dataset?version=preprocessed"' in page
    lineage = page.split('id="job-lineage"', 1)[1]
    assert "dataset fraud-dataset 1.0.0" in lineage and "consumed" in lineage
    assert f'href="/{WS}/fraud/{world.exp_key}"' in lineage and "trained" in lineage
    assert "trees saved" in page.split('id="job-log"', 1)[1]
    assert 'data-step="completed"' in page and 'id="failure"' not in page
    assert 'id="stop-job"' not in page  # it has ended
    assert f'href="/-/jobs/{WS}/{world.trained}/log"' in page


def test_a_failed_job_shows_why_and_escapes_its_output(client: TestClient, world: World) -> None:
    page = client.get(f"/{WS}/jobs/{world.failed}").text
    failure = page.split('id="failure"', 1)[1].split("</div>", 1)[0]
    assert "Failed with exit code 3" in failure and "column V3 is missing &lt;b&gt;bold&lt;/b&gt;" in failure
    log = page.split('id="job-log"', 1)[1].split("</pre>", 1)[0]
    assert "starting &lt;script&gt;alert(&#x27;job&#x27;)&lt;/script&gt; red" in log  # no ANSI codes
    _no_raw_script(page)
    full = client.get(f"/-/jobs/{WS}/{world.failed}/log")
    assert full.status_code == 200 and full.headers["content-type"] == "text/plain; charset=utf-8"
    assert full.headers["x-content-type-options"] == "nosniff"
    assert full.headers["content-disposition"] == f'attachment; filename="{world.failed}.log"'
    assert f"starting {HOSTILE}".encode() in full.content  # the bytes as the script wrote them
    assert client.get(f"/-/jobs/{WS}/no-such-job/log").status_code == 404
    assert client.get(f"/{WS}/jobs/no-such-job").status_code == 404


def test_the_experiment_page_lists_its_jobs_and_lineage_shows_them(client: TestClient, world: World) -> None:
    exp = f"/{WS}/fraud/{world.exp_key}"
    tabs = client.get(exp).text
    assert re.search(r'data-tab="jobs"[^>]*>Jobs<span class="badge">1</span>', tabs)
    jobs_tab = client.get(exp, params={"tab": "jobs"}).text
    row = jobs_tab.split('id="experiment-jobs"', 1)[1]
    assert f'<tr data-job="{world.trained}">' in row and "Completed" in row
    lineage = client.get(exp, params={"tab": "lineage"}).text
    assert f'<div class="node node-job"><a href="/{WS}/jobs/{world.trained}">' in lineage


def test_the_model_page_shows_data_job_experiment_model_and_its_endpoints(
    client: TestClient, world: World
) -> None:
    page = client.get(f"/{WS}/models/fraud-xgb").text
    flow = page.split('class="lineage-flow"', 1)[1].split('id="endpoints-section"', 1)[0]
    order = re.findall(r'data-kinds="([^"]+)"', flow)
    assert order[-4:] == ["artifact_version", "job", "experiment", "model_version"]
    assert f'href="/{WS}/jobs/{world.trained}"' in flow
    eps = page.split('id="endpoints-section"', 1)[1]
    assert f'<tr data-endpoint="{world.endpoint}" data-status="InService">' in eps


def test_the_endpoints_page_counts_the_requests_it_served(client: TestClient, world: World) -> None:
    page = client.get(f"/{WS}/endpoints").text
    row = page.split(f'<tr data-endpoint="{world.endpoint}"', 1)[1].split("</tr>", 1)[0]
    assert "fraud-xgb 1.0.0" in row and "InService" in row and "http://127.0.0.1:" in row
    assert '<td class="num requests">100</td>' in row
    data = json.loads(page.split('id="tm-requests">', 1)[1].split("</script>", 1)[0])
    (series,) = data["series"]
    assert series["name"] == world.endpoint and series["total"] == 100 == sum(series["counts"])
    assert len(data["t"]) == 60 and 'id="requests-chart"' in page
    day = client.get(f"/{WS}/endpoints", params={"window": "24h"}).text
    assert len(json.loads(day.split('id="tm-requests">', 1)[1].split("</script>", 1)[0])["t"]) == 1440


def test_anonymous_is_sent_to_login_and_another_team_gets_404(world: World, tmp_path: Path) -> None:
    from tallymark.server.app import create_app
    from tallymark.service import apikeys, jobs, memberships, users, workspaces
    from tallymark.service.bootstrap import init_admin
    from tallymark.service.caller import local_admin
    from tallymark.service.store import open_store
    from tallymark.settings import Settings

    settings = Settings(home=world.home, auth=True)
    store = open_store(settings)
    try:
        init_admin(store, "root")
        root = local_admin("root")
        workspaces.create_workspace(store, root, "other")
        keys = {}
        for user, ws, role in (("vic", WS, "viewer"), ("mia", WS, "member"), ("olga", "other", "member")):
            users.add_user(store, root, user)
            memberships.add_member(store, root, ws, user, role)
            keys[user] = apikeys.create_key(store, root, user).secret
        # a submitted job that no supervisor runs yet (InProgress, Starting): its page has Stop
        waiting = jobs.create_job(
            store,
            local_admin("alice"),
            WS,
            {"spec": {"name": "waiting-job", "kind": "processing", "workspace": WS, "script": "x.py"}},
        )["name"]
    finally:
        store.close()
    paths = [
        f"/{WS}/jobs",
        f"/{WS}/jobs/{world.trained}",
        f"/{WS}/endpoints",
        f"/-/jobs/{WS}/{world.failed}/log",
        f"/{WS}/models/fraud-xgb",
        f"/{WS}/fraud/{world.exp_key}?tab=jobs",
    ]
    with TestClient(create_app(settings), base_url=LOCAL) as c:
        for path in paths:
            anon = c.get(path, headers=HTML, follow_redirects=False)
            assert anon.status_code == 303 and anon.headers["location"].startswith("/login?next="), path
            other = c.get(path, headers={**HTML, "Authorization": f"Bearer {keys['olga']}"})
            assert other.status_code == 404, path
            assert world.trained not in other.text and world.endpoint not in other.text, path
            viewer = c.get(path, headers={**HTML, "Authorization": f"Bearer {keys['vic']}"})
            assert viewer.status_code == 200, path
        running = f"/{WS}/jobs/{waiting}"
        as_viewer = c.get(running, headers={**HTML, "Authorization": f"Bearer {keys['vic']}"}).text
        as_member = c.get(running, headers={**HTML, "Authorization": f"Bearer {keys['mia']}"}).text
        assert 'id="stop-job"' not in as_viewer and '"running":true' in as_viewer  # reads, cannot stop
        assert f'id="stop-job" data-url="/api/v1/workspaces/{WS}/jobs/{waiting}/stop"' in as_member
        stop = c.post(
            f"/api/v1/workspaces/{WS}/jobs/{waiting}/stop",
            headers={"Authorization": f"Bearer {keys['vic']}", "Content-Type": "application/json"},
            content=b"{}",
        )
        assert stop.status_code == 403  # what the page's button would get for a viewer
        assert c.get(running, headers={**HTML, "Authorization": f"Bearer {keys['olga']}"}).status_code == 404


# ---- in a browser ---------------------------------------------------------------------------------


def _job_count(world: World) -> int:
    """How many jobs the workspace has now (other tests of this module add some)."""
    from tallymark.sdk.transport import default_transport

    saved = _env(world.home)
    try:
        t = default_transport()
        try:
            return len(t.call("list_jobs", workspace=WS))
        finally:
            t.close()
    finally:
        _restore(saved)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[str]:
    require_browser()
    srv = ServerProcess(world.home).start()
    try:
        yield srv.url
    finally:
        srv.stop()


@pytest.mark.slow
@pytest.mark.browser
def test_in_chromium_the_job_page_follows_the_log_and_stop_ends_the_job(
    world: World, server: str, browser: Any, tmp_path: Path
) -> None:
    # the session's Chromium (tests/ui/conftest.py): a second sync_playwright() in the same
    # process while that one is open fails ("Sync API inside the asyncio loop")
    from playwright.sync_api import expect

    from tallymark.jobs import ProcessingJob

    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    saved = _env(world.home)
    try:  # a job of its own, submitted through the SDK, running while the page is open
        slow = ProcessingJob(str(script), workspace=WS, max_run=300, stop_grace=2)
        slow.run(wait=False)
    finally:
        _restore(saved)
    errors: list[str] = []
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        pg = ctx.new_page()
        pg.set_default_timeout(20_000)
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(f"{server}/{WS}/jobs/{world.trained}")
        expect(pg.locator("#job-log")).to_contain_text("trees saved")
        pg.screenshot(path=str(shots / "jobs-job.png"), full_page=True)
        pg.goto(f"{server}/{WS}/jobs/{world.failed}")
        expect(pg.locator("#failure")).to_contain_text("column V3 is missing <b>bold</b>")
        pg.screenshot(path=str(shots / "jobs-failed.png"))

        pg.goto(f"{server}/{WS}/jobs/{slow.job_name}")
        expect(pg.locator("#log-live")).to_be_visible()
        expect(pg.locator("#job-log")).to_contain_text("tick 3")  # followed as it runs
        pg.screenshot(path=str(shots / "jobs-running.png"))
        pg.locator("#stop-job").click()
        expect(pg.locator("#job-message")).to_contain_text("Stop requested")
        # the supervisor ends it; the page notices and shows the final state in place
        expect(pg.locator(".title-row .status")).to_have_text("Stopped", timeout=30_000)
        expect(pg.locator("#stop-job")).to_have_count(0)
        expect(pg.locator('#timeline li[data-step="stop requested"]')).to_have_count(1)

        pg.goto(f"{server}/{WS}/jobs")
        expect(pg.locator("#jobs tbody tr")).to_have_count(_job_count(world))
        expect(pg.locator(f'#jobs tr[data-job="{slow.job_name}"] .status')).to_have_text("Stopped")
        pg.screenshot(path=str(shots / "jobs-list.png"))

        pg.goto(f"{server}/{WS}/endpoints")
        expect(pg.locator("#requests-chart .uplot")).to_have_count(1)
        expect(pg.locator(f'tr[data-endpoint="{world.endpoint}"] td.requests')).to_have_text("100")
        pg.screenshot(path=str(shots / "endpoints-list.png"))
    finally:
        ctx.close()
    assert errors == []
    assert slow.refresh()["status"] == "Stopped"
