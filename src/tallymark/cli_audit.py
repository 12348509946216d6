"""CLI commands for the audit log: verify the chain, sign a checkpoint, list entries, export a bundle.

They work on a store (``--home`` or ``--db``), like ``tallymark db upgrade`` and ``gc``: an auditor
runs them where the database is reachable, with a checkpoint file kept elsewhere.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tallymark.cli import HomeOpt, _fail, _row, _settings, app, console
from tallymark.termsafe import markup

audit_app = typer.Typer(
    help="The audit log: verify its chain and signed checkpoints, sign one, list entries, export a bundle.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

VkeyOpt = Annotated[
    str | None,
    typer.Option(
        "--vkey",
        help="The log's verifier key NAME+ID+BASE64 (default: derived from the audit key file).",
        show_default=False,
    ),
]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Database URL (a server's store).", show_default=False)
]


def _open(home: Path | None, db: str | None, upgrade: bool) -> Any:
    from sqlalchemy.engine import make_url

    from tallymark.service.store import open_store

    settings = _settings(home, db)
    url = make_url(settings.database_url)
    if not upgrade and url.get_backend_name() == "sqlite" and not Path(str(url.database)).exists():
        _fail(f"no database at {url.database}: give --home or --db of the store to read")
    try:
        return open_store(settings, upgrade=upgrade)
    except Exception as exc:  # a missing schema, a wrong URL: say so, no traceback
        _fail(f"cannot open the store: {exc}")


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint file kept outside the database.", show_default=False),
    ] = None,
    vkey: VkeyOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Recompute the hash chain and check the signed checkpoints; exit 1 naming the first bad entry."""
    from tallymark.service import audit

    note = None
    if checkpoint is not None:
        try:
            note = checkpoint.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read the checkpoint {checkpoint}: {exc}")
    store = _open(home, db, upgrade=False)
    try:
        report = audit.verify(store, note, vkey)
    except ValueError as exc:  # a malformed --vkey
        _fail(str(exc))
    finally:
        store.close()
    if not report.ok:
        _fail(f"audit log NOT intact: {report.problem}")
    console.print(
        f"audit log intact: {report.size} entries, head {report.head}, "
        f"{report.checkpoints} signed checkpoint(s) match"
    )


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the signed checkpoint to this file.", show_default=False),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Sign the log's current size and head hash (stored in the database; --out writes a copy)."""
    from tallymark.service import audit
    from tallymark.service.signed_note import NoteError

    store = _open(home, db, upgrade=True)
    try:
        cp = audit.checkpoint(store)
        vkey = audit.signer(store).verifier.encode()
    except (OSError, NoteError, audit.ChainBroken) as exc:
        _fail(f"cannot sign a checkpoint: {exc}")
    finally:
        store.close()
    if out is not None:
        try:
            out.write_text(cp.note, encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write {out}: {exc}")
    # soft_wrap: the note and the key are copied as they are, never broken at the terminal's width
    console.print(markup(cp.note.rstrip("\n"), multiline=True), soft_wrap=True)
    console.print(f"verifier key: {markup(vkey)}", soft_wrap=True)
    if out is not None:
        console.print(f"written to {markup(out)}: keep it where the database's administrators cannot write")


def _since(value: str) -> int:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--since {value!r}: give an ISO date or time, e.g. 2026-12-01 or 2026-12-01T14:30")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@audit_app.command("log")
def audit_log(
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor's entries.")] = None,
    object_ref: Annotated[
        str | None,
        typer.Option("--object", help="Only entries on this object, e.g. WS/MODEL or WS/MODEL:1.0.0."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only entries from this ISO time on (UTC unless given).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most the newest N entries.")] = 200,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """List audit entries (oldest first; times in UTC)."""
    from tallymark.service import audit

    since_ms = None if since is None else _since(since)
    store = _open(home, db, upgrade=False)
    try:
        rows = audit.entries(store, actor=actor, object_ref=object_ref, since_ms=since_ms, limit=limit)
    finally:
        store.close()
    t = Table(title=f"audit log — {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
    for c in ("seq", "time (UTC)", "actor", "action", "object", "workspace", "request", "hash"):
        t.add_column(c, overflow="fold")
    for r in rows:
        _row(
            t,
            r["seq"],
            _utc(r["time"]),
            r["actor"],
            r["action"],
            f"{r['object_kind']} {r['object_ref']}",
            r["workspace"] or "",
            r["request_id"] or "",
            r["hash"][:12],
        )
    console.print(t)


@audit_app.command("export")
def audit_export(
    key: Annotated[str, typer.Argument(help="The experiment's key (e.g. the one that trained a model).")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="A .zip file to write, or an empty directory to write the files into.",
            show_default=False,
        ),
    ],
    vkey: VkeyOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Write one bundle for an auditor: the experiment, its lineage with file hashes, its models and
    approvals, their audit entries, the newest signed checkpoint, and a SHA-256 manifest."""
    from tallymark.service import audit_export as ax
    from tallymark.service.errors import ServiceError
    from tallymark.service.signed_note import NoteError

    store = _open(home, db, upgrade=False)
    try:
        with console.status("exporting …") as status:
            bundle = ax.export(
                store, key, out, vkey, progress=lambda step: status.update(f"exporting: {step} …")
            )
    except (ServiceError, NoteError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write {out}: {exc}")
    finally:
        store.close()
    console.print(
        f"wrote {markup(out)}: {len(bundle.files)} files, {bundle.entries} audit entries, "
        f"manifest SHA-256 {bundle.sha256}",
        soft_wrap=True,
    )
    if bundle.checkpoint_size is None:
        console.print("no signed checkpoint yet: run `tallymark audit checkpoint`, then export again")
    elif bundle.covered < bundle.entries:
        newer = bundle.entries - bundle.covered
        console.print(
            f"{newer} entr{'y is' if newer == 1 else 'ies are'} "
            f"newer than the checkpoint (size {bundle.checkpoint_size}): run `tallymark audit checkpoint` "
            "first to cover them"
        )
    if bundle.verifier is None:
        console.print("no verifier key: the audit key file was not found; give --vkey to include it")
