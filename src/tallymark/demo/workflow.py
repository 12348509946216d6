"""The reference workflow behind ``tallymark demo``: credit-card fraud detection with XGBoost.

:func:`run_demo` generates (or loads) the transactions, prepares them, and trains two models, each
inside its own ``tallymark.Experiment``:

- ``xgb-baseline``: the parameters of the usual notebook
  (``learning_rate`` 0.15, 100 rounds, default depth, ``eval_metric`` ``auc``);
- ``xgb-imbalance``: settings meant for 0.17 % positives: shallower trees with more, smaller steps,
  row and column subsampling, ``scale_pos_weight`` to weigh the rare frauds up, and ``aucpr`` as the
  evaluation metric (area under the precision-recall curve is the honest score when positives
  are this rare; ROC AUC looks excellent for almost any model).

A Rich progress display follows generation, preprocessing and every boosting round; at the end a
table compares the two experiments (differing parameters and test metrics) and says where to look
next. Heavy libraries and the SDK are imported inside :func:`run_demo`, so importing this module
(e.g. from the CLI) is cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["BASELINE", "IMBALANCE", "DEMO_SEED", "DemoResult", "DemoRun", "ModelSpec", "run_demo"]

DEMO_SEED = 0


@dataclass(frozen=True)
class ModelSpec:
    """One model of the demo: the experiment name, its tags and the notebook-style parameters."""

    name: str
    description: str
    params: dict[str, Any]
    tags: tuple[str, ...] = ()


BASELINE = ModelSpec(
    name="xgb-baseline",
    description="notebook defaults",
    params={
        "objective": "binary:logistic",
        "num_round": 100,
        "eval_metric": "auc",
        "learning_rate": 0.15,
        "booster": "gbtree",
    },
    tags=("baseline",),
)

IMBALANCE = ModelSpec(
    name="xgb-imbalance",
    description="tuned for 0.17 % positives",
    params={
        "objective": "binary:logistic",
        "num_round": 200,
        "eval_metric": "aucpr",
        "learning_rate": 0.1,
        "booster": "gbtree",
        "max_depth": 4,
        "subsample": 0.8,
        "colsample_bytree": 0.7,
        "scale_pos_weight": 5,
    },
    tags=("imbalance",),
)

_COMMON_TAGS = ("demo", "fraud-detection", "xgboost")

# Test metrics in the comparison table, best first: (logged name, label).
_TABLE_METRICS = (
    ("test_auc_pr", "AUC-PR (test)"),
    ("test_auc_roc", "AUC-ROC (test)"),
    ("test_precision", "precision @0.5"),
    ("test_recall", "recall @0.5"),
    ("test_f1", "F1 @0.5"),
)


@dataclass
class DemoRun:
    """One trained model and the experiment it was logged to."""

    name: str
    key: str
    url: str
    params: dict[str, Any]
    metrics: dict[str, float]
    confusion_matrix: list[list[int]]
    num_rounds: int
    train_seconds: float
    model_version: str = ""


@dataclass
class DemoResult:
    """Everything :func:`run_demo` did: the runs (baseline first), the dataset facts and timings."""

    runs: list[DemoRun]
    dataset: dict[str, Any]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    prep_key: str = ""
    datasets: dict[str, str] = field(default_factory=dict)
    production: str = ""
    workspace: str = "demo"
    pending_request: int | None = None  # a production request waiting for an approver (auth server)
    server: str | None = None  # the server logged to, None for the embedded home

    @property
    def keys(self) -> list[str]:
        """Experiment keys, in training order."""
        return [run.key for run in self.runs]

    @property
    def best(self) -> DemoRun:
        """The run with the highest test AUC-PR (the first one on a tie)."""
        return max(self.runs, key=lambda run: run.metrics["test_auc_pr"])


def _format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _comparison_table(runs: list[DemoRun]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    best = max(runs, key=lambda run: run.metrics["test_auc_pr"])
    table = Table(title="Fraud detection: baseline vs. tuned", title_justify="left", show_lines=False)
    table.add_column("", style="bold")
    for run in runs:
        marker = " ★" if run is best else ""
        table.add_column(f"{run.name}{marker}", justify="right")

    names = sorted({name for run in runs for name in run.params})
    differing = [n for n in names if len({repr(run.params.get(n)) for run in runs}) > 1]
    for name in differing:
        table.add_row(f"[dim]param[/dim] {name}", *(_format_value(run.params.get(name)) for run in runs))
    if differing:
        table.add_section()
    for metric, label in _TABLE_METRICS:
        values = [run.metrics[metric] for run in runs]
        top = max(values)
        cells = [f"[bold green]{v:.4f}[/bold green]" if v == top else f"{v:.4f}" for v in values]
        table.add_row(label, *cells)
    table.add_row(
        escape("confusion [[tn fp] [fn tp]]"),
        *(
            escape(f"[[{tn} {fp}] [{fn} {tp}]]")
            for (tn, fp), (fn, tp) in (run.confusion_matrix for run in runs)
        ),
    )
    table.add_row("training time", *(f"{run.train_seconds:.1f} s" for run in runs))
    return table


def _cli() -> str:
    """How to call the CLI from here: ``tallymark`` if that is on PATH, else the path that ran us
    (``.venv/bin/tallymark`` after ``make demo``)."""
    import os
    import shutil
    import sys

    here = sys.argv[0] if sys.argv and os.path.basename(sys.argv[0]) == "tallymark" else None
    found = shutil.which("tallymark")
    if here is None or (found and os.path.realpath(found) == os.path.realpath(here)):
        return "tallymark"
    rel = os.path.relpath(here)
    return rel if not rel.startswith("..") else here


def _print_summary(console: Console, result: DemoResult) -> None:
    runs = result.runs
    best = result.best
    others = [run for run in runs if run is not best]
    console.print()
    console.print(_comparison_table(runs))
    if others:
        gain = best.metrics["test_auc_pr"] - max(run.metrics["test_auc_pr"] for run in others)
        verdict = (
            f"[bold]{best.name}[/bold] is better on AUC-PR ({best.metrics['test_auc_pr']:.4f}, {gain:+.4f})."
            if gain > 0
            else f"Both models tie on AUC-PR ({best.metrics['test_auc_pr']:.4f})."
        )
        console.print(verdict)
    facts = result.dataset
    console.print(
        f"Data: {facts['dataset_rows']:,} transactions after dropping "
        f"{facts['dataset_duplicates_dropped']:,} duplicates, {facts['dataset_frauds']:,} frauds; "
        f"test set {facts['test_rows']:,} rows with {facts['test_frauds']:,} frauds."
    )
    console.print()
    console.print("[bold]Where to look[/bold]")
    for run in runs:
        console.print(f"  {run.name}: key [cyan]{run.key}[/cyan]")
        console.print(f"    {run.url}", soft_wrap=True)
    console.print("  Compare them:")
    cli = _cli()
    console.print(f"    [green]{cli} experiments compare {' '.join(result.keys)}[/green]", soft_wrap=True)
    if result.production:
        from tallymark import API
        from tallymark.cli_registry import render_lineage

        node = f"model:{result.workspace}/fraud-xgb:{result.production}"
        console.print()
        console.print(f"[bold]Lineage of the production model[/bold] ({node}): which data trained it")
        api = API()
        console.print(render_lineage(api.get_lineage(node, "upstream"), "upstream"))
        api.close()
        console.print(
            f"  Registry and approvals: [green]{cli} models show {result.workspace} fraud-xgb[/green]"
        )
        console.print(f"  Lineage: [green]{cli} lineage {node}[/green]")
    if result.pending_request is not None:
        from tallymark.demo.lineage import MODEL

        console.print()
        console.print(
            f"[bold]Production request #{result.pending_request}[/bold] for {MODEL} "
            f"{result.best.model_version} waits for an approver of workspace {result.workspace} (not you):"
        )
        console.print(
            f"    [green]{cli} models approve {result.pending_request} --url {result.server}[/green]"
            "  (with the approver's key in TALLYMARK_API_KEY), or the Approve button in the UI",
            soft_wrap=True,
        )
    console.print("  Browse everything in the browser:")
    if result.server:
        console.print(f"    {result.server.rstrip('/')}/{result.workspace}", soft_wrap=True)
    else:
        console.print(f"    [green]{cli} ui[/green]  (then open http://127.0.0.1:5118)")


def run_demo(
    rows: int | None = None,
    data: str | None = None,
    workspace: str = "demo",
    project: str = "fraud-detection",
    console: Console | None = None,
) -> DemoResult:
    """Run the fraud-detection workflow and log both models to tallymark.

    ``data`` is the path of a CSV with the Kaggle credit-card-fraud schema; without it a synthetic
    data set of ``rows`` transactions (default: the real size, 284,807) is generated. Returns the
    experiment keys, URLs and test metrics. ``console`` is the Rich console to draw on (default: a
    new one on stdout).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import tallymark
    from tallymark.demo import data as demo_data
    from tallymark.demo import preprocess as demo_preprocess
    from tallymark.demo import train as demo_train
    from tallymark.demo.lineage import APPROVER, DATASET, MODEL, log_and_register, promote, version_datasets
    from tallymark.demo.preprocess import preprocess
    from tallymark.demo.train import train_xgboost
    from tallymark.settings import ClientSettings

    if rows is not None and data is not None:
        raise ValueError("give either rows (synthetic data) or data (a CSV path), not both")
    console = console if console is not None else Console()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    specs = (BASELINE, IMBALANCE)

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=16),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        # The SDK may capture stdout for the experiment; leave sys.stdout alone so the two don't fight.
        redirect_stdout=False,
        redirect_stderr=False,
    )
    runs: list[DemoRun] = []
    with progress:
        if data is not None:
            load_task = progress.add_task("Load CSV", total=1, note=escape(Path(data).name))
            t0 = time.perf_counter()
            frame = demo_data.load_csv(data)
            source = f"csv:{data}"
        else:
            size = rows if rows is not None else demo_data.FULL_ROWS
            load_task = progress.add_task("Generate data", total=1, note="")
            t0 = time.perf_counter()
            frame = demo_data.generate(size, seed=DEMO_SEED)
            source = f"synthetic(rows={size}, seed={DEMO_SEED})"
        timings["data"] = time.perf_counter() - t0
        frauds_raw = int(frame["Class"].sum())
        progress.update(load_task, completed=1, note=f"{len(frame):,} rows, {frauds_raw:,} frauds")

        prep_task = progress.add_task("Preprocess", total=1, note="")
        t0 = time.perf_counter()
        prepared = preprocess(frame, seed=DEMO_SEED)
        timings["preprocess"] = time.perf_counter() - t0
        progress.update(prep_task, completed=1, note=f"{prepared.duplicates_dropped:,} duplicates dropped")
        dataset = {"data_source": source, "seed": DEMO_SEED, **prepared.summary()}

        version_task = progress.add_task("Version datasets", total=1, note="")
        with tallymark.Experiment(
            project_name=project,
            workspace=workspace,
            name="fraud-data-prep",
            tags=[*_COMMON_TAGS, "data-prep"],
            capture_stdout=False,
            log_code=False,  # the entry point is the CLI; log the code that does the work instead
        ) as prep_exp:
            for module in (demo_data, demo_preprocess):
                prep_exp.log_code(module.__file__)
            prep_exp.log_others(dataset)
            logged = version_datasets(prep_exp, frame, prepared, source, data)
            prep_key = prep_exp.get_key()
        datasets = {alias: art.version for alias, art in logged.items()}
        progress.update(
            version_task,
            completed=1,
            note=f"{DATASET} raw={datasets['raw']} preprocessed={datasets['preprocessed']}",
        )

        for spec in specs:
            total = int(spec.params["num_round"])
            task = progress.add_task(f"Train {spec.name}", total=total, note="")

            def on_round(done: int, total: int, task: Any = task) -> None:
                progress.update(task, completed=done, total=total)

            with tallymark.Experiment(
                project_name=project,
                workspace=workspace,
                name=spec.name,
                tags=[*_COMMON_TAGS, *spec.tags],
                capture_stdout=False,
                log_code=False,
            ) as exp:
                exp.log_code(demo_train.__file__)
                exp.log_others(dataset)
                exp.log_other("model_description", spec.description)
                result = train_xgboost(prepared, spec.params, exp=exp, on_round=on_round)
                registered = log_and_register(exp, result.booster, spec.name, datasets["preprocessed"])
                key, url = exp.get_key(), exp.url
            timings[spec.name] = result.train_seconds
            progress.update(task, note=f"AUC-PR {result.metrics['test_auc_pr']:.4f}")
            runs.append(
                DemoRun(
                    name=spec.name,
                    key=key,
                    url=url,
                    params=dict(spec.params),
                    metrics=dict(result.metrics),
                    confusion_matrix=result.confusion_matrix,
                    num_rounds=result.num_rounds,
                    train_seconds=result.train_seconds,
                    model_version=registered["version"],
                )
            )

        promote_task = progress.add_task("Promote best model", total=1, note="")
        best = max(runs, key=lambda run: run.metrics["test_auc_pr"])
        promoted = promote(
            workspace,
            best.model_version,
            comment=f"{best.name}: best test AUC-PR {best.metrics['test_auc_pr']:.4f}",
        )
        approved = promoted["decision"] is not None
        progress.update(
            promote_task,
            completed=1,
            note=f"{MODEL} {best.model_version} → production (approved by {APPROVER})"
            if approved
            else f"{MODEL} {best.model_version} → production requested (#{promoted['request']['id']})",
        )

    outcome = DemoResult(
        runs=runs,
        dataset=dataset,
        seconds=time.perf_counter() - started,
        timings=timings,
        prep_key=prep_key,
        datasets=datasets,
        production=best.model_version if approved else "",
        workspace=workspace,
        pending_request=None if approved else promoted["request"]["id"],
        server=ClientSettings.from_env().url,
    )
    _print_summary(console, outcome)
    return outcome
