"""Whole-or-nothing writers: a file appears at its final path complete, or not at all.

Each backend gets the cheapest way to make that true:

* local files: write ``.<name>.<random>.part`` in the same folder, ``os.replace`` it into place
  (atomic on POSIX within one filesystem); on failure the temp file is deleted.
* S3 (``s3``/``s3a``, with the amazon provider's boto3): ``write()`` only queues the chunk; a
  background thread feeds the queue to boto3's ``upload_fileobj``, which uploads 8 MiB parts
  two at a time while the download goes on (s3fs uploads each part synchronously inside
  ``write()``, so the download would stall during every part). On failure the reader raises
  inside s3transfer, which aborts the multipart upload (parts are never visible); a file below
  the multipart threshold is only PUT after its last byte, which never comes. Memory per file:
  the queue plus two parts in flight.
* S3 without boto3 / the amazon hook, GCS and Azure Blob Storage (``s3fs``/``gcsfs``/``adlfs``):
  write straight to the final key and, on failure, ``discard()`` the upload: s3fs aborts the
  multipart upload and a file smaller than one part is only PUT on close, which never happens;
  gcsfs cancels its resumable upload; adlfs only stages blocks, which become the blob when the
  block list is committed on close, which never happens (Azure drops uncommitted blocks after a
  week). The fsspec file is then marked closed, because fsspec's ``close()`` (called by ``with``
  on error and by ``__del__``) would *commit* the partial upload.
* any other fsspec backend: write a temp key beside the final one, then ``mv`` it into place;
  on failure discard and delete the temp key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import shutil
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

LOCAL_PROTOCOLS = frozenset({"file", "local"})
# Backends whose fsspec file aborts cleanly with discard(): nothing is committed at the key.
# Azure (adlfs: abfs, abfss, az) is one of them, not a temp-key backend: its file stages blocks
# and commits them in one Put Block List on close, so the blob appears whole or not at all. A temp
# blob moved into place would be worse on every count: adlfs's mv is a server-side Copy Blob
# (which Azure may finish asynchronously, and adlfs does not wait for it before deleting the
# source), it writes every byte twice, and a worker killed between the two leaves a committed
# temp blob behind. ``adl`` (Data Lake Gen1, another filesystem) stays on the temp-key path.
DISCARDABLE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az"})

#: Multipart part size on object stores: bounded memory per file (s3fs buffers one part, and
#: copies it once while uploading), few enough requests; S3's minimum is 5 MiB.
OBJECT_STORE_PART_SIZE = 16 * 2**20

#: S3 protocols that get the streaming boto3 sink (``s3n`` is legacy Hadoop: left to s3fs).
STREAMING_S3_PROTOCOLS = frozenset({"s3", "s3a"})
#: Part size and multipart threshold of the streaming S3 sink: 8 MiB (boto3's default) halves the
#: memory of 16 MiB parts at the same speed; 10,000 parts still allow 80 GB per file.
S3_PART_SIZE = 8 * 2**20
#: Parts uploaded at once per file (and parts held in memory): two keep moto/S3 busy while the
#: next part fills; more only adds memory, the download is the other half of the pipeline.
S3_UPLOAD_CONCURRENCY = 2
#: Chunks (``write()`` calls, 1 MiB from the downloader) queued between download and upload.
S3_QUEUE_CHUNKS = 8
#: Seconds a blocked ``write()``/``commit()`` waits before checking that the uploader still runs.
_LIVENESS_POLL_SECONDS = 0.1

TEMP_SUFFIX = ".part"
#: Bytes per ``write()`` system call of the local sink (see ``_LocalSink.write``).
LOCAL_WRITE_SIZE = 64 * 1024


class AtomicSink(Protocol):
    """A file being written: ``write`` chunks, then exactly one of ``commit`` or ``abort``."""

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


def temp_name(name: str) -> str:
    """``a/b.flac`` -> ``a/.b.flac.<random>.part``: hidden, unique, recognisable as a leftover."""
    head, _, tail = name.rpartition("/")
    temp = f".{tail}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    return f"{head}/{temp}" if head else temp


def is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in LOCAL_PROTOCOLS


def ensure_folder(folder: ObjectStoragePath) -> None:
    """Create the destination folder if the backend has folders (object stores do not)."""
    if is_local(folder):
        os.makedirs(folder.path, exist_ok=True)
    elif folder.protocol not in DISCARDABLE_PROTOCOLS:
        # e.g. sftp, hdfs; on object stores mkdir could even create a *bucket*.
        with contextlib.suppress(NotImplementedError):
            folder.fs.makedirs(folder.path, exist_ok=True)


def existing_size(path: ObjectStoragePath) -> int | None:
    """Size of the file at ``path``, or ``None`` if there is none."""
    if is_local(path):
        try:
            stat = os.stat(path.path)
        except FileNotFoundError:
            return None
        return stat.st_size if not os.path.isdir(path.path) else None
    fs = path.fs
    try:
        info = fs.info(path.path)
    except FileNotFoundError:
        return None
    if info.get("type") == "directory":
        return None
    size = info.get("size")
    return int(size) if size is not None else None


def write_file_atomically(
    local_file: str, path: ObjectStoragePath, s3_clients: S3Clients | None = None, chunk_size: int = 2**20
) -> int:
    """Copy a local file to ``path`` whole or not at all (through :func:`open_atomic`); its size.

    :param local_file: the finished file on local disk.
    :param path: the final path, on any backend.
    :param s3_clients: shared boto3 clients, as for :func:`open_atomic`.
    """
    sink = open_atomic(path, s3_clients)
    written = 0
    try:
        with open(local_file, "rb") as source:
            while chunk := source.read(chunk_size):
                sink.write(chunk)
                written += len(chunk)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return written


def read_to_local_file(path: ObjectStoragePath, local_file: str, chunk_size: int = 2**20) -> int:
    """Copy the file at ``path`` (any backend) to a local file in chunks; its size.

    :param path: the file to read.
    :param local_file: where to write it.
    """
    written = 0
    with path.open("rb") as source, open(local_file, "wb") as target:
        while chunk := source.read(chunk_size):
            target.write(chunk)
            written += len(chunk)
    return written


def remove_tree(path: ObjectStoragePath) -> None:
    """Delete the folder ``path`` and everything under it, if it exists (any backend)."""
    if is_local(path):
        shutil.rmtree(path.path, ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError):
        path.fs.rm(path.path, recursive=True)


def open_atomic(path: ObjectStoragePath, s3_clients: S3Clients | None = None) -> AtomicSink:
    """Start writing the file at ``path`` so that it appears only on ``commit()``.

    :param path: the final path.
    :param s3_clients: boto3 clients shared by the files of one run; ``None`` makes one for
        this file only (fine for a single file, wasteful for many).
    """
    if is_local(path):
        return _LocalSink(path.path)
    if path.protocol in STREAMING_S3_PROTOCOLS:
        client = (s3_clients or S3Clients()).get(path.conn_id)
        if client is not None:
            return S3StreamSink(client, path.bucket, path.key)
    if path.protocol in DISCARDABLE_PROTOCOLS:
        return _DiscardableSink(path.fs, path.path)
    return _TempKeySink(path.fs, path.path)


class S3Clients:
    """boto3 S3 clients by connection ID, made once per operator run and shared by its threads.

    Creating a client costs tens of milliseconds (connection lookup, service model); boto3
    clients are thread-safe, so one per connection serves every file.

    :param max_connections: the client's HTTP pool size: the uploads in flight at once
        (files x parts per file), so connections are reused rather than dropped.
    """

    def __init__(self, max_connections: int = 10) -> None:
        self.max_connections = max_connections
        self._clients: dict[str | None, Any] = {}
        self._lock = threading.Lock()

    def get(self, conn_id: str | None) -> Any:
        """The client for ``conn_id`` (``None``: boto3's default credential chain, like the
        amazon provider's s3 filesystem), or ``None`` when the s3fs sink must do: the amazon
        provider or boto3 is not installed, or the connection needs a custom request signer
        that only the provider's s3fs setup applies."""
        with self._lock:
            if conn_id not in self._clients:
                self._clients[conn_id] = self._make(conn_id)
            return self._clients[conn_id]

    def _make(self, conn_id: str | None) -> Any:
        # Lazily: boto3 and the amazon provider come with the ``s3`` extra, and cost import time.
        try:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook
            from botocore import UNSIGNED
            from botocore.config import Config
        except ImportError:
            return None
        # The same hook and connection the amazon provider's s3 filesystem (``get_fs``) uses.
        hook = S3Hook(aws_conn_id=conn_id)
        service_config = hook.service_config
        if service_config.get("signer"):
            return None
        config = hook.config.merge(Config(max_pool_connections=max(10, self.max_connections)))
        if proxy := service_config.get("proxy-uri"):
            config = config.merge(Config(proxies={"http": proxy, "https": proxy}))
        # As get_fs does: no credentials anywhere means anonymous access. A key in the connection
        # settles it without building a second boto3 session (~20 ms) just to ask.
        if not hook.conn_config.aws_access_key_id and hook.get_session().get_credentials() is None:
            config = config.merge(Config(signature_version=UNSIGNED))
        return hook.get_client_type(config=config)


class _LocalSink:
    def __init__(self, final: str) -> None:
        self._final = final
        folder, name = os.path.split(final)
        os.makedirs(folder, exist_ok=True)
        self._temp = os.path.join(folder, temp_name(name))
        # Unbuffered: chunks are already large, a second buffer would only copy them.
        self._file = open(self._temp, "xb", buffering=0)  # noqa: SIM115 - closed in commit/abort

    def write(self, data: bytes | memoryview) -> None:
        # In slices of LOCAL_WRITE_SIZE (views, no copy): a 1 MiB write() makes the kernel take a
        # 1 MiB page-cache folio from its high-order free blocks, which a VM with free page
        # reporting (Firecracker, virtio-balloon) has handed back to the host; refilling them
        # costs a host fault per 4 KiB page (512 MiB: 0.25 s became 1.1-2 s). 64 KiB folios
        # come from memory the guest keeps, and the extra system calls cost nothing measurable.
        view = memoryview(data)
        while view:
            written = self._file.write(view[:LOCAL_WRITE_SIZE])
            view = view[written:]

    def commit(self) -> None:
        try:
            self._file.close()
            os.replace(self._temp, self._final)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)


def _discard(file: Any) -> None:
    """Abort an fsspec write so that nothing is ever committed, even by ``__del__``.

    Never raises: it runs while another error (a broken download, a cancelled task) is on its
    way up, and replacing that error would also stop its retry. A cancel that fails costs
    storage, not correctness: an upload that was never finished never becomes an object (a GCS
    resumable upload expires after a week, an S3 multipart upload stays pending until a
    lifecycle rule removes it).
    """
    try:
        discard = getattr(file, "discard", None)
        if callable(discard):
            discard()
    except Exception as err:
        log.warning(
            "Could not cancel the unfinished upload of %s (nothing was committed there): %s: %s",
            getattr(file, "path", "a file"),
            type(err).__name__,
            err,
        )
    finally:
        # fsspec's close() (and __del__, which calls it) flushes and commits: never let it run.
        with contextlib.suppress(Exception):
            file.closed = True


class _DiscardableSink:
    def __init__(self, fs: Any, final: str) -> None:
        self._file = fs.open(final, "wb", block_size=OBJECT_STORE_PART_SIZE)

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)

    def commit(self) -> None:
        try:
            self._file.close()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        _discard(self._file)


class _TempKeySink:
    def __init__(self, fs: Any, final: str) -> None:
        self._fs = fs
        self._final = final
        folder, _, name = final.rpartition("/")
        self._temp = f"{folder}/{temp_name(name)}" if folder else temp_name(name)
        self._file = fs.open(self._temp, "wb")

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)

    def commit(self) -> None:
        try:
            self._file.close()
            self._fs.mv(self._temp, self._final)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        _discard(self._file)
        with contextlib.suppress(Exception):
            if self._fs.exists(self._temp):
                self._fs.rm(self._temp)


class S3UploadError(Exception):
    """The background upload of an S3 sink failed; nothing was committed at the key."""


class _Abort(Exception):
    """Raised inside s3transfer by the reader so that it aborts the upload."""


_EOF = object()


class _QueueReader:
    """The read end of the queue, as the non-seekable file object s3transfer expects.

    ``read(n)`` blocks until it has ``n`` bytes or the end: s3transfer takes a short read for
    the end of the file (and would decide "no multipart" or send a part S3 rejects as too small).
    """

    def __init__(self, chunks: queue.Queue[Any], aborted: threading.Event) -> None:
        self._chunks = chunks
        self._aborted = aborted
        self._pending: memoryview = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = size if size is not None and size >= 0 else None
        parts: list[bytes | memoryview] = []
        have = 0
        while want is None or have < want:
            if not self._pending:
                if self._eof:
                    break
                item = self._chunks.get()
                if self._aborted.is_set():
                    raise _Abort("the download was abandoned; upload aborted")
                if item is _EOF:
                    self._eof = True
                    break
                self._pending = memoryview(item)
            take = self._pending if want is None else self._pending[: want - have]
            parts.append(take)
            have += len(take)
            self._pending = self._pending[len(take) :]
        return b"".join(parts)


class S3StreamSink:
    """Streams into one S3 key through boto3 ``upload_fileobj`` running in a thread of its own.

    :param client: a boto3 S3 client (thread-safe, shared).
    :param bucket: the bucket.
    :param key: the final key.
    """

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        from boto3.s3.transfer import TransferConfig

        self._where = f"s3://{bucket}/{key}"
        self._chunks: queue.Queue[Any] = queue.Queue(maxsize=S3_QUEUE_CHUNKS)
        self._aborted = threading.Event()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        config = TransferConfig(
            multipart_threshold=S3_PART_SIZE,
            multipart_chunksize=S3_PART_SIZE,
            max_concurrency=S3_UPLOAD_CONCURRENCY,
            use_threads=True,
            # The CRT client would read the stream its own way; the classic one is what we tune.
            preferred_transfer_client="classic",
        )
        # s3transfer reads ahead up to this many parts of a non-seekable stream (default 10,
        # i.e. 80 MiB per file): only as many as are being uploaded.
        config.max_in_memory_upload_chunks = S3_UPLOAD_CONCURRENCY
        reader = _QueueReader(self._chunks, self._aborted)
        self._thread = threading.Thread(
            target=self._upload,
            args=(client, reader, bucket, key, config),
            name="camb-s3-upload",
            daemon=True,
        )
        self._thread.start()

    def _upload(self, client: Any, reader: _QueueReader, bucket: str, key: str, config: Any) -> None:
        try:
            client.upload_fileobj(reader, bucket, key, Config=config)
        except BaseException as err:
            self._error = err
        finally:
            self._finished.set()

    def _put(self, item: Any) -> None:
        # Never block forever on a full queue: if the uploader died, nobody will empty it.
        while True:
            if self._finished.is_set():
                raise self._failure()
            try:
                self._chunks.put(item, timeout=_LIVENESS_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _failure(self) -> S3UploadError:
        err = self._error
        if err is None:
            return S3UploadError(f"upload to {self._where} ended before the last byte was written")
        return S3UploadError(f"upload to {self._where} failed: {type(err).__name__}: {err}")

    def write(self, data: bytes | memoryview) -> None:
        # bytes cannot change under us; anything else (a reused buffer) is copied.
        self._put(data if isinstance(data, bytes) else bytes(data))

    def commit(self) -> None:
        try:
            self._put(_EOF)
            self._thread.join()
            if self._error is not None:
                raise self._failure() from self._error
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Make the upload fail inside s3transfer, and wait until it has cleaned up.

        s3transfer aborts the multipart upload before ``upload_fileobj`` returns, so once this
        returns nothing is left at the key: no object, no pending upload.
        """
        self._aborted.set()
        # Empty the queue (frees memory, makes room), then wake a reader waiting for a chunk.
        with contextlib.suppress(queue.Empty):
            while True:
                self._chunks.get_nowait()
        with contextlib.suppress(queue.Full):
            self._chunks.put_nowait(_EOF)
        # Bounded by botocore's own timeouts and retries on the parts still in flight.
        self._thread.join()
