"""The blob stores: one suite run on the local folder store and on S3 (a real ``rclone serve s3``).

Both stores are opened through ``open_blob_store`` the way the server opens them. Every failure
case (limit exceeded, hash mismatch, the upload's source raising midway, a file changing while it is
uploaded) must leave *nothing* behind: no blob, no stray object or temporary file, no open multipart
upload.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tallymark.store.blobfactory import BlobStore, open_blob_store
from tallymark.store.blobs import BlobHashMismatch, BlobNotFound, BlobTooLarge, LocalBlobStore
from tallymark.store.blobs_s3 import S3BlobStore

try:  # tests/ is on sys.path (pytest's default "prepend" import mode, no tests/__init__.py)
    from s3server import RcloneS3Server, s3_server  # noqa: F401 - s3_server is a fixture
except ModuleNotFoundError:  # pragma: no cover - tests/ imported as a package
    from tests.s3server import RcloneS3Server, s3_server  # noqa: F401

MiB = 1024 * 1024
BIG = 50 * 1000 * 1000  # the streaming test's file: 50 MB
S3_MARKS = [pytest.mark.slow, pytest.mark.s3]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blocks(data: bytes, size: int = MiB) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def rand_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(params=["local", pytest.param("s3", marks=S3_MARKS)])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    if request.param == "local":
        return open_blob_store(str(tmp_path / "blobs"))
    server: RcloneS3Server = request.getfixturevalue("s3_server")
    # Only the standard AWS variables reach boto3: no profile, config file or endpoint of the developer.
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for var, value in server.env().items():
        monkeypatch.setenv(var, value)
    bucket = server.create_bucket()
    s = open_blob_store(f"s3://{bucket}/team/blobs", s3_endpoint_url=server.endpoint_url)
    assert isinstance(s, S3BlobStore)
    s.spool_dir = tmp_path / "spool"
    s.spool_dir.mkdir()
    return s


def leftovers(blob_store: BlobStore) -> list[str]:
    """Everything the store holds besides blobs: stray files, objects, spool files, open uploads."""
    if isinstance(blob_store, LocalBlobStore):
        if not blob_store.root.exists():
            return []
        return sorted(
            str(p.relative_to(blob_store.root)) for p in blob_store.root.rglob("*") if not p.is_dir()
        )
    assert isinstance(blob_store, S3BlobStore)
    client = blob_store.client
    found = [o["Key"] for o in client.list_objects_v2(Bucket=blob_store.bucket).get("Contents", [])]
    whole_bucket = S3BlobStore(blob_store.bucket, client=client)
    found += [f"upload:{u['Key']}" for u in whole_bucket._iter_uploads()]
    if blob_store.spool_dir is not None:
        found += [f"spool:{p.name}" for p in blob_store.spool_dir.iterdir()]
    return sorted(found)


def stored(blob_store: BlobStore) -> list[str]:
    """Every blob, and every raw file/object (so a stray one shows up too)."""
    return sorted(set(blob_store.iter_shas())) + [f"raw:{x}" for x in leftovers(blob_store)]


def nothing_visible(blob_store: BlobStore, *shas: str) -> None:
    for s in shas:
        assert not blob_store.has(s)
    assert list(blob_store.iter_shas()) == []
    assert leftovers(blob_store) == []


def tamper(blob_store: BlobStore, sha256: str, data: bytes) -> None:
    """Overwrite a stored blob behind the store's back."""
    if isinstance(blob_store, LocalBlobStore):
        path = blob_store.root / sha256[:2] / sha256[2:4] / sha256
        path.write_bytes(data)
    else:
        assert isinstance(blob_store, S3BlobStore)
        blob_store.client.put_object(Bucket=blob_store.bucket, Key=blob_store._key(sha256), Body=data)


def raw_put(blob_store: BlobStore, rel: str, data: bytes) -> None:
    """Put a file/object at ``rel`` (relative to the root or prefix) behind the store's back."""
    if isinstance(blob_store, LocalBlobStore):
        path = blob_store.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        assert isinstance(blob_store, S3BlobStore)
        blob_store.client.put_object(Bucket=blob_store.bucket, Key=f"{blob_store.prefix}/{rel}", Body=data)


class Exploding:
    """An upload source that yields ``good`` bytes, then raises (a client that disconnects)."""

    def __init__(self, good: int, block: int = MiB) -> None:
        self.good, self.block = good, block

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        while sent < self.good:
            n = min(self.block, self.good - sent)
            yield b"x" * n
            sent += n
        raise ConnectionResetError("the client went away")


class Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        return self._f.readinto(b)


class ChangesOnRewind(io.BytesIO):
    """A seekable file whose content changes after its first rewind (edited while uploading)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._rewinds = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self._rewinds += 1
        if self._rewinds == 1:
            view = self.getbuffer()
            view[len(view) // 2] ^= 0xFF
            del view
        return super().seek(pos, whence)


# --------------------------------------------------------------------------------------------
# basics


def test_put_has_open_iter_size(blob_store: BlobStore) -> None:
    data = b"hello, blob world\n" * 100
    digest, size = blob_store.put(blocks(data, 7), max_bytes=10_000)
    assert (digest, size) == (sha(data), len(data))
    assert blob_store.has(digest)
    assert blob_store.size(digest) == len(data)
    with blob_store.open(digest) as f:
        assert f.read(5) == b"hello"
        assert f.read() == data[5:]
    assert b"".join(blob_store.iter_bytes(digest, block=64)) == data
    assert blob_store.verify(digest)
    assert list(blob_store.iter_shas()) == [digest]
    assert stored(blob_store) == [digest, f"raw:{_rel(blob_store, digest)}"]


def _rel(blob_store: BlobStore, digest: str) -> str:
    rel = f"{digest[:2]}/{digest[2:4]}/{digest}"
    return f"{blob_store.prefix}/{rel}" if isinstance(blob_store, S3BlobStore) else rel


def test_put_is_idempotent_and_announced_hash_accepted(blob_store: BlobStore) -> None:
    data = b"same bytes"
    first = blob_store.put([data], 100)
    second = blob_store.put([b"same ", b"", b"bytes"], 100, expected_sha256=sha(data))
    assert first == second == (sha(data), len(data))
    assert list(blob_store.iter_shas()) == [sha(data)]


def test_empty_blob(blob_store: BlobStore) -> None:
    digest, size = blob_store.put([], 10)
    assert (digest, size) == (sha(b""), 0)
    assert blob_store.has(digest) and blob_store.size(digest) == 0
    assert b"".join(blob_store.iter_bytes(digest)) == b""
    assert blob_store.verify(digest)


def test_put_file_seekable_and_not(blob_store: BlobStore, tmp_path: Path) -> None:
    data = rand_bytes(3 * MiB + 5, seed=1)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with path.open("rb") as f:
        assert blob_store.put_file(f, max_bytes=10 * MiB) == (sha(data), len(data))
    other = data[::-1]
    assert blob_store.put_file(Unseekable(other), max_bytes=10 * MiB, block=4096) == (sha(other), len(other))  # type: ignore[arg-type]
    assert sorted(blob_store.iter_shas()) == sorted([sha(data), sha(other)])
    assert blob_store.verify(sha(data)) and blob_store.verify(sha(other))


def test_modified_at(blob_store: BlobStore) -> None:
    before = time.time()
    digest, _ = blob_store.put([b"fresh"], 100)
    # Second-resolution servers round down; allow clock skew between this process and the server.
    assert before - 2 <= blob_store.modified_at(digest) <= time.time() + 2
    with pytest.raises(BlobNotFound):
        blob_store.modified_at(sha(b"never stored"))


def test_delete(blob_store: BlobStore) -> None:
    keep, _ = blob_store.put([b"keep me"], 100)
    gone, _ = blob_store.put([b"delete me"], 100)
    assert blob_store.delete(gone) is True
    assert blob_store.delete(gone) is False
    assert not blob_store.has(gone)
    assert blob_store.has(keep)
    assert list(blob_store.iter_shas()) == [keep]
    with pytest.raises(BlobNotFound):
        blob_store.open(gone)
    with pytest.raises(BlobNotFound):
        blob_store.size(gone)
    with pytest.raises(FileNotFoundError):  # BlobNotFound is a FileNotFoundError
        b"".join(blob_store.iter_bytes(gone))
    assert blob_store.verify(gone) is False


def test_iter_shas_lists_every_blob_and_ignores_strays(blob_store: BlobStore) -> None:
    datas = [f"blob {i}".encode() for i in range(25)]
    for d in datas:
        blob_store.put([d], 100)
    good = sha(b"stray")
    raw_put(blob_store, "README", b"not a blob")
    raw_put(blob_store, f"{good[:2]}/{good[2:4]}/{good}.part", b"not a blob")
    raw_put(blob_store, f"ff/ff/{good}", b"in the wrong folder")
    raw_put(blob_store, f"{good[:2]}/{good[2:4]}/{good.upper()}", b"upper case")
    raw_put(blob_store, f"{good[:2]}/{good}", b"too shallow")
    assert sorted(blob_store.iter_shas()) == sorted(sha(d) for d in datas)


def test_verify_catches_tampering(blob_store: BlobStore) -> None:
    data = rand_bytes(100_000, seed=2)
    digest, _ = blob_store.put(blocks(data, 4096), MiB)
    assert blob_store.verify(digest)
    tamper(blob_store, digest, data[:-1] + bytes([data[-1] ^ 1]))
    assert blob_store.verify(digest) is False
    assert blob_store.has(digest)  # still listed: it is the caller who decides what to do (refuse, re-upload)


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "A" * 64, "a" * 63, "g" * 64, "ab/cd/" + "a" * 58, "", "a" * 64 + "\n"]
)
def test_bad_sha_refused(blob_store: BlobStore, bad: str) -> None:
    for op in (blob_store.has, blob_store.size, blob_store.open, blob_store.delete, blob_store.verify):
        with pytest.raises(ValueError):
            op(bad)
    with pytest.raises(ValueError):
        blob_store.put([b"x"], 10, expected_sha256=bad)
    assert leftovers(blob_store) == []


def test_concurrent_puts_of_the_same_content(blob_store: BlobStore) -> None:
    data = rand_bytes(6 * MiB, seed=3)
    results: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            results.append(blob_store.put(blocks(data), 10 * MiB, sha(data) if i % 2 else None))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [(sha(data), len(data))] * 4
    assert list(blob_store.iter_shas()) == [sha(data)]
    assert blob_store.verify(sha(data))


# --------------------------------------------------------------------------------------------
# failures leave nothing visible


@pytest.mark.parametrize("n", [11, 12 * MiB], ids=["small", "multipart"])
@pytest.mark.parametrize("announced", [False, True], ids=["unannounced", "announced"])
def test_max_bytes_exceeded_leaves_nothing(blob_store: BlobStore, n: int, announced: bool) -> None:
    data = rand_bytes(n, seed=n)
    limit = n - 1
    with pytest.raises(BlobTooLarge):
        blob_store.put(blocks(data), limit, sha(data) if announced else None)
    nothing_visible(blob_store, sha(data))


@pytest.mark.parametrize("n", [1000, 12 * MiB], ids=["small", "multipart"])
def test_hash_mismatch_leaves_nothing(blob_store: BlobStore, n: int) -> None:
    data = rand_bytes(n, seed=n)
    claimed = sha(b"something else")
    with pytest.raises(BlobHashMismatch):
        blob_store.put(blocks(data), 20 * MiB, claimed)
    nothing_visible(blob_store, claimed, sha(data))


@pytest.mark.parametrize("good", [0, 3 * MiB, 17 * MiB + 3], ids=["at-once", "first-part", "multipart"])
@pytest.mark.parametrize("announced", [False, True], ids=["unannounced", "announced"])
def test_interrupted_upload_leaves_nothing(blob_store: BlobStore, good: int, announced: bool) -> None:
    would_be = sha(b"x" * (good + MiB))
    with pytest.raises(ConnectionResetError):
        blob_store.put(Exploding(good), 100 * MiB, would_be if announced else None)
    nothing_visible(blob_store, would_be, sha(b"x" * good))


def test_interrupted_upload_keeps_an_existing_blob(blob_store: BlobStore) -> None:
    data = b"x" * (12 * MiB)
    digest, _ = blob_store.put(blocks(data), 20 * MiB)
    with pytest.raises(ConnectionResetError):
        blob_store.put(Exploding(6 * MiB), 20 * MiB, digest)
    assert blob_store.verify(digest)
    assert list(blob_store.iter_shas()) == [digest]
    assert leftovers(blob_store) == [_rel(blob_store, digest)]


@pytest.mark.parametrize("n", [1000, 12 * MiB], ids=["small", "multipart"])
def test_file_changing_during_upload_is_refused_or_consistent(blob_store: BlobStore, n: int) -> None:
    f = ChangesOnRewind(rand_bytes(n, seed=5))
    try:
        digest, size = blob_store.put_file(f, 20 * MiB)  # type: ignore[arg-type]
    except BlobHashMismatch:
        nothing_visible(blob_store)  # S3 hashes first, then uploads: the change is caught
        return
    # The local store hashes what it writes in one pass: whatever it kept is self-consistent.
    assert size == n and blob_store.verify(digest)


def test_sweep_incomplete(blob_store: BlobStore) -> None:
    keep, _ = blob_store.put([b"a blob"], 100)
    if isinstance(blob_store, LocalBlobStore):
        tmp = blob_store.root / "tmp"
        old, new = tmp / "upload-old", tmp / "upload-new"
        old.write_bytes(b"half")
        new.write_bytes(b"half")
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        assert blob_store.sweep_incomplete(older_than=3600) == 1
        assert not old.exists() and new.exists()
        assert blob_store.sweep_incomplete(older_than=0) == 1
    else:
        assert isinstance(blob_store, S3BlobStore)
        dead = "a" * 64
        blob_store.client.create_multipart_upload(Bucket=blob_store.bucket, Key=blob_store._key(dead))
        assert leftovers(blob_store) == sorted([_rel(blob_store, keep), f"upload:{blob_store._key(dead)}"])
        assert blob_store.sweep_incomplete(older_than=3600) == 0
        assert blob_store.sweep_incomplete(older_than=0) == 1
    assert leftovers(blob_store) == [_rel(blob_store, keep)]
    assert blob_store.verify(keep)


# --------------------------------------------------------------------------------------------
# large files stream


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    digest = hashlib.sha256()
    rng = random.Random(50)
    with path.open("wb") as f:
        left = BIG
        while left:
            block = rng.randbytes(min(MiB, left))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return path, digest.hexdigest()


def _file_blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(MiB):
            yield block


@pytest.mark.parametrize("how", ["stream-announced", "stream-unannounced", "put_file"])
def test_50mb_streams_with_bounded_memory(
    blob_store: BlobStore, big_file: tuple[Path, str], how: str
) -> None:
    path, digest = big_file
    assert not blob_store.has(digest)  # also creates the S3 client: loading boto3's models is a one-off cost
    tracemalloc.start()
    try:
        if how == "put_file":
            with path.open("rb") as f:
                result = blob_store.put_file(f, 2 * BIG)
        else:
            result = blob_store.put(
                _file_blocks(path), 2 * BIG, digest if how == "stream-announced" else None
            )
        _, peak_put = tracemalloc.get_traced_memory()
        print(f"{how}: put peak {peak_put / MiB:.1f} MiB")
        tracemalloc.reset_peak()
        read_back = hashlib.sha256()
        total = 0
        for block in blob_store.iter_bytes(digest):
            read_back.update(block)
            total += len(block)
        _, peak_get = tracemalloc.get_traced_memory()
        print(f"{how}: read-back peak {peak_get / MiB:.1f} MiB")
    finally:
        tracemalloc.stop()
    assert result == (digest, BIG)
    assert (read_back.hexdigest(), total) == (digest, BIG)
    # Bounded by about one part (8 MiB on S3), nowhere near the 50 MB of the file.
    assert peak_put < 16 * MiB, f"put peaked at {peak_put / MiB:.1f} MiB of Python memory"
    assert peak_get < 8 * MiB, f"reading back peaked at {peak_get / MiB:.1f} MiB"
    assert blob_store.size(digest) == BIG
    assert list(blob_store.iter_shas()) == [digest]
    assert leftovers(blob_store) == [_rel(blob_store, digest)]


# --------------------------------------------------------------------------------------------
# S3 specifics


@pytest.mark.slow
@pytest.mark.s3
def test_s3_prefixes_do_not_see_each_other(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_server: RcloneS3Server = request.getfixturevalue("s3_server")
    for var, value in s3_server.env().items():
        monkeypatch.setenv(var, value)
    bucket = s3_server.create_bucket()
    a = open_blob_store(f"s3://{bucket}/p", s3_endpoint_url=s3_server.endpoint_url)
    b = open_blob_store(f"s3://{bucket}/p2", s3_endpoint_url=s3_server.endpoint_url)
    root = open_blob_store(f"s3://{bucket}", s3_endpoint_url=s3_server.endpoint_url)
    sa, _ = a.put([b"in a"], 100)
    sb, _ = b.put([b"in b"], 100)
    sr, _ = root.put([b"at the root"], 100)
    assert list(a.iter_shas()) == [sa]
    assert list(b.iter_shas()) == [sb]
    assert list(root.iter_shas()) == [sr]  # p/… and p2/… are not ab/cd/<sha> keys of the root store
    assert not a.has(sb) and not b.has(sa)
    a.check()
    with pytest.raises(RuntimeError, match="cannot use the blob store"):
        open_blob_store("s3://no-such-bucket-here", s3_endpoint_url=s3_server.endpoint_url).check()


@pytest.mark.slow
@pytest.mark.s3
def test_s3_wrong_credentials_fail_clearly(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_server: RcloneS3Server = request.getfixturevalue("s3_server")
    bucket = s3_server.create_bucket()
    for var, value in s3_server.env().items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret")
    s = open_blob_store(f"s3://{bucket}/x", s3_endpoint_url=s3_server.endpoint_url)
    with pytest.raises(RuntimeError, match="cannot use the blob store"):
        s.check()
    with pytest.raises(Exception, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId|403"):
        s.has("a" * 64)


# --------------------------------------------------------------------------------------------
# the factory


def test_open_blob_store_url_forms(tmp_path: Path) -> None:
    local = open_blob_store(str(tmp_path / "b"))
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "b"
    assert isinstance(local, BlobStore)
    assert open_blob_store(f"file://{tmp_path}/c").root == tmp_path / "c"  # type: ignore[attr-defined]
    assert open_blob_store("~/x").root == Path("~/x").expanduser()  # type: ignore[attr-defined]
    s3 = open_blob_store("s3://my-bucket/team/blobs/", s3_endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3BlobStore) and isinstance(s3, BlobStore)
    assert (s3.bucket, s3.prefix, s3.endpoint_url, s3.url) == (
        "my-bucket",
        "team/blobs",
        "http://127.0.0.1:9",
        "s3://my-bucket/team/blobs",
    )
    assert open_blob_store("S3://bkt").url == "s3://bkt"
    assert s3._key("ab" + "c" * 62) == "team/blobs/ab/cc/ab" + "c" * 62
    assert open_blob_store("s3://bkt")._key("ab" + "c" * 62) == "ab/cc/ab" + "c" * 62  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "s3://",
        "s3:///prefix",
        "s3://b",
        "s3://bucket/../other",
        "s3://bucket/a//b",
        "s3://bucket/a/%2e%2e/b",
        "s3://bucket/p?endpoint=x",
        "s3://key:secret@bucket/p",
        "gs://bucket/p",
        "https://example.invalid/blobs",
        "file://otherhost/srv/blobs",
    ],
)
def test_open_blob_store_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        open_blob_store(url)


def test_endpoint_url_only_with_s3(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an s3://"):
        open_blob_store(str(tmp_path), s3_endpoint_url="http://127.0.0.1:9000")


def test_local_check(tmp_path: Path) -> None:
    s = open_blob_store(str(tmp_path / "new" / "blobs"))
    s.check()
    assert (tmp_path / "new" / "blobs" / "tmp").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RuntimeError):
        open_blob_store(str(tmp_path / "file" / "blobs")).check()


def test_importing_tallymark_and_opening_stores_does_not_import_boto3() -> None:
    code = (
        "import sys, tallymark\n"
        "from tallymark.store.blobfactory import open_blob_store\n"
        "open_blob_store('s3://bucket/prefix'); open_blob_store('/tmp/x')\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
