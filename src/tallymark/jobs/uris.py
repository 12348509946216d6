"""Where a job's inputs come from and its outputs go: local paths, ``s3://`` and ``artifact://``.

- a local path (or ``file://``): copied in (the script may change its copy, never the source);
  an output is copied out to that folder.
- ``s3://BUCKET/KEY``: the configured S3-compatible store — the endpoint of the S3 blob store
  (``TALLYMARK_S3_ENDPOINT_URL``) when there is one, else boto3's own configuration
  (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, or AWS itself), credentials from the AWS_*
  chain; a key that is an object is one file, else every object under ``KEY/``.
- ``artifact://WS/NAME[:VERSION_OR_ALIAS]``: an input is downloaded through the SDK, each file's
  sha256 verified, and recorded as consumed by the job; an output becomes the artifact's next
  version (``artifact://WS/NAME:ALIAS`` also gives it that alias), recorded as produced by the job.

Every failure raises :class:`~tallymark.jobs.contract.JobInputError` /
:class:`~tallymark.jobs.contract.JobOutputError` with a message that names the input or output.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tallymark.jobs.contract import JobInputError, JobOutputError

__all__ = ["fetch", "parse_artifact", "place", "publish", "s3_client"]


def parse_artifact(uri: str, need_version: bool = False) -> tuple[str, str, str | None]:
    rest = uri[len("artifact://") :]
    ws, slash, name_ver = rest.partition("/")
    name, colon, ver = name_ver.partition(":")
    if not slash or not ws or not name or "/" in name or (colon and not ver):
        raise ValueError(f"{uri!r}: write artifact://WORKSPACE/NAME[:VERSION_OR_ALIAS]")
    return ws, name, ver or None


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

    ws, name, ver = parse_artifact(uri)
    try:
        info = transport.call("artifact_version", workspace=ws, name=name, version_or_alias=ver)
    except TallymarkError as exc:
        raise JobInputError(f"{what}: {uri}: {exc.message}") from None
    art = LoggedArtifact(transport, info)
    art.download(dest, overwrite=True)  # raises HashMismatch when a file's bytes are not the logged ones
    files = [{"path": f["logicalPath"], "sha256": f.get("sha256")} for f in art.assets if not f["remote"]]
    return {"ref": f"artifact:{ws}/{name}:{art.version}", "files": files}


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

    ws, name, alias = parse_artifact(uri)
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
