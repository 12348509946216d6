"""Artifacts in the SDK: ``Artifact`` (what you are about to log) and ``LoggedArtifact`` (a stored
version you can inspect and download, hash-verified).

>>> raw = Artifact("fraud-dataset", artifact_type="dataset", aliases=["raw"],          # doctest: +SKIP
...                metadata={"rows": 284807})
>>> raw.add_remote("s3://bank-data/creditcard.csv", metadata={"source": "kaggle"})    # doctest: +SKIP
>>> raw.add("data/creditcard.parquet")                                                # doctest: +SKIP
>>> logged = exp.log_artifact(raw)            # version 1.0.0; "produced" lineage      # doctest: +SKIP
>>> exp2.get_artifact("fraud-dataset", "raw").download("inputs/")  # "consumed"        # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tallymark import jsonvalue


class HashMismatch(Exception):
    """A downloaded file's sha256 is not the one recorded when it was logged (tampered or corrupt)."""


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(block):
            h.update(data)
    return h.hexdigest()


@dataclass
class _Local:
    path: Path
    logical_path: str
    metadata: dict[str, Any] | None


@dataclass
class _Remote:
    uri: str
    logical_path: str
    metadata: dict[str, Any] | None


@dataclass
class Artifact:
    """A set of files (local, hashed and uploaded) and remote references, logged as one version."""

    name: str
    artifact_type: str = "dataset"
    aliases: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    version: str | None = None
    version_tags: list[str] = field(default_factory=list)
    _items: list[_Local | _Remote] = field(default_factory=list, repr=False)

    def add(
        self,
        local_path: str | os.PathLike[str],
        logical_path: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Artifact:
        """Add a file, or every file under a folder (logical paths keep the folder's layout)."""
        path = Path(local_path)
        if path.is_dir():
            from tallymark.store.paths import safe_walk

            base = logical_path or path.name
            # Refuses the whole folder if a symlink points outside it (or anything else is unsafe).
            for entry in safe_walk(path):
                self._items.append(_Local(entry.path, f"{base}/{entry.logical_path}", metadata))
        elif path.is_file():
            self._items.append(_Local(path, logical_path or path.name, metadata))
        else:
            raise FileNotFoundError(f"no file or folder at {path}")
        return self

    def add_remote(
        self, uri: str, logical_path: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Artifact:
        """Reference a remote object (s3://…, https://…) without copying it."""
        if not isinstance(uri, str) or "://" not in uri:
            raise ValueError(f"{uri!r} is not a URI (expected scheme://…)")
        self._items.append(_Remote(uri, logical_path or uri.rstrip("/").rsplit("/", 1)[-1] or uri, metadata))
        return self


def upload_files(
    transport: Any, items: list[_Local | _Remote], on_progress: Callable[[str, int], None] | None = None
) -> list[dict[str, Any]]:
    """Hash local files (streamed), upload only the blobs the store lacks, return the file manifest."""
    manifest: list[dict[str, Any]] = []
    local: list[tuple[_Local, str, int]] = []
    for it in items:
        meta = None if it.metadata is None else jsonvalue.to_plain(it.metadata)
        if isinstance(it, _Remote):
            manifest.append({"logical_path": it.logical_path, "uri": it.uri, "metadata": meta})
        else:
            sha = sha256_file(it.path)
            size = it.path.stat().st_size
            local.append((it, sha, size))
            manifest.append({"logical_path": it.logical_path, "sha256": sha, "size": size, "metadata": meta})
    if local:
        missing = set(transport.call("blobs_missing", shas=[sha for _, sha, _ in local]))
        for it, sha, size in local:
            if sha in missing:
                transport.call("put_blob", sha256=sha, path=it.path)
                missing.discard(sha)
            if on_progress:
                on_progress(it.logical_path, size)
    return manifest


class LoggedArtifact:
    """A stored artifact version."""

    def __init__(self, transport: Any, info: dict[str, Any]) -> None:
        self._t = transport
        self._info = info
        self.workspace: str = info["workspace"]
        self.name: str = info["name"]
        self.version: str = info["version"]
        self.aliases: list[str] = info["aliases"]
        self.artifact_type: str = info["artifactType"]
        self.metadata: dict[str, Any] | None = info["metadata"]
        self.version_tags: list[str] = info["versionTags"]
        self.assets: list[dict[str, Any]] = info["files"]
        self.source_experiment_key: str | None = info["sourceExperimentKey"]
        self.size: int = info["size"]
        self.owner_kind = "artifact"  # what the files' bytes are read through ("model" for a model version)

    def __repr__(self) -> str:
        return f"<LoggedArtifact {self.workspace}/{self.name}:{self.version} {self.aliases}>"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._info)

    def download(
        self,
        path: str | os.PathLike[str],
        overwrite: bool = False,
        on_progress: Callable[[str, int], None] | None = None,
    ) -> list[Path]:
        """Download the local files under ``path``, verifying each sha256; remote ones are listed only.

        A file whose bytes do not hash to the recorded sha256 raises :class:`HashMismatch` and is not
        written. Logical paths cannot escape ``path``.
        """
        from tallymark.store.paths import safe_join

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        written = []
        for f in self.assets:
            if f["remote"]:
                continue
            target = safe_join(root, f["logicalPath"])
            if target.exists() and not overwrite:
                if target.is_file() and sha256_file(target) == f["sha256"]:
                    written.append(target)
                    continue
                raise FileExistsError(f"{target} exists and differs; pass overwrite=True to replace it")
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tallymark-")
            os.close(fd)
            try:
                self._t.call(
                    "download_blob",
                    sha256=f["sha256"],
                    dest=Path(tmp),
                    owner=(self.owner_kind, self.workspace, self.name, self.version),
                )
                got = sha256_file(Path(tmp))
                if got != f["sha256"]:
                    raise HashMismatch(
                        f"{f['logicalPath']}: downloaded bytes hash to {got}, but "
                        f"{f['sha256']} was recorded; the stored copy is corrupt or was tampered with"
                    )
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            written.append(target)
            if on_progress:
                on_progress(f["logicalPath"], f["size"] or 0)
        return written
