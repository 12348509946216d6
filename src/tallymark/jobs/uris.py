"""Where a job's inputs come from and its outputs go: local paths, ``s3://`` and ``artifact://``.

- a local path (or ``file://``): copied in (the script may change its copy, never the source);
  an output is copied out to that folder.
- ``s3://BUCKET/KEY``: the configured S3-compatible store — the endpoint of the S3 blob store
  (``TALLYMARK_S3_ENDPOINT_URL``) when there is one, else boto3's own configuration
  (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, or AWS itself), credentials from the AWS_*
  chain; a key that is an object is one file, else every object under ``KEY/``.
- ``artifact://WS/NAME[:VERSION_OR_ALIAS][/SUBPATH]``: an input is downloaded through the SDK, each
  file's sha256 verified, and the version recorded as consumed by the job; with ``/SUBPATH`` only
  the files at or under that logical path, placed relative to it (like an S3 prefix), so one
  version's ``train/`` and ``validation/`` folders can be two channels without logging each as an
  artifact of its own. An output becomes the artifact's next version (``artifact://WS/NAME:ALIAS``
  also gives it that alias), recorded as produced by the job; it takes no sub-path (an output is a
  whole new version).

Every failure raises :class:`~tallymark.jobs.contract.JobInputError` /
:class:`~tallymark.jobs.contract.JobOutputError` with a message that names the input or output.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from tallymark.jobs.contract import JobInputError, JobOutputError

__all__ = ["ArtifactURI", "fetch", "parse_artifact", "place", "publish", "s3_client"]

_FORM = "artifact://WORKSPACE/NAME[:VERSION_OR_ALIAS][/SUBPATH]"
SUBPATH_OUTPUT = (
    "an output is a whole new version of the artifact and takes no sub-path; "
    "write artifact://WORKSPACE/NAME[:ALIAS]"
)


class ArtifactURI(NamedTuple):
    """The parts of ``artifact://WS/NAME[:VERSION_OR_ALIAS][/SUBPATH]``."""

    workspace: str
    name: str
    version: str | None  # a version number or an alias; None: the newest version
    subpath: str | None  # a logical path in the version ("train", "a/b.csv"); None: every file


def parse_artifact(uri: str) -> ArtifactURI:
    """Split an artifact URI; a :class:`ValueError` says what is wrong with it.

    A sub-path is checked here, once, for every caller (job creation refuses it as a 4xx before
    anything runs): it is a relative logical path of ``/``-separated segments, none empty, ``.``
    or ``..``, with no backslash, so it can only ever select files inside the version."""
    rest = uri[len("artifact://") :] if uri.startswith("artifact://") else uri
    ws, slash, tail = rest.partition("/")
    name_ver, has_sub, sub = tail.partition("/")
    name, colon, ver = name_ver.partition(":")
    if not slash or not ws or not name or (colon and not ver):
        raise ValueError(f"{uri!r}: write {_FORM}")
    if not has_sub:
        return ArtifactURI(ws, name, ver or None, None)
    if "\\" in sub or "\x00" in sub:
        raise ValueError(f"{uri!r}: the sub-path {sub!r} may not contain a backslash or NUL (use '/')")
    if sub.startswith("/"):
        raise ValueError(f"{uri!r}: the sub-path {sub!r} must be relative to the version, not absolute")
    trimmed = sub[:-1] if sub.endswith("/") else sub  # "train/" reads as "train", as an S3 prefix
    parts = trimmed.split("/")
    if not trimmed or "" in parts:
        raise ValueError(f"{uri!r}: the sub-path {sub!r} has an empty segment; write {_FORM}")
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"{uri!r}: the sub-path {sub!r} may not contain '.' or '..' segments")
    return ArtifactURI(ws, name, ver or None, trimmed)


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r}: write s3://BUCKET/KEY")
    return bucket, key


def s3_client() -> Any:
    """A boto3 S3 client for the configured S3-compatible store (imported here: boto3 is heavy)."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config

    from tallymark.settings import Settings

    endpoint = Settings.from_env().s3_endpoint_url  # None: boto3 reads AWS_ENDPOINT_URL[_S3] itself
    options: dict[str, Any] = {"retries": {"max_attempts": 3, "mode": "standard"}}
    if endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
        options["s3"] = {"addressing_style": "path"}
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=Config(**options),
    )


def _transport(transport: Any) -> Any:
    if transport is not None:
        return transport
    from tallymark.sdk.transport import default_transport

    return default_transport()


# ---- inputs --------------------------------------------------------------------------------------


def fetch(uri: str, dest: Path, *, what: str, transport: Any = None) -> dict[str, Any]:
    """Put the input ``uri`` under the folder ``dest``; what was fetched (``ref`` and ``files`` for
    an artifact version)."""
    try:
        if uri.startswith("s3://"):
            return _fetch_s3(uri, dest, what)
        if uri.startswith("artifact://"):
            return _fetch_artifact(uri, dest, what, _transport(transport))
    except JobInputError:
        raise
    except Exception as exc:
        raise JobInputError(f"{what}: cannot read {uri}: {_reason(exc)}") from exc
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()
    if not path.exists():
        raise JobInputError(f"{what}: no file or folder at {path}")
    try:
        if path.is_file():
            shutil.copy2(path, dest / path.name)
        else:
            from tallymark.store.paths import safe_walk

            for entry in safe_walk(path):  # refuses symlinks that point out of the folder
                target = dest / entry.logical_path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry.path, target)
    except Exception as exc:
        raise JobInputError(f"{what}: cannot read {path}: {_reason(exc)}") from exc
    return {}


def _fetch_s3(uri: str, dest: Path, what: str) -> dict[str, Any]:
    from tallymark.store.paths import safe_join

    bucket, key = _split_s3(uri)
    s3 = s3_client()
    keys: list[tuple[str, str]] = []
    if key and not key.endswith("/"):
        try:
            s3.head_object(Bucket=bucket, Key=key)
            keys.append((key, key.rsplit("/", 1)[-1]))
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise
    if not keys:
        prefix = key.rstrip("/") + "/" if key else ""
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    keys.append((obj["Key"], obj["Key"][len(prefix) :]))
    if not keys:
        raise JobInputError(f"{what}: no object at {uri} (nor under {uri.rstrip('/')}/)")
    for k, rel in keys:
        target = safe_join(dest, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, k, str(target))
    return {"objects": len(keys)}


def _fetch_artifact(uri: str, dest: Path, what: str, transport: Any) -> dict[str, Any]:
    from tallymark.sdk.artifact import LoggedArtifact
    from tallymark.sdk.transport import TallymarkError

    try:
        ws, name, ver, sub = parse_artifact(uri)
    except ValueError as exc:
        raise JobInputError(f"{what}: {exc}") from None
    try:
        info = transport.call("artifact_version", workspace=ws, name=name, version_or_alias=ver)
    except TallymarkError as exc:
        raise JobInputError(f"{what}: {uri}: {exc.message}") from None
    local = [f for f in info["files"] if not f["remote"]]
    if sub is not None:
        local = _select(local, sub, uri, what, f"{ws}/{name}:{info['version']}", info["files"])
    # A copy of the version with only the selected files, each at its place under dest (relative
    # to the sub-path); downloading it verifies every file's sha256 as for the whole version.
    placed = [dict(f, logicalPath=_relative(f["logicalPath"], sub)) for f in local]
    LoggedArtifact(transport, {**info, "files": placed}).download(dest, overwrite=True)
    files = [{"path": f["logicalPath"], "sha256": f.get("sha256")} for f in local]
    out: dict[str, Any] = {"ref": f"artifact:{ws}/{name}:{info['version']}", "files": files}
    if sub is not None:
        out["subpath"] = sub
    return out


def _relative(logical: str, sub: str | None) -> str:
    if sub is None:
        return logical
    if logical == sub:
        return logical.rsplit("/", 1)[-1]  # the sub-path is one file: it lands under its own name
    return logical[len(sub) + 1 :]


def _select(
    local: list[dict[str, Any]], sub: str, uri: str, what: str, version: str, every: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The version's stored files at or under ``sub``; a clear error when there are none."""

    def under(f: dict[str, Any]) -> bool:
        return bool(f["logicalPath"] == sub or f["logicalPath"].startswith(sub + "/"))

    chosen = [f for f in local if under(f)]
    if chosen:
        return chosen
    if any(under(f) for f in every):
        raise JobInputError(
            f"{what}: {uri}: the files under {sub!r} in {version} are remote references, "
            "which a job does not download"
        )
    tops = sorted(
        {f["logicalPath"].split("/", 1)[0] + ("/" if "/" in f["logicalPath"] else "") for f in every}
    )
    listed = ", ".join(tops[:8]) + (f", … ({len(tops)} in all)" if len(tops) > 8 else "")
    raise JobInputError(
        f"{what}: {uri}: no file at or under {sub!r} in {version}"
        + (f" (it holds {listed})" if tops else " (it holds no files)")
    )


# ---- outputs -------------------------------------------------------------------------------------


def publish(src: Path, uri: str, *, what: str, job: str, transport: Any = None) -> dict[str, Any]:
    """Copy the folder ``src`` (what the script wrote) to the output ``uri``."""
    try:
        if uri.startswith("artifact://"):
            return _publish_artifact(src, uri, what, job, _transport(transport))
        if uri.startswith("s3://"):
            n = 0
            for p in _files(src):
                _put_s3(p, f"{uri.rstrip('/')}/{p.relative_to(src).as_posix()}")
                n += 1
            return {"objects": n}
        dest = Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()
        dest.mkdir(parents=True, exist_ok=True)
        for p in _files(src):
            target = dest / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
        return {}
    except JobOutputError:
        raise
    except Exception as exc:
        raise JobOutputError(f"{what}: cannot write {uri}: {_reason(exc)}") from exc


def place(path: Path, uri: str, *, what: str) -> str:
    """Put the file ``path`` at ``uri`` (a local path or s3://); returns where it is."""
    try:
        if uri.startswith("s3://"):
            _put_s3(path, uri)
            return uri
        dest = Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser().resolve()
        if dest != path.resolve():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        return str(dest)
    except Exception as exc:
        raise JobOutputError(f"{what}: cannot write {uri}: {_reason(exc)}") from exc


def _files(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink())


def _put_s3(path: Path, uri: str) -> None:
    bucket, key = _split_s3(uri)
    s3_client().upload_file(str(path), bucket, key)


def _publish_artifact(src: Path, uri: str, what: str, job: str, transport: Any) -> dict[str, Any]:
    from tallymark.sdk.artifact import Artifact, upload_files
    from tallymark.sdk.transport import TallymarkError

    try:
        ws, name, alias, sub = parse_artifact(uri)
    except ValueError as exc:
        raise JobOutputError(f"{what}: {exc}") from None
    if sub is not None:
        raise JobOutputError(f"{what}: {uri}: {SUBPATH_OUTPUT}")
    files = _files(src)
    if not files:
        raise JobOutputError(
            f"{what}: the script wrote nothing under its source folder, so no version of {uri}"
        )
    art = Artifact(name, artifact_type="dataset", aliases=[alias] if alias else [], metadata={"job": job})
    for p in files:
        art.add(p, p.relative_to(src).as_posix())
    try:
        manifest = upload_files(transport, art._items)
        body = {
            "artifact_type": "dataset",
            "aliases": art.aliases,
            "metadata": art.metadata,
            "files": manifest,
        }
        info = transport.call("log_artifact_version", workspace=ws, name=name, body=body)
    except TallymarkError as exc:
        raise JobOutputError(f"{what}: {uri}: {exc.message}") from None
    return {
        "ref": f"artifact:{ws}/{name}:{info['version']}",
        "files": [{"path": m["logical_path"], "sha256": m.get("sha256")} for m in manifest],
    }


def _code(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""


def _reason(exc: BaseException) -> str:
    code = _code(exc)
    if code:
        msg = getattr(exc, "response", {}).get("Error", {}).get("Message") or ""
        return f"{code} {msg}".strip()
    return str(exc) or type(exc).__name__
