"""The transfer benchmark scenarios: what runs, in which order, and the checks.

Each scenario measures its candidates side by side: in every repetition each candidate runs
once per file size, in an order rotated from one repetition to the next so that no candidate
always runs right after (say) a 1 GiB write still being flushed. Every measured client is a
fresh process (``_client.py``) or ``curl`` itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from _procs import ChildError, run_client, run_curl

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from _procs import ServerProcess

MiB = 2**20
BUCKET = "bench"
AWS_CONN_ID = "aws_bench"
HTTP_CONN_ID = "http_bench"
# Generous: a 1 GiB copy takes seconds; a stuck client must not stall the run forever.
CLIENT_TIMEOUT_SECONDS = 600.0


@dataclass
class Bench:
    """Everything a scenario needs: the servers, a scratch folder, the children's environment."""

    emulator: ServerProcess
    s3_endpoint: str
    work: Path
    logs: Path
    reps: int
    profile_dir: Path | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        aws = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": self.s3_endpoint, "region_name": "us-east-1"},
        }
        return {
            "AIRFLOW_HOME": str(self.work / "airflow_home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW_CONN_CAMB_DEFAULT": self.emulator.ready["conn"],
            "AIRFLOW_CONN_HTTP_BENCH": json.dumps(
                {"conn_type": "http", "host": self.emulator.ready["server_url"]}
            ),
            f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}": json.dumps(aws),
            # The operator logs progress; the children's stderr goes to a log file anyway.
            "PYTHONUNBUFFERED": "1",
        }

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def client(self, spec: dict[str, Any]) -> dict[str, Any]:
        if self.profile_dir is not None and spec["kind"] == "operator":
            name = f"{spec.get('label', 'operator')}.prof"
            spec = {**spec, "profile": str(self.profile_dir / name)}
        return run_client(spec, self.env, self.logs, CLIENT_TIMEOUT_SECONDS)

    def record(self, scenario: str, candidate: str, size: int, rep: int, result: dict[str, Any]) -> None:
        row = {"scenario": scenario, "candidate": candidate, "size": size, "rep": rep, **result}
        self.records.append(row)
        print(
            f"  {scenario:<11} rep {rep} {candidate:<18} {size / MiB:>7.0f} MiB "
            f"{result['seconds']:>8.3f} s  peak RSS growth {result['peak_rss_growth'] / MiB:>7.1f} MiB",
            flush=True,
        )


def _rotated(items: list[str], rep: int) -> list[str]:
    shift = rep % len(items)
    return items[shift:] + items[:shift]


def _settle() -> None:
    # Flush the previous candidate's dirty pages now, not during the next one's timing.
    os.sync()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ChildError(message)


# -- 1. one large file to file:// ------------------------------------------------------------

FILE_CANDIDATES = ["curl", "operator", "in_memory"]


def run_file_large(bench: Bench, sizes: list[int]) -> None:
    """One file per size to a local folder: the operator vs ``curl -o`` vs body-in-memory."""
    urls = {size: bench.emulator.call(op="add_runs", n=1, size=size)["urls"] for size in sizes}
    digests: dict[int, str] = {}
    for rep in range(bench.reps):
        for size in sizes:
            run_id, url = next(iter(urls[size].items()))
            for candidate in _rotated(FILE_CANDIDATES, rep):
                out_dir = bench.work / "file" / f"{candidate}-{size}-{rep}"
                out_dir.mkdir(parents=True)
                out = out_dir / f"{run_id}.flac"
                _settle()
                try:
                    if candidate == "curl":
                        result = run_curl(url, out, CLIENT_TIMEOUT_SECONDS)
                    elif candidate == "operator":
                        spec = {
                            "kind": "operator",
                            "destination": f"file://{out_dir}/",
                            "urls": urls[size],
                            "label": f"file-{size}-{rep}",
                        }
                        result = bench.client(spec)
                    else:
                        result = bench.client({"kind": "in_memory", "url": url, "out": str(out)})
                    _expect(out.stat().st_size == size, f"{candidate}: {out} is not {size} bytes")
                    if candidate == "operator" and size not in digests:
                        # Once per size: the bytes on disk are the bytes the emulator served.
                        digests[size] = bench.emulator.call(op="sha256", run_id=int(run_id))["sha256"]
                        _expect(
                            _sha256_file(out) == digests[size], f"operator: {out} differs from the source"
                        )
                finally:
                    shutil.rmtree(out_dir, ignore_errors=True)
                bench.record("file_large", candidate, size, rep, result)


# -- 2. many small files with a WAN-like first-byte latency ----------------------------------

MANY_CANDIDATES = ["sequential", "operator"]
LATENCY_SECONDS = 0.02


def run_many_small(bench: Bench, count: int, size: int, extra_concurrency: list[int]) -> None:
    """``count`` files of ``size`` bytes, each download delayed before its first byte."""
    urls = bench.emulator.call(op="add_runs", n=count, size=size)["urls"]
    bench.emulator.call(op="latency", seconds=LATENCY_SECONDS)
    candidates = MANY_CANDIDATES + [f"operator_c{n}" for n in extra_concurrency]
    try:
        for rep in range(bench.reps):
            for candidate in _rotated(candidates, rep):
                out_dir = bench.work / "many" / f"{candidate}-{rep}"
                out_dir.mkdir(parents=True)
                _settle()
                bench.emulator.call(op="downloads")  # reset the count
                try:
                    if candidate == "sequential":
                        result = bench.client({"kind": "sequential", "urls": urls, "out_dir": str(out_dir)})
                    else:
                        # "operator" runs at the default max_concurrency; "operator_c4" at 4.
                        spec = {
                            "kind": "operator",
                            "destination": f"file://{out_dir}/",
                            "urls": urls,
                            "label": f"many-{candidate}-{rep}",
                        }
                        if candidate != "operator":
                            spec["max_concurrency"] = int(candidate.removeprefix("operator_c"))
                        result = bench.client(spec)
                    files = list(out_dir.iterdir())
                    _expect(len(files) == count, f"{candidate}: {len(files)} of {count} files")
                    _expect(
                        all(f.stat().st_size == size for f in files),
                        f"{candidate}: a file has the wrong size",
                    )
                    served = bench.emulator.call(op="downloads")["downloads"]
                    _expect(
                        served == count, f"{candidate}: the emulator served {served} downloads, not {count}"
                    )
                finally:
                    shutil.rmtree(out_dir, ignore_errors=True)
                bench.record("many_small", candidate, count * size, rep, result)
    finally:
        bench.emulator.call(op="clear_faults")


# -- 3. one file to s3:// on moto --------------------------------------------------------------

S3_CANDIDATES = ["boto3_upload_file", "operator", "http_to_s3", "file_transfer"]


def _s3_object_sha256(s3: Any, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=BUCKET, Key=key)["Body"].iter_chunks(4 * MiB):
        digest.update(chunk)
    return digest.hexdigest()


def run_s3(bench: Bench, sizes: list[int]) -> None:
    """One file per size to moto: the operator vs boto3 ``upload_file`` from local disk and the
    two stock Airflow operators (``HttpToS3Operator``, ``FileTransferOperator`` from local disk).
    """
    s3 = bench.s3()
    s3.create_bucket(Bucket=BUCKET)
    urls = {size: bench.emulator.call(op="add_runs", n=1, size=size)["urls"] for size in sizes}
    # The same bytes on local disk, for the baselines that upload a file.
    sources: dict[int, Path] = {}
    for size in sizes:
        sources[size] = bench.work / f"source-{size}.flac"
        run_curl(next(iter(urls[size].values())), sources[size], CLIENT_TIMEOUT_SECONDS)
    checked: set[int] = set()
    for rep in range(bench.reps):
        for size in sizes:
            run_id, url = next(iter(urls[size].items()))
            prefix = f"r{rep}/{size}"
            for candidate in _rotated(S3_CANDIDATES, rep):
                key = f"{prefix}/{candidate}/{run_id}.flac"
                spec = _s3_spec(bench, candidate, key, url, sources[size], size, f"s3-{size}-{rep}")
                _settle()
                try:
                    result = bench.client(spec)
                    head = s3.head_object(Bucket=BUCKET, Key=key)
                    _expect(
                        head["ContentLength"] == size, f"{candidate}: s3://{BUCKET}/{key} is not {size} bytes"
                    )
                    if candidate == "operator" and size not in checked:
                        expected = bench.emulator.call(op="sha256", run_id=int(run_id))["sha256"]
                        _expect(
                            _s3_object_sha256(s3, key) == expected, f"operator: {key} differs from the source"
                        )
                        checked.add(size)
                finally:
                    # moto keeps objects in memory or its temp files: drop them at once.
                    s3.delete_object(Bucket=BUCKET, Key=key)
                bench.record("s3", candidate, size, rep, result)
    for path in sources.values():
        path.unlink(missing_ok=True)


def _s3_spec(
    bench: Bench, candidate: str, key: str, url: str, source: Path, size: int, label: str
) -> dict[str, Any]:
    run_id = key.rsplit("/", 1)[1].split(".")[0]
    folder = key.rsplit("/", 1)[0]
    makers: dict[str, Callable[[], dict[str, Any]]] = {
        "boto3_upload_file": lambda: {
            "kind": "boto3_upload_file",
            "src": str(source),
            "bucket": BUCKET,
            "key": key,
            "endpoint_url": bench.s3_endpoint,
        },
        "operator": lambda: {
            "kind": "operator",
            "destination": f"s3://{BUCKET}/{folder}/",
            "urls": {run_id: url},
            "conn_id": AWS_CONN_ID,
            "label": label,
        },
        "http_to_s3": lambda: {
            "kind": "http_to_s3",
            "endpoint": urlsplit(url).path + "?" + urlsplit(url).query,
            "http_conn_id": HTTP_CONN_ID,
            "bucket": BUCKET,
            "key": key,
            "conn_id": AWS_CONN_ID,
            "size": size,
        },
        "file_transfer": lambda: {
            "kind": "file_transfer",
            "src": f"file://{source}",
            "dst": f"s3://{BUCKET}/{key}",
            "conn_id": AWS_CONN_ID,
            "size": size,
        },
    }
    return makers[candidate]()


# -- 4. one large file from a sendfile server: the operator vs a plain streamed copy -----------

SINGLE_CANDIDATES = ["curl", "plain_requests", "operator"]
SINGLE_RUN_ID = "1001"


def run_single_large_file(bench: Bench, static: ServerProcess, size: int, reps: int) -> None:
    """One file of ``size`` bytes from ``bench/_serve_static.py`` (``sendfile``, not the emulator)
    to a local folder: ``curl -o``, a plain ``requests`` ``iter_content(1 MiB)`` copy and the
    operator (``CambTTSToStorageOperator.execute`` with ``urls=``), ``reps`` times, interleaved.

    Every client deletes the previous client's file itself, right before its timed copy (curl:
    the harness, just before starting it). This VM hands freed memory back to its host about two
    seconds after it is freed, and writing into such memory again costs a host page fault per
    4 KiB page (about 1 s of system time per 512 MiB). Deleting the previous file earlier would
    make the result depend on how long a client takes to start (the operator's process imports
    Airflow for about 3 s, ``requests`` alone for 0.3 s), not on how it copies.
    """
    source_dir = bench.work / "static"
    source_dir.mkdir(parents=True, exist_ok=True)
    served = static.call(op="add_file", path=str(source_dir / f"single-{size}.flac"), size=size)
    url, digest = served["url"], served["sha256"]
    previous: Path | None = None
    checked = False
    for rep in range(reps):
        for candidate in _rotated(SINGLE_CANDIDATES, rep):
            out_dir = bench.work / "single" / f"{candidate}-{rep}"
            out_dir.mkdir(parents=True)
            out = out_dir / f"{SINGLE_RUN_ID}.flac"
            _settle()
            if candidate == "curl":
                if previous is not None:
                    previous.unlink(missing_ok=True)
                result = run_curl(url, out, CLIENT_TIMEOUT_SECONDS)
            else:
                spec: dict[str, Any] = {"kind": candidate, "unlink_before": str(previous or "")}
                if candidate == "operator":
                    spec.update(
                        destination=f"file://{out_dir}/", urls={SINGLE_RUN_ID: url}, label=f"single-{rep}"
                    )
                else:
                    spec.update(url=url, out=str(out))
                result = bench.client(spec)
            if previous is not None:
                previous.parent.rmdir()
            _expect(out.stat().st_size == size, f"{candidate}: {out} is not {size} bytes")
            if candidate == "operator":
                # No temporary file left behind: the rename is the only way the file appears.
                _expect(list(out_dir.iterdir()) == [out], f"operator: stray files in {out_dir}")
                if not checked:
                    _expect(_sha256_file(out) == digest, f"operator: {out} differs from the source")
                    checked = True
            previous = out
            bench.record("single_large_file", candidate, size, rep, result)
    if previous is not None:
        shutil.rmtree(previous.parent, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - a library module
    sys.exit("run bench/run_all.py")
