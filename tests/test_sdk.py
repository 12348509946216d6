"""The SDK end to end: embedded home, a real server, the journal while it is down, offline archives."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import textwrap

import pytest

import tallymark
from tallymark.sdk.experiment import ExperimentEnded
from tallymark.store import migrate

from servers import ServerProcess, free_port


def _quiet(**kw):
    return {
        "log_code": False,
        "log_env": False,
        "log_git": False,
        "log_system_metrics": False,
        "capture_stdout": False,
        **kw,
    }


def _log_reference(exp):
    exp.log_parameters(
        {
            "objective": "binary:logistic",
            "num_round": 100,
            "learning_rate": 0.15,
            "booster": {"name": "gbtree", "depth": 6},
        }
    )
    for step in range(100):
        exp.log_metric("train_auc", 0.9 + step / 1000, step=step)
        exp.log_metrics({"validation_auc": 0.85 + step / 2000}, step=step, epoch=step // 10)
    exp.log_metric("weird", float("nan"), step=0)
    exp.log_metric("weird", -0.0, step=1)
    exp.log_metric("weird", 2**62 + 1, step=2)
    exp.log_metric("weird", float("-inf"), step=3)
    exp.log_metric("counter", 7)
    exp.log_metric("counter", 8)
    exp.log_others({"rows": 284807, "frauds": 492})
    exp.add_tags(["baseline", "xgboost"])
    exp.log_confusion_matrix(matrix=[[56850, 14], [17, 81]], labels=["Normal", "Fraud"])
    exp.log_confusion_matrix(y_true=[0, 1, 1, 0], y_predicted=[0, 1, 0, 0], title="small")
    exp.log_curve("roc_curve", x=[0.0, 0.1, 1.0], y=[0.0, 0.8, 1.0])
    exp.log_table("top.csv", [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])


def _check_reference(e):
    params = {p["name"]: p["valueCurrent"] for p in e.get_parameters_summary()}
    assert params == {
        "objective": "binary:logistic",
        "num_round": 100,
        "learning_rate": 0.15,
        "booster.name": "gbtree",
        "booster.depth": 6,
    }
    pts = e.get_metrics("train_auc")
    assert [p["step"] for p in pts] == list(range(100))
    assert pts[42]["metricValue"] == 0.9 + 42 / 1000
    val = e.get_metrics("validation_auc")
    assert val[55]["epoch"] == 5
    weird = [p["metricValue"] for p in e.get_metrics("weird")]
    assert math.isnan(weird[0]) and struct.pack("<d", weird[1]) == struct.pack("<d", -0.0)
    assert weird[2] == 2**62 + 1 and type(weird[2]) is int and weird[3] == -math.inf
    assert [(p["step"], p["metricValue"]) for p in e.get_metrics("counter")] == [(0, 7), (1, 8)]
    summary = {m["name"]: m for m in e.get_metrics_summary()}
    assert summary["train_auc"]["count"] == 100 and summary["train_auc"]["stepCurrent"] == 99
    assert {o["name"]: o["valueCurrent"] for o in e.get_others_summary()} == {"rows": 284807, "frauds": 492}
    assert set(e.get_tags()) == {"baseline", "xgboost"}
    cms = {c["title"]: c for c in e.get_confusion_matrices()}
    assert cms["Confusion Matrix"]["matrix"] == [[56850, 14], [17, 81]]
    assert cms["Confusion Matrix"]["labels"] == ["Normal", "Fraud"]
    assert cms["small"]["matrix"] == [[2, 0], [1, 1]] and cms["small"]["labels"] == ["0", "1"]
    (roc,) = e.get_curves()
    assert roc["name"] == "roc_curve" and roc["y"] == [0.0, 0.8, 1.0]
    (table,) = e.get_tables()
    assert table["columns"] == ["a", "b"] and table["rows"] == [[1, "x"], [2, "y"]]


def test_embedded_round_trip(home):
    with tallymark.Experiment(project_name="fraud", workspace="risk", name="baseline", **_quiet()) as exp:
        assert len(exp.get_key()) == 32 and exp.url.endswith(f"/risk/fraud/{exp.get_key()}")
        _log_reference(exp)
    e = tallymark.API().get_experiment("risk", "fraud", exp.get_key())
    assert e.name == "baseline" and e.status == "ended"
    _check_reference(e)
    with pytest.raises(ExperimentEnded):
        exp.log_metric("late", 1.0)
    assert (home / "tallymark.db").exists()


def test_bad_values_fail_at_the_call(home, capfd):
    exp = tallymark.Experiment(project_name="p", workspace="w", **_quiet())
    with pytest.raises(TypeError, match="must be a number"):
        exp.log_metric("m", "0.5")
    exp.log_metric("m", 2**64)  # a value, not a type: warned about and dropped (tests/test_poison.py)
    assert "64 bits" in capfd.readouterr().err
    with pytest.raises(TypeError, match="step must be an integer"):
        exp.log_metric("m", 1.0, step=1.5)
    with pytest.raises(TypeError):
        exp.log_parameter("p", object())
    with pytest.raises(TypeError, match="name must be a string"):
        exp.log_metric(3, 1.0)
    with pytest.raises(ValueError, match="needs matrix"):
        exp.log_confusion_matrix()
    exp.log_metric("m", 1.0)
    exp.end()
    assert tallymark.API().get_experiment_by_key(exp.get_key()).get_metrics("m")[0]["metricValue"] == 1.0


def test_numpy_values_and_assets(home, tmp_path):
    import numpy as np

    f = tmp_path / "model.json"
    f.write_text('{"trees": 100}')
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("a")
    with tallymark.Experiment(project_name="p", workspace="w", **_quiet()) as exp:
        exp.log_metric("np", np.float32(0.5), step=np.int64(3))
        exp.log_parameter("arr", np.array([1, 2]))
        exp.log_asset(f, metadata={"kind": "model"})
        exp.log_asset(tmp_path / "folder")
        import io

        exp.log_asset(io.BytesIO(b"in memory"), file_name="mem.bin")
    e = tallymark.API().get_experiment_by_key(exp.get_key())
    assert e.get_metrics("np")[0]["step"] == 3
    assert e.get_parameters_summary()[0]["valueCurrent"] == [1, 2]
    assets = {a["fileName"]: a for a in e.get_asset_list()}
    assert set(assets) == {"model.json", "folder/a.txt", "mem.bin"}
    assert assets["model.json"]["metadata"] == {"kind": "model"}
    assert e.get_asset(assets["mem.bin"]["assetId"]) == b"in memory"


def test_autolog_captures_environment_code_stdout_and_system(home, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent("""
        import sys, tallymark
        exp = tallymark.Experiment(project_name="p", workspace="w", system_metrics_interval=0.1)
        print("epoch 1 loss 0.5")
        print("warning!", file=sys.stderr)
        import time; time.sleep(0.5)
        exp.end()
        print(exp.get_key())
    """)
    )
    out = subprocess.run(
        [sys.executable, str(script), "--flag"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "epoch 1 loss 0.5" in out.stdout, "stdout is teed, never swallowed"
    assert "warning!" in out.stderr
    key = out.stdout.strip().splitlines()[-1]
    e = tallymark.API().get_experiment_by_key(key)
    assert "epoch 1 loss 0.5" in e.get_stdout() and "warning!" in e.get_stdout()
    env = e.get_environment()
    assert env["python"]["version"].startswith(f"{sys.version_info.major}.") and "--flag" in env["argv"]
    assert any(p["name"] == "numpy" for p in e.get_packages())
    (code,) = e.get_code()
    assert "tallymark.Experiment" in code["source"]
    names = {m["name"] for m in e.get_metrics_summary()}
    assert "sys.cpu.percent" in names and "sys.memory.used_bytes" in names


def test_import_has_no_side_effects():
    code = textwrap.dedent("""
        import sys, threading, atexit
        before = (sys.stdout, sys.stderr, threading.active_count())
        import tallymark
        heavy = [m for m in ("numpy", "sqlalchemy", "pandas", "httpx", "psutil", "fastapi")
                 if m in sys.modules]
        print(heavy, (sys.stdout, sys.stderr, threading.active_count()) == before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[] True", out.stdout + out.stderr


@pytest.mark.slow
def test_through_a_real_server(tmp_path, monkeypatch):
    with ServerProcess(tmp_path / "srv") as srv:
        monkeypatch.setenv("TALLYMARK_URL", srv.url)
        monkeypatch.setenv("TALLYMARK_HOME", str(tmp_path / "client"))
        with tallymark.Experiment(project_name="fraud", workspace="risk", **_quiet()) as exp:
            _log_reference(exp)
            exp.log_asset(__file__)
        assert exp.url.startswith(srv.url)
        e = tallymark.API().get_experiment_by_key(exp.get_key())
        _check_reference(e)
        assert e.get_asset(e.get_asset_list()[0]["assetId"]).startswith(b'"""The SDK end to end')
        q = tallymark.API().query("risk", "fraud", "params.learning_rate = 0.15 and metrics.train_auc > 0.95")
        assert [x.key for x in q] == [exp.get_key()]
        arrays = tallymark.API().get_metric_series([exp.get_key()], "weird", as_numpy=True)[exp.get_key()]
        assert arrays["values"].dtype == object and arrays["values"][2] == 2**62 + 1  # exact, not float
        assert arrays["steps"].tolist() == [0, 1, 2, 3]


@pytest.mark.slow
def test_journal_while_the_server_is_down(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("TALLYMARK_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("TALLYMARK_HOME", str(tmp_path / "client"))
    from tallymark.settings import ClientSettings

    fast = ClientSettings.from_env(retry_delays=(0.05, 0.1))
    exp = tallymark.Experiment(project_name="p", workspace="w", settings=fast, **_quiet())  # no server yet
    exp.log_parameter("lr", 0.1)
    for i in range(1000):
        exp.log_metric("loss", 1 / (i + 1), step=i)
    exp.flush()
    journal = tmp_path / "client" / "journal" / exp.get_key()
    assert (journal / "experiment.json").exists() and exp._journal.pending() >= 1
    with ServerProcess(tmp_path / "srv", port=port):
        exp._sender._down_since = None  # do not wait out the back-off in a test
        for i in range(1000, 1500):
            exp.log_metric("loss", 1 / (i + 1), step=i)
        exp.end()
        assert not journal.exists(), "replayed and removed once the server answered"
        e = tallymark.API().get_experiment_by_key(exp.get_key())
        pts = e.get_metrics("loss")
        assert [p["step"] for p in pts] == list(range(1500))
        assert e.get_parameters_summary()[0]["valueCurrent"] == 0.1
        assert e.status == "ended"


def test_offline_experiment_and_upload(home, tmp_path):
    from typer.testing import CliRunner

    from tallymark.cli import app

    off = tmp_path / "offline"
    exp = tallymark.OfflineExperiment(
        project_name="fraud", workspace="risk", offline_directory=off, **_quiet()
    )
    _log_reference(exp)
    (tmp_path / "a.txt").write_text("asset")
    exp.log_asset(tmp_path / "a.txt")
    exp.end()
    archive = off / f"{exp.get_key()}.zip"
    assert archive.exists() and not (off / f".{exp.get_key()}").exists()
    result = CliRunner().invoke(app, ["upload", str(archive)])
    assert result.exit_code == 0, result.output
    e = tallymark.API().get_experiment_by_key(exp.get_key())
    _check_reference(e)
    assert e.status == "ended" and e.get_asset_list()[0]["fileName"] == "a.txt"
    # Uploading the same archive again changes nothing (idempotent batches and uploads).
    assert CliRunner().invoke(app, ["upload", str(archive)]).exit_code == 0
    assert len(tallymark.API().get_experiment_by_key(exp.get_key()).get_metrics("train_auc")) == 100


def test_several_processes_log_into_one_embedded_home(home, tmp_path):
    script = tmp_path / "w.py"
    script.write_text(
        textwrap.dedent("""
        import sys, tallymark
        exp = tallymark.Experiment(project_name="p", workspace="w", log_code=False, log_env=False,
                                   log_git=False, log_system_metrics=False, capture_stdout=False,
                                   send_interval=0.01)
        for i in range(20000):
            exp.log_metric("m", float(i), step=i)
            if i % 2000 == 0:
                exp.log_parameter(f"p{i}", i)
        exp.end()
        print(exp.get_key())
    """)
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    keys = []
    for p in procs:
        out, errs = p.communicate(timeout=180)
        assert p.returncode == 0, errs
        assert "locked" not in errs
        keys.append(out.strip())
    api = tallymark.API()
    for k in keys:
        e = api.get_experiment_by_key(k)
        assert e.get_metrics_summary()[0]["count"] == 20000
        assert len(e.get_parameters_summary()) == 10
    assert len(api.get_experiments("w", "p")) == 4


def test_cli_commands(home):
    from typer.testing import CliRunner

    from tallymark.cli import app

    keys = []
    for lr in (0.15, 0.05):
        with tallymark.Experiment(project_name="fraud", workspace="demo", name=f"lr{lr}", **_quiet()) as exp:
            exp.log_parameters({"learning_rate": lr, "booster": "gbtree"})
            exp.log_metric("test_auc_pr", 0.8 + lr)
        keys.append(exp.get_key())
    r = CliRunner().invoke(app, ["experiments", "list", "demo", "fraud", "-q", "params.learning_rate < 0.1"])
    assert r.exit_code == 0 and "lr0.05" in r.output and "lr0.15" not in r.output
    r = CliRunner().invoke(app, ["experiments", "compare", *keys])
    assert r.exit_code == 0 and "learning_rate" in r.output and "booster" not in r.output
    assert "test_auc_pr" in r.output
    r = CliRunner().invoke(app, ["experiments", "show", keys[0]])
    assert r.exit_code == 0 and "0.95" in r.output
    r = CliRunner().invoke(app, ["experiments", "list", "demo", "fraud", "-q", "metrics.x >"])
    assert r.exit_code == 1 and "column" in r.output
    r = CliRunner().invoke(app, ["server", "--host", "0.0.0.0", "--no-auth"])
    assert r.exit_code == 1 and "refuses" in r.output
    import socket

    with socket.socket() as busy:  # auth is the default now: it starts (and fails to bind here)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = CliRunner().invoke(app, ["server", "--port", str(busy.getsockname()[1])])
    assert r.exit_code == 1 and "API keys required" in r.output and "admin init" in r.output
    r = CliRunner().invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0 and migrate.SCHEMA_HEAD in r.output
    assert json.loads(json.dumps(r.output))  # printable


def test_metric_series_as_numpy(home):
    import numpy as np

    keys = []
    for offset in (0.0, 1.0):
        with tallymark.Experiment(project_name="p", workspace="w", **_quiet()) as exp:
            for i in range(50):
                exp.log_metric("loss", offset + i / 100, step=i, epoch=i // 10)
        keys.append(exp.get_key())
    api = tallymark.API()
    arrays = api.get_metric_series(keys, "loss", as_numpy=True)
    lists = api.get_metric_series(keys, "loss")
    for k in keys:
        assert isinstance(arrays[k]["steps"], np.ndarray) and arrays[k]["values"].dtype == np.float64
        assert arrays[k]["values"].tolist() == lists[k]["values"]
        assert arrays[k]["epochs"].tolist() == lists[k]["epochs"]
    small = api.get_metric_series(keys, "loss", points=10, as_numpy=True)
    assert len(small[keys[0]]["steps"]) == 10 and small[keys[0]]["count"] == 50


@pytest.mark.slow
def test_several_workers_answer_small_requests_without_nagle_delay(tmp_path):
    """DESIGN §6: uvicorn with several workers leaves Nagle on for accepted connections, so every
    response on a reused keep-alive connection waits ~40 ms. Our pre-bound socket sets TCP_NODELAY;
    a median below 20 ms (typically ~2 ms here) shows it reached the workers' connections."""
    import time

    import httpx

    with ServerProcess(tmp_path / "srv", workers=2) as srv, httpx.Client(base_url=srv.url) as client:
        for _ in range(5):
            client.get("/api/v1/health")
        times = []
        for _ in range(40):
            t0 = time.perf_counter()
            assert client.post("/api/v1/blobs/missing", json={"sha256": ["0" * 64]}).status_code == 200
            times.append(time.perf_counter() - t0)
    assert sorted(times)[len(times) // 2] < 0.020, sorted(times)
