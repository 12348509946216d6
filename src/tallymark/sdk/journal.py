"""The on-disk journal: batches that could not be sent yet, in order; also the offline format.

A journal is a folder::

    experiment.json            the create request (workspace, project, key, name, tags, user)
    00000001-batch.json        a batch body exactly as POSTed to /experiments/{key}/batch
    00000002-asset.json        an asset's metadata, with its bytes in 00000002-asset.bin
    ...

An offline archive (``OfflineExperiment``) is the same folder zipped as ``<key>.zip``. Replaying
sends every entry in order; batches and assets carry idempotency ids, so a replay that is interrupted
and started again never duplicates anything.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def _next(self) -> int:
        nums = [int(p.name[:8]) for p in self.folder.glob("[0-9]" * 8 + "-*.json")]
        return max(nums, default=0) + 1

    def write_experiment(self, body: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.folder / "experiment.json", json.dumps(body).encode())

    def append_batch(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            n = self._next()
            _atomic_write(self.folder / f"{n:08d}-batch.json", json.dumps(body, allow_nan=False).encode())

    def append_asset(self, meta: dict[str, Any], source: Path) -> None:
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            n = self._next()
            shutil.copyfile(source, self.folder / f"{n:08d}-asset.bin")
            _atomic_write(self.folder / f"{n:08d}-asset.json", json.dumps(meta).encode())

    def entries(self) -> list[Path]:
        return sorted(self.folder.glob("[0-9]" * 8 + "-*.json"))

    def pending(self) -> int:
        return len(self.entries()) if self.folder.exists() else 0

    def replay(self, transport: Any, key: str, on_entry: Callable[[Path], None] | None = None) -> int:
        """Send every entry in order, deleting each once acknowledged. Returns how many were sent."""
        sent = 0
        with self._lock:
            for entry in self.entries():
                _send_entry(transport, key, entry, json.loads(entry.read_bytes()))
                if entry.name.endswith("-asset.json"):
                    entry.with_suffix(".bin").unlink(missing_ok=True)
                entry.unlink()
                sent += 1
                if on_entry:
                    on_entry(entry)
        return sent

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _send_entry(transport: Any, key: str, entry: Path, body: dict[str, Any]) -> None:
    if entry.name.endswith("-batch.json"):
        transport.send_batch(key, body)
    else:
        transport.upload_asset(key, body, entry.with_suffix(".bin"))


def archive_entries(path: Path) -> tuple[dict[str, Any], list[str], zipfile.ZipFile | None, Path | None]:
    """Open a journal folder or an offline ``.zip``: (experiment, entry names, zip, folder)."""
    if path.is_dir():
        from tallymark.store.paths import safe_walk

        safe_walk(path)  # a journal folder someone handed over: refuse links out of it before any send
        exp = json.loads((path / "experiment.json").read_text())
        return exp, [p.name for p in sorted(path.glob("[0-9]" * 8 + "-*.json"))], None, path
    zf = zipfile.ZipFile(path)
    names = zf.namelist()
    if "experiment.json" not in names:
        zf.close()
        raise ValueError(f"{path} is not a tallymark offline archive (no experiment.json)")
    exp = json.loads(zf.read("experiment.json"))
    entries = sorted(n for n in names if len(n) > 9 and n[:8].isdigit() and n.endswith(".json"))
    return exp, entries, zf, None


def replay_archive(path: Path, transport: Any, on_entry: Callable[[int, int], None] | None = None) -> str:
    """Upload a journal folder or offline archive through ``transport``; returns the key."""
    exp, entries, zf, folder = archive_entries(path)
    key = exp["key"]
    try:
        from tallymark.sdk.transport import TallymarkError

        try:
            transport.create_experiment(exp)
        except TallymarkError as exc:
            if exc.status != 409:
                raise
        for i, name in enumerate(entries):
            body = json.loads(zf.read(name) if zf else (folder / name).read_bytes())  # type: ignore[operator]
            if name.endswith("-batch.json"):
                transport.send_batch(key, body)
            else:
                bin_name = name[:-5] + ".bin"
                if zf:
                    with tempfile.TemporaryDirectory() as tmp:
                        target = Path(tmp) / "asset.bin"
                        with zf.open(bin_name) as src, target.open("wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        transport.upload_asset(key, body, target)
                else:
                    transport.upload_asset(key, body, folder / bin_name)  # type: ignore[operator]
            if on_entry:
                on_entry(i + 1, len(entries))
    finally:
        if zf:
            zf.close()
    return key


def zip_folder(folder: Path, target: Path) -> Path:
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, p.name)
    os.replace(tmp, target)
    return target
