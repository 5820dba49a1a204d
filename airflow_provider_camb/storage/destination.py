"""The destination folder of an operator that writes audio: one reading for every operator."""

from __future__ import annotations

import os

from airflow.sdk import ObjectStoragePath


class InvalidDestinationError(ValueError):
    """A ``destination`` no run can write to (empty, relative, an unknown scheme)."""


def resolve_destination(destination: object, conn_id: str | None) -> ObjectStoragePath:
    """The folder as an ``ObjectStoragePath``: a URI, an absolute local path or a path object.

    :param destination: ``s3://bucket/prefix/``, ``file:///abs/dir/``, ``/abs/dir`` or an
        ``ObjectStoragePath``.
    :param conn_id: the storage connection, if any (``""`` and ``None`` mean none).
    :raises InvalidDestinationError: naming what is wrong.
    """
    conn_id = conn_id or None
    if isinstance(destination, ObjectStoragePath) and destination.protocol:
        return ObjectStoragePath(destination, conn_id=conn_id) if conn_id else destination
    text = str(destination).strip() if destination is not None else ""
    if not text or text == "None":
        raise InvalidDestinationError("destination is empty: give a folder URI such as s3://bucket/prefix/")
    if "://" not in text:
        if not os.path.isabs(text):
            raise InvalidDestinationError(
                f"destination {text!r} is a relative path: give an absolute path or a URI "
                "(file:///abs/dir/, s3://bucket/prefix/ ...)"
            )
        text = "file://" + os.path.normpath(text)
    try:
        return ObjectStoragePath(text, conn_id=conn_id)
    except (ValueError, ImportError) as err:
        raise InvalidDestinationError(f"destination {text!r} cannot be used: {err}") from err


def uri_of(path: ObjectStoragePath) -> str:
    """``s3://bucket/key`` / ``file:///abs/path``: no connection ID, stable for XCom."""
    return f"{path.protocol}://{path.path}"
