"""``camb-emulator``: run the local Camb.ai API emulator from a shell.

Prints the base URL and a ready ``export AIRFLOW_CONN_CAMB_DEFAULT=...`` line, optionally seeds
demo tasks and runs, and serves until Ctrl-C or SIGTERM (then exits 0).
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from airflow_provider_camb.hooks.result_kinds import result_kind
from airflow_provider_camb.testing._kinds import VALUE_SHAPES
from airflow_provider_camb.testing.emulator import ENDPOINTS, KINDS, CambEmulator

if TYPE_CHECKING:
    from collections.abc import Sequence


def _fault(spec: str) -> tuple[str, int, int, float | None]:
    # ENDPOINT:STATUS[:COUNT[:RETRY_AFTER]]
    parts = spec.split(":")
    if not 2 <= len(parts) <= 4:
        raise argparse.ArgumentTypeError("expected ENDPOINT:STATUS[:COUNT[:RETRY_AFTER]]")
    try:
        count = int(parts[2]) if len(parts) > 2 else 1
        retry_after = float(parts[3]) if len(parts) > 3 else None
        return parts[0], int(parts[1]), count, retry_after
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _latency(spec: str) -> tuple[str, float, int | None]:
    # ENDPOINT:SECONDS[:COUNT]
    parts = spec.split(":")
    if not 2 <= len(parts) <= 3:
        raise argparse.ArgumentTypeError("expected ENDPOINT:SECONDS[:COUNT]")
    try:
        return parts[0], float(parts[1]), int(parts[2]) if len(parts) > 2 else None
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _seed(spec: str) -> tuple[str, int]:
    # KIND:COUNT
    kind, sep, count = spec.rpartition(":")
    try:
        if not sep:
            raise ValueError("expected KIND:COUNT")
        number = int(count)
        if number < 1:
            raise ValueError(f"COUNT must be at least 1, not {number}")
        return result_kind(kind).name, number
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (exposed for documentation tools)."""
    parser = argparse.ArgumentParser(
        prog="camb-emulator",
        description="Serve a local Camb.ai TTS API emulator on 127.0.0.1.",
        epilog=f"Endpoint names for --fail/--latency: {', '.join(ENDPOINTS)}, or '*'.",
    )
    parser.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--api-key", default="test-api-key", help="key clients must send as x-api-key")
    parser.add_argument("--seed-demo", type=int, default=0, metavar="N", help="create N demo TTS tasks")
    parser.add_argument(
        "--pending-polls",
        type=int,
        default=0,
        metavar="K",
        help="polls answering PENDING before SUCCESS (seeded tasks and tasks created via POST /tts)",
    )
    parser.add_argument("--size-bytes", type=int, default=None, help="exact size of each seeded audio file")
    parser.add_argument("--audio-format", choices=("flac", "wav"), default="flac")
    parser.add_argument("--url-ttl", type=float, default=3600.0, help="signed URL lifetime in seconds")
    parser.add_argument("--bulk-missing", choices=("omit", "reject"), default="omit")
    parser.add_argument("--bulk-value-shape", choices=("url", "object"), default="url")
    parser.add_argument("--unknown-task-status", type=int, choices=(404, 422), default=404)
    for name, choices in VALUE_SHAPES.items():
        parser.add_argument("--" + name.replace("_", "-"), choices=choices, default=choices[0])
    parser.add_argument(
        "--control",
        action="store_true",
        help="serve the control API under /_emulator/ on the same port (seed, faults, journal, settings)",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        action="append",
        default=[],
        metavar="KIND:COUNT",
        help=f"create COUNT tasks of KIND ({', '.join(KINDS)}) and print their IDs as JSON (repeatable)",
    )
    parser.add_argument(
        "--fail",
        type=_fault,
        action="append",
        default=[],
        metavar="ENDPOINT:STATUS[:COUNT[:RETRY_AFTER]]",
        help="fail the first COUNT requests to ENDPOINT (repeatable)",
    )
    parser.add_argument(
        "--latency",
        type=_latency,
        action="append",
        default=[],
        metavar="ENDPOINT:SECONDS[:COUNT]",
        help="delay requests to ENDPOINT; 'download' delays before the first byte (repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted.

    :param argv: arguments without the program name; ``sys.argv[1:]`` when ``None``.
    :return: the process exit code.
    """
    args = build_parser().parse_args(argv)
    try:
        emu = CambEmulator(api_key=args.api_key, port=args.port, host=args.host, control=args.control)
    except ValueError as err:
        print(f"camb-emulator: {err}", file=sys.stderr)
        return 2
    emu.url_ttl = args.url_ttl
    emu.bulk_missing = args.bulk_missing
    emu.bulk_value_shape = args.bulk_value_shape
    emu.unknown_task_status = args.unknown_task_status
    emu.default_pending_polls = args.pending_polls
    for name in VALUE_SHAPES:
        setattr(emu, name, getattr(args, name))
    try:
        for endpoint, status, count, retry_after in args.fail:
            emu.fail_next(endpoint, count=count, status=status, retry_after=retry_after)
        for endpoint, seconds, count in args.latency:
            emu.add_latency(endpoint, seconds, count=count)
    except ValueError as err:
        print(f"camb-emulator: {err}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    # Both signals only set a flag: the main thread then stops the server in an orderly way.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        emu.start()
    except OSError as err:
        print(f"camb-emulator: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    try:
        print(f"Camb.ai emulator listening on {emu.base_url}", flush=True)
        print(f"API key: {emu.api_key}")
        print(f"export AIRFLOW_CONN_CAMB_DEFAULT={shlex.quote(emu.connection_uri_json())}")
        if args.seed_demo:
            task_ids = emu.add_tts_tasks(
                args.seed_demo,
                pending_polls=args.pending_polls,
                size_bytes=args.size_bytes,
                audio_format=args.audio_format,
            )
            print(f"Seeded {len(task_ids)} TTS tasks (task_id: run_id on success):")
            for task_id in task_ids:
                print(f"  {task_id} -> {emu.run_id_for_task(task_id)}")
        if args.control:
            print(f"Control API: {emu.server_url}/_emulator/")
        if args.seed:
            seeded: dict[str, dict[str, list[Any]]] = {}
            for kind, count in args.seed:
                ids = emu.add_tasks(
                    kind,
                    count,
                    pending_polls=args.pending_polls,
                    size_bytes=args.size_bytes,
                    audio_format=args.audio_format,
                )
                entry = seeded.setdefault(kind, {"task_ids": [], "run_ids": []})
                entry["task_ids"] += ids
                entry["run_ids"] += [emu.run_id_for_task(task_id) for task_id in ids]
            # One line of JSON, so a script can pick it out: {"seeded": {kind: {task_ids, run_ids}}}
            print(json.dumps({"seeded": seeded}))
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    print("Camb.ai emulator stopped.", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
