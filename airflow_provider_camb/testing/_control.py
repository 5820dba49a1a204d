"""The control API under ``/_emulator/``: seed, script faults, read the journal and change the
switches of an emulator running in another process, over plain HTTP (like moto's ``/moto-api/``).

Served only by an emulator made with ``control=True``.  Control requests need no API key, are
never journaled and never hit a scheduled fault: they are the test's own channel, not traffic
under test.  Bad input answers 400 ``{"detail": "..."}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_camb.testing._http import Response, detail, json_response
from airflow_provider_camb.testing._kinds import VALUE_SHAPES
from airflow_provider_camb.testing._routes import CONTROL_PREFIX, ENDPOINTS

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_camb.testing.emulator import CambEmulator

_OUTCOMES = ("SUCCESS", "ERROR", "TIMEOUT", "PAYMENT_REQUIRED")


class _BadRequest(ValueError):
    """Input the control API refuses with a 400."""


def _choice(*allowed: Any) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            raise ValueError(f"must be one of {list(allowed)}, not {value!r}")
        return value

    return check


def _number(minimum: float, *, strict: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, not {value!r}")
        if value < minimum or (strict and value == minimum):
            raise ValueError(f"must be {'above' if strict else 'at least'} {minimum}, not {value!r}")
        return float(value)

    return check


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a non-negative integer, not {value!r}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


#: The switches ``GET``/``PATCH /_emulator/settings`` expose, each with its check.
SETTINGS: dict[str, Callable[[Any], Any]] = {
    "bulk_missing": _choice("omit", "reject"),
    "bulk_value_shape": _choice("url", "object"),
    **{name: _choice(*choices) for name, choices in VALUE_SHAPES.items()},
    "unknown_task_status": _choice(404, 422),
    "url_ttl": _number(0, strict=True),
    "method_bound_urls": _flag,
    "stream_seconds_per_char": _number(0, strict=True),
    "default_pending_polls": _count,
    "default_pending_seconds": _number(0),
    "default_outcome": _choice(*_OUTCOMES),
}


def check_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` with every value checked (ints made floats where a switch is a float).

    :param changes: switch name to new value.
    :raises ValueError: naming the first unknown switch or bad value.
    """
    checked = {}
    for name, value in changes.items():
        if name not in SETTINGS:
            raise ValueError(f"unknown setting {name!r}; expected one of {sorted(SETTINGS)}")
        try:
            checked[name] = SETTINGS[name](value)
        except ValueError as err:
            raise ValueError(f"{name} {err}") from None
    return checked


def _object(body: bytes, *, optional: bool = False) -> dict[str, Any]:
    if not body.strip():
        if optional:
            return {}
        raise _BadRequest("expected a JSON object body")
    try:
        value = json.loads(body)
    except ValueError:
        raise _BadRequest("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise _BadRequest("expected a JSON object body")
    return value


def _field(data: dict[str, Any], name: str, check: Callable[[Any], Any], default: Any = ...) -> Any:
    if name not in data or (data[name] is None and default is not ...):
        if default is ...:
            raise _BadRequest(f"{name} is required")
        return default
    try:
        return check(data[name])
    except ValueError as err:
        raise _BadRequest(f"{name} {err}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {value!r}")
    return value


def _positive(value: Any) -> int:
    if _count(value) == 0:
        raise ValueError("must be at least 1")
    return int(value)


def _any(value: Any) -> Any:
    return value


def _seed(emu: CambEmulator, data: dict[str, Any]) -> Response:
    kind = _field(data, "kind", _text)
    tasks = _field(data, "tasks", _count, None)
    runs = _field(data, "runs", _count, None)
    if (tasks is None) == (runs is None):
        raise _BadRequest("give exactly one of tasks or runs")
    options: dict[str, Any] = {
        "payload": _field(data, "payload", _any, None),
        "size_bytes": _field(data, "size_bytes", _positive, None),
        "duration_seconds": _field(data, "duration_seconds", _number(0, strict=True), 1.0),
        "audio_format": _field(data, "audio_format", _text, "flac"),
        "sample_rate": _field(data, "sample_rate", _positive, 22050),
    }
    if tasks is not None:
        task_ids = emu.add_tasks(
            kind,
            tasks,
            pending_polls=_field(data, "pending_polls", _count, 0),
            pending_seconds=_field(data, "pending_seconds", _number(0), 0.0),
            outcome=_field(data, "outcome", _text, "SUCCESS"),
            exception_reason=_field(data, "exception_reason", _text, None),
            message=_field(data, "message", _any, None),
            **options,
        )
        run_ids = [emu.run_id_for_task(task_id) for task_id in task_ids]
        return json_response(
            200,
            {
                "kind": emu.kind_of(task_ids[0]) if task_ids else kind,
                "task_ids": task_ids,
                "run_ids": run_ids,
            },
        )
    made = emu.add_runs(kind, runs, finished=_field(data, "finished", _flag, True), **options)
    return json_response(
        200, {"kind": emu.kind_of(made[0]) if made else kind, "task_ids": [], "run_ids": made}
    )


def _endpoint(value: Any) -> str:
    if value != "*" and value not in ENDPOINTS:
        raise ValueError(f"must be one of {list(ENDPOINTS)} or '*', not {value!r}")
    return str(value)


def _faults(emu: CambEmulator, data: dict[str, Any]) -> Response:
    endpoint = _field(data, "endpoint", _endpoint)
    count = _field(data, "count", _positive, 1)
    status = _field(data, "status", _choice(*range(100, 600)), 429)
    retry_after = _field(data, "retry_after", _any, None)
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, (int, float, str))
    ):
        raise _BadRequest(f"retry_after must be a number or a string, not {retry_after!r}")
    body = _field(data, "body", _any, None)
    emu.fail_next(endpoint, count=count, status=status, retry_after=retry_after, body=body)
    return json_response(
        200, {"endpoint": endpoint, "count": count, "status": status, "retry_after": retry_after}
    )


def _latency(emu: CambEmulator, data: dict[str, Any]) -> Response:
    endpoint = _field(data, "endpoint", _endpoint)
    seconds = _field(data, "seconds", _number(0))
    count = _field(data, "count", _positive, None)
    emu.add_latency(endpoint, seconds, count=count)
    return json_response(200, {"endpoint": endpoint, "seconds": seconds, "count": count})


def _redirects(emu: CambEmulator, data: dict[str, Any]) -> Response:
    endpoint = _field(data, "endpoint", _endpoint, "*")
    count = _field(data, "count", _positive, 1)
    status = _field(data, "status", _choice(301, 302, 303, 307, 308), 302)
    try:
        emu.redirect_next(count=count, endpoint=endpoint, status=status)
    except ValueError as err:
        raise _BadRequest(str(err)) from None
    return json_response(
        200, {"endpoint": endpoint, "count": count, "status": status, "foreign_host": emu.foreign_host}
    )


def _stream_resets(emu: CambEmulator, data: dict[str, Any]) -> Response:
    nbytes = _field(data, "nbytes", _count)
    count = _field(data, "count", _positive, 1)
    emu.reset_streams_after(nbytes, count=count)
    return json_response(200, {"nbytes": nbytes, "count": count})


def _download_cuts(emu: CambEmulator, data: dict[str, Any]) -> Response:
    mode = _field(data, "mode", _choice("reset", "short"))
    nbytes = _field(data, "nbytes", _count)
    count = _field(data, "count", _positive, 1)
    if mode == "reset":
        emu.reset_downloads_after(nbytes, count=count)
    else:
        emu.short_downloads(nbytes, count=count)
    return json_response(200, {"mode": mode, "nbytes": nbytes, "count": count})


def _journal(emu: CambEmulator, query: dict[str, str]) -> Response:
    endpoint = query.get("endpoint")
    if endpoint is not None and endpoint not in ENDPOINTS and endpoint != "unknown":
        raise _BadRequest(f"endpoint must be one of {list(ENDPOINTS)} or 'unknown', not {endpoint!r}")
    entries = emu.journal if endpoint is None else emu.requests(endpoint)
    return json_response(200, [asdict(entry) for entry in entries])


def _finish(emu: CambEmulator, data: dict[str, Any]) -> Response:
    task_ids = data.get("task_ids")
    if not isinstance(task_ids, list) or not all(isinstance(t, str) for t in task_ids):
        raise _BadRequest("task_ids must be a list of task ID strings")
    unknown = [task_id for task_id in task_ids if not _known_task(emu, task_id)]
    if unknown:
        return detail(404, f"Unknown task IDs: {unknown}")
    emu.finish_tasks(task_ids)
    return json_response(200, {"finished": task_ids})


def _known_task(emu: CambEmulator, task_id: str) -> bool:
    try:
        emu.kind_of(task_id)
    except KeyError:
        return False
    return True


def _settings(emu: CambEmulator, data: dict[str, Any]) -> Response:
    try:
        return json_response(200, emu.update_settings(**data))
    except ValueError as err:
        raise _BadRequest(str(err)) from None


def _ok(action: Callable[[], None]) -> Response:
    action()
    return json_response(200, {"ok": True})


def handle(emu: CambEmulator, method: str, target: str, body: bytes) -> Response:
    """Answer one control request.

    :param emu: the emulator to control.
    :param method: the HTTP method.
    :param target: path and query.
    :param body: the request body.
    """
    url = urlsplit(target)
    name = url.path[len(CONTROL_PREFIX) :].strip("/")
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    routes: dict[tuple[str, str], Callable[[], Response]] = {
        ("POST", "seed"): lambda: _seed(emu, _object(body)),
        ("POST", "faults"): lambda: _faults(emu, _object(body)),
        ("DELETE", "faults"): lambda: _ok(emu.clear_faults),
        ("POST", "latency"): lambda: _latency(emu, _object(body)),
        ("POST", "redirects"): lambda: _redirects(emu, _object(body, optional=True)),
        ("POST", "stream-resets"): lambda: _stream_resets(emu, _object(body)),
        ("POST", "download-cuts"): lambda: _download_cuts(emu, _object(body)),
        ("GET", "journal"): lambda: _journal(emu, query),
        ("DELETE", "journal"): lambda: _ok(emu.clear_journal),
        ("POST", "tasks/finish"): lambda: _finish(emu, _object(body)),
        ("POST", "reset"): lambda: _ok(emu.reset),
        ("GET", "settings"): lambda: json_response(200, emu.settings()),
        ("PATCH", "settings"): lambda: _settings(emu, _object(body)),
    }
    action = routes.get((method, name))
    if action is None:
        allowed = sorted(m for m, n in routes if n == name)
        if allowed:
            return json_response(405, {"detail": "Method Not Allowed"}, [("Allow", ", ".join(allowed))])
        return detail(404, "Not Found")
    try:
        return action()
    except (_BadRequest, ValueError) as err:
        return detail(400, str(err))
