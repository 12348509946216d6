"""What ``tallymark demo`` prints at the end: the comparison table, the lineage, where to look.

Kept apart from :mod:`tallymark.demo.workflow` (which runs the steps) so the output can be read and
changed on its own; everything here only reads the :class:`~tallymark.demo.workflow.DemoResult`
and the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from tallymark.demo.workflow import DemoResult, DemoRun

__all__ = ["cli_name", "comparison_table", "print_lineage", "print_summary"]

# Rows of the comparison table: (logged name, label). Validation metrics come from each training
# job's model; test metrics only for the deployed model, from the endpoint's HTTP answers.
_TABLE_METRICS = (
    ("validation_auc_pr", "AUC-PR (validation)"),
    ("validation_auc_roc", "AUC-ROC (validation)"),
    ("test_auc_pr", "AUC-PR (test, via endpoint)"),
    ("test_auc_roc", "AUC-ROC (test, via endpoint)"),
    ("test_precision", "precision @0.5 (test)"),
    ("test_recall", "recall @0.5 (test)"),
    ("test_f1", "F1 @0.5 (test)"),
)


def _format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def comparison_table(runs: list[DemoRun], best: DemoRun) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Fraud detection: baseline vs. tuned", title_justify="left", show_lines=False)
    table.add_column("", style="bold")
    for run in runs:
        marker = " ★ deployed" if run is best else ""
        table.add_column(f"{escape(run.name)}{marker}", justify="right")

    names = sorted({name for run in runs for name in run.params})
    differing = [n for n in names if len({repr(run.params.get(n)) for run in runs}) > 1]
    for name in differing:
        table.add_row(
            f"[dim]param[/dim] {escape(name)}", *(escape(_format_value(run.params.get(name))) for run in runs)
        )
    if differing:
        table.add_section()
    for metric, label in _TABLE_METRICS:
        values = [run.metrics.get(metric) for run in runs]
        present = [v for v in values if v is not None]
        if not present:
            continue
        top = max(present)
        cells = [
            "—"
            if v is None
            else f"[bold green]{v:.4f}[/bold green]"
            if v == top and len(present) > 1
            else f"{v:.4f}"
            for v in values
        ]
        table.add_row(escape(label), *cells)
    table.add_row(
        escape("confusion [[tn fp] [fn tp]] (test)"),
        *(
            "—"
            if run.confusion_matrix is None
            else escape(
                f"[[{run.confusion_matrix[0][0]} {run.confusion_matrix[0][1]}] "
                f"[{run.confusion_matrix[1][0]} {run.confusion_matrix[1][1]}]]"
            )
            for run in runs
        ),
    )
    table.add_row("training job", *(escape(run.job_name) for run in runs))
    table.add_row("training time", *(f"{run.train_seconds:.1f} s" for run in runs))
    return table


def cli_name() -> str:
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


def _lineage_tree(g: dict[str, Any]) -> Any:
    """The upstream graph as ``tallymark lineage`` draws it, each node's inputs drawn once: a node
    reached again (the raw data behind both training channels) says so instead of repeating."""
    from rich.tree import Tree

    from tallymark.termsafe import markup

    nodes = {n["ref"]: n for n in g["nodes"]}
    shown: set[str] = set()

    def label(ref: str, relation: str | None) -> str:
        text = f"[bold]{markup(nodes[ref]['label'])}[/]"
        return f"[dim]{markup(relation)}[/] {text}" if relation else text

    def grow(tree: Any, ref: str) -> None:
        shown.add(ref)
        for f in nodes[ref].get("files", []) if nodes[ref]["kind"] == "artifact_version" else []:
            what = f"sha256 {f['sha256'][:16]}…" if f["sha256"] else f"remote {f['uri']}"
            tree.add(f"[dim]{markup(f['logicalPath'])}  {markup(what)}[/]")
        for e in g["edges"]:
            if e["dst"] != ref:
                continue
            src = e["src"]
            if src in shown:
                tree.add(f"{label(src, e['relation'])} [dim](above)[/]")
                continue
            grow(tree.add(label(src, e["relation"])), src)

    root = Tree(f"upstream: {label(g['root'], None)}")
    grow(root, g["root"])
    return root


def print_lineage(console: Console, node: str, title: str) -> None:
    """The upstream lineage of ``node`` (jobs are nodes of it), each node drawn once; the full
    graph is ``tallymark lineage NODE``."""
    from tallymark import API
    from tallymark.termsafe import markup

    console.print()
    console.print(f"[bold]{title}[/bold] ({markup(node)})")
    api = API()
    try:
        console.print(_lineage_tree(api.get_lineage(node, "upstream")))
    finally:
        api.close()


def print_summary(console: Console, result: DemoResult) -> None:
    from tallymark.demo.lineage import MODEL
    from tallymark.termsafe import markup

    runs = result.runs
    best = result.best
    others = [run for run in runs if run is not best]
    console.print()
    console.print(comparison_table(runs, best))
    if others:
        gain = best.metrics["validation_auc_pr"] - max(run.metrics["validation_auc_pr"] for run in others)
        verdict = (
            f"[bold]{markup(best.name)}[/bold] is better on validation AUC-PR "
            f"({best.metrics['validation_auc_pr']:.4f}, {gain:+.4f}): "
            f"deployed as {MODEL} {best.model_version}."
            if gain > 0
            else f"Both models tie on validation AUC-PR ({best.metrics['validation_auc_pr']:.4f}); "
            f"{markup(best.name)} deployed."
        )
        console.print(verdict)
    facts = result.dataset
    console.print(
        f"Data: {facts['dataset_rows']:,} transactions after dropping "
        f"{facts['dataset_duplicates_dropped']:,} duplicates, {facts['dataset_frauds']:,} frauds; "
        f"test set {facts['test_rows']:,} rows with {facts['test_frauds']:,} frauds, scored by "
        f"{result.scored_requests} HTTP request{'s' if result.scored_requests != 1 else ''} to the endpoint."
    )

    cli = cli_name()
    console.print()
    console.print("[bold]Where to look[/bold]")
    for run in runs:
        console.print(
            f"  {markup(run.name)}: key [cyan]{run.key}[/cyan], job [cyan]{markup(run.job_name)}[/cyan]"
        )
        console.print(f"    {markup(run.url)}", soft_wrap=True)
    console.print("  Compare them:")
    console.print(f"    [green]{cli} experiments compare {' '.join(result.keys)}[/green]", soft_wrap=True)
    console.print(f"  The jobs: [green]{cli} jobs list {markup(result.workspace)}[/green]", soft_wrap=True)
    console.print(
        f"    [green]{cli} jobs logs {markup(result.workspace)} {markup(result.processing_job)}[/green]"
        "  (the preprocessing script's output)",
        soft_wrap=True,
    )
    if result.endpoint_kept:
        console.print(
            f"  The endpoint [cyan]{markup(result.endpoint_name)}[/cyan] keeps serving {MODEL} "
            f"{best.model_version} at [bold]{markup(result.endpoint_url)}[/bold]:",
            soft_wrap=True,
        )
        console.print(
            f"    curl -s {markup(result.endpoint_url.rstrip('/'))}/v2/health/ready; "
            f"[green]{cli} endpoints delete {markup(result.workspace)} {markup(result.endpoint_name)}[/green]"
            " stops it",
            soft_wrap=True,
        )
    else:
        console.print(
            f"  The endpoint {markup(result.endpoint_name)} was deleted (keep it with --keep-endpoint); "
            f"its prediction log stays: [green]{cli} endpoints list {markup(result.workspace)}[/green]",
            soft_wrap=True,
        )
    if result.production:
        console.print(
            f"  Registry and approvals: [green]{cli} models show {markup(result.workspace)} {MODEL}[/green]"
        )
        node = f"model:{result.workspace}/{MODEL}:{result.production}"
        console.print(f"  Lineage: [green]{cli} lineage {markup(node)}[/green]")
    if result.pending_request is not None:
        console.print()
        console.print(
            f"[bold]Production request #{result.pending_request}[/bold] for {MODEL} "
            f"{best.model_version} waits for an approver of workspace {markup(result.workspace)} (not you):"
        )
        console.print(
            f"    [green]{cli} models approve {result.pending_request} --url {markup(result.server)}[/green]"
            "  (with the approver's key in TALLYMARK_API_KEY), or the Approve button in the UI",
            soft_wrap=True,
        )
    console.print("  Browse everything in the browser:")
    if result.server:
        console.print(f"    {markup(result.server.rstrip('/'))}/{markup(result.workspace)}", soft_wrap=True)
    else:
        console.print(f"    [green]{cli} ui[/green]  (then open http://127.0.0.1:5118)")
