"""Content-addressed blob store on S3 or any S3-compatible server (boto3's botocore, imported lazily).

Keys: ``<prefix>/ab/cd/<sha256>`` (``ab/cd/<sha256>`` with no prefix) in one bucket. The interface is
that of :class:`tallymark.store.blobs.LocalBlobStore` (see :class:`tallymark.store.blobfactory.BlobStore`).

**Nothing is ever visible under a content-addressed key before its bytes were hashed and checked.**
There are no temporary *objects*; the final key is written by exactly one atomic S3 operation
(``PutObject`` or ``CompleteMultipartUpload``) issued only after the sha256 of everything read is
known and matches:

* *small blobs* (up to one part, ``part_size``, 8 MiB by default) are read into memory, hashed, then
  sent with one ``PutObject`` to their final key;
* *large blobs whose sha256 is announced* (``put(..., expected_sha256=…)``, which is what the HTTP
  upload route and the SDK do, since they hash before uploading to skip known blobs) are streamed
  part by part into a multipart upload **to the final key**, hashing as they go; the upload is
  completed only if the hash and the limit check pass, and aborted otherwise. An incomplete multipart
  upload is not an object: ``HEAD``/``GET``/listings do not see it;
* *large blobs with no announced sha256* are streamed into a local spool file (an anonymous
  ``tempfile.TemporaryFile``, which the OS removes even if the process is killed) while being hashed;
  once the sha256 is known they are uploaded like the previous case. ``put_file`` on a seekable file
  instead hashes the file in a first pass and uploads it from the file in a second (re-hashing while
  uploading, so a file changed in between is refused).

Memory stays bounded by about two parts whatever the blob size. A process killed in the middle of a
multipart upload leaves an incomplete upload on the server (invisible, but it may be billed):
:meth:`S3BlobStore.sweep_incomplete` aborts old ones, and a bucket lifecycle rule
``AbortIncompleteMultipartUpload`` does the same on AWS.

Credentials and region come from boto3's standard chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``~/.aws/…``, instance roles;
``AWS_REGION``/``AWS_DEFAULT_REGION``, default ``us-east-1``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from tallymark.extras import require
from tallymark.store.blobs import (
    SHA256_RE,
    BlobHashMismatch,
    BlobNotFound,
    BlobStoreUnavailable,
    BlobTooLarge,
    check_sha256,
)

__all__ = ["S3BlobStore", "S3BlobStoreError"]

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000


class S3BlobStoreError(BlobStoreUnavailable):
    """The bucket cannot be used (missing, no permission, server unreachable)."""


def _is_not_found(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("404", "NoSuchKey", "NotFound") or status == 404


_loader_lock = threading.Lock()
_shared_loader: Any = None


def _new_botocore_session() -> Any:
    """A fresh botocore session (credentials resolved anew) sharing one loader of the API models.

    boto3's clients are botocore's; creating one parses megabytes of JSON models unless the loader,
    which caches them, is shared. Credentials, region and profile are still read per session.
    """
    global _shared_loader
    import botocore.loaders
    import botocore.session

    with _loader_lock:
        if _shared_loader is None:
            _shared_loader = botocore.loaders.create_loader()
        loader = _shared_loader
    session = botocore.session.get_session()
    session.register_component("data_loader", loader)
    return session


class _PartReader:
    """Cuts an iterable of byte chunks into parts, hashing and counting every byte it takes in."""

    def __init__(self, chunks: Iterable[bytes], max_bytes: int) -> None:
        self._it = iter(chunks)
        self._max_bytes = max_bytes
        self._pending = memoryview(b"")
        self._exhausted = False
        self.size = 0
        self.digest = hashlib.sha256()

    def _pull(self) -> bool:
        """Load the next non-empty chunk into the pending buffer; False at the end of the stream."""
        while not self._exhausted:
            try:
                chunk = next(self._it)
            except StopIteration:
                self._exhausted = True
                break
            if not chunk:
                continue
            self.size += len(chunk)
            if self.size > self._max_bytes:
                raise BlobTooLarge(f"the upload exceeds the limit of {self._max_bytes} bytes")
            self.digest.update(chunk)
            self._pending = memoryview(chunk)
            return True
        return False

    def at_end(self) -> bool:
        return not self._pending and not self._pull()

    def read(self, n: int) -> bytearray:
        """Up to ``n`` bytes (fewer only at the end of the stream).

        Chunks are copied into one growing buffer and released as they are used, so a part costs
        about its own size in memory, not twice that.
        """
        buf = bytearray()
        while len(buf) < n:
            if not self._pending and not self._pull():
                break
            take = n - len(buf)
            buf += self._pending[:take]
            self._pending = self._pending[take:]
        return buf


def _read_into(fileobj: IO[bytes], buf: bytearray) -> int:
    """Fill ``buf`` from ``fileobj`` (short only at the end of the file); returns the byte count."""
    view = memoryview(buf)
    got = 0
    readinto = getattr(fileobj, "readinto", None)
    while got < len(buf):
        if readinto is not None:
            n = readinto(view[got:])
        else:
            data = fileobj.read(len(buf) - got)
            n = len(data)
            view[got : got + n] = data
        if not n:
            break
        got += n
    view.release()
    return got


class _BodyRaw(io.RawIOBase):
    """A raw, readable stream over a botocore StreamingBody (so ``open`` returns a real BinaryIO)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()


class S3BlobStore:
    """Blobs in ``s3://bucket/prefix``; see the module docstring for the upload protocol."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any = None,
        part_size: int = 8 * MiB,
        spool_dir: Path | str | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 blob store needs a bucket name")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self.part_size = part_size
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self._client = client
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        endpoint = f", endpoint_url={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"S3BlobStore({self.url!r}{endpoint})"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    # ---- client ------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3/botocore S3 client, created on first use (botocore is imported only then)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        require("botocore", "server", "an s3:// blob store")
        from botocore.config import Config

        session = _new_botocore_session()
        options: dict[str, Any] = {"retries": {"max_attempts": 5, "mode": "standard"}}
        if self.endpoint_url:
            # S3-compatible servers: path-style addressing (no per-bucket DNS names), and checksums
            # only where the API requires them (several servers reject the newer default trailers).
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region_name or session.get_config_variable("region") or "us-east-1",
            config=Config(**options),
        )

    def _key(self, sha256: str) -> str:
        check_sha256(sha256)
        rel = f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def check(self) -> None:
        """Raise :class:`S3BlobStoreError` unless the bucket exists and can be reached."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # botocore's ClientError, EndpointConnectionError, NoCredentialsError …
            raise S3BlobStoreError(f"cannot use the blob store {self.url}: {exc}") from exc

    # ---- reads -------------------------------------------------------------------------------

    def _head(self, sha256: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise

    def has(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise BlobNotFound(f"no blob {sha256}")
        return int(head["ContentLength"])

    def modified_at(self, sha256: str) -> float:
        """When the object was last written (POSIX seconds); gc spares young blobs not yet referenced."""
        head = self._head(sha256)
        if head is None:
            raise BlobNotFound(f"no blob {sha256}")
        return float(head["LastModified"].timestamp())

    def _get_body(self, sha256: str) -> Any:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
        except ClientError as exc:
            if _is_not_found(exc):
                raise BlobNotFound(f"no blob {sha256}") from None
            raise

    def open(self, sha256: str) -> BinaryIO:
        """A streaming, buffered reader over the blob (one GET); close it when done."""
        return io.BufferedReader(_BodyRaw(self._get_body(sha256)), buffer_size=MiB)

    def iter_bytes(self, sha256: str, block: int = 1 << 20) -> Iterator[bytes]:
        body = self._get_body(sha256)
        try:
            while data := body.read(block):
                yield data
        finally:
            body.close()

    def verify(self, sha256: str) -> bool:
        """Re-hash the stored bytes: True if the blob exists and still hashes to its name."""
        digest = hashlib.sha256()
        try:
            for data in self.iter_bytes(sha256):
                digest.update(data)
        except BlobNotFound:
            return False
        return digest.hexdigest() == sha256

    def iter_shas(self) -> Iterator[str]:
        """Every stored sha256 under the prefix; keys of any other shape are ignored."""
        list_prefix = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=list_prefix):
            for obj in page.get("Contents", ()):
                rel = obj["Key"][len(list_prefix) :]
                parts = rel.split("/")
                if len(parts) != 3:
                    continue
                d1, d2, sha = parts
                if SHA256_RE.match(sha) and d1 == sha[:2] and d2 == sha[2:4]:
                    yield sha

    # ---- writes ------------------------------------------------------------------------------

    def delete(self, sha256: str) -> bool:
        """Remove a blob; True if it was there. Whether it is still referenced is the caller's concern."""
        if not self.has(sha256):
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))
        return True

    def _iter_uploads(self) -> Iterator[dict[str, Any]]:
        """Multipart uploads in progress under the prefix (``Key``, ``UploadId``, ``Initiated``)."""
        from botocore.exceptions import ClientError

        list_prefix = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=list_prefix):
                yield from page.get("Uploads", ())
        except ClientError as exc:
            # Some S3-compatible servers (rclone serve s3) answer NoSuchUpload for a bucket that
            # never had a multipart upload, instead of an empty list.
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise

    def sweep_incomplete(self, older_than: float = 24 * 3600.0) -> int:
        """Abort multipart uploads under the prefix started more than ``older_than`` seconds ago.

        They exist only when a process was killed mid-upload; they are never visible as blobs.
        Returns how many were aborted.
        """
        cutoff = time.time() - older_than
        stale = [u for u in self._iter_uploads() if u["Initiated"].timestamp() <= cutoff]
        for upload in stale:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        return len(stale)

    def _part_size_for(self, total: int) -> int:
        """A part size that fits ``total`` bytes into S3's 10,000 parts (whole MiB, at least part_size)."""
        needed = math.ceil(total / (MAX_PARTS - 1))
        size = max(self.part_size, math.ceil(needed / MiB) * MiB)
        if size > MAX_PART_SIZE:
            raise BlobTooLarge(f"{total} bytes do not fit in one S3 multipart upload")
        return size

    def _multipart(
        self, key: str, parts: Iterator[bytes] | Iterator[bytearray], check: Callable[[], None]
    ) -> None:
        """Upload ``parts`` in order to ``key``; complete only if ``check()`` passes, else abort."""
        client = self.client
        upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            done: list[dict[str, Any]] = []
            # No enumerate(): its reused result tuple would keep the previous part alive while the
            # next one is read, doubling the memory held.
            number = 0
            for data in parts:
                number += 1
                response = client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
                done.append({"ETag": response["ETag"], "PartNumber": number})
                del data, response
            check()
            client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            # The original error matters more; sweep_incomplete() cleans up an upload left behind.
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def put(
        self, chunks: Iterable[bytes], max_bytes: int, expected_sha256: str | None = None
    ) -> tuple[str, int]:
        """Store the streamed bytes; returns (sha256, size). Nothing is visible if anything fails."""
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        reader = _PartReader(chunks, max_bytes)
        first = reader.read(self.part_size)
        if reader.at_end():
            sha = reader.digest.hexdigest()
            self._check_expected(sha, expected_sha256)
            if not self.has(sha):
                self.client.put_object(Bucket=self.bucket, Key=self._key(sha), Body=first)
            return sha, reader.size
        # Hand the first part over in a list the callee empties: no frame keeps it alive afterwards.
        head = [first]
        del first
        if expected_sha256 is not None:
            return self._put_streaming(reader, head, max_bytes, expected_sha256)
        return self._put_spooled(reader, head)

    @staticmethod
    def _check_expected(sha: str, expected: str | None) -> None:
        if expected is not None and sha != expected:
            raise BlobHashMismatch(f"the upload's sha256 is {sha}, not the announced {expected}")

    def _put_streaming(
        self, reader: _PartReader, head: list[bytearray], max_bytes: int, expected: str
    ) -> tuple[str, int]:
        """Multipart upload straight to the announced key, completed only if the hash matches."""
        if self.has(expected):  # already stored: check the stream, upload nothing
            while reader.read(MiB):
                pass
            self._check_expected(reader.digest.hexdigest(), expected)
            return expected, reader.size
        part_size = self._part_size_for(max_bytes)

        def parts() -> Iterator[bytearray]:
            yield head.pop()
            while data := reader.read(part_size):
                yield data
                del data  # before reading the next part: one part in memory at a time

        self._multipart(
            self._key(expected), parts(), lambda: self._check_expected(reader.digest.hexdigest(), expected)
        )
        return expected, reader.size

    def _put_spooled(self, reader: _PartReader, head: list[bytearray]) -> tuple[str, int]:
        """No announced hash: spool to local disk while hashing, then upload under the known hash."""
        with tempfile.TemporaryFile(dir=self.spool_dir, prefix="tallymark-upload-") as spool:
            spool.write(head.pop())
            while data := reader.read(MiB):
                spool.write(data)
                del data
            sha, size = reader.digest.hexdigest(), reader.size
            spool.seek(0)
            self._upload_known(spool, sha, size)
        return sha, size

    def _upload_known(self, fileobj: IO[bytes], sha: str, size: int) -> None:
        """Upload ``size`` bytes of ``fileobj`` (from its position) under ``sha``, re-hashing them."""
        if self.has(sha):
            return
        digest = hashlib.sha256()
        read = 0

        def verify() -> None:
            if read != size or digest.hexdigest() != sha:
                raise BlobHashMismatch(
                    f"the file changed while it was being uploaded (expected sha256 {sha})"
                )

        if size <= self.part_size:
            data = fileobj.read(size)
            digest.update(data)
            read = len(data)
            verify()
            self.client.put_object(Bucket=self.bucket, Key=self._key(sha), Body=data)
            return
        part_size = self._part_size_for(size)

        def parts() -> Iterator[bytearray]:
            nonlocal read
            while read < size:
                # A bytearray body is sent as is; a bytes body would be copied once more by botocore.
                data = bytearray(min(part_size, size - read))
                got = _read_into(fileobj, data)
                if not got:
                    return
                del data[got:]
                digest.update(data)
                read += got
                yield data
                del data  # before reading the next part: one part in memory at a time

        self._multipart(self._key(sha), parts(), verify)

    def put_file(self, fileobj: BinaryIO, max_bytes: int, block: int = 1 << 20) -> tuple[str, int]:
        """Store an open binary file; a seekable one is hashed first and then uploaded from the file."""
        try:
            seekable = fileobj.seekable()
        except (AttributeError, ValueError):
            seekable = False
        if not seekable:
            return self.put(iter(lambda: fileobj.read(block), b""), max_bytes)
        start = fileobj.tell()
        digest = hashlib.sha256()
        size = 0
        while data := fileobj.read(block):
            size += len(data)
            if size > max_bytes:
                raise BlobTooLarge(f"the upload exceeds the limit of {max_bytes} bytes")
            digest.update(data)
        sha = digest.hexdigest()
        fileobj.seek(start)
        self._upload_known(fileobj, sha, size)
        return sha, size
