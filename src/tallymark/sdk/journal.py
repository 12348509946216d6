"""The on-disk journal: batches that could not be sent yet, in order; also the offline format.

A journal is a folder::

    experiment.json            the create request (workspace, project, key, name, tags, user)
    00000001-batch.json        a batch body exactly as POSTed to /experiments/{key}/batch
    00000002-asset.json        an asset's metadata, with its bytes in 00000002-asset.bin
    ...

The folder appears with its first entry, and ``experiment.json`` is written before any entry, so a
journal on disk is always a complete upload: ``tallymark upload FOLDER`` (or the SDK itself, once
the server answers) creates the experiment if needed and sends every entry in order. Each entry is
written to a temporary file, fsynced and renamed into place (and the folder fsynced), so an entry
either exists whole or not at all, whatever moment the process is killed. Entries are deleted only
after the server acknowledged them; batches and assets carry idempotency ids, so an entry sent but
not yet deleted (a kill in between) is acknowledged again without being stored twice.

While its run lives, a journal is claimed by an advisory lock on ``journal/<key>.lock`` (released
by the kernel when the process dies, and by ``end()``). The next run that talks to the same server
(``origin.json``) sends every unclaimed journal it finds there (:func:`adopt_orphans`), so even a run
killed while the server was down loses nothing it flushed, with nobody typing ``tallymark upload``.
Two replays of one folder at once are harmless: entries are idempotent and deleted only once
acknowledged, so the lock only saves work.

An offline archive (``OfflineExperiment``) is the same folder zipped as ``<key>.zip``.
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

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no claims, no adoption by the next run
    fcntl = None  # type: ignore[assignment]

ENTRY_GLOB = "[0-9]" * 8 + "-*.json"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported here (e.g. Windows); the file itself was fsynced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _try_lock(path: Path) -> int | None:
    """An exclusive advisory lock on ``path`` (created if needed), or None when another holds it."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class Journal:
    """One experiment's journal folder. ``experiment`` is the create request written beside the
    first entry, so that the folder alone is enough to upload everything; ``origin`` is the server
    URL it is meant for (only a run talking to that server adopts it)."""

    def __init__(
        self, folder: Path, experiment: dict[str, Any] | None = None, origin: str | None = None
    ) -> None:
        self.folder = Path(folder)
        self.experiment = experiment
        self.origin = origin
        self._lock = threading.Lock()
        self._claim: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.folder.parent / f"{self.folder.name}.lock"

    def release(self) -> None:
        """Give up the claim (at end()): from now on the next run may send what is left."""
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None

    def _next(self) -> int:
        nums = [int(p.name[:8]) for p in self.folder.glob(ENTRY_GLOB)]
        return max(nums, default=0) + 1

    def _prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._claim is None and self.origin is not None:
            self._claim = _try_lock(self.lock_path)
        if self.experiment is not None and not (self.folder / "experiment.json").exists():
            _atomic_write(self.folder / "experiment.json", json.dumps(self.experiment).encode())
        if self.origin is not None and not (self.folder / "origin.json").exists():
            _atomic_write(self.folder / "origin.json", json.dumps({"url": self.origin}).encode())

    def write_experiment(self, body: dict[str, Any]) -> None:
        self.experiment = body
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.folder / "experiment.json", json.dumps(body).encode())

    def append_batch(self, body: dict[str, Any]) -> None:
        """Write one batch durably (raises OSError when the disk refuses; nothing half-written)."""
        data = json.dumps(body, allow_nan=False).encode()
        with self._lock:
            self._prepare()
            _atomic_write(self.folder / f"{self._next():08d}-batch.json", data)

    def append_asset(self, meta: dict[str, Any], source: Path) -> None:
        with self._lock:
            self._prepare()
            n = self._next()
            binary = self.folder / f"{n:08d}-asset.bin"
            try:
                shutil.copyfile(source, binary)
                with binary.open("rb+") as f:
                    os.fsync(f.fileno())
                _atomic_write(self.folder / f"{n:08d}-asset.json", json.dumps(meta).encode())
            except BaseException:
                binary.unlink(missing_ok=True)
                raise

    def entries(self) -> list[Path]:
        return sorted(self.folder.glob(ENTRY_GLOB))

    def pending(self) -> int:
        try:
            return len(self.entries()) if self.folder.exists() else 0
        except OSError:
            return 0

    def points(self) -> int:
        """Metric points waiting in the journal (for the line ``end()`` prints)."""
        import base64

        total = 0
        for entry in self.entries() if self.folder.exists() else []:
            if entry.name.endswith("-batch.json"):
                try:
                    body = json.loads(entry.read_bytes())
                    total += sum(
                        len(base64.b64decode(m["steps"]["b64"])) // 8 for m in body.get("metrics", [])
                    )
                except (OSError, ValueError, KeyError, TypeError):
                    continue
        return total

    def replay(
        self,
        transport: Any,
        key: str,
        on_refused: Callable[[Path, Any], bool] | None = None,
        on_entry: Callable[[int, int], None] | None = None,
    ) -> int:
        """Send every entry in order, deleting each once acknowledged; returns how many were sent.

        ``Unavailable`` (and an auth refusal) stops the replay and leaves the rest for later. Any
        other refusal (4xx) can never succeed: ``on_refused(entry, error)`` is told and returns whether
        to delete the entry (the SDK drops it; ``tallymark upload`` leaves it for the user to see);
        without ``on_refused`` the error is raised. An entry that vanished meanwhile was sent and
        deleted by a concurrent replay of the same folder (``tallymark upload`` while the run lives).
        """
        from tallymark.sdk.transport import TallymarkError, is_refusal

        sent = 0
        with self._lock:
            entries = self.entries()
            for i, entry in enumerate(entries):
                try:
                    body = json.loads(entry.read_bytes())
                except FileNotFoundError:
                    continue
                except ValueError as exc:  # cannot happen with atomic writes, unless edited by hand
                    unreadable = TallymarkError(f"unreadable journal entry: {exc}", 400)
                    if on_refused is None:
                        raise unreadable from None
                    if on_refused(entry, unreadable):
                        _remove_entry(entry)
                    continue
                try:
                    _send_entry(transport, key, entry, body)
                except FileNotFoundError:
                    continue  # the asset's bytes went with a concurrent replay
                except TallymarkError as exc:
                    if not is_refusal(exc.status) or on_refused is None:
                        raise
                    if on_refused(entry, exc):
                        _remove_entry(entry)
                    continue
                _remove_entry(entry)
                sent += 1
                if on_entry:
                    on_entry(i + 1, len(entries))
        return sent

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        if self._claim is not None:
            self.lock_path.unlink(missing_ok=True)
        self.release()


def _remove_entry(entry: Path) -> None:
    # The .json goes first: a kill in between leaves an orphan .bin, never an entry without bytes.
    entry.unlink(missing_ok=True)
    if entry.name.endswith("-asset.json"):
        entry.with_suffix(".bin").unlink(missing_ok=True)


def _send_entry(transport: Any, key: str, entry: Path, body: dict[str, Any]) -> None:
    if entry.name.endswith("-batch.json"):
        transport.send_batch(key, body)
    else:
        transport.upload_asset(key, body, entry.with_suffix(".bin"))


class EntriesRefused(Exception):
    """Some entries of an upload were refused (4xx); everything else was sent."""


def _folder_experiment(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """(create request, key) of a journal folder. Journals written before ``experiment.json`` was
    always kept lack it when the experiment was created online: the folder's name is the key."""
    try:
        exp = json.loads((folder / "experiment.json").read_text())
        return exp, exp["key"]
    except FileNotFoundError:
        name = folder.resolve().name
        if len(name) == 32 and all(c in "0123456789abcdef" for c in name):
            return None, name
        raise ValueError(f"{folder} is not a tallymark journal (no experiment.json)") from None


def _create(transport: Any, exp: dict[str, Any] | None) -> None:
    from tallymark.sdk.transport import TallymarkError

    if exp is None:
        return
    try:
        transport.create_experiment(exp)
    except TallymarkError as exc:
        if exc.status != 409:
            raise


def _refusals(path: Path, refused: list[tuple[str, str]]) -> EntriesRefused:
    first = refused[0]
    return EntriesRefused(
        f"{len(refused)} entr{'y' if len(refused) == 1 else 'ies'} of {path} refused by the server "
        f"(first, {first[0]}: {first[1]}); everything else was sent"
    )


def upload_journal(
    folder: Path,
    transport: Any,
    on_entry: Callable[[int, int], None] | None = None,
    drop_refused: bool = False,
) -> str:
    """Upload a journal folder (what the SDK left while the server was down); returns the key.

    Entries are deleted as the server acknowledges them and the folder once none is left, so a
    second upload of the same folder sends nothing twice (and an interrupted one resumes). An entry
    the server refuses (4xx) is left in the folder and reported by :class:`EntriesRefused` after the
    rest was sent.
    """
    from tallymark.store.paths import safe_walk

    safe_walk(folder)  # a journal folder someone handed over: refuse links out of it before any send
    exp, key = _folder_experiment(folder)
    _create(transport, exp)
    refused: list[tuple[str, str]] = []

    def keep(entry: Path, exc: Any) -> bool:
        refused.append((entry.name, exc.message))
        return drop_refused

    Journal(folder).replay(transport, key, on_refused=keep, on_entry=on_entry)
    if not any(folder.glob(ENTRY_GLOB)):
        shutil.rmtree(folder, ignore_errors=True)
    if refused:
        raise _refusals(folder, refused)
    return key


def adopt_orphans(journals: Path, transport: Any, exclude: str, warn: Callable[[str], None]) -> int:
    """Send the journals earlier runs left in ``journals`` for this transport's server (killed, or
    ended while it was down) and that no live run claims; returns how many were sent whole.

    Stops at the first sign that the server is unreachable (the journals stay for the next run).
    Entries the server refuses are dropped, as the SDK does for its own batches."""
    from tallymark.sdk.transport import TallymarkError, Unavailable

    url = getattr(transport, "url", None)
    if fcntl is None or url is None:
        return 0
    try:
        folders = sorted(p for p in journals.iterdir() if p.is_dir() and p.name != exclude)
    except OSError:
        return 0
    done = 0
    for folder in folders:
        try:
            if json.loads((folder / "origin.json").read_text()).get("url") != url:
                continue
        except (OSError, ValueError, AttributeError):
            continue  # another server's, or not ours to guess
        lock = journals / f"{folder.name}.lock"
        fd = _try_lock(lock)
        if fd is None:
            continue  # its run is alive (or another run is sending it right now)
        try:
            upload_journal(folder, transport, drop_refused=True)
            done += 1
            warn(f"sent the journal an earlier run left at {folder}")
        except Unavailable:
            return done
        except (EntriesRefused, TallymarkError, OSError, ValueError) as exc:
            warn(f"could not send the journal at {folder}: {getattr(exc, 'message', None) or exc}")
        finally:
            if not folder.exists():
                lock.unlink(missing_ok=True)
            os.close(fd)
    return done


def replay_archive(path: Path, transport: Any, on_entry: Callable[[int, int], None] | None = None) -> str:
    """Upload a journal folder or an offline archive (``KEY.zip``) through ``transport``; returns
    the key. Idempotent: uploading the same archive twice stores nothing twice."""
    from tallymark.sdk.transport import TallymarkError, is_refusal

    if path.is_dir():
        return upload_journal(path, transport, on_entry)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if "experiment.json" not in names:
            raise ValueError(f"{path} is not a tallymark offline archive (no experiment.json)")
        exp = json.loads(zf.read("experiment.json"))
        key = exp["key"]
        entries = sorted(n for n in names if len(n) > 9 and n[:8].isdigit() and n.endswith(".json"))
        _create(transport, exp)
        refused: list[tuple[str, str]] = []
        for i, name in enumerate(entries):
            body = json.loads(zf.read(name))
            try:
                if name.endswith("-batch.json"):
                    transport.send_batch(key, body)
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        target = Path(tmp) / "asset.bin"
                        with zf.open(name[:-5] + ".bin") as src, target.open("wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        transport.upload_asset(key, body, target)
            except TallymarkError as exc:
                if not is_refusal(exc.status):
                    raise
                refused.append((name, exc.message))
            if on_entry:
                on_entry(i + 1, len(entries))
    if refused:
        raise _refusals(path, refused)
    return key


def zip_folder(folder: Path, target: Path) -> Path:
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, p.name)
    os.replace(tmp, target)
    return target
