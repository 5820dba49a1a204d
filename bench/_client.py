"""One measured copy, in a fresh interpreter: ``python bench/_client.py '<spec JSON>'``.

Prints one JSON line: ``seconds`` (wall time of the copy only), ``peak_rss_growth`` (peak RSS
during the copy minus RSS just before it, in bytes) and ``bytes`` (what the client reports
having written). Imports and client set-up happen before the measurement, because a long-lived
worker pays them once, not per file.
"""

from __future__ import annotations

import cProfile
import gc
import json
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 1024 * 1024


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak we read afterwards
    # belongs to the copy alone and not to the imports before it.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _rss() -> int:
    return _status_bytes("VmRSS") or 0


def _peak(reset_ok: bool) -> int:
    hwm = _status_bytes("VmHWM") if reset_ok else None
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _TaskInstanceStub:
    """What ``execute`` uses of ``context["ti"]``: ``xcom_push``."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _warm_storage(uri: str, conn_id: str | None) -> None:
    """Import the filesystem and resolve the connection once, as a running worker already has."""
    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(uri, conn_id=conn_id)
    path.fs.ls(path.path.split("/")[0] if path.protocol == "s3" else "/")
    if path.protocol == "s3":
        # The operator's S3 sink uploads through boto3: pay botocore's one-off, per-process costs
        # (imports, endpoint data, first client) here, as the baseline does for its own client.
        # The operator still makes its own hook and client inside the timed run (~0.1 s).
        import boto3.s3.transfer  # noqa: F401

        from airflow_provider_camb.storage.sinks import S3Clients

        S3Clients().get(conn_id)


def prepare_operator(spec: dict[str, Any]) -> Callable[[], int]:
    from airflow_provider_camb.transfers.camb_to_storage import CambTTSToStorageOperator
    from airflow_provider_camb.utils.xcom_keys import FILE_SIZES

    conn_id = spec.get("conn_id")
    _warm_storage(spec["destination"], conn_id)
    # Absent from the spec: the operator's default.
    extra: dict[str, Any] = {}
    if "max_concurrency" in spec:
        extra["max_concurrency"] = int(spec["max_concurrency"])
    op = CambTTSToStorageOperator(
        task_id="bench",
        destination=spec["destination"],
        urls=spec["urls"],
        destination_conn_id=conn_id,
        # The default: each destination is checked (a stat / an S3 HEAD) before downloading.
        overwrite=False,
        **extra,
    )
    ti = _TaskInstanceStub()

    def action() -> int:
        result = op.execute(context=cast("Any", {"ti": ti}))
        if len(result) != len(spec["urls"]):
            raise RuntimeError(f"operator delivered {len(result)} of {len(spec['urls'])} files")
        return int(sum(ti.xcom[FILE_SIZES].values()))

    return action


def prepare_in_memory(spec: dict[str, Any]) -> Callable[[], int]:
    import requests

    def action() -> int:
        # What HttpToS3Operator does by default: the whole body as one bytes object.
        body = requests.get(spec["url"], timeout=60).content
        Path(spec["out"]).write_bytes(body)
        return len(body)

    return action


def prepare_sequential(spec: dict[str, Any]) -> Callable[[], int]:
    import requests

    out_dir = Path(spec["out_dir"])

    def action() -> int:
        total = 0
        for run_id, url in spec["urls"].items():
            # requests.get without a Session: a new TCP connection for every file.
            with requests.get(url, stream=True, timeout=60) as response:
                response.raise_for_status()
                with (out_dir / f"{run_id}.flac").open("wb") as file:
                    for chunk in response.iter_content(CHUNK):
                        total += file.write(chunk)
        return total

    return action


def prepare_plain_requests(spec: dict[str, Any]) -> Callable[[], int]:
    import requests

    session = requests.Session()

    def action() -> int:
        # The textbook streamed copy: what "as fast as a plain download" means for one file.
        total = 0
        with session.get(spec["url"], stream=True, timeout=60) as response:
            response.raise_for_status()
            with Path(spec["out"]).open("wb") as file:
                for chunk in response.iter_content(CHUNK):
                    total += file.write(chunk)
        return total

    return action


def _boto3_client(spec: dict[str, Any]) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=spec["endpoint_url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def prepare_boto3_upload_file(spec: dict[str, Any]) -> Callable[[], int]:
    client = _boto3_client(spec)
    client.list_objects_v2(Bucket=spec["bucket"], MaxKeys=1)  # connection and signer warmed up

    def action() -> int:
        client.upload_file(spec["src"], spec["bucket"], spec["key"])
        return Path(spec["src"]).stat().st_size

    return action


def prepare_http_to_s3(spec: dict[str, Any]) -> Callable[[], int]:
    from airflow.providers.amazon.aws.transfers.http_to_s3 import HttpToS3Operator

    _warm_storage(f"s3://{spec['bucket']}/", spec["conn_id"])
    op = HttpToS3Operator(
        task_id="bench",
        http_conn_id=spec["http_conn_id"],
        endpoint=spec["endpoint"],
        s3_bucket=spec["bucket"],
        s3_key=spec["key"],
        aws_conn_id=spec["conn_id"],
        replace=True,
    )
    # The boto3 client is built once per hook; a worker reusing it would not pay that per file.
    _ = op.s3_hook.conn

    def action() -> int:
        op.execute(context=cast("Any", {}))
        return int(spec["size"])

    return action


def prepare_file_transfer(spec: dict[str, Any]) -> Callable[[], int]:
    from airflow.providers.common.io.operators.file_transfer import FileTransferOperator

    _warm_storage(spec["dst"], spec["conn_id"])
    op = FileTransferOperator(
        task_id="bench", src=spec["src"], dst=spec["dst"], dest_conn_id=spec["conn_id"], overwrite=True
    )

    def action() -> int:
        op.execute(context=cast("Any", {}))
        return int(spec["size"])

    return action


PREPARE: dict[str, Callable[[dict[str, Any]], Callable[[], int]]] = {
    "operator": prepare_operator,
    "in_memory": prepare_in_memory,
    "sequential": prepare_sequential,
    "plain_requests": prepare_plain_requests,
    "boto3_upload_file": prepare_boto3_upload_file,
    "http_to_s3": prepare_http_to_s3,
    "file_transfer": prepare_file_transfer,
}


def measure(action: Callable[[], int], profile_path: str | None) -> dict[str, Any]:
    gc.collect()
    reset_ok = _reset_peak()
    before = _rss()
    profiler = cProfile.Profile() if profile_path else None
    start = time.perf_counter()
    written = profiler.runcall(action) if profiler is not None else action()
    seconds = time.perf_counter() - start
    peak = _peak(reset_ok)
    if profiler is not None and profile_path:
        profiler.dump_stats(profile_path)
    return {
        "seconds": seconds,
        "peak_rss_growth": max(0, peak - before),
        "rss_before": before,
        "bytes": written,
        "peak_reset": reset_ok,
    }


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    action = PREPARE[spec["kind"]](spec)
    if spec.get("unlink_before"):
        # The previous client's output goes only now, after our imports: its freed page-cache
        # memory is then what our copy writes into, for every client alike (see single_large_file).
        Path(spec["unlink_before"]).unlink(missing_ok=True)
    print(json.dumps(measure(action, spec.get("profile"))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
