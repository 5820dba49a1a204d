"""Whole-or-nothing writers: a file appears at its final path complete, or not at all.

Each backend gets the cheapest way to make that true:

* local files: write ``.<name>.<random>.part`` in the same folder, ``os.replace`` it into place
  (atomic on POSIX within one filesystem); on failure the temp file is deleted.
* S3 and GCS (``s3fs``/``gcsfs``): write straight to the final key and, on failure, ``discard()``
  the upload: s3fs aborts the multipart upload (parts are never visible) and a file smaller than
  one part is only PUT on close, which never happens; gcsfs cancels its resumable upload. The
  fsspec file is then marked closed, because fsspec's ``close()`` (called by ``with`` on error
  and by ``__del__``) would *commit* the partial upload.
* any other fsspec backend: write a temp key beside the final one, then ``mv`` it into place;
  on failure discard and delete the temp key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

LOCAL_PROTOCOLS = frozenset({"file", "local"})
# Backends whose fsspec file aborts cleanly with discard(): nothing is committed at the key.
DISCARDABLE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs"})

#: Multipart part size on object stores: bounded memory per file (s3fs buffers one part, and
#: copies it once while uploading), few enough requests; S3's minimum is 5 MiB.
OBJECT_STORE_PART_SIZE = 16 * 2**20

TEMP_SUFFIX = ".part"


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


def open_atomic(path: ObjectStoragePath) -> AtomicSink:
    """Start writing the file at ``path`` so that it appears only on ``commit()``."""
    if is_local(path):
        return _LocalSink(path.path)
    if path.protocol in DISCARDABLE_PROTOCOLS:
        return _DiscardableSink(path.fs, path.path)
    return _TempKeySink(path.fs, path.path)


class _LocalSink:
    def __init__(self, final: str) -> None:
        self._final = final
        folder, name = os.path.split(final)
        os.makedirs(folder, exist_ok=True)
        self._temp = os.path.join(folder, temp_name(name))
        # Unbuffered: chunks are already large, a second buffer would only copy them.
        self._file = open(self._temp, "xb", buffering=0)  # noqa: SIM115 - closed in commit/abort

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
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
    """Abort an fsspec write so that nothing is ever committed, even by ``__del__``."""
    try:
        discard = getattr(file, "discard", None)
        if callable(discard):
            discard()
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
