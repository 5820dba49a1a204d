"""File names for transferred audio: extension guessing, sanitising, templating. Pure: no Airflow, no I/O.

Everything here treats the URL and the ``Content-Type`` as hostile: whatever a server sends, the
name that comes out is a relative path of safe segments, so it cannot leave the destination folder.
"""

from __future__ import annotations

import posixpath
import re
import string
from urllib.parse import unquote, urlsplit

DEFAULT_EXT = "flac"
DEFAULT_FILENAME_TEMPLATE = "{run_id}.{ext}"
#: Kinds other than TTS carry several files per run (dubbed audio and video, two stems...).
DEFAULT_FIELD_FILENAME_TEMPLATE = "{run_id}_{field}.{ext}"
ALLOWED_FIELDS = frozenset({"run_id", "ext"})

#: Extensions we trust when they appear at the end of a URL path.
AUDIO_EXTENSIONS = frozenset({"flac", "wav", "mp3", "aac", "m4a", "ogg", "opus", "webm", "pcm"})
#: The other files results carry: a dubbed video, a story's dialogue. An allow-list on purpose:
#: nothing executable (``exe``, ``sh``, ``html``...) ever becomes a name's extension.
OTHER_EXTENSIONS = frozenset({"mp4", "json"})
#: Every extension a file name may end with.
KNOWN_EXTENSIONS = AUDIO_EXTENSIONS | OTHER_EXTENSIONS

_CONTENT_TYPE_EXT = {
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/aac": "aac",
    "audio/x-aac": "aac",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/webm": "webm",
    "video/mp4": "mp4",
    "application/json": "json",
}

# A file-name segment: letters, digits and a few punctuation marks, not starting with a dot.
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,254}")


class InvalidFilenameTemplateError(ValueError):
    """The ``filename_template`` uses a field other than ``{run_id}``/``{ext}`` or could escape."""


def sanitise_ext(value: str | None) -> str | None:
    """A lower-case extension we know (audio, ``mp4``, ``json``), or ``None`` (never a path piece)."""
    if not value:
        return None
    ext = value.strip().lower().lstrip(".")
    return ext if ext in KNOWN_EXTENSIONS else None


def ext_from_url(url: str) -> str | None:
    """The extension of the last segment of the URL path, if it is a known extension."""
    try:
        path = unquote(urlsplit(url).path)
    except ValueError:
        return None
    name = posixpath.basename(path.replace("\\", "/"))
    if "." not in name:
        return None
    return sanitise_ext(name.rsplit(".", 1)[1])


def ext_from_content_type(content_type: str | None) -> str | None:
    """``audio/flac; charset=x`` -> ``flac``; anything unknown -> ``None``."""
    if not content_type:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    return _CONTENT_TYPE_EXT.get(mime)


def choose_ext(url: str, content_type: str | None = None) -> str:
    """``{ext}`` for a file: from the URL path, else from the ``Content-Type``, else ``flac``."""
    return ext_from_url(url) or ext_from_content_type(content_type) or DEFAULT_EXT


def validate_filename_template(
    template: str,
    *,
    key_field: str = "run_id",
    sample_key: object = 1,
    extra_fields: tuple[str, ...] = (),
) -> str:
    """Check a ``filename_template`` once, when the operator is built.

    Only ``{<key_field>}``, ``{ext}`` and ``extra_fields`` are allowed (no format specs, no
    attribute access); ``/`` may make sub-folders, but no segment may be empty, ``.``/``..``,
    hidden, or absolute.

    :param key_field: the field that tells files apart: ``run_id`` (transfer) or ``name`` (texts).
    :param sample_key: a harmless value of that field to render the template with.
    :param extra_fields: further required fields, e.g. ``("field",)`` (rendered as ``audio_url``).
    :raises InvalidFilenameTemplateError: with the reason.
    """
    if not isinstance(template, str) or not template.strip():
        raise InvalidFilenameTemplateError("filename_template must be a non-empty string")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise InvalidFilenameTemplateError(f"filename_template {template!r} is malformed: {err}") from None
    fields = set()
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in (key_field, "ext", *extra_fields) or spec or conversion:
            allowed = ", ".join(f"{{{name}}}" for name in (key_field, *extra_fields))
            raise InvalidFilenameTemplateError(
                f"filename_template {template!r} may only use {allowed} and {{ext}}, found {{{field}}}"
            )
        fields.add(field)
    if key_field not in fields:
        raise InvalidFilenameTemplateError(
            f"filename_template {template!r} must contain {{{key_field}}}, or every file would get the "
            "same name"
        )
    for name in extra_fields:
        if name not in fields:
            raise InvalidFilenameTemplateError(
                f"filename_template {template!r} must contain {{{name}}}, or the files of one run "
                "would get the same name"
            )
    # Render with harmless stand-ins: a template that is unsafe with them is unsafe with any.
    samples = {key_field: sample_key, "ext": DEFAULT_EXT, **dict.fromkeys(extra_fields, "audio_url")}
    check_relative_name(template.format(**samples), what="filename_template")
    return template


def render_filename(template: str, run_id: int, ext: str) -> str:
    """The relative file name of one run: the template filled with a sanitised extension."""
    safe_ext = sanitise_ext(ext) or DEFAULT_EXT
    return check_relative_name(template.format(run_id=int(run_id), ext=safe_ext), what="file name")


def render_field_filename(template: str, run_id: int, field: str, ext: str) -> str:
    """The relative file name of one file of a run (``field`` as ``result_urls`` names it).

    :raises InvalidFilenameTemplateError: if the result is not a safe relative path.
    """
    safe_ext = sanitise_ext(ext) or DEFAULT_EXT
    return check_relative_name(
        template.format(run_id=int(run_id), field=field, ext=safe_ext), what="file name"
    )


def render_text_filename(template: str, name: str, ext: str) -> str:
    """The relative file name of one text: the template filled with its name and extension.

    :raises InvalidFilenameTemplateError: if the result is not a safe relative path (a name with
        ``..``, a leading ``/`` or characters outside the safe set).
    """
    return check_relative_name(template.format(name=name, ext=ext), what="file name")


def check_relative_name(name: str, *, what: str) -> str:
    """Return ``name`` if it is a relative path of safe segments, else raise."""
    segments = name.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or not _SAFE_SEGMENT.fullmatch(segment):
            raise InvalidFilenameTemplateError(
                f"{what} {name!r} is not a safe relative path (segment {segment!r}): use letters, "
                "digits, '_', '-', '.', '=', '+' and '/' between non-empty names not starting with '.'"
            )
    return name


def is_inside(folder: str, path: str) -> bool:
    """Whether ``path`` lies strictly inside ``folder`` (both POSIX-style, already normalised)."""
    folder = folder.rstrip("/")
    normalised = posixpath.normpath(path)
    return normalised == path.rstrip("/") and normalised.startswith(folder + "/")
