"""One bundle for an auditor: an experiment, its lineage, its models and approvals, and their audit entries.

``tallymark audit export KEY --out FILE`` calls :func:`export`. The bundle is built from the store
alone (no server, no HTTP) and answers "what was this model trained on, who approved it, and can I
check that nobody changed the record since?" without access to tallymark:

=============================  ====================================================================
``README.txt``                 what each file is and how to verify the bundle
``manifest.sha256``            SHA-256 of every other file (``sha256sum -c manifest.sha256``)
``bundle.json``                what was exported: the key, counts, which entries the checkpoint covers
``experiment/experiment.json`` metadata, status, who and when, tags, "others"
``experiment/params.json``     parameters (current, min, max)
``experiment/metrics-summary.json``  per metric: count, last, min, max, step
``experiment/metrics.csv``     every metric point: name, step, epoch, timestamp (ms), value
``experiment/code.json``       the source files it logged
``experiment/environment.json`` environment and command line (redacted again)
``experiment/git.json``        commit, branch, remote (credentials stripped), uncommitted diff
``experiment/packages.json``   installed packages
``experiment/assets.json``     files it logged, with SHA-256
``lineage.json``               the graph ``tallymark lineage experiment:KEY`` shows (up and down)
``artifacts.json``             every artifact version of that graph, with its files' SHA-256
``models.json``                models it logged; registry versions, transitions, requests, approvals
``audit/entries.jsonl``        the audit entries of every object above, exactly as in the chain
``audit/checkpoint.txt``       the newest signed checkpoint (C2SP signed note)
``audit/verifier-key.txt``     the log's Ed25519 verifier key
=============================  ====================================================================

Reproducible: the same store gives the same bytes (no export time, sorted keys and entries, fixed
zip timestamps and permissions), so two auditors can compare bundles by their hash.

Nothing secret: environments and git are redacted at capture; they are redacted again here
(:func:`~tallymark.sdk.autolog.redact.redact_environment`, :func:`~...redact_git`) for data
recorded before that, and every other exported string goes through
:func:`~...redact_text` (API keys, AWS key ids, bearer tokens, URL credentials and signatures) and
values of secret-named parameters become ``***``. Audit entries are the exception: they are copied
exactly, because their hashes must recompute; they hold no payload, only its SHA-256. The private
audit key is never read for the bundle, only the public verifier key.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import secrets
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_

from tallymark.sdk.autolog.redact import (
    MARK,
    is_secret_name,
    redact_environment,
    redact_git,
    redact_text,
)
from tallymark.service import assets, audit, lineage, metrics, reads, registry
from tallymark.service.caller import local_admin
from tallymark.service.errors import Invalid, NotFound
from tallymark.service.experiments import experiment_row, get_experiment
from tallymark.service.signed_note import NoteError, Verifier, load_signer
from tallymark.service.store import Store
from tallymark.store.schema import audit_checkpoints, audit_log

__all__ = ["FORMAT", "Bundle", "build", "export", "write"]

# The export works on a store directly (the CLI, like an auditor's copy of the database), whose local
# admin may read everything; it never writes.
_READER = local_admin("audit-export")

FORMAT = "tallymark-audit-export-v1"
LINEAGE_DEPTH = 50  # the most get_lineage follows
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: no export time in the bytes
# The object kinds an entry about a bundle's object may carry (registry entries use the first;
# the aliases are what other writers may name the same objects).
_KINDS = {
    "experiment": ("experiment",),
    "artifact_version": ("artifact_version", "artifact"),
    "model_version": ("model_version", "model"),
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Bundle:
    """The files of a bundle (path → bytes, manifest included) and facts for the CLI to print."""

    files: dict[str, bytes]
    key: str
    entries: int
    covered: int  # entries the checkpoint covers (seq ≤ its size)
    checkpoint_size: int | None
    verifier: str | None

    @property
    def sha256(self) -> str:
        """The manifest's hash: one value that names the whole bundle."""
        return hashlib.sha256(self.files["manifest.sha256"]).hexdigest()


# --- the content -------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """``value`` with every string redacted and non-finite floats in tallymark's JSON tagging."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, Mapping):
        return {redact_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _named_values(rows: list[dict[str, Any]], fields: Iterable[str]) -> list[dict[str, Any]]:
    """Parameters/others with the values of secret-named ones (``api_key``, ``db.password``) hidden."""
    out = []
    for r in rows:
        r = dict(r)
        if is_secret_name(str(r["name"])):
            for f in fields:
                if r.get(f) not in (None, ""):
                    r[f] = MARK
        out.append(r)
    return out


def _json(value: Any) -> bytes:
    return (json.dumps(_clean(value), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _last(store: Store, key: str, kind: str) -> dict[str, Any] | None:
    found = reads.get_items(store, _READER, key, kind)
    return found[-1]["data"] if found else None


def _metrics_csv(store: Store, key: str) -> bytes:
    """Every point of every metric, one row each, metrics by name and points by step."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "step", "epoch", "timestamp_ms", "value"])
    with store.db.read() as conn:
        eid = experiment_row(conn, key).id
    for name in reads.metric_names(store, _READER, key):
        with store.db.read() as conn:
            s = metrics.read_series(conn, eid, name)
        clean_name = redact_text(name)
        for step, epoch, ts, v in zip(
            s.steps.tolist(), s.python_epochs(), s.timestamps.tolist(), s.python_values(), strict=True
        ):
            value = repr(v) if isinstance(v, int) or math.isfinite(v) else _nonfinite(v)
            w.writerow([clean_name, step, "" if epoch is None else epoch, ts, value])
    return buf.getvalue().encode()


def _nonfinite(v: float) -> str:
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _experiment_files(store: Store, key: str) -> dict[str, bytes]:
    exp = get_experiment(store, _READER, key)
    exp.pop("url", None)  # depends on the exporting settings, not on the store
    exp["tags"] = reads.get_tags(store, _READER, key)
    exp["others"] = _named_values(reads.others_summary(store, _READER, key), ("valueCurrent",))
    env = _last(store, key, "environment")
    cmd = _last(store, key, "command")
    git = _last(store, key, "git")
    return {
        "experiment/experiment.json": _json(exp),
        "experiment/params.json": _json(
            _named_values(
                reads.parameters_summary(store, _READER, key), ("valueCurrent", "valueMin", "valueMax")
            )
        ),
        "experiment/metrics-summary.json": _json(reads.metrics_summary(store, _READER, key)),
        "experiment/metrics.csv": _metrics_csv(store, key),
        "experiment/code.json": _json(
            [
                {
                    "name": i["name"],
                    "file_name": i["data"].get("file_name"),
                    "source": i["data"].get("source"),
                }
                for i in reads.get_items(store, _READER, key, "code")
            ]
        ),
        "experiment/environment.json": _json(
            {
                "environment": None if env is None else redact_environment(env),
                "command": None if cmd is None else redact_environment(cmd),
            }
        ),
        "experiment/git.json": _json(None if git is None else redact_git(git)),
        "experiment/packages.json": _json(_last(store, key, "packages")),
        "experiment/assets.json": _json(
            [
                {k: a.get(k) for k in ("fileName", "sha256", "fileSize", "step", "createdAt", "metadata")}
                for a in assets.list_assets(store, _READER, key)
            ]
        ),
    }


def _models(store: Store, key: str, graph: dict[str, Any]) -> dict[str, Any]:
    """The models the experiment logged and every registry version in its lineage, with approvals."""
    versions = []
    requests: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for n in graph["nodes"]:
        if n["kind"] != "model_version":
            continue
        ws, name, version = n["workspace"], n["name"], n["version"]
        v = registry.get_version(store, _READER, ws, name, version)
        if (ws, name) not in requests:
            requests[ws, name] = registry.list_requests(store, _READER, ws, name)
        v.pop("id", None)
        transitions = v.pop("history")
        versions.append(
            {
                "workspace": ws,
                **v,
                "transitions": transitions,
                "requests": [
                    {k: r[k] for k in r if k != "id"} | {"requestId": r["id"]}
                    for r in requests[ws, name]
                    if r["version"] == version
                ],
            }
        )
    versions.sort(key=lambda v: (v["workspace"], v["name"], v["version"]))
    logged = [{k: m[k] for k in m if k != "id"} for m in registry.list_logged_models(store, _READER, key)]
    return {"logged": logged, "registry": versions}


def _refs(graph: dict[str, Any]) -> set[tuple[str, str]]:
    """(object kind, object ref) of every node, in the audit log's spelling (``WS/NAME:VERSION``)."""
    out: set[tuple[str, str]] = set()
    for n in graph["nodes"]:
        if "label" in n and "version" not in n and "key" not in n:
            continue  # a deleted node: nothing left to name
        if n["kind"] == "experiment":
            ref = n["key"]
        else:
            ref = f"{n['workspace']}/{n['name']}:{n['version']}"
        for kind in _KINDS[n["kind"]]:
            out.add((kind, ref))
    return out


def _entries(store: Store, refs: set[tuple[str, str]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    pairs = sorted(refs)
    with store.db.read() as conn:
        for i in range(0, len(pairs), 500):  # bounded IN lists
            stmt = select(audit_log).where(
                tuple_(audit_log.c.object_kind, audit_log.c.object_ref).in_(pairs[i : i + 500])
            )
            rows += [dict(r._mapping) for r in conn.execute(stmt)]
    return sorted(rows, key=lambda r: r["seq"])


def _checkpoint(store: Store, vkey: str | None) -> tuple[str | None, str | None, int | None]:
    """(newest checkpoint that verifies, verifier key, its size); the key file gives the verifier
    key unless ``vkey`` does. Without either, the newest stored checkpoint, unchecked."""
    verifier: Verifier | None = None
    if vkey is not None:
        verifier = Verifier.decode(vkey)  # NoteError: the caller's mistake, said before any work
    else:
        try:
            verifier = load_signer(store.settings.audit_key_file).verifier
        except (OSError, NoteError):
            verifier = None  # export never creates a key: the bundle says none was available
    with store.db.read() as conn:
        stored = list(
            conn.execute(
                select(audit_checkpoints).order_by(
                    audit_checkpoints.c.size.desc(), audit_checkpoints.c.id.desc()
                )
            )
        )
    for c in stored:
        if verifier is None:
            return c.note, None, c.size
        try:
            cp = audit.parse_checkpoint(c.note, verifier)
        except NoteError:
            continue
        return c.note, verifier.encode(), cp.size
    return None, None if verifier is None else verifier.encode(), None


# --- the bundle --------------------------------------------------------------------------------


def build(store: Store, key: str, vkey: str | None = None, progress: Progress | None = None) -> Bundle:
    """Read everything the bundle holds for experiment ``key`` (NotFound if there is none).

    >>> bundle = build(store, "0bc222caec6b47178f80bbf6e757fe24")
    >>> sorted(bundle.files)[:3]
    ['README.txt', 'artifacts.json', 'audit/checkpoint.txt']
    """
    say = progress or (lambda _: None)
    if not isinstance(key, str) or not key:
        raise Invalid("give the key of the experiment to export")
    if vkey is not None:
        Verifier.decode(vkey)
    say("experiment")
    with store.db.read() as conn:
        experiment_row(conn, key)  # NotFound before any other read
    files = _experiment_files(store, key)
    say("lineage")
    graph = lineage.get_lineage(store, _READER, f"experiment:{key}", "both", LINEAGE_DEPTH)
    files["lineage.json"] = _json(
        {
            "root": graph["root"],
            "nodes": [{k: v for k, v in n.items() if k != "id"} for n in graph["nodes"]],
            "edges": graph["edges"],
        }
    )
    artifacts = [
        {k: v for k, v in n.items() if k not in ("id", "kind", "label")}
        for n in graph["nodes"]
        if n["kind"] == "artifact_version"
    ]
    artifacts.sort(key=lambda a: (a["workspace"], a["name"], a["version"]))
    files["artifacts.json"] = _json(artifacts)
    say("models and approvals")
    files["models.json"] = _json(_models(store, key, graph))
    say("audit entries")
    entries = _entries(store, _refs(graph))
    # Exactly as stored, not redacted: an auditor recomputes each hash from these fields.
    files["audit/entries.jsonl"] = b"".join(
        (json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n").encode() for e in entries
    )
    note, verifier, size = _checkpoint(store, vkey)
    if note is not None:
        files["audit/checkpoint.txt"] = note.encode()
    if verifier is not None:
        files["audit/verifier-key.txt"] = (verifier + "\n").encode()
    covered = sum(1 for e in entries if size is not None and e["seq"] <= size)
    files["bundle.json"] = _json(
        {
            "format": FORMAT,
            "experiment": key,
            "root": graph["root"],
            "artifactVersions": len(artifacts),
            "modelVersions": sum(1 for n in graph["nodes"] if n["kind"] == "model_version"),
            "auditEntries": len(entries),
            "auditEntriesCoveredByCheckpoint": covered,
            "checkpointSize": size,
            "checkpointVerifiedAtExport": note is not None and verifier is not None,
            "verifierKey": verifier,
            "lineageDepth": LINEAGE_DEPTH,
        }
    )
    files["README.txt"] = _readme(key, len(entries), covered, size, verifier).encode()
    say("manifest")
    files["manifest.sha256"] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {path}\n" for path, data in sorted(files.items())
    ).encode()
    return Bundle(dict(sorted(files.items())), key, len(entries), covered, size, verifier)


def write(bundle: Bundle, out: Path) -> Path:
    """Write the bundle as a zip file at ``out``, or into ``out`` when it is a directory (which must
    be empty); returns what was written. The zip appears whole or not at all (written aside, then
    renamed)."""
    if out.is_dir():
        if any(out.iterdir()):
            raise Invalid(f"{out} is a directory that is not empty: give an empty one or a .zip path")
        for path, data in bundle.files.items():
            target = out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return out
    if not out.parent.is_dir():
        raise NotFound(f"no directory {out.parent} to write {out.name} in")
    # Not mkstemp: its 0600 would outlive the rename; the bundle gets the mode the umask gives files.
    tmp = out.parent / f".{out.name}.{secrets.token_hex(6)}.part"
    try:
        with open(tmp, "xb") as fh, zipfile.ZipFile(fh, "w") as z:
            for path, data in bundle.files.items():  # sorted in build()
                info = zipfile.ZipInfo(path, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix, whatever platform exports
                info.external_attr = 0o644 << 16
                z.writestr(info, data, compresslevel=9)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def export(
    store: Store, key: str, out: Path, vkey: str | None = None, progress: Progress | None = None
) -> Bundle:
    """Build the bundle of experiment ``key`` and write it to ``out`` (see :func:`write`)."""
    bundle = build(store, key, vkey, progress)
    (progress or (lambda _: None))("writing")
    write(bundle, out)
    return bundle


def _readme(key: str, entries: int, covered: int, size: int | None, verifier: str | None) -> str:
    cp = (
        "audit/checkpoint.txt: the newest signed checkpoint of the log, covering entries 1-"
        f"{size}; {covered} of the {entries} exported entries are at or below it."
        if size is not None
        else "audit/checkpoint.txt: absent - the log had no signed checkpoint when this was "
        "exported (run `tallymark audit checkpoint` and export again)."
    )
    vk = (
        "audit/verifier-key.txt: the log's public Ed25519 verifier key (NAME+KEYID+BASE64). "
        "Compare it with the key the log's owner gave you out of band."
        if verifier is not None
        else "audit/verifier-key.txt: absent - the exporting side had no audit key file; ask the "
        "log's owner for the verifier key that `tallymark audit checkpoint` prints."
    )
    return f"""tallymark audit export ({FORMAT})
Experiment {key}, its lineage, its models and their approvals, and the audit entries of all of them.
The same store always gives the same bytes: no export time is recorded.

FILES
  README.txt                      this file
  manifest.sha256                 SHA-256 of every other file
  bundle.json                     what was exported: key, counts, checkpoint coverage
  experiment/experiment.json      key, name, workspace, project, status, user (who), created_at
                                  and ended_at (ms since 1970-01-01 UTC), tags, "others"
  experiment/params.json          parameters: current, min, max value
  experiment/metrics-summary.json per metric: count, current/min/max value, step, time
  experiment/metrics.csv          every metric point: name, step, epoch, timestamp_ms, value
  experiment/code.json            the source files the experiment logged
  experiment/environment.json     environment and command line
  experiment/git.json             commit, branch, remote, uncommitted diff
  experiment/packages.json        installed packages
  experiment/assets.json          files the experiment logged, with SHA-256
  lineage.json                    the lineage graph (upstream and downstream) of the experiment
  artifacts.json                  every artifact version in that graph with its files' SHA-256
                                  (the bytes are not included: fetch them from the store by hash)
  models.json                     "logged": models the experiment logged, with files' SHA-256;
                                  "registry": every registry version in the graph, its status,
                                  "transitions" (from, to, actor, at, comment) and "requests"
                                  (requestedBy, requestedAt, decidedBy, decidedAt, comments)
  audit/entries.jsonl             the audit entries whose object is the experiment, an artifact
                                  version or a model version above, one JSON object per line,
                                  in seq order, exactly as in the log
  {cp}
  {vk}

Secrets are redacted (shown as ***): environment variables, command-line flags and parameters with
secret names, API keys, tokens and URL credentials. Audit entries are copied unchanged (they hold
no payload, only its SHA-256).

HOW TO VERIFY
1. The files: `sha256sum -c manifest.sha256` (or shasum -a 256 -c) in the unpacked bundle.
   Every line must say OK; a file that is not listed was not exported.
2. Each audit entry: recompute its hash.
     hash = hex(SHA-256( ns("tallymark-audit-v1") || f(seq) || f(time) || f(actor) || f(action)
            || f(object_kind) || f(object_ref) || f(workspace) || f(request_id)
            || f(payload_sha256) || f(prev_hash) ))
     f(null) = "~"; f(v) = ns(v); ns(v) = <byte length of UTF-8(v)> ":" <UTF-8(v)> ","
   It must equal the entry's "hash". In Python:
     import hashlib, json
     F = ["seq", "time", "actor", "action", "object_kind", "object_ref", "workspace",
          "request_id", "payload_sha256", "prev_hash"]
     ns = lambda v: b"~" if v is None else b"%d:%s," % (len(str(v).encode()), str(v).encode())
     for line in open("audit/entries.jsonl"):
         e = json.loads(line)
         msg = ns("tallymark-audit-v1") + b"".join(ns(e[f]) for f in F)
         assert hashlib.sha256(msg).hexdigest() == e["hash"], e["seq"]
3. Against the chain: on the store, `tallymark audit verify --checkpoint audit/checkpoint.txt
   --vkey "$(cat audit/verifier-key.txt)"` must say "intact"; then each exported entry's hash must
   be the hash of the log's entry with the same seq (`tallymark audit log --object REF`, or the
   table exported as in docs/security.md, "Verify independently").
4. The checkpoint: its Ed25519 signature with the verifier key, and that its head is the hash of
   entry <size> of the chain - docs/security.md, "Verify independently", has a 30-line script that
   needs only Python and the `cryptography` package. Entries after the checkpoint's size are
   protected by the chain alone until the next checkpoint.
"""
