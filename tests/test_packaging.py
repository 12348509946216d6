"""``pip install tallymark`` stays light: the SDK, the embedded store and the CLI work without any extra.

The heavy packages are made unimportable in a child interpreter by a meta-path finder installed from
a ``sitecustomize`` module on its PYTHONPATH (they are installed in the test environment, so only a
finder can take them away); the embedded logging flow and ``tallymark experiments list`` must work
there, and the parts that need an extra must say which one instead of printing a traceback. The
installed distribution's metadata must list each heavy package only under an extra.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

# Import names the core must never need.
BLOCKED = (
    "fastapi",
    "starlette",
    "uvicorn",
    "multipart",
    "python_multipart",
    "boto3",
    "botocore",
    "psycopg",
    "psycopg_binary",
    "sklearn",
    "xgboost",
    "dask",
    "distributed",
    "pandas",
    "pyarrow",
)
# Distribution names that must appear only under an extra (PEP 503 normalised).
HEAVY = (
    "fastapi",
    "uvicorn",
    "python-multipart",
    "psycopg",
    "boto3",
    "dask",
    "xgboost",
    "xgboost-cpu",
    "scikit-learn",
    "pandas",
    "pyarrow",
)

SITECUSTOMIZE = f"""
import sys

BLOCKED = frozenset({BLOCKED!r})


class _NotInstalled:
    # Behaves as if the package were absent from site-packages: every finder after this one is
    # skipped for these names, so importing them raises ModuleNotFoundError as on a light install.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""

FLOW = """
import sys

try:
    import fastapi  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("the finder did not hide fastapi")

import tallymark

exp = tallymark.Experiment(
    project_name="light",
    workspace="notebook",
    log_code=False,
    log_env=False,
    log_git=False,
    log_system_metrics=False,
    capture_stdout=False,
)
exp.log_parameters({"learning_rate": 0.15, "num_round": 100})
for step in range(1, 11):
    exp.log_metric("train_auc", 0.9 + step / 100, step=step)
exp.log_other("rows", 284807)
key = exp.get_key()
exp.end()

api = tallymark.API()
experiment = api.get_experiment_by_key(key)
summary = {row["name"]: row for row in experiment.get_metrics_summary()}
assert int(summary["train_auc"]["count"]) == 10, summary
assert abs(float(summary["train_auc"]["valueCurrent"]) - 1.0) < 1e-9, summary
params = {row["name"]: row["valueCurrent"] for row in experiment.get_parameters_summary()}
assert str(params["learning_rate"]) == "0.15", params
api.close()

loaded = sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED_NAMES)
assert not loaded, loaded
print(key)
"""


@pytest.fixture()
def light_env(tmp_path: Path) -> dict[str, str]:
    """Environment of a child interpreter where the heavy packages cannot be imported."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(SRC)])
    env["TALLYMARK_HOME"] = str(tmp_path / "home")
    env["TALLYMARK_USER"] = "alice"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return env


def _run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_sdk_embedded_store_and_cli_work_without_extras(light_env: dict[str, str]) -> None:
    flow = f"BLOCKED_NAMES = frozenset({BLOCKED!r})\n" + textwrap.dedent(FLOW)
    done = _run(light_env, "-c", flow)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", key)

    listed = _run(light_env, "-m", "tallymark", "experiments", "list", "notebook")
    assert listed.returncode == 0, listed.stderr
    assert key in listed.stdout
    shown = _run(light_env, "-m", "tallymark", "experiments", "show", key)
    assert shown.returncode == 0, shown.stderr
    assert "train_auc" in shown.stdout
    for group in ("jobs", "endpoints"):  # reading jobs and endpoints needs no extra either
        listed = _run(light_env, "-m", "tallymark", group, "list", "notebook")
        assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize(
    ("args", "needs", "extra"),
    [
        (("server", "--port", "0", "--no-auth"), "tallymark server", "server"),
        (("ui", "--port", "0"), "tallymark ui", "server"),
        (
            ("db", "upgrade", "--db", "postgresql://nobody@127.0.0.1:1/none"),
            "a PostgreSQL database",
            "server",
        ),
        (("demo", "--rows", "1000"), "tallymark demo", "demo"),
    ],
)
def test_parts_needing_an_extra_name_it(
    light_env: dict[str, str], args: tuple[str, ...], needs: str, extra: str
) -> None:
    done = _run(light_env, "-m", "tallymark", *args, timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    message = " ".join(done.stderr.split())  # Rich wraps long lines
    assert f"{needs} needs the Python package" in message, done.stderr
    assert f"pip install 'tallymark[{extra}]'" in message, done.stderr
    assert "Traceback" not in done.stderr


def _requirement_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def _core_and_extras(requirements: list[str]) -> tuple[set[str], dict[str, set[str]]]:
    core: set[str] = set()
    extras: dict[str, set[str]] = {}
    for requirement in requirements:
        marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        name = _requirement_name(requirement)
        if marker is None:
            core.add(name)
        else:
            extras.setdefault(marker.group(1), set()).add(name)
    return core, extras


def _pyproject_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        out += [f'{r}; extra == "{extra}"' for r in requirements]
    return out


def _check_layout(requirements: list[str]) -> None:
    core, extras = _core_and_extras(requirements)
    assert not core & set(HEAVY), f"heavy packages in the core: {sorted(core & set(HEAVY))}"
    assert {"sqlalchemy", "alembic", "httpx", "typer", "rich", "numpy"} <= core
    assert {"server", "jobs", "serving", "demo", "all", "test"} <= set(extras)
    assert {"fastapi", "uvicorn", "python-multipart", "psycopg", "boto3"} <= extras["server"]
    assert {"dask", "boto3", "xgboost-cpu"} <= extras["jobs"]
    assert {"xgboost-cpu", "pyarrow"} <= extras["serving"]
    assert {"pandas", "scikit-learn", "xgboost-cpu"} <= extras["demo"]
    assert extras["all"] == {"tallymark"}  # all = tallymark[server,jobs,serving,demo]
    for requirement in requirements:
        # Lower bounds pinned, so an old environment fails at install, not at first use.
        if _requirement_name(requirement) != "tallymark":
            assert ">=" in requirement, requirement


def test_pyproject_keeps_heavy_packages_in_extras() -> None:
    _check_layout(_pyproject_requirements())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    everything = " ".join(project["optional-dependencies"]["all"])
    assert all(extra in everything for extra in ("server", "jobs", "serving", "demo"))


def test_installed_metadata_keeps_heavy_packages_in_extras() -> None:
    requirements = importlib.metadata.requires("tallymark") or []
    declared = _pyproject_requirements()
    if sorted(map(_requirement_name, requirements)) != sorted(map(_requirement_name, declared)):
        pytest.skip("the installed tallymark metadata predates pyproject.toml: `make` reinstalls it")
    _check_layout(requirements)
