"""CambTTSToStorageOperator: stream Camb.ai TTS audio into any storage ObjectStoragePath knows."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, ObjectStoragePath
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_camb.exceptions import (
    CambAuthError,
    CambConnectionConfigError,
    CambRunsMissingError,
    describe_missing,
)
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.hooks.result_kinds import result_kind as result_kind_of
from airflow_provider_camb.hooks.result_values import result_urls
from airflow_provider_camb.storage.destination import InvalidDestinationError, resolve_destination, uri_of
from airflow_provider_camb.storage.lineage import (
    DeliveredFile,
    attach_to_asset_outlets,
    openlineage_facets,
    storage_dataset,
    url_dataset,
)
from airflow_provider_camb.storage.naming import (
    DEFAULT_FIELD_FILENAME_TEMPLATE,
    DEFAULT_FILENAME_TEMPLATE,
    choose_ext,
    ext_from_url,
    is_inside,
    render_field_filename,
    render_filename,
    validate_filename_template,
)
from airflow_provider_camb.storage.sinks import (
    S3_UPLOAD_CONCURRENCY,
    S3Clients,
    ensure_folder,
    existing_size,
    open_atomic,
)
from airflow_provider_camb.transfers._download import (
    Downloader,
    PermanentDownloadError,
    Recovery,
    ResponseInfo,
    RetrySettings,
    TransferCancelledError,
    TransientDownloadError,
    describe_error,
    is_expired,
)
from airflow_provider_camb.transfers._inputs import (
    InvalidTransferInputError,
    check_download_url,
    parse_result_urls,
    parse_urls,
)
from airflow_provider_camb.transfers._progress import ProgressReporter
from airflow_provider_camb.transfers._refresh import UNUSABLE_URL, BatchedUrlRefresher, kind_fetcher
from airflow_provider_camb.utils.redaction import redact_url
from airflow_provider_camb.utils.run_ids import InvalidRunIdsError, normalise_run_ids
from airflow_provider_camb.utils.threads import stoppable_pool
from airflow_provider_camb.utils.xcom_keys import FILE_SIZES, MISSING_RUN_IDS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_camb.storage.sinks import AtomicSink


#: Files in flight by default: 8 keeps a 20 ms first-byte latency from dominating many small
#: files (4 workers capped the speed-up at 4x), and stays below requests' and boto3's pool of 10.
DEFAULT_MAX_CONCURRENCY = 8

#: What one file is keyed by: its run ID for TTS, ``(run ID, field)`` for the other kinds.
FileKey = Any


def _run_of(key: FileKey) -> int:
    return key[0] if isinstance(key, tuple) else int(key)


def _label(key: FileKey) -> str:
    return f"Run {key[0]} {key[1]}" if isinstance(key, tuple) else f"Run {key}"


def _file_name(key: FileKey) -> str:
    """A file's name in asset events: ``"1001"``, or ``"1001/video_url"`` for the other kinds."""
    return f"{key[0]}/{key[1]}" if isinstance(key, tuple) else str(key)


def _by_run(reasons: dict[FileKey, str]) -> dict[int, str]:
    """File reasons as run reasons (``"video_url: <reason>; ..."`` when a run has several files)."""
    merged: dict[int, list[str]] = {}
    for key, reason in reasons.items():
        merged.setdefault(_run_of(key), []).append(
            f"{key[1]}: {reason}" if isinstance(key, tuple) else reason
        )
    return {run_id: "; ".join(parts) for run_id, parts in merged.items()}


@dataclass(frozen=True)
class _Delivered:
    uri: str
    size: int
    path: ObjectStoragePath
    source_url: str
    skipped: bool


class CambTTSToStorageOperator(BaseOperator):
    """Stream the audio of finished Camb.ai TTS runs into a folder on any storage backend.

    Each file is streamed from its signed URL into ``ObjectStoragePath`` in bounded memory, up to
    ``max_concurrency`` at a time over one pooled HTTP session that never carries the API key.
    A file appears at its final path whole or not at all; broken, short, rate-limited and 5xx
    downloads are retried, and URLs the storage host refuses (expired, 400/403) are refreshed
    through the API. See the how-to guide for the guarantees per backend.

    On success, the event of every ``Asset`` in ``outlets`` gets the extra
    ``{"files": [{"name", "uri", "bytes", "written"}, ...]}``: every file delivered, sorted by
    name (the run ID, or ``<run_id>/<field>`` for kinds other than ``tts``), ``written=False``
    for a file that was already there and kept. ``AssetAlias`` outlets get nothing.

    :param destination: the folder, as a URI (``s3://bucket/prefix/``, ``gs://...``,
        ``file:///abs/dir/``; a plain absolute path means ``file://``) or an ``ObjectStoragePath``.
        Created if missing. (templated)
    :param run_ids: Camb.ai run IDs; fresh URLs are fetched through the API right before
        downloading. Exactly one of ``run_ids`` and ``urls``. (templated)
    :param urls: ``{"<run_id>": "<url>"}``, e.g. the output of ``CambBulkTTSResultsOperator``
        (a list of such maps, or their rendered string, also works). (templated)
    :param camb_conn_id: the Camb.ai connection, used to fetch and refresh URLs.
    :param destination_conn_id: the storage connection (e.g. an AWS connection for ``s3://``).
        (templated)
    :param filename_template: the file name inside ``destination``; only ``{run_id}`` and
        ``{ext}`` (from the URL path or ``Content-Type``, ``flac`` when unknown), plus ``{field}``
        (required) for kinds other than ``tts``; ``/`` makes sub-folders. Default
        ``{run_id}.{ext}`` for ``tts``, ``{run_id}_{field}.{ext}`` for the others.
    :param result_kind: the runs' kind: ``tts`` (default), ``dubbing``, ``text_to_sound``,
        ``audio_separation`` or ``stories`` (``translation`` and ``transcription`` have no files).
        For a kind other than ``tts`` every URL a result carries is copied (``result_urls``
        names them: ``audio_url``, ``video_url``, ``<lang>_audio_url``, ``foreground_audio_url``...),
        and ``urls`` takes ``CambBulkResultsOperator``'s output ``{"<run_id>": <result>}``.
    :param overwrite: ``False`` (default) skips a file that already exists with the size the
        storage host reports, without downloading it; ``True`` always downloads and replaces.
    :param max_concurrency: files in flight at once (default 8). Downloads mostly wait on the
        network (the first byte of a signed URL is a round trip to the storage host), so more
        files than cores pays off; each file in flight holds one 1 MiB chunk (plus, on ``s3://``,
        up to two 8 MiB parts being uploaded).
    :param fail_on_missing: ``True`` (default) fails the task (honouring its ``retries``: a run
        that has not finished yet may be served later) when the API cannot serve some run IDs,
        after delivering the others; ``False`` logs a warning and
        returns what was delivered. Downloads that fail after all retries always fail the task.
    :return: ``{"<run_id>": "<destination URI>"}`` (for kinds other than ``tts``:
        ``{"<run_id>": {"<field>": "<destination URI>"}}``); sizes go to XCom key
        ``camb_file_sizes``, in the same shape.
    """

    template_fields: Sequence[str] = ("destination", "destination_conn_id", "run_ids", "urls")
    ui_color = "#e8f3fc"

    #: Retry and refresh budgets per file (a class attribute so tests and subclasses can tune it).
    retry_settings = RetrySettings()
    #: Seconds between two progress lines in the task log.
    progress_interval = 5.0

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        run_ids: Any = None,
        urls: Any = None,
        camb_conn_id: str = CambHook.default_conn_name,
        destination_conn_id: str | None = None,
        filename_template: str | None = None,
        overwrite: bool = False,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        fail_on_missing: bool = True,
        result_kind: str = "tts",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        kind = result_kind_of(result_kind)
        if not kind.url_fields:
            raise ValueError(
                f"CambTTSToStorageOperator copies files, and {kind.name} results have none (they are "
                "text): use CambBulkResultsOperator to fetch them. result_kind must be one of tts, "
                "dubbing, text_to_sound, audio_separation, stories."
            )
        if (run_ids is None) == (urls is None):
            raise ValueError(
                "CambTTSToStorageOperator needs exactly one of run_ids (the operator fetches the URLs) "
                "or urls (a {'<run_id>': '<url>'} map such as CambBulkTTSResultsOperator's output); "
                f"got {'both' if run_ids is not None else 'neither'}."
            )
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        self.destination = destination
        self.run_ids = run_ids
        self.urls = urls
        self.camb_conn_id = camb_conn_id
        self.destination_conn_id = destination_conn_id
        self.result_kind = kind.name
        if kind.name == "tts":
            self.filename_template = validate_filename_template(
                DEFAULT_FILENAME_TEMPLATE if filename_template is None else filename_template
            )
        else:
            self.filename_template = validate_filename_template(
                DEFAULT_FIELD_FILENAME_TEMPLATE if filename_template is None else filename_template,
                extra_fields=("field",),
            )
        self.overwrite = overwrite
        self.max_concurrency = max_concurrency
        self.fail_on_missing = fail_on_missing
        # Run state, made in execute(): a lock or an event here would break the deep copies
        # Airflow makes of tasks (clearing, partial_subset) before any of them runs.
        self._hook: CambHook | None = None
        self._stop: threading.Event | None = None
        self._refresher: BatchedUrlRefresher | None = None
        self._delivered: dict[FileKey, _Delivered] = {}

    # -- execute ----------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        self._stop = threading.Event()
        self._refresher = BatchedUrlRefresher(
            kind_fetcher(lambda: self.hook, result_kind_of(self.result_kind))
        )
        self._delivered = {}
        try:
            return self._execute(context)
        finally:
            if self._hook is not None:
                self._hook.close()

    def _execute(self, context: Context) -> dict[str, Any]:
        folder = self._destination_folder()
        urls, missing, failed = self._resolve_urls()
        urls = self._refresh_expired(urls, missing, failed)
        if urls:
            ensure_folder(folder)
            self.log.info(
                "Transferring %d Camb.ai audio files to %s, up to %d at a time (overwrite=%s).",
                len(urls),
                uri_of(folder),
                min(self.max_concurrency, len(urls)),
                self.overwrite,
            )
            failed.update(self._transfer_all(folder, urls, missing))
        delivered = self._delivered
        sizes: dict[str, Any] = {}
        result: dict[str, Any] = {}
        for key, item in delivered.items():
            if isinstance(key, tuple):
                sizes.setdefault(str(key[0]), {})[key[1]] = item.size
                result.setdefault(str(key[0]), {})[key[1]] = item.uri
            else:
                sizes[str(key)] = item.size
                result[str(key)] = item.uri
        ti = context["ti"]
        ti.xcom_push(key=FILE_SIZES, value=sizes)
        # Files of other kinds fail one by one; XCom and messages speak of runs.
        failed_files = len(failed)
        what = "audio files" if self.result_kind == "tts" else f"{self.result_kind} files"
        failed = _by_run(failed)
        undelivered = {**missing, **failed}
        if undelivered:
            ti.xcom_push(key=MISSING_RUN_IDS, value={str(k): v for k, v in undelivered.items()})
        if failed:
            # Retryable: a re-run (overwrite=False) copies only what is still missing.
            raise AirflowException(
                f"{failed_files} of {failed_files + len(missing) + len(delivered)} Camb.ai {what} could not "
                f"be transferred to {uri_of(folder)}: {describe_missing(failed)}"
                + (f". Not served by Camb.ai: {describe_missing(missing)}" if missing else "")
            )
        if missing:
            message = (
                f"Camb.ai served no audio for {len(missing)} of {len(missing) + len(result)} run IDs: "
                f"{describe_missing(missing)}"
            )
            if self.fail_on_missing:
                # Retryable, like the bulk operator: the API answers the same for a run that does
                # not exist and one that has not finished yet, and the second appears later.
                raise AirflowException(
                    f"{message}. The {len(result)} others were transferred (XCom {FILE_SIZES!r})."
                )
            self.log.warning("%s. Returning the %d files that were transferred.", message, len(delivered))
        attach_to_asset_outlets(context, self.outlets, self._delivered_files())
        return result

    def on_kill(self) -> None:
        # Every download thread sees it at its next chunk or during a backoff wait, aborts its
        # file (nothing is committed) and stops.
        if self._stop is not None:
            self._stop.set()

    # -- inputs -----------------------------------------------------------------------------

    def _destination_folder(self) -> ObjectStoragePath:
        try:
            return resolve_destination(self.destination, self.destination_conn_id)
        except InvalidDestinationError as err:
            raise AirflowFailException(str(err)) from None

    def _resolve_urls(self) -> tuple[dict[FileKey, str], dict[int, str | None], dict[FileKey, str]]:
        """``(urls, missing, failed)``; invalid input fails here, before any download.

        Keyed by run ID for TTS (one file per run), by ``(run ID, field)`` for the other kinds,
        whose results carry every URL ``result_urls`` names.
        """
        kind = result_kind_of(self.result_kind)
        missing: dict[int, str | None] = {}
        failed: dict[FileKey, str] = {}
        if self.urls is not None:
            try:
                urls: dict[FileKey, str] = dict(
                    parse_urls(self.urls) if kind.name == "tts" else parse_result_urls(self.urls, kind)
                )
            except InvalidTransferInputError as err:
                raise AirflowFailException(str(err)) from None
            if not urls:
                self.log.warning("urls is empty: nothing to transfer.")
            return urls, missing, failed
        try:
            run_ids = normalise_run_ids(self.run_ids)
        except InvalidRunIdsError as err:
            raise AirflowFailException(str(err)) from None
        try:
            answer = self.hook.fetch_bulk_results(kind, run_ids)
            results, missing = answer.found, dict(answer.missing)
        except (CambAuthError, CambConnectionConfigError) as err:
            # A rejected key or a connection without one stays wrong however often we retry.
            raise AirflowFailException(str(err)) from err
        urls = {}
        for run_id, value in results.items():
            fields = result_urls(kind, value)
            if not fields:
                missing[run_id] = f"its {kind.name} result has no URL"
            for field, url in fields.items():
                key: FileKey = run_id if kind.name == "tts" else (run_id, field)
                try:
                    urls[key] = check_download_url(url)
                except InvalidTransferInputError as err:
                    failed[key] = f"Camb.ai returned an unusable URL: {err}"
        return urls, missing, failed

    def _refresh_expired(
        self, urls: dict[FileKey, str], missing: dict[int, str | None], failed: dict[FileKey, str]
    ) -> dict[FileKey, str]:
        """Replace every URL that has expired already, in ``ceil(k / 5)`` bulk calls for ``k``."""
        expired = [run_id for run_id, url in urls.items() if is_expired(url)]
        if not expired:
            return urls
        self.log.info("%d signed URLs have expired; asking Camb.ai for fresh ones.", len(expired))
        assert self._refresher is not None
        fresh, lost = self._refresher.refresh_many(expired)
        for run_id in expired:
            if run_id in fresh:
                urls[run_id] = fresh[run_id]
                continue
            del urls[run_id]
            reason = lost.get(run_id)
            if isinstance(reason, str) and reason.startswith(UNUSABLE_URL):
                failed[run_id] = reason
            else:
                missing[_run_of(run_id)] = reason
        return urls

    @property
    def hook(self) -> CambHook:
        if self._hook is None:
            self._hook = CambHook(camb_conn_id=self.camb_conn_id)
        return self._hook

    # -- transfer ---------------------------------------------------------------------------

    def _transfer_all(
        self, folder: ObjectStoragePath, urls: dict[FileKey, str], missing: dict[int, str | None]
    ) -> dict[FileKey, str]:
        failed: dict[FileKey, str] = {}
        progress = ProgressReporter(len(urls), self.log.info, interval=self.progress_interval)
        workers = min(self.max_concurrency, len(urls))
        # One HTTP connection per worker; on S3 each worker uploads up to two parts at once.
        downloader = Downloader(pool_size=workers)
        s3_clients = S3Clients(max_connections=workers * S3_UPLOAD_CONCURRENCY)
        recovery = Recovery(self.retry_settings, self.log, self._stop)
        # A failure (the task killed or timed out) stops the pool: every thread aborts its file.
        with (
            contextlib.closing(downloader),
            stoppable_pool(workers, "camb-transfer", self._stop) as executor,
        ):
            futures = {
                executor.submit(
                    self._transfer_one, run_id, url, folder, downloader, s3_clients, recovery, progress
                ): run_id
                for run_id, url in urls.items()
            }
            for future in as_completed(futures):
                run_id = futures[future]
                try:
                    self._delivered[run_id] = future.result()
                except CambRunsMissingError as err:
                    missing.update(err.missing or {_run_of(run_id): None})
                except (TransientDownloadError, PermanentDownloadError) as err:
                    failed[run_id] = str(err)
                except TransferCancelledError:
                    failed[run_id] = "cancelled"
                except Exception as err:
                    failed[run_id] = describe_error(err)
                else:
                    progress.file_done(skipped=self._delivered[run_id].skipped)
                    continue
                self.log.error(
                    "%s: not transferred: %s", _label(run_id), failed.get(run_id) or missing[_run_of(run_id)]
                )
        # Keep the input order in the XComs, whatever order the threads finished in.
        self._delivered = {run_id: self._delivered[run_id] for run_id in urls if run_id in self._delivered}
        self.log.info("Done: %s.", progress.summary())
        return failed

    def _transfer_one(
        self,
        run_id: FileKey,
        url: str,
        folder: ObjectStoragePath,
        downloader: Downloader,
        s3_clients: S3Clients,
        recovery: Recovery,
        progress: ProgressReporter,
    ) -> _Delivered:
        label = _label(run_id)
        # Targets by extension: the existence check and the download usually agree on the
        # extension, and building an ObjectStoragePath costs more than the dict lookup.
        built: dict[str, ObjectStoragePath] = {}

        def target_for(ext: str) -> ObjectStoragePath:
            target = built.get(ext)
            if target is None:
                target = built[ext] = self._target(folder, run_id, ext)
            return target

        def refresh() -> str:
            return self._refresh_url(run_id)

        if not self.overwrite:
            head: ResponseInfo | None = None
            ext = ext_from_url(url)
            if ext is None:
                first, url = recovery.run(label, url, downloader.probe, refresh)
                head = first
                ext = choose_ext(url, first.content_type)
            target = target_for(ext)
            have = existing_size(target)
            if have is not None:
                if head is None:
                    later, url = recovery.run(label, url, downloader.probe, refresh)
                    head = later
                expected = head.size
                if expected == have:
                    # DEBUG: the final summary counts the files already there, the XCom names them.
                    self.log.debug("%s: %s already holds all %d bytes; skipped.", label, uri_of(target), have)
                    return _Delivered(uri_of(target), have, target, url, skipped=True)
                self.log.info(
                    "%s: %s holds %d bytes, the storage host has %s: replacing it.",
                    label,
                    uri_of(target),
                    have,
                    expected if expected is not None else "an unknown size",
                )

        targets: list[ObjectStoragePath] = []

        stop = self._stop

        def on_bytes(count: int) -> None:
            if stop is not None and stop.is_set():
                raise TransferCancelledError
            progress.add_bytes(count)

        def download(current_url: str) -> ResponseInfo:
            def open_sink(info: ResponseInfo) -> AtomicSink:
                target = target_for(choose_ext(current_url, info.content_type))
                targets.append(target)
                return open_atomic(target, s3_clients)

            return downloader.download(current_url, open_sink, on_bytes)

        info, url = recovery.run(label, url, download, refresh)
        target = targets[-1]
        # DEBUG, not INFO: with many files a line each drowns the log (and costs ~2 ms under
        # contention); the progress lines and the summary count them, the XCom maps each run to
        # its file, and retries and failures are still logged as warnings and errors.
        self.log.debug(
            "%s: %d bytes from %s written to %s.", label, info.size, redact_url(url), uri_of(target)
        )
        return _Delivered(uri_of(target), int(info.size or 0), target, url, skipped=False)

    def _refresh_url(self, run_id: FileKey) -> str:
        # Threads that need a fresh URL at the same moment share bulk calls (ceil(k / 5) for k).
        assert self._refresher is not None
        return self._refresher.refresh(run_id)

    def _target(self, folder: ObjectStoragePath, run_id: FileKey, ext: str) -> ObjectStoragePath:
        if isinstance(run_id, tuple):
            name = render_field_filename(self.filename_template, run_id[0], run_id[1], ext)
        else:
            name = render_filename(self.filename_template, run_id, ext)
        target = folder / name
        if not is_inside(folder.path, target.path):
            raise PermanentDownloadError(f"file name {name!r} would land outside {uri_of(folder)}")
        return target

    # -- lineage and asset events -----------------------------------------------------------

    def _delivered_files(self) -> list[DeliveredFile]:
        return [
            DeliveredFile(_file_name(key), item.uri, item.size, not item.skipped, item.path)
            for key, item in self._delivered.items()
        ]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """Inputs: the storage URLs the files came from (without their signed query); outputs:
        every file delivered, written or kept. ``None`` without the OpenLineage provider.

        :param task_instance: the finished task instance (unused: the operator kept its files).
        """
        return openlineage_facets(
            inputs=(url_dataset(item.source_url) for item in self._delivered.values()),
            outputs=(storage_dataset(item.path) for item in self._delivered.values()),
        )
