"""What the operators that write audio report about their files: OpenLineage datasets and the
extra of their Asset outlets' events.

One place for both, so every operator names its files the same way. The OpenLineage classes are
imported only when OpenLineage asks for facets, so the provider works without the OpenLineage
provider installed. Nothing here ever sees an API key; URLs lose their query (where a signed URL
keeps its signature) and credentials before they are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import ObjectStoragePath

#: ``(namespace, name)`` of an OpenLineage dataset.
DatasetId = tuple[str, str]

#: The key of the asset event extra that lists the files.
FILES_KEY = "files"


@dataclass(frozen=True)
class DeliveredFile:
    """One file an operator delivered to its destination in this try.

    :param name: what the file is: the text's name, the run ID, or ``<run_id>/<field>``.
    :param uri: the file's URI as the operator's XCom has it (no connection ID, no query).
    :param size: its size in bytes.
    :param written: ``True`` if this try wrote it, ``False`` if it was there already and kept.
    :param path: where it is, for its OpenLineage name.
    """

    name: str
    uri: str
    size: int
    written: bool
    path: ObjectStoragePath = field(compare=False, repr=False)


# -- Asset events --------------------------------------------------------------------------


def asset_event_extra(files: Iterable[DeliveredFile]) -> dict[str, Any]:
    """The extra of an Asset outlet's event: every file of the try, kept ones included.

    ``{"files": [{"name", "uri", "bytes", "written"}, ...]}``, sorted by name, so a downstream
    DAG sees the complete set whether this try wrote a file or found it in place.
    """
    return {
        FILES_KEY: [
            {"name": item.name, "uri": item.uri, "bytes": int(item.size), "written": bool(item.written)}
            for item in sorted(files, key=lambda item: item.name)
        ]
    }


def attach_to_asset_outlets(
    context: Mapping[str, Any], outlets: Iterable[object], files: Iterable[DeliveredFile]
) -> int:
    """Put :func:`asset_event_extra` on the event of every ``Asset`` among ``outlets``.

    ``AssetAlias`` and other outlets are left alone: an alias has no event of its own until an
    asset is added to it, and which asset that would be is the DAG author's choice.

    :param context: the task's context (its ``outlet_events`` carry the extras to the event).
    :param outlets: the operator's ``outlets``.
    :param files: what the try delivered.
    :return: how many asset events got the extra.
    """
    from airflow.sdk import Asset

    assets = [outlet for outlet in outlets if isinstance(outlet, Asset)]
    # A plain dict context (execute() called outside the task runner) has no outlet events.
    events = context.get("outlet_events") if assets else None
    if events is None:
        return 0
    delivered = list(files)
    for asset in assets:
        events[asset].extra.update(asset_event_extra(delivered))
    return len(assets)


# -- OpenLineage -----------------------------------------------------------------------------


def url_dataset(url: str) -> DatasetId:
    """An HTTP(S) resource as a dataset: namespace ``scheme://host[:port]``, name its path.

    Credentials, the query (a signed URL's signature) and the fragment are dropped.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}", parts.path or "/"


def storage_dataset(path: ObjectStoragePath) -> DatasetId:
    """A file in storage named as OpenLineage's naming spec has it.

    ``file`` + absolute path, ``s3://bucket`` + key, ``gs://bucket`` + key,
    ``abfss://container@account.dfs.core.windows.net`` + path; any other scheme as
    ``ObjectStoragePath`` names it (``scheme://bucket`` + key).
    """
    protocol = path.protocol
    if protocol in ("", "file", "local"):
        return "file", path.path
    if protocol in ("gs", "gcs"):
        return f"gs://{path.bucket}", path.key
    if protocol in ("s3", "s3a"):
        return f"s3://{path.bucket}", path.key
    if protocol in ("abfs", "abfss"):
        # Airflow's abfs paths name only the container; the account comes from the connection.
        account = _azure_account(path)
        if account:
            return f"abfss://{path.bucket}@{account}.dfs.core.windows.net", path.key
    return path.namespace, path.key


def _azure_account(path: ObjectStoragePath) -> str | None:
    """The storage account of an ``abfs://`` path's filesystem, ``None`` if it cannot be told."""
    try:
        fs = path.fs  # built already: the operator wrote through this path
    except Exception:
        return None
    account = getattr(fs, "account_name", None) or getattr(
        getattr(fs, "service_client", None), "account_name", None
    )
    return account if isinstance(account, str) and account else None


def openlineage_facets(inputs: Iterable[DatasetId], outputs: Iterable[DatasetId]) -> OperatorLineage | None:
    """``OperatorLineage`` of the given datasets (each once, in order); ``None`` without OpenLineage.

    :param inputs: ``(namespace, name)`` of what was read.
    :param outputs: ``(namespace, name)`` of what was written.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return OperatorLineage(
        inputs=[Dataset(namespace=namespace, name=name) for namespace, name in dict.fromkeys(inputs)],
        outputs=[Dataset(namespace=namespace, name=name) for namespace, name in dict.fromkeys(outputs)],
    )
