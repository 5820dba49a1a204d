"""CambTextToSpeechOperator: texts in, one finished audio file per text in any storage."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_camb.exceptions import CambAPIError, CambAuthError, CambConnectionConfigError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators._text_inputs import (
    DEFAULT_NAME,
    InvalidTextsError,
    parse_texts,
    preview,
)
from airflow_provider_camb.speech.join import AudioJoinError, join_segments, probe
from airflow_provider_camb.speech.request import InvalidTTSRequestError, TTSStreamRequest
from airflow_provider_camb.speech.segments import split_text
from airflow_provider_camb.storage.destination import (
    InvalidDestinationError,
    resolve_destination,
    uri_of,
)
from airflow_provider_camb.storage.lineage import (
    DeliveredFile,
    attach_to_asset_outlets,
    openlineage_facets,
    storage_dataset,
    url_dataset,
)
from airflow_provider_camb.storage.naming import (
    InvalidFilenameTemplateError,
    is_inside,
    render_text_filename,
    validate_filename_template,
)
from airflow_provider_camb.storage.sinks import (
    S3Clients,
    ensure_folder,
    existing_size,
    is_local,
    read_to_local_file,
    remove_tree,
    write_file_atomically,
)
from airflow_provider_camb.utils.threads import stoppable_pool

if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Future

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context, ObjectStoragePath

DEFAULT_FILENAME_TEMPLATE = "{name}.{ext}"
DEFAULT_MAX_CONCURRENCY = 4
#: The folder inside the destination where finished segments wait for their file: dot-prefixed,
#: so listings of the audio files do not show it; any worker's retry finds it there.
STAGING_FOLDER = ".camb-staging"
#: Formats that join without loss; a long text in another format is synthesised in FLAC and
#: encoded once at the end, instead of decoding and re-encoding lossy audio (two generations).
LOSSLESS_FORMATS = frozenset({"flac", "wav"})
# The API answers these when the request itself is wrong: asking again cannot help.
REQUEST_REJECTED_STATUSES = frozenset({400, 404, 409, 413, 415, 422})


class _Cancelled(Exception):
    """The task is being stopped: start no further segment."""


@dataclass
class _Segment:
    index: int
    text: str
    staged: ObjectStoragePath


@dataclass(frozen=True)
class _SegmentAudio:
    """A segment's audio on local disk, and what it cost (``None``: nothing paid in this run)."""

    local: str
    credits: float | None
    reused: bool


@dataclass
class _TextPlan:
    name: str
    text: str
    target: ObjectStoragePath
    output_format: str
    segment_format: str
    staging: ObjectStoragePath
    segments: list[_Segment] = field(default_factory=list)
    futures: list[Future[_SegmentAudio]] = field(default_factory=list)
    #: Per segment: whether this text asked for it first (a later text with the same segment
    #: shares its audio and pays nothing for it).
    owns: list[bool] = field(default_factory=list)

    @property
    def characters(self) -> int:
        """Characters sent to the API: the segments, whitespace runs collapsed (what is billed)."""
        return sum(len(segment.text) for segment in self.segments)


class CambTextToSpeechOperator(BaseOperator):
    """Synthesise texts with Camb.ai (``POST /tts-stream``) into one finished audio file each.

    Each text becomes one playable file at ``destination/<filename_template>``, on any storage
    ``ObjectStoragePath`` knows. Texts longer than the API's 3,000 characters are split into
    segments (at paragraphs, then sentences, then clauses, then words; never inside a word), which
    are synthesised concurrently and joined, in order, into one file through libsndfile.

    * Whole or nothing: a file appears at its final path complete, or not at all.
    * Cheap to re-run: with ``overwrite=False`` (default) a file already at its path is kept and
      no API call is made for it; ``overwrite=True`` synthesises it again.
    * A crash costs only what was not finished: each finished segment is kept under
      ``<destination>/.camb-staging/``, keyed by everything that determines its audio, until its
      file is written; a retry on any worker reuses it.
    * Bad input fails before any request, with ``AirflowFailException`` naming it.

    On success, the event of every ``Asset`` in ``outlets`` gets the extra
    ``{"files": [{"name", "uri", "bytes", "written"}, ...]}``: one entry per text, sorted by
    name, ``written=False`` for a file that was already there and kept. ``AssetAlias`` outlets
    get nothing.

    :param texts: ``{name: text}``, one output file per entry; a mapping from an upstream task,
        a rendered template of one, or one plain text (named ``name``). (templated)
    :param name: the name of a lone text given as a string. (templated)
    :param voice_id: the Camb.ai voice (``GET /list-voices``). (templated)
    :param language: BCP-47 tag, e.g. ``en-us`` (case is normalised). (templated)
    :param speech_model: ``mars-8.1-flash-beta``, ``mars-8.1-pro-beta``, ``mars-flash``,
        ``mars-pro`` or ``mars-instruct``; the API's default when ``None``. (templated)
    :param output_format: ``flac`` (default), ``wav`` or ``mp3``. (templated)
    :param sample_rate: Hz to ask for; the API may answer another rate, which is kept. (templated)
    :param voice_settings: passed to the API as is, e.g. ``{"speaking_rate": 1.1}``.
    :param inference_options: passed to the API as is, e.g. ``{"temperature": 0.7}``.
    :param user_instructions: for ``mars-instruct`` only. (templated)
    :param enhance_named_entities_pronunciation: passed to the API as is.
    :param destination: the folder, as a URI (``s3://bucket/prefix/``, ``gs://...``,
        ``file:///abs/dir/``; an absolute path means ``file://``) or an ``ObjectStoragePath``.
        (templated)
    :param destination_conn_id: the storage connection (e.g. an AWS connection). (templated)
    :param filename_template: the file name inside ``destination``, from ``{name}`` and ``{ext}``;
        ``/`` makes sub-folders. Default ``{name}.{ext}``.
    :param overwrite: synthesise files that already exist again (default ``False``: keep them).
    :param max_concurrency: segments in flight at once for the whole task, across all its texts.
    :param max_characters: fail before any request when the texts to synthesise add up to more.
    :param camb_conn_id: the Camb.ai connection.
    :return: ``{name: {"uri", "bytes", "duration_seconds", "segments", "characters", "credits"}}``;
        ``credits`` sums the ``X-Credits-Required`` headers this run received (``None`` if none).
    """

    template_fields: Sequence[str] = (
        "texts",
        "name",
        "voice_id",
        "language",
        "speech_model",
        "output_format",
        "sample_rate",
        "user_instructions",
        "destination",
        "destination_conn_id",
    )
    ui_color = "#e3f4ea"

    def __init__(
        self,
        *,
        texts: Any,
        voice_id: Any,
        destination: Any,
        name: str = DEFAULT_NAME,
        language: str = "en-us",
        speech_model: str | None = None,
        output_format: str = "flac",
        sample_rate: int | None = None,
        voice_settings: dict[str, Any] | None = None,
        inference_options: dict[str, Any] | None = None,
        user_instructions: str | None = None,
        enhance_named_entities_pronunciation: bool | None = None,
        destination_conn_id: str | None = None,
        filename_template: str = DEFAULT_FILENAME_TEMPLATE,
        overwrite: bool = False,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_characters: int | None = None,
        camb_conn_id: str = CambHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        if max_characters is not None and (
            isinstance(max_characters, bool) or not isinstance(max_characters, int) or max_characters < 1
        ):
            raise ValueError(f"max_characters must be a positive integer or None, got {max_characters!r}")
        self.texts = texts
        self.name = name
        self.voice_id = voice_id
        self.language = language
        self.speech_model = speech_model
        self.output_format = output_format
        self.sample_rate = sample_rate
        self.voice_settings = voice_settings
        self.inference_options = inference_options
        self.user_instructions = user_instructions
        self.enhance_named_entities_pronunciation = enhance_named_entities_pronunciation
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.filename_template = validate_filename_template(
            filename_template, key_field="name", sample_key="chapter-1"
        )
        self.overwrite = overwrite
        self.max_concurrency = max_concurrency
        self.max_characters = max_characters
        self.camb_conn_id = camb_conn_id
        # Made in execute(): Airflow deep-copies tasks, and an event cannot be copied.
        self._stop: threading.Event | None = None
        # The first error no retry can fix (a 422, a rejected key): it stops every other segment.
        self._fatal: AirflowFailException | None = None
        # What this try delivered and where the audio came from, for lineage and asset events.
        self._files: list[DeliveredFile] = []
        self._api_endpoint: str | None = None

    # -- execute ----------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, dict[str, Any]]:
        self._stop = threading.Event()
        self._fatal = None
        self._files = []
        request, texts, folder = self._checked_inputs()
        # One hook per try: the lineage endpoint and the synthesis read its connection once.
        hook = CambHook(camb_conn_id=self.camb_conn_id)
        self._api_endpoint = self._tts_endpoint(hook)
        plans, existing = self._plan(folder, texts, request)
        to_make = [plan for plan in plans if plan.name not in existing]
        characters = sum(plan.characters for plan in to_make)
        if self.max_characters is not None and characters > self.max_characters:
            raise AirflowFailException(
                f"The {len(to_make)} text(s) to synthesise have {characters:,} characters, more than "
                f"max_characters={self.max_characters:,}; nothing was sent to Camb.ai."
            )
        results: dict[str, dict[str, Any]] = {}
        for plan in plans:
            if plan.name in existing:
                results[plan.name] = self._describe_existing(plan, existing[plan.name])
                self._delivered(plan, results[plan.name], written=False)
        if to_make:
            self.log.info(
                "Synthesising %d text(s), %d segment(s), %s characters into %s, up to %d segment(s) at "
                "a time%s.",
                len(to_make),
                sum(len(plan.segments) for plan in to_make),
                f"{characters:,}",
                uri_of(folder),
                self.max_concurrency,
                f" ({len(existing)} already there)" if existing else "",
            )
            ensure_folder(folder)
            results.update(self._synthesise(to_make, request, hook))
        elif plans:
            self.log.info("All %d file(s) are already in %s: no API call made.", len(plans), uri_of(folder))
        spent = [item["credits"] for item in results.values() if item["credits"] is not None]
        self.log.info(
            "Done: %d file(s), %s characters synthesised, %s credits.",
            len(results),
            f"{characters:,}",
            f"{sum(spent):g}" if spent else "no",
        )
        attach_to_asset_outlets(context, self.outlets, self._files)
        return {plan.name: results[plan.name] for plan in plans}

    def on_kill(self) -> None:
        # Segments in flight finish (their audio is staged for the retry); no new one starts.
        if self._stop is not None:
            self._stop.set()

    # -- inputs -----------------------------------------------------------------------------

    def _checked_inputs(self) -> tuple[TTSStreamRequest, dict[str, str], ObjectStoragePath]:
        """Everything that can be wrong with the arguments, found before any request."""
        problems: list[str] = []
        texts: dict[str, str] = {}
        try:
            texts = parse_texts(self.texts, self.name)
        except InvalidTextsError as err:
            problems.append(str(err))
        try:
            request = TTSStreamRequest.create(
                voice_id=self.voice_id,
                language=self.language,
                output_format=self.output_format,
                speech_model=self.speech_model,
                sample_rate=self.sample_rate,
                voice_settings=self.voice_settings,
                inference_options=self.inference_options,
                user_instructions=self.user_instructions,
                enhance_named_entities_pronunciation=self.enhance_named_entities_pronunciation,
            )
        except InvalidTTSRequestError as err:
            problems.append(str(err))
        try:
            folder = resolve_destination(self.destination, self.destination_conn_id)
        except InvalidDestinationError as err:
            problems.append(str(err))
        if problems:
            raise AirflowFailException("Cannot synthesise: " + "; ".join(problems))
        return request, texts, folder

    def _plan(
        self, folder: ObjectStoragePath, texts: dict[str, str], request: TTSStreamRequest
    ) -> tuple[list[_TextPlan], dict[str, int]]:
        """Every text's target, segments and staging place; which targets exist already."""
        ext = request.output_format
        plans: list[_TextPlan] = []
        seen: dict[str, str] = {}
        problems: list[str] = []
        for name, text in texts.items():
            try:
                filename = render_text_filename(self.filename_template, name, ext)
            except InvalidFilenameTemplateError as err:
                problems.append(f"text {name!r}: {err}")
                continue
            target = folder / filename
            if not is_inside(folder.path, target.path):
                problems.append(f"text {name!r}: file name {filename!r} would land outside {uri_of(folder)}")
                continue
            if filename.casefold() in seen:
                problems.append(
                    f"texts {seen[filename.casefold()]!r} and {name!r} would both be {filename!r}"
                )
                continue
            seen[filename.casefold()] = name
            pieces = split_text(text)
            segment_format = ext if len(pieces) == 1 or ext in LOSSLESS_FORMATS else "flac"
            staging = folder / STAGING_FOLDER / request.cache_key(text, segment_format)[:32]
            plan = _TextPlan(name, text, target, ext, segment_format, staging)
            for index, piece in enumerate(pieces):
                key = request.cache_key(piece, segment_format)[:16]
                plan.segments.append(_Segment(index, piece, staging / f"{index:05d}-{key}.{segment_format}"))
            plans.append(plan)
        if problems:
            raise AirflowFailException("Cannot synthesise: " + "; ".join(problems))
        existing: dict[str, int] = {}
        if not self.overwrite and plans:
            # On object stores each check is a round trip: ask for many files at once.
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency * 2, len(plans))) as pool:
                sizes = list(pool.map(lambda plan: existing_size(plan.target), plans))
            existing = {plan.name: size for plan, size in zip(plans, sizes, strict=True) if size is not None}
        return plans, existing

    # -- synthesis --------------------------------------------------------------------------

    def _synthesise(
        self, plans: list[_TextPlan], request: TTSStreamRequest, hook: CambHook
    ) -> dict[str, dict[str, Any]]:
        s3_clients = S3Clients(max_connections=self.max_concurrency)
        results: dict[str, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        # The spool outlives the pool: a worker still finishing a segment writes into it. A
        # failure stops the pool: no segment starts any more; those in flight finish and are
        # staged for the next try.
        with (
            tempfile.TemporaryDirectory(prefix="camb-tts-") as spool,
            contextlib.closing(hook),
            stoppable_pool(self.max_concurrency, "camb-tts", self._stop) as pool,
        ):
            # Every segment of every text is queued up front, texts in order: the pool works on
            # the next texts while the finished ones are joined and written here.
            jobs: dict[str, Future[_SegmentAudio]] = {}
            for plan in plans:
                for segment in plan.segments:
                    # Two texts with the same segment (a repeated text, a shared preamble)
                    # pay for it once: the staged name is the segment's content key.
                    future = jobs.get(segment.staged.path)
                    plan.owns.append(future is None)
                    if future is None:
                        future = pool.submit(
                            self._make_segment, plan, segment, request, hook, s3_clients, spool
                        )
                        future.add_done_callback(self._stop_on_fatal(plan, segment))
                        jobs[segment.staged.path] = future
                    plan.futures.append(future)
            users = Counter(plan.staging.path for plan in plans)
            for plan in plans:
                try:
                    results[plan.name] = self._finish(plan, spool, s3_clients, users)
                    self._delivered(plan, results[plan.name], written=True)
                except _Retryable as err:
                    failed[plan.name] = str(err)
                    self.log.error("Text %r: not written: %s", plan.name, err)
        if failed:
            # Retryable: the finished segments are staged, so the next try pays only for the rest.
            raise AirflowException(
                f"{len(failed)} of {len(plans)} text(s) could not be synthesised: "
                + "; ".join(f"{name!r} ({reason})" for name, reason in failed.items())
                + f". {len(results)} other(s) were written; a retry reuses every finished segment."
            )
        return results

    def _make_segment(
        self,
        plan: _TextPlan,
        segment: _Segment,
        request: TTSStreamRequest,
        hook: CambHook,
        s3_clients: S3Clients,
        spool: str,
    ) -> _SegmentAudio:
        """Make one segment's audio available on local disk: from staging, or synthesised."""
        if self._stop is not None and self._stop.is_set():
            raise _Cancelled
        staged = segment.staged
        local_staging = is_local(staged)
        local = staged.path if local_staging else os.path.join(spool, f"{plan.staging.name}-{staged.name}")
        if existing_size(staged):
            if not local_staging:
                read_to_local_file(staged, local)
            return _SegmentAudio(local, None, reused=True)
        if local_staging:
            # Staging is local: synthesise beside the staged name and rename, no second copy.
            _make_folder(os.path.dirname(local))
            partial = f"{local}.{threading.get_ident()}.part"
        else:
            partial = local + ".part"
        try:
            info = hook.synthesize_to_file(request, segment.text, partial, plan.segment_format)
            os.replace(partial, local)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
        if not local_staging:
            write_file_atomically(local, staged, s3_clients)
        return _SegmentAudio(local, info.credits, reused=False)

    def _stop_on_fatal(self, plan: _TextPlan, segment: _Segment) -> Any:
        """A done-callback: a segment error no retry can fix stops every segment not yet started."""

        def check(future: Future[_SegmentAudio]) -> None:
            error = future.exception() if not future.cancelled() else None
            if error is None or isinstance(error, _Cancelled):
                return
            judged = self._judge(plan, segment, error)
            if isinstance(judged, AirflowFailException) and self._stop is not None:
                if self._fatal is None:
                    self._fatal = judged
                self._stop.set()

        return check

    def _judge(self, plan: _TextPlan, segment: _Segment, error: BaseException) -> Exception:
        """What a segment's error means for the task: fail now, or let a retry finish the text."""
        where = (
            f"text {plan.name!r}, segment {segment.index + 1} of {len(plan.segments)} "
            f"({len(segment.text)} characters, {preview(segment.text)})"
        )
        if isinstance(error, (CambAuthError, CambConnectionConfigError)):
            return AirflowFailException(str(error))
        if isinstance(error, CambAPIError) and error.status_code in REQUEST_REJECTED_STATUSES:
            return AirflowFailException(f"Camb.ai rejected {where}: {error}")
        return _Retryable(f"{where}: {error}")

    def _finish(
        self, plan: _TextPlan, spool: str, s3_clients: S3Clients, users: Counter[str]
    ) -> dict[str, Any]:
        """Wait for a text's segments, join them, write the file, drop its staging place.

        :param users: texts still to be written per staging place (identical texts share one).
        """
        total = len(plan.segments)
        audio: list[_SegmentAudio] = []
        for segment, future in zip(plan.segments, plan.futures, strict=True):
            try:
                audio.append(future.result())
            except _Cancelled:
                if self._fatal is not None:
                    raise self._fatal from None
                raise AirflowException("The task was stopped before every segment was synthesised.") from None
            except Exception as err:
                judged = self._judge(plan, segment, err)
                if isinstance(judged, AirflowFailException):
                    raise self._fatal or judged from err
                raise judged from err
        joined = os.path.join(
            spool, f"{plan.staging.name}.{plan.name.replace('/', '_')}.{plan.output_format}"
        )
        try:
            info = join_segments([part.local for part in audio], joined, plan.output_format)
        except AudioJoinError as err:
            # The API sent audio that cannot be joined (sample rates that differ, undecodable
            # bytes). A retry would meet the same staged audio, or pay again for the same
            # answer: fail for good, and clear the staging so a deliberate re-run starts afresh.
            remove_tree(plan.staging)
            raise AirflowFailException(f"text {plan.name!r}: the audio could not be joined: {err}") from err
        try:
            size = write_file_atomically(joined, plan.target, s3_clients)
        finally:
            os.remove(joined)
        users[plan.staging.path] -= 1
        if users[plan.staging.path] == 0:
            remove_tree(plan.staging)
            _remove_empty_staging_root(plan.staging)
            for part in audio:
                if not part.local.startswith(plan.staging.path):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(part.local)
        paid = [
            part.credits
            for part, owner in zip(audio, plan.owns, strict=True)
            if owner and part.credits is not None
        ]
        reused = sum(part.reused for part in audio)
        self.log.info(
            "%r: %s characters in %d segment(s)%s, %s credits, %.1f s of audio, %s bytes -> %s (text %s)",
            plan.name,
            f"{plan.characters:,}",
            total,
            f" ({reused} reused from an earlier try)" if reused else "",
            f"{sum(paid):g}" if paid else "no",
            info.duration_seconds,
            f"{size:,}",
            uri_of(plan.target),
            preview(plan.text),
        )
        return {
            "uri": uri_of(plan.target),
            "bytes": size,
            "duration_seconds": round(info.duration_seconds, 3),
            "segments": total,
            "characters": plan.characters,
            "credits": sum(paid) if paid else None,
        }

    def _describe_existing(self, plan: _TextPlan, size: int) -> dict[str, Any]:
        """The XCom entry of a file kept from an earlier run (read for its duration, not synthesised)."""
        self.log.info(
            "%r: %s already exists (%s bytes); kept, no API call.", plan.name, uri_of(plan.target), size
        )
        return {
            "uri": uri_of(plan.target),
            "bytes": size,
            "duration_seconds": _duration_of(plan.target),
            "segments": len(plan.segments),
            "characters": plan.characters,
            "credits": None,
        }

    # -- lineage and asset events -----------------------------------------------------------

    def _delivered(self, plan: _TextPlan, entry: dict[str, Any], *, written: bool) -> None:
        self._files.append(DeliveredFile(plan.name, entry["uri"], entry["bytes"], written, plan.target))

    def _tts_endpoint(self, hook: CambHook) -> str | None:
        """The URL the texts go to (``<API base URL>/tts-stream``), for lineage.

        Read in ``execute()``, not when OpenLineage asks: its listener may run in a forked
        process that must not talk to the task's supervisor.

        :param hook: the try's hook (its connection is read once, then kept).
        """
        try:
            return f"{hook.settings.base_url}/tts-stream"
        except Exception:
            # Lineage must never fail a task: a run that keeps every file needs no connection.
            return None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """Input: the Camb.ai endpoint (``https://<API host>`` + ``/<path>/tts-stream``); outputs:
        every file delivered, written or kept. ``None`` without the OpenLineage provider.

        :param task_instance: the finished task instance (unused: the operator kept its files).
        """
        return openlineage_facets(
            inputs=[url_dataset(self._api_endpoint)] if self._api_endpoint and self._files else [],
            outputs=(storage_dataset(item.path) for item in self._files),
        )


class _Retryable(Exception):
    """One text failed in a way a later try can fix (an outage, a broken join)."""


def _duration_of(path: ObjectStoragePath) -> float | None:
    """Seconds of audio in a local file kept from an earlier run; ``None`` on object stores (a
    re-run must not download what it keeps) or if the file cannot be read as audio."""
    if not is_local(path):
        return None
    try:
        return round(probe(path.path).duration_seconds, 3)
    except AudioJoinError:
        return None


def _remove_empty_staging_root(staging: ObjectStoragePath) -> None:
    """Drop ``.camb-staging`` itself once nothing is staged in it (local folders only)."""
    if is_local(staging):
        with contextlib.suppress(OSError):  # not empty: another task is staging there
            os.rmdir(os.path.dirname(staging.path))


def _make_folder(path: str, attempts: int = 5) -> None:
    """``os.makedirs`` that survives another task removing the empty staging root meanwhile."""
    for attempt in range(attempts):
        try:
            os.makedirs(path, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
