"""Reading and validating request bodies and parameters; failures become 4xx errors.

Bodies (HTTP JSON and Socket.IO event payloads) are read strictly: JSON nested deeper than
``MAX_DEPTH``, numbers longer than ``MAX_NUMBER_CHARS``, NaN/Infinity and duplicate keys are
refused before anything else looks at them, and fields are validated with JSON's own types (a
quantity of ``"2"``, ``true`` or ``2.0`` is not 2). Query strings are text by nature and stay lax.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from livecommerce.errors import ErrorCode, InvalidInput, LiveCommerceError, NotFound
from livecommerce.platform.resources import SETTINGS

M = TypeVar("M", bound=BaseModel)

MAX_ID = 2**31 - 1
MAX_DEPTH = 32  # our deepest body (a product's variants' attributes) is 4 levels deep
MAX_NUMBER_CHARS = 40  # no field takes more than 20 digits; thousands of digits cost CPU


class Payload(BaseModel):
    """Base of every request body: unknown fields are refused, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UnreadableJson(LiveCommerceError):
    """The text is not JSON we read: malformed, too deep, absurd numbers, duplicate keys."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_JSON, message)


def _number(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise UnreadableJson(f"a number has more than {MAX_NUMBER_CHARS} characters")


def _int(text: str) -> int:
    _number(text)
    return int(text)


def _float(text: str) -> float:
    _number(text)
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise UnreadableJson("a number is out of range")
    return value


def _constant(name: str) -> Any:
    raise UnreadableJson(f"{name} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise UnreadableJson("an object repeats a key")
    return result


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in item)
    return deepest


def parse_json(text: str | bytes) -> Any:
    """Parse untrusted JSON; anything pathological is an ``invalid_json`` error (400)."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(
            text,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except UnicodeDecodeError:
        raise UnreadableJson("the body is not UTF-8") from None
    except RecursionError:
        raise UnreadableJson(f"JSON is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, and int() past its digit limit
        raise UnreadableJson(f"not valid JSON: {exc}") from None
    if _depth(value) > MAX_DEPTH:
        raise UnreadableJson(f"JSON is nested more than {MAX_DEPTH} levels deep")
    return value


def _invalid(exc: ValidationError) -> InvalidInput:
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
    return InvalidInput(f"invalid input: {summary}", fields=problems)


def validate_json(model: type[M], text: str) -> M:
    """Parse and validate a JSON document with JSON's strict types (ISO datetimes and enum
    values still come as strings, as JSON has them)."""
    parse_json(text)
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise _invalid(exc) from None


def validate(model: type[M], data: Any) -> M:
    """Validate a payload already decoded from JSON (a Socket.IO event) as ``validate_json``
    would; errors name each bad field."""
    if _depth(data) > MAX_DEPTH:
        raise UnreadableJson(f"JSON is nested more than {MAX_DEPTH} levels deep")
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInput("invalid input: the payload is not plain JSON") from None
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise _invalid(exc) from None


async def read_body(request: web.Request) -> bytes:
    """The whole body, within ``BODY_READ_TIMEOUT_SECONDS``: a client that stops sending halfway
    (slowloris on the body) gets 408 instead of holding the request open for ever."""
    if request.content.is_eof():
        return await request.read()  # all here already (a small body comes with its headers)
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_read_timeout_s):
            return await request.read()
    except TimeoutError:
        raise LiveCommerceError(
            ErrorCode.REQUEST_TIMEOUT, "the request body did not arrive in time"
        ) from None


async def read_json(request: web.Request, model: type[M]) -> M:
    """Parse the body as JSON and validate it; wrong content type is 415, bad JSON 400."""
    if request.content_type != "application/json":
        raise LiveCommerceError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"
        )
    raw = await read_body(request)
    try:
        text = raw.decode("utf-8") if raw else "null"
    except UnicodeDecodeError:
        raise UnreadableJson("the body is not UTF-8") from None
    return validate_json(model, text)


def path_id(request: web.Request, name: str = "id", what: str = "resource") -> int:
    """An integer id from the path; anything out of range is simply not found."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) <= MAX_ID:
        raise NotFound(what)
    return int(raw)


def query(request: web.Request, model: type[M]) -> M:
    """Validate the query string against ``model``: lax (every value is text), but bounded."""
    params = dict(request.query)
    if len(params) > 20 or any(len(v) > 200 for v in params.values()):
        raise InvalidInput("invalid input: the query string is too long")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise _invalid(exc) from None
