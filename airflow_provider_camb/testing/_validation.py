"""Request-body checks that answer like the real API: FastAPI 422s with pydantic-v2 error items."""

from __future__ import annotations

from typing import Any, TypeGuard

from airflow_provider_camb.testing._http import Response, json_response

_TYPE_ERRORS = {
    int: ("int_type", "Input should be a valid integer"),
    float: ("float_type", "Input should be a valid number"),
    bool: ("bool_type", "Input should be a valid boolean"),
    str: ("string_type", "Input should be a valid string"),
    dict: ("dict_type", "Input should be a valid dictionary"),
}


def validation(errors: list[dict[str, Any]]) -> Response:
    """The 422 answer listing ``errors``.

    :param errors: items made by :func:`error`.
    """
    return json_response(422, {"detail": errors})


def error(kind: str, loc: list[str | int], msg: str) -> dict[str, Any]:
    """One error item.

    :param kind: the pydantic error type, e.g. ``missing``.
    :param loc: where, e.g. ``["body", "text"]``.
    :param msg: the message.
    """
    # FastAPI/pydantic-v2 shape; the SDK's ValidationError model needs loc, msg and type.
    return {"type": kind, "loc": loc, "msg": msg}


def is_int(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is a JSON integer.

    :param value: a parsed JSON value.
    """
    # JSON true/false arrive as bool, which Python counts as int; the API's models do not.
    return isinstance(value, int) and not isinstance(value, bool)


def enum_message(allowed: tuple[str, ...] | list[str]) -> str:
    """Pydantic v2's wording for an enum miss: ``Input should be 'a', 'b' or 'c'``.

    :param allowed: the accepted values, in the order to list them.
    """
    quoted = [f"'{value}'" for value in allowed]
    if len(quoted) == 1:
        return f"Input should be {quoted[0]}"
    return f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"


def _has_type(value: Any, kind: type) -> bool:
    # JSON true/false must not pass as numbers; pydantic's float accepts JSON integers.
    if kind is int:
        return is_int(value)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _not_an_object(loc: list[str | int]) -> list[dict[str, Any]]:
    if loc != ["body"]:
        return [error("dict_type", loc, "Input should be a valid dictionary")]
    return [
        error(
            "model_attributes_type",
            loc,
            "Input should be a valid dictionary or object to extract fields from",
        )
    ]


def check_model(
    payload: Any,
    *,
    required: dict[str, type],
    optional: dict[str, type],
    lengths: dict[str, tuple[int, int]],
    loc: tuple[str | int, ...] = ("body",),
) -> list[dict[str, Any]]:
    """Validation errors for a flat JSON object, worded like FastAPI with pydantic v2.

    :param payload: the parsed body (or a nested object of it).
    :param required: field name to type, for fields that must be there.
    :param optional: field name to type, for fields that may be missing or null.
    :param lengths: ``(min, max)`` length of string fields.
    :param loc: where ``payload`` sits, e.g. ``("body", "output_configuration")``.
    """
    if not isinstance(payload, dict):
        return _not_an_object(list(loc))
    errors = []
    for name, kind in {**required, **optional}.items():
        where = [*loc, name]
        if name not in payload or (name in optional and payload[name] is None):
            if name in required:
                errors.append(error("missing", where, "Field required"))
            continue
        value = payload[name]
        if not _has_type(value, kind):
            kind_name, msg = _TYPE_ERRORS[kind]
            errors.append(error(kind_name, where, msg))
            continue
        if name in lengths:
            low, high = lengths[name]
            if len(value) < low:
                errors.append(
                    error("string_too_short", where, f"String should have at least {low} characters")
                )
            elif len(value) > high:
                errors.append(
                    error("string_too_long", where, f"String should have at most {high} characters")
                )
    return errors


def check_run_ids(payload: Any) -> list[dict[str, Any]]:
    """Errors for a ``RunIDsRequestPayload``: 2..5 unique positive integers.

    :param payload: the parsed body.
    """
    if not isinstance(payload, dict):
        return _not_an_object(["body"])
    if "run_ids" not in payload:
        return [error("missing", ["body", "run_ids"], "Field required")]
    run_ids = payload["run_ids"]
    if not isinstance(run_ids, list):
        return [error("list_type", ["body", "run_ids"], "Input should be a valid list")]
    errors = []
    for i, value in enumerate(run_ids):
        if not is_int(value):
            errors.append(error("int_type", ["body", "run_ids", i], "Input should be a valid integer"))
        elif value <= 0:
            errors.append(error("greater_than", ["body", "run_ids", i], "Input should be greater than 0"))
    if errors:
        return errors
    if len(run_ids) < 2:
        return [
            error(
                "too_short",
                ["body", "run_ids"],
                f"List should have at least 2 items after validation, not {len(run_ids)}",
            )
        ]
    if len(run_ids) > 5:
        return [
            error(
                "too_long",
                ["body", "run_ids"],
                f"List should have at most 5 items after validation, not {len(run_ids)}",
            )
        ]
    if len(set(run_ids)) != len(run_ids):
        return [error("value_error", ["body", "run_ids"], "Value error, run_ids must be unique")]
    return []
