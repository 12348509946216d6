"""The UI without a browser: escaping, columns, figures, panels and the pages over an in-process app."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tallymark import panels
from tallymark.server.app import create_app
from tallymark.server.ui import columns, figures
from tallymark.server.ui.html import Markup, el, escape, json_script
from tallymark.service import batch, experiments
from tallymark.service.caller import local_admin
from tallymark.settings import Settings

TESTER = local_admin("tester")  # the embedded home's local admin: passes every check

LOCAL = "http://127.0.0.1"  # a loopback Host: the app answers only those (docs/security.md)
XSS = "<script>alert(1)</script>"


def test_el_escapes_text_and_attributes():
    html = el("a", {"href": '/x?a=1&b="2"', "title": XSS}, XSS, el("b", None, "ok"), None, [1, "<i>"])
    assert html == (
        '<a href="/x?a=1&amp;b=&quot;2&quot;" title="&lt;script&gt;alert(1)&lt;/script&gt;">'
        "&lt;script&gt;alert(1)&lt;/script&gt;<b>ok</b>1&lt;i&gt;</a>"
    )
    assert escape(Markup("<b>")) == "<b>"
    with pytest.raises(ValueError):
        el("a", {"onclick": "x()"})
    with pytest.raises(ValueError):
        el("div", {"style": "color: red"})


def test_json_script_cannot_be_closed_by_data():
    block = json_script("d", {"name": "</script><script>alert(1)</script>", "nan": float("nan")})
    inner = block.split(">", 1)[1].rsplit("</script>", 1)[0]
    assert "<" not in inner and ">" not in inner
    assert json.loads(inner) == {"name": "</script><script>alert(1)</script>", "nan": "NaN"}


def test_columns_round_trip_through_the_url():
    cols = [
        columns.Column("params", "learning_rate"),
        columns.Column("metrics", "loss (total), val"),
        columns.Column("tags", "tags"),
        columns.Column("attribute", "created_at"),
    ]
    text = columns.format_columns(cols)
    parsed, bad = columns.parse_columns(columns.split_fields(text))
    assert parsed == cols and bad == []
    parsed, bad = columns.parse_columns(["metric.auc", "params.x"])
    assert bad == ["metric.auc"] and parsed == [columns.Column("params", "x")]


def test_figures_from_plotly_vega_lite_native_png_and_tables():
    fig = figures.to_figure(
        {"data": [{"type": "bar", "x": ["a", "b"], "y": [1, 2], "name": "n"}], "layout": {"title": "t"}}
    )
    assert fig["type"] == "chart" and fig["categories"] == ["a", "b"] and fig["series"][0]["x"] == [0.0, 1.0]
    assert fig["title"] == "t"
    vl = figures.to_figure(
        {
            "mark": {"type": "line"},
            "data": {
                "values": [
                    {"s": 1, "v": 0.5, "r": "a"},
                    {"s": 2, "v": 0.6, "r": "a"},
                    {"s": 1, "v": 0.4, "r": "b"},
                ]
            },
            "encoding": {"x": {"field": "s"}, "y": {"field": "v"}, "color": {"field": "r"}},
        }
    )
    assert [s["name"] for s in vl["series"]] == ["a", "b"] and vl["series"][0]["y"] == [0.5, 0.6]
    native = figures.to_figure({"type": "line", "series": [{"name": "x", "y": [1, float("nan"), 3]}]})
    assert native["series"][0]["x"] == [0.0, 1.0, 2.0] and native["series"][0]["y"] == [1.0, None, 3.0]
    png = figures.to_figure(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)
    assert png["type"] == "image" and png["mime"] == "image/png"

    class Fig:
        def savefig(self, buf, **kw):
            buf.write(b"\x89PNG\r\n\x1a\nfake")

    assert figures.to_figure(Fig())["type"] == "image"
    assert figures.to_figure({"columns": ["a"], "rows": [[1]]})["type"] == "table"
    for bad in (
        None,
        42,
        {"data": [{"type": "heatmap", "z": [[1]]}]},
        b"GIF89a",
        {"mark": "arc", "data": {"values": []}},
    ):
        with pytest.raises(figures.FigureError):
            figures.to_figure(bad)


def test_panel_registry_and_folder_discovery(tmp_path: Path):
    @panels.panel("unit test panel")
    def p(experiments):
        """A docstring becomes the description."""
        return "hi"

    try:
        assert panels.get("unit test panel").description == "A docstring becomes the description."
        folder = tmp_path / "panels"
        folder.mkdir()
        (folder / "good.py").write_text(
            "import tallymark\n@tallymark.panel('from a file')\ndef f(e):\n    return 'x'\n"
        )
        (folder / "bad.py").write_text("raise ImportError('nope')\n")
        errors = panels.discover([folder])
        assert panels.get("from a file").source == str(folder / "good.py")
        assert any("nope" in e.message for e in errors)
        (folder / "good.py").write_text(
            "import tallymark\n@tallymark.panel('renamed')\ndef f(e):\n    return 'x'\n"
        )
        import os

        os.utime(folder / "good.py", (1, 1))  # a different mtime: imported again
        panels.discover([folder])
        assert panels.get("from a file") is None and panels.get("renamed") is not None
    finally:
        for name in ("unit test panel", "renamed", "from a file"):
            panels.unregister(name)


@pytest.fixture
def ui_client(tmp_path: Path):
    settings = Settings(home=tmp_path / "home")
    app = create_app(settings)
    with TestClient(app, base_url=LOCAL) as c:
        store = _store_of(c)
        yield c, store


def _make(client_store, name: str, ws: str = "w", project: str = "p", **values) -> str:
    key = uuid.uuid4().hex
    experiments.create_experiment(
        client_store, local_admin("u"), {"key": key, "workspace": ws, "project": project, "name": name}
    )
    batch.apply_batch(client_store, TESTER, key, {"batch_id": "b", **values})
    return key


def _store_of(client: TestClient):
    app = client.app
    while not hasattr(app, "state") or not hasattr(app.state, "store"):
        app = app.app
    return app.state.store


def test_pages_render_and_escape(ui_client):
    client, _ = ui_client
    store = _store_of(client)
    key = _make(
        store,
        XSS,
        params={"lr": 0.1, "payload": XSS},
        tags=[XSS],
        metrics=[{"name": "loss", "steps": [1, 2], "values": [1.0, "NaN"]}],
    )
    other = _make(store, "b", params={"lr": 0.2})
    for url in ("/", "/w", "/w/p", f"/w/p/{key}", f"/w/p/compare?keys={key},{other}"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert XSS not in r.text, url
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", r.text), url
    for tab in (
        "parameters",
        "metrics",
        "system",
        "confusion",
        "curves",
        "assets",
        "code",
        "environment",
        "git",
        "stdout",
        "artifacts",
        "lineage",
        "nonsense",
    ):
        assert client.get(f"/w/p/{key}?tab={tab}").status_code == 200, tab
    assert "&lt;script&gt;" in client.get("/w/p?cols=params.payload,tags").text


def test_table_query_error_sort_error_and_picker_redirect(ui_client):
    client, _ = ui_client
    store = _store_of(client)
    _make(store, "a", params={"lr": 0.1})
    r = client.get("/w/p", params={"q": "metrics.auc > "})
    assert 'id="query-error"' in r.text and "at column" in r.text
    r = client.get("/w/p", params={"sort": "tags"})
    assert r.status_code == 200 and "cannot sort" in r.text
    r = client.get(
        "/w/p", params={"picker": "1", "col": ["params.lr", "status"], "q": "x"}, follow_redirects=False
    )
    assert r.status_code == 303 and "cols=params.lr,status" in r.headers["location"]
    r = client.get("/w/p", params={"page": 99})
    assert r.status_code == 200 and "1–1 of 1" in r.text
    r = client.get("/w/p/compare", params=[("keys", "a" * 32), ("keys", "b" * 32)], follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("keys=" + "a" * 32 + "," + "b" * 32)


def test_ui_never_shadows_the_api(ui_client):
    client, _ = ui_client
    assert client.get("/docs").status_code == 200
    assert client.get("/api/v1/openapi.json").json()["info"]["title"] == "tallymark"
    r = client.get("/api/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/api").headers["content-type"].startswith("application/json")
    assert client.get("/w/p/" + "0" * 32).status_code == 404  # an unknown experiment: an HTML 404
    assert client.get("/nope").status_code == 404


def test_static_files_are_only_ours(ui_client):
    client, _ = ui_client
    r = client.get("/-/static/js/main.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/-/static/vendor/uplot/uPlot.iife.min.js").status_code == 200
    assert client.get("/-/static/vendor/uplot/LICENSE").status_code == 404  # not a served type
    for bad in ("/-/static/../routes.py", "/-/static/%2e%2e/routes.py", "/-/static/html.py"):
        assert client.get(bad).status_code == 404, bad
    assert r.headers["cache-control"] == "no-cache"
    from tallymark.server.ui import assets

    versioned = client.get(f"/-/static/v/{assets.version()}/js/main.js")
    assert versioned.status_code == 200 and "immutable" in versioned.headers["cache-control"]
    assert "immutable" not in client.get("/-/static/v/0ld/js/main.js").headers["cache-control"]
    page = client.get("/").text
    assert f'href="/-/static/v/{assets.version()}/js/charts.js"' in page  # modulepreload
    etag = r.headers["etag"]
    assert client.get("/-/static/js/main.js", headers={"If-None-Match": etag}).status_code == 304


def test_panels_api(ui_client):
    client, _ = ui_client
    store = _store_of(client)
    a = _make(store, "a", metrics=[{"name": "auc", "steps": [1], "values": [0.9]}])

    @panels.panel("api test panel")
    def p(exps):
        return {
            "type": "bar",
            "x": [e.name for e in exps],
            "series": [{"name": "auc", "y": [e.get_metrics_summary()[0]["valueCurrent"] for e in exps]}],
        }

    @panels.panel("api failing panel")
    def f(exps):
        raise RuntimeError("nope")

    try:
        listed = client.get("/api/v1/panels").json()
        assert "api test panel" in [x["name"] for x in listed["panels"]]
        ok = client.get("/api/v1/panels/render", params={"name": "api test panel", "keys": a}).json()
        assert ok["ok"] and ok["figure"]["series"][0]["y"] == [0.9] and ok["figure"]["categories"] == ["a"]
        bad = client.get("/api/v1/panels/render", params={"name": "api failing panel", "keys": a}).json()
        assert (
            bad["ok"] is False
            and bad["error"] == "RuntimeError: nope"
            and "raise RuntimeError" in bad["traceback"]
        )
        assert "panel_render.py" not in bad["traceback"]
        r = client.get("/api/v1/panels/render", params={"name": "api test panel", "keys": "zz"})
        assert r.status_code == 422
    finally:
        panels.unregister("api test panel")
        panels.unregister("api failing panel")


def test_compare_preloads_its_first_chart_and_series_endpoint_answers(ui_client):
    client, _ = ui_client
    store = _store_of(client)
    keys = [
        _make(store, f"r{i}", metrics=[{"name": "auc", "steps": list(range(300)), "values": [i / 10] * 300}])
        for i in range(5)
    ]
    page = client.get(f"/w/p/compare?keys={','.join(keys)}").text
    m = re.search(r'<link rel="preload" as="fetch" href="([^"]+)" crossorigin="anonymous">', page)
    assert m is not None
    url = m.group(1).replace("&amp;", "&")
    assert url == f"/-/series?name=auc&points=100&keys={','.join(keys)}"
    body = client.get(url).json()
    assert set(body["series"]) == set(keys)
    assert all(len(s["steps"]) == 100 and s["count"] == 300 for s in body["series"].values())
    cols = client.get("/-/columns/w/p").json()
    assert cols["metrics"] == ["auc"] and cols["params"] == [] and cols["others"] == []
    assert client.get("/-/columns/w/nope").status_code == 404


def test_artifacts_and_lineage_tabs_show_what_an_experiment_consumed_and_produced(home, tmp_path):
    from tallymark import Artifact, Experiment

    quiet = {"log_code": False, "log_git": False, "log_env": False, "log_system_metrics": False}
    data = tmp_path / "data.csv"
    data.write_text("a,b\n")
    with Experiment(project_name="p", workspace="w", capture_stdout=False, **quiet) as maker:
        art = Artifact(name="fraud-dataset", artifact_type="dataset", aliases=["raw"])
        art.add(str(data))
        maker.log_artifact(art)
    with Experiment(project_name="p", workspace="w", capture_stdout=False, **quiet) as user:
        user.get_artifact("fraud-dataset", "raw")
    with TestClient(create_app(Settings(home=home)), base_url=LOCAL) as client:
        made = client.get(f"/w/p/{maker.get_key()}?tab=artifacts").text
        assert "Produced" in made and "fraud-dataset" in made and "1.0.0" in made
        used = client.get(f"/w/p/{user.get_key()}?tab=lineage").text
        inputs = used[used.index("inputs") : used.index("this experiment")]
        assert "fraud-dataset" in inputs


def test_ui_command_refuses_non_loopback_addresses():
    from typer.testing import CliRunner

    from tallymark.cli import app

    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "127.0.0.1" in result.output


@pytest.mark.slow
def test_ui_command_serves_the_embedded_home(tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from servers import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    cmd = [sys.executable, "-m", "tallymark", "ui", "--port", str(port), "--home", str(tmp_path / "h")]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200 and "Workspaces" in r.text
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health").json()["status"] == "ok"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
