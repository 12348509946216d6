"""The reference workflow behind ``tallymark demo``: credit-card fraud detection, as jobs and an endpoint.

:func:`run_demo` runs the reference notebook's managed half on this machine (or on a local Dask
cluster with ``backend="dask"``), logging every step:

1. the raw transactions (generated, or a real ``creditcard.csv``) are logged as ``fraud-dataset``
   (alias ``raw``) by the ``fraud-data-prep`` experiment;
2. a **ProcessingJob** runs ``scripts/preprocess.py`` — an unmodified SageMaker-style script that
   hard-codes ``/opt/ml/processing/...`` — on that version and logs its output as the next version
   (alias ``preprocessed``: train/validation/test as parquet, label first);
3. two **TrainingJobs** with the built-in XGBoost algorithm train on its train/validation channels
   (sub-paths of that exact version, ``artifact://WS/fraud-dataset:VERSION/train`` and ``/validation``):

   - ``xgb-baseline``: the reference notebook's hyperparameters (``learning_rate`` 0.15, 100 rounds,
     default depth, ``eval_metric`` ``auc``);
   - ``xgb-imbalance``: settings meant for 0.17 % positives: shallower trees with more, smaller
     steps, row and column subsampling, ``scale_pos_weight`` to weigh the rare frauds up, and
     ``aucpr`` as the evaluation metric, beside ``auc`` (area under the precision-recall curve is
     the honest score when positives are this rare; ROC AUC looks excellent for almost any model);

   each is logged with ``log_training_job`` into its own experiment, and its model registered as a
   version of ``fraud-xgb``;
4. the one with the better validation AUC-PR is **deployed** (``Model.deploy``), the test set is
   scored **through the endpoint over HTTP** in batches, and the evaluation (AUC-ROC, AUC-PR,
   precision/recall/F1 at 0.5, confusion matrix, ROC and PR curves) is logged to that model's
   experiment from those predictions; the labels go to the endpoint's prediction log;
5. production is requested and approved by a second identity, the lineage is printed from the
   endpoint's model back to the raw data through the jobs, and the endpoint is deleted (unless
   ``keep_endpoint``).

A Rich progress display follows every step live (job status, boosting rounds, scored rows); at the
end a table compares the two models and says where to look. Heavy libraries and the SDK are imported
inside :func:`run_demo`, so importing this module (e.g. from the CLI) is cheap.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = [
    "BACKENDS",
    "BASELINE",
    "DEMO_SEED",
    "IMBALANCE",
    "DemoResult",
    "DemoRun",
    "ModelSpec",
    "run_demo",
]

DEMO_SEED = 0
BACKENDS = ("local", "dask")
SCRIPT = Path(__file__).resolve().parent / "scripts" / "preprocess.py"
MAX_RUN = 1800  # seconds, as the reference notebook's estimator
OUTPUT_DIR = "/opt/ml/processing/output"  # where scripts/preprocess.py writes (hard-coded there)
# The training channels: the preprocessing job's train and validation folders, read as sub-paths
# of the version it produced.
SPLITS = ("train", "validation")


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
        # AUC-PR is what this set is tuned for; AUC too, so both runs have per-round AUC to overlay
        "eval_metric": "aucpr,auc",
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


@dataclass
class DemoRun:
    """One trained model: its experiment, its training job and what it scored."""

    name: str
    key: str
    url: str
    params: dict[str, Any]
    metrics: dict[str, float]  # validation_* for every run; test_* for the deployed one
    confusion_matrix: list[list[int]] | None  # test set, deployed model only
    num_rounds: int
    train_seconds: float
    job_name: str = ""
    model_version: str = ""


@dataclass
class DemoResult:
    """Everything :func:`run_demo` did: the runs (baseline first), the jobs, the endpoint, timings."""

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
    backend: str = "local"
    processing_job: str = ""
    endpoint_name: str = ""
    endpoint_url: str = ""
    endpoint_kept: bool = False
    scored_requests: int = 0

    @property
    def keys(self) -> list[str]:
        """Experiment keys, in training order."""
        return [run.key for run in self.runs]

    @property
    def best(self) -> DemoRun:
        """The run with the highest validation AUC-PR (the first one on a tie): the deployed one."""
        return max(self.runs, key=lambda run: run.metrics["validation_auc_pr"])


class DemoError(RuntimeError):
    """A step of the demo could not be done; the message says which and where to look."""


def _progress(console: Console) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Column

    return Progress(
        TextColumn("{task.description}", table_column=Column(width=21, no_wrap=True)),
        BarColumn(bar_width=16),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        # the live part (job status, round, metrics): one line, cut at the terminal's edge
        TextColumn("{task.fields[note]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
        console=console,
        expand=True,  # the note column takes what the others leave
        # The SDK may capture stdout for the experiment; leave sys.stdout alone so the two don't fight.
        redirect_stdout=False,
        redirect_stderr=False,
    )


def _experiment(project: str, workspace: str, name: str, tags: tuple[str, ...]) -> Any:
    import tallymark

    return tallymark.Experiment(
        project_name=project,
        workspace=workspace,
        name=name,
        tags=[*_COMMON_TAGS, *tags],
        capture_stdout=False,
        log_code=False,  # the entry point is the CLI; log the code that does the work instead
    )


def _artifact_uri(workspace: str, name: str, version: str | None = None, subpath: str | None = None) -> str:
    return (
        f"artifact://{workspace}/{name}"
        + (f":{version}" if version else "")
        + (f"/{subpath}" if subpath else "")
    )


def _produced_version(job: Any, workspace: str, name: str) -> str:
    """The version of ``name`` the job logged (its ``produced`` link): exact, where the alias
    ``preprocessed`` would name whichever version had it last."""
    prefix = f"artifact:{workspace}/{name}:"
    for link in job.refresh().get("links") or []:
        if link.get("relation") == "produced" and str(link.get("ref", "")).startswith(prefix):
            return str(link["ref"])[len(prefix) :]
    raise DemoError(f"job {job.job_name} completed but recorded no version of {name} as produced")


def _load_split(folder: Path, split: str) -> tuple[Any, Any]:
    """``(X, y)`` of a split the preprocessing job wrote (parquet, label first)."""
    import pandas as pd

    files = sorted((folder / split).glob("*.parquet"))
    if not files:
        raise DemoError(f"the preprocessed dataset has no {split}/*.parquet (in {folder})")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    label = frame.columns[0]
    return frame.drop(columns=[label]), frame[label].to_numpy()


def _validation_scores(model_file: Path, X: Any) -> Any:
    """Scores of the validation split by a trained booster (UBJ, loaded without pickle)."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(model_file.read_bytes()))
    booster.set_param({"nthread": 1})
    return booster.predict(xgb.DMatrix(X, feature_names=list(X.columns)))


def run_demo(
    rows: int | None = None,
    data: str | None = None,
    workspace: str = "demo",
    project: str = "fraud-detection",
    console: Console | None = None,
    backend: str = "local",
    keep_endpoint: bool = False,
) -> DemoResult:
    """Run the fraud-detection workflow as jobs and an endpoint, logging everything to tallymark.

    ``data`` is the path of a CSV with the Kaggle credit-card-fraud schema; without it a synthetic
    data set of ``rows`` transactions (default: the real size, 284,807) is generated. ``backend`` is
    ``"local"`` (jobs are child processes of this one) or ``"dask"`` (a LocalCluster of 2 workers,
    started and closed here, runs them). ``keep_endpoint`` leaves the endpoint serving at the end.
    ``console`` is the Rich console to draw on (default: a new one on stdout).
    """
    from tallymark.extras import require_extra

    require_extra("demo", "tallymark demo")  # before anything below imports pandas or xgboost
    from rich.console import Console
    from rich.markup import escape

    import tallymark
    from tallymark.demo import data as demo_data
    from tallymark.demo.evaluate import BATCH_ROWS, evaluate_scores, log_evaluation, score_through_endpoint
    from tallymark.demo.jobflow import extract_model, follow
    from tallymark.demo.lineage import APPROVER, DATASET, MODEL, cache_dir, log_raw, promote, register_trained
    from tallymark.demo.report import print_lineage, print_summary
    from tallymark.settings import ClientSettings
    from tallymark.termsafe import markup

    if rows is not None and data is not None:
        raise ValueError("give either rows (synthetic data) or data (a CSV path), not both")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    from tallymark.integration.jobs import log_training_job
    from tallymark.jobs import ProcessingJob, TrainingJob
    from tallymark.jobs.spec import OutputSpec

    console = console if console is not None else Console()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    specs = (BASELINE, IMBALANCE)
    cache = cache_dir()
    api = tallymark.API()
    runs: list[DemoRun] = []
    experiments: dict[str, Any] = {}
    progress = _progress(console)

    with ExitStack() as stack:
        stack.callback(api.close)
        # Experiments stay open until the deployed one has its evaluation; closed on any exit.
        stack.callback(lambda: [exp.end() for exp in experiments.values()])
        client = None
        if backend == "dask":
            from tallymark.demo.cluster import WORKERS, local_cluster

            worker_log = cache / "dask-workers.log"
            console.print(f"Starting a local Dask cluster ({WORKERS} worker processes)…")
            client = stack.enter_context(local_cluster(worker_log))
        stack.enter_context(progress)

        # 1. the raw data, versioned by the preparation experiment
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
        progress.update(
            load_task, completed=1, note=f"{len(frame):,} rows, {int(frame['Class'].sum()):,} frauds"
        )
        raw_task = progress.add_task("Version raw data", total=1, note="")
        with _experiment(project, workspace, "fraud-data-prep", ("data-prep",)) as prep_exp:
            prep_exp.log_code(demo_data.__file__)
            prep_exp.log_code(str(SCRIPT))
            prep_exp.log_others({"data_source": source, "seed": DEMO_SEED})
            raw = log_raw(prep_exp, frame, source, data)
            prep_key = prep_exp.get_key()
        del frame
        progress.update(raw_task, completed=1, note=f"{DATASET} {raw.version} (raw)")

        # 2.-3. the jobs, on this machine or on a local Dask cluster (started first, see above)
        job_backend: Any = client if client is not None else "local"
        if client is not None:
            cluster_task = progress.add_task("Dask cluster", total=1, note="")
            progress.update(
                cluster_task,
                completed=1,  # through update, so the task counts as finished (its clock stops)
                note=f"LocalCluster, {WORKERS} workers at {client.scheduler.address} "
                f"(their output: {markup(worker_log)})",
            )
        t0 = time.perf_counter()
        processing = ProcessingJob(
            script=str(SCRIPT),
            backend=job_backend,
            workspace=workspace,
            project=project,
            base_job_name="fraud-preprocess",
        )
        pre_task = progress.add_task("Preprocess (job)", total=1, note="submitting")
        # The whole output is the preprocessed version of the dataset; each training channel is
        # a sub-path of it (its train/ or validation/ folder).
        processing.run(
            inputs={"input": _artifact_uri(workspace, DATASET, raw.version)},
            outputs=[
                OutputSpec("preprocessed", OUTPUT_DIR, _artifact_uri(workspace, DATASET, "preprocessed"))
            ],
            arguments=["--seed", str(DEMO_SEED)],
            wait=False,
        )
        follow(processing, progress, pre_task)
        timings["preprocess"] = time.perf_counter() - t0
        pre = api.get_artifact(workspace, DATASET, _produced_version(processing, workspace, DATASET))
        folder = cache / "datasets" / f"{DATASET}-{pre.version}"
        pre.download(folder, overwrite=True)
        summary = json.loads((folder / "summary.json").read_text())
        progress.update(
            pre_task,
            note=f"{DATASET} {pre.version}: "
            f"{summary['duplicates_dropped']:,} duplicates dropped; train/validation/test "
            f"{summary['train_rows']:,}/{summary['validation_rows']:,}/{summary['test_rows']:,} rows · job "
            f"{markup(processing.job_name)}",
        )
        X_validation, y_validation = _load_split(folder, "validation")

        # The version number, not the alias: the lineage then names exactly what was trained on.
        channels = {split: _artifact_uri(workspace, DATASET, pre.version, split) for split in SPLITS}
        for spec in specs:
            total = int(spec.params["num_round"])
            task = progress.add_task(f"Train {spec.name}", total=total, note="submitting")
            exp = _experiment(project, workspace, spec.name, spec.tags)
            experiments[spec.name] = exp
            exp.log_other("model_description", spec.description)
            # scored on the preprocessed version's validation split below (and, if deployed, on its
            # test split): that version is an input of this experiment
            exp.get_artifact(DATASET, pre.version)
            job = TrainingJob(
                algorithm="xgboost",
                hyperparameters=dict(spec.params),
                output_path=str(cache / "jobs"),
                max_run=MAX_RUN,
                backend=job_backend,
                workspace=workspace,
                project=project,
                base_job_name=spec.name,
            )
            job.fit(channels, wait=False)
            follow(job, progress, task, rounds=total)
            log_training_job(job, experiment=exp)
            registered = register_trained(exp, spec.name, spec.name, job.job_name)
            files = extract_model(job.model_data, cache / "models" / job.job_name)
            validation = evaluate_scores(
                y_validation,
                _validation_scores(files["xgboost-model"], X_validation),
                prefix="validation",
            )
            exp.log_metrics({k: v for k, v in validation.metrics.items() if "auc" in k})
            described = job.describe()
            train_seconds = float(
                described.get("TrainingTimeInSeconds") or described.get("training_seconds") or 0
            )
            timings[spec.name] = train_seconds
            progress.update(
                task,
                note=f"{MODEL} {registered['version']} · validation AUC-PR "
                f"{validation.metrics['validation_auc_pr']:.4f} · job {markup(job.job_name)}",
            )
            runs.append(
                DemoRun(
                    name=spec.name,
                    key=exp.get_key(),
                    url=exp.url,
                    params=dict(spec.params),
                    metrics={k: v for k, v in validation.metrics.items() if "auc" in k},
                    confusion_matrix=None,
                    num_rounds=total,
                    train_seconds=train_seconds,
                    job_name=job.job_name,
                    model_version=registered["version"],
                )
            )

        # 4. the better model behind an endpoint; the test set scored over HTTP
        best = max(runs, key=lambda run: run.metrics["validation_auc_pr"])
        deploy_task = progress.add_task("Deploy", total=1, note=f"{MODEL} {best.model_version}")
        t0 = time.perf_counter()
        from tallymark.sdk.endpoint import EndpointError

        try:
            endpoint = api.get_model(workspace, MODEL).deploy(best.model_version)
        except EndpointError as exc:
            raise DemoError(f"deploying {MODEL} {best.model_version}: {exc.message}") from exc
        timings["deploy"] = time.perf_counter() - t0
        if not keep_endpoint:
            stack.callback(endpoint.delete)
        progress.update(deploy_task, completed=1, note=f"{markup(endpoint.name)} at {markup(endpoint.url)}")

        X_test, y_test = _load_split(folder, "test")
        score_task = progress.add_task("Score test set (HTTP)", total=len(X_test), note="")
        t0 = time.perf_counter()
        try:
            scores, row_ids = score_through_endpoint(
                endpoint, X_test, on_batch=lambda done, total: progress.update(score_task, completed=done)
            )
        except EndpointError as exc:
            raise DemoError(f"scoring the test set through endpoint {endpoint.name}: {exc.message}") from exc
        timings["score"] = time.perf_counter() - t0
        evaluation = evaluate_scores(y_test, scores)
        log_evaluation(
            experiments[best.name], evaluation, source=f"endpoint {endpoint.name} ({endpoint.url})"
        )
        endpoint.log_ground_truth(row_ids, [int(v) for v in y_test])
        best.metrics.update(evaluation.metrics)
        best.confusion_matrix = evaluation.confusion_matrix
        requests = -(-len(X_test) // BATCH_ROWS)
        progress.update(
            score_task,
            note=f"{requests} request{'s' if requests != 1 else ''} · "
            f"AUC-PR {evaluation.metrics['test_auc_pr']:.4f} · labels logged",
        )

        # 5. four-eyes promotion
        promote_task = progress.add_task("Promote", total=1, note="")
        promoted = promote(
            workspace,
            best.model_version,
            comment=f"{best.name}: best validation AUC-PR {best.metrics['validation_auc_pr']:.4f}, "
            f"test AUC-PR {best.metrics['test_auc_pr']:.4f} through endpoint {endpoint.name}",
        )
        approved = promoted["decision"] is not None
        progress.update(
            promote_task,
            completed=1,
            note=f"{MODEL} {best.model_version} → production (approved by {APPROVER})"
            if approved
            else f"{MODEL} {best.model_version} → production requested (#{promoted['request']['id']})",
        )
        endpoint_name, endpoint_url = endpoint.name, endpoint.url

        for exp in experiments.values():
            exp.end()
        experiments.clear()
        progress.stop()
        print_lineage(
            console,
            f"model:{workspace}/{MODEL}:{best.model_version}",
            f"Lineage of the deployed model, from endpoint {markup(endpoint_name)} back to the raw data",
        )

    dataset = {
        "data_source": source,
        "dataset_rows_raw": summary["rows_raw"],
        "dataset_duplicates_dropped": summary["duplicates_dropped"],
        "dataset_rows": summary["rows"],
        "dataset_frauds": summary["frauds"],
        **{
            f"{s}_{k}": summary[f"{s}_{k}"]
            for s in ("train", "validation", "test")
            for k in ("rows", "frauds")
        },
    }
    outcome = DemoResult(
        runs=runs,
        dataset=dataset,
        seconds=time.perf_counter() - started,
        timings=timings,
        prep_key=prep_key,
        datasets={"raw": raw.version, "preprocessed": pre.version},
        production=best.model_version if approved else "",
        workspace=workspace,
        pending_request=None if approved else promoted["request"]["id"],
        server=ClientSettings.from_env().url,
        backend=backend,
        processing_job=processing.job_name,
        endpoint_name=endpoint_name,
        endpoint_url=endpoint_url,
        endpoint_kept=keep_endpoint,
        scored_requests=requests,
    )
    print_summary(console, outcome)
    return outcome
