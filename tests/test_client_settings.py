"""Client settings: declared once, read from the environment in one place, key never shown."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tallymark
from tallymark.settings import ClientSettings, SettingsError, documented_client

from servers import ServerProcess

SRC = Path(__file__).resolve().parent.parent / "src" / "tallymark"
SETTINGS_MODULE = SRC / "settings.py"

# Writes of os.environ outside settings.py that are not configuration of tallymark, each with why.
ENV_WRITES_ALLOWED = {
    # libgomp reads OMP_WAIT_POLICY once, when it is loaded: it must be in the process environment
    # before scikit-learn/XGBoost are imported (see the comment there). Not a tallymark setting.
    ("demo/__init__.py", "OMP_WAIT_POLICY"),
}

quiet = dict(log_code=False, log_env=False, log_git=False, log_system_metrics=False, capture_stdout=False)


@pytest.fixture
def clean_env(monkeypatch):
    for env, _help in documented_client().values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("USER", "os-user")
    monkeypatch.setenv("LOGNAME", "os-user")
    return monkeypatch


def test_defaults(clean_env):
    s = ClientSettings.from_env()
    assert (s.url, s.api_key, s.workspace, s.project) == (None, None, "default", "general")
    assert s.user == "os-user"  # no TALLYMARK_USER: the OS user
    assert s.home_path == Path("~/.tallymark").expanduser()
    assert s.journal_path == s.home_path / "journal" and s.offline_path == s.home_path / "offline"
    assert (s.send_interval, s.max_points_per_batch) == (1.0, 500_000)
    assert (s.retry_delays, s.retry_budget, s.recheck_after) == ((0.2, 0.5, 1.0, 2.0, 4.0), 15.0, 5.0)
    assert (s.request_timeout, s.system_metrics_interval) == (30.0, 10.0)
    assert s.ui_base == "http://127.0.0.1:5118"
    assert ClientSettings() == s  # from_env on an empty environment is the declared defaults


def test_environment_is_parsed(clean_env, tmp_path):
    env = {
        "TALLYMARK_URL": "http://tm.example:5118/",
        "TALLYMARK_API_KEY": "tm_abc",
        "TALLYMARK_USER": " alice ",
        "TALLYMARK_WORKSPACE": "risk",
        "TALLYMARK_PROJECT": "fraud",
        "TALLYMARK_HOME": str(tmp_path),
        "TALLYMARK_JOURNAL_DIR": str(tmp_path / "j"),
        "TALLYMARK_SEND_INTERVAL": "0.5",
        "TALLYMARK_MAX_POINTS_PER_BATCH": "1000",
        "TALLYMARK_RETRY_DELAYS": "0.1, 0.3,1",
        "TALLYMARK_RETRY_BUDGET": "2",
        "TALLYMARK_RECHECK_AFTER": "0",
        "TALLYMARK_REQUEST_TIMEOUT": "3.5",
        "TALLYMARK_PUBLIC_URL": "https://ui.example",
        "TALLYMARK_OFFLINE_DIR": "",  # empty counts as unset
    }
    for k, v in env.items():
        clean_env.setenv(k, v)
    s = ClientSettings.from_env()
    assert s.url == "http://tm.example:5118" and s.api_key == "tm_abc" and s.user == "alice"
    assert (s.workspace, s.project, s.home) == ("risk", "fraud", tmp_path)
    assert s.journal_path == tmp_path / "j" and s.offline_path == tmp_path / "offline"
    assert (s.send_interval, s.max_points_per_batch, s.retry_delays) == (0.5, 1000, (0.1, 0.3, 1.0))
    assert (s.retry_budget, s.recheck_after, s.request_timeout) == (2.0, 0.0, 3.5)
    assert s.ui_base == "https://ui.example"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TALLYMARK_SEND_INTERVAL", "fast", "cannot be parsed; expected seconds from 0.01 to 3600"),
        ("TALLYMARK_SEND_INTERVAL", "-1", "-1 is outside 0.01..3600"),
        ("TALLYMARK_MAX_POINTS_PER_BATCH", "1e3", "cannot be parsed; expected a whole number"),
        ("TALLYMARK_MAX_POINTS_PER_BATCH", "9000000", "outside 1..5e+06"),
        ("TALLYMARK_RETRY_DELAYS", "0.1,x", "cannot be parsed; expected comma-separated seconds"),
        ("TALLYMARK_RETRY_DELAYS", "0.1,nan", "nan is not a number"),
        ("TALLYMARK_REQUEST_TIMEOUT", "inf", "inf is outside"),
        ("TALLYMARK_URL", "tm.example:5118", "starts with http:// or https://"),
    ],
)
def test_bad_values_name_the_variable(clean_env, variable, value, says):
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        ClientSettings.from_env()
    assert str(info.value).startswith(f"${variable}={value!r}: ") and says in str(info.value)


def test_bad_arguments_name_the_setting():
    with pytest.raises(SettingsError, match=r"ClientSettings.retry_budget=-1: -1 is outside 0..3600"):
        ClientSettings(retry_budget=-1)
    with pytest.raises(SettingsError, match="max_points_per_batch=1.5: 1.5 is not a whole number"):
        ClientSettings().with_overrides(max_points_per_batch=1.5)


def test_overrides_win_and_none_means_not_given(clean_env):
    clean_env.setenv("TALLYMARK_URL", "http://env.example")
    clean_env.setenv("TALLYMARK_WORKSPACE", "from-env")
    s = ClientSettings.from_env(url="http://arg.example", workspace=None, user="bob")
    assert (s.url, s.workspace, s.user) == ("http://arg.example", "from-env", "bob")
    assert s.with_overrides(api_key=None).api_key is None and s.with_overrides(api_key="k").api_key == "k"


def test_the_api_key_is_never_shown(clean_env):
    clean_env.setenv("TALLYMARK_API_KEY", "tm_SECRETSECRET")
    s = ClientSettings.from_env()
    assert "tm_SECRETSECRET" not in repr(s) and "tm_SECRETSECRET" not in str(s)
    assert "api_key='***'" in repr(s) and "api_key=None" in repr(ClientSettings())
    assert "SECRET" not in f"{s!r} {[s]} {dict(a=s)}"
    # nor in the message about a bad key value (a key is never a number, but the rule holds)
    with pytest.raises(SettingsError) as info:
        ClientSettings(api_key="tm_SECRETSECRET", retry_budget=-1)
    assert "SECRET" not in str(info.value)


def test_experiment_and_api_take_settings(tmp_path, clean_env):
    """The settings object decides where an Experiment logs, as whom, and how it batches."""
    clean_env.setenv("TALLYMARK_HOME", str(tmp_path / "not-this-one"))
    clean_env.setenv("TALLYMARK_USER", "env-user")
    s = ClientSettings(home=tmp_path / "home", user="carol", workspace="ws", project="pr", send_interval=0.05)
    exp = tallymark.Experiment(settings=s, **quiet)
    assert (exp.workspace, exp.project_name, exp._user) == ("ws", "pr", "carol")
    assert exp._sender.interval == 0.05 and exp._journal.folder.parent == tmp_path / "home" / "journal"
    exp.log_metric("loss", 0.5, step=0)
    exp.end()
    got = tallymark.API(settings=s).get_experiment("ws", "pr", exp.get_key())
    assert got.get_metrics("loss")[0]["metricValue"] == 0.5
    assert not (tmp_path / "not-this-one").exists()
    # an argument overrides the settings object
    exp2 = tallymark.Experiment(project_name="other", settings=s, send_interval=2.0, **quiet)
    assert (exp2.project_name, exp2.workspace, exp2._sender.interval) == ("other", "ws", 2.0)
    exp2.end()


def test_offline_experiment_uses_the_offline_dir(tmp_path, clean_env):
    s = ClientSettings(home=tmp_path / "home", offline_dir=tmp_path / "offline-here")
    exp = tallymark.OfflineExperiment(project_name="p", settings=s, **quiet)
    exp.log_metric("m", 1.0)
    exp.end()
    assert (
        exp.archive_path == tmp_path / "offline-here" / f"{exp.get_key()}.zip" and exp.archive_path.exists()
    )


def _python_files():
    return sorted(p for p in SRC.rglob("*.py") if p != SETTINGS_MODULE)


def test_only_the_settings_module_reads_tallymark_variables():
    """A ``TALLYMARK_…`` name as a string of its own (an environment lookup) appears only in
    settings.py. Prose that mentions a variable (docstrings, help texts, messages) is fine: it is
    part of a longer string, which this check does not match."""
    import re

    name = re.compile(r"TALLYMARK_[A-Z0-9_]*")
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and name.fullmatch(node.value):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value}")
    assert not found, "read it through ClientSettings/Settings in settings.py instead:\n" + "\n".join(found)


def test_only_the_settings_module_writes_the_environment():
    found = []
    for path in _python_files():
        rel = str(path.relative_to(SRC))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            target = _environ_write(node)
            if target is not None and (rel, target) not in ENV_WRITES_ALLOWED:
                found.append(f"{rel}:{node.lineno}: writes os.environ[{target}]")
    assert not found, "\n".join(found)


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _environ_write(node: ast.AST) -> str | None:
    """The key an ``os.environ`` write/delete sets (``"?"`` when not a constant), else ``None``."""
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        for t in targets:
            if isinstance(t, ast.Subscript) and _is_environ(t.value):
                return t.slice.value if isinstance(t.slice, ast.Constant) else "?"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        f = node.func
        if _is_environ(f.value) and f.attr in {
            "setdefault",
            "pop",
            "update",
            "clear",
            "popitem",
            "__setitem__",
        }:
            first = node.args[0] if node.args else None
            return first.value if isinstance(first, ast.Constant) else "?"
        if f.attr in {"putenv", "unsetenv"}:
            return "?"
    return None


def test_an_http_client_acts_as_its_settings_user(tmp_path, clean_env):
    """Over HTTP the identity header comes from the settings object, not from whatever the
    environment says at the moment of the call."""
    with ServerProcess(tmp_path / "srv") as srv:
        s = ClientSettings(url=srv.url, home=tmp_path / "client", user="carol", request_timeout=10.0)
        quiet = dict(
            log_code=False, log_env=False, log_git=False, log_system_metrics=False, capture_stdout=False
        )
        exp = tallymark.Experiment(project_name="p", workspace="w", settings=s, **quiet)
        clean_env.setenv("TALLYMARK_USER", "mallory")  # too late: the experiment read its settings
        exp.log_metric("m", 1.0)
        exp.end()
        api = tallymark.API(settings=s)
        assert api._t.kind == "http" and api._t._client.timeout.read == 10.0
        got = api.get_experiment("w", "p", exp.get_key())
        assert got._info["user"] == "carol"
        assert not (tmp_path / "client" / "journal" / exp.get_key()).exists()
        api.close()
