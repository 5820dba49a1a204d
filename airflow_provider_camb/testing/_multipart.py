"""``multipart/form-data`` bodies, parsed with the standard library's ``email`` package."""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any


@dataclass(frozen=True)
class Upload:
    """One uploaded file of a form.

    :param filename: the name the client gave.
    :param content_type: the part's ``Content-Type``.
    :param data: the file's bytes.
    """

    filename: str
    content_type: str
    data: bytes

    def describe(self) -> dict[str, Any]:
        """What the journal keeps of the upload: never its bytes."""
        return {"filename": self.filename, "content_type": self.content_type, "size": len(self.data)}


def is_form(content_type: str | None) -> bool:
    """Whether a request's ``Content-Type`` announces a multipart form.

    :param content_type: the header, if any.
    """
    return (content_type or "").lower().startswith("multipart/form-data")


def parse_form(content_type: str, body: bytes) -> dict[str, str | Upload] | None:
    """The fields of a multipart form (last value wins), or ``None`` when it does not parse.

    :param content_type: the request's ``Content-Type`` (it carries the boundary).
    :param body: the request body.
    """
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        return None
    fields: dict[str, str | Upload] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = Upload(filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields


def describe_form(fields: dict[str, str | Upload]) -> dict[str, Any]:
    """A JSON-able copy of ``fields`` for the journal: uploads as filename, type and size.

    :param fields: a parsed form.
    """
    return {name: value.describe() if isinstance(value, Upload) else value for name, value in fields.items()}
