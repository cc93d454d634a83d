"""Reading and validating request bodies and parameters; failures become 4xx errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from livecommerce.appkeys import SETTINGS
from livecommerce.errors import ErrorCode, InvalidInput, LiveCommerceError, NotFound

M = TypeVar("M", bound=BaseModel)

MAX_ID = 2**31 - 1


class Payload(BaseModel):
    """Base of every request body: unknown fields are refused, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def validate(model: type[M], data: Any) -> M:
    """Validate ``data`` against ``model``; errors name each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        raise InvalidInput(f"invalid input: {summary}", fields=problems) from None


async def read_body(request: web.Request) -> bytes:
    """The whole body, within ``BODY_READ_TIMEOUT_SECONDS``: a client that stops sending halfway
    (slowloris on the body) gets 408 instead of holding the request open for ever."""
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
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LiveCommerceError(
            ErrorCode.INVALID_JSON, f"request body is not valid JSON: {exc}"
        ) from None
    return validate(model, data)


def path_id(request: web.Request, name: str = "id", what: str = "resource") -> int:
    """An integer id from the path; anything out of range is simply not found."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) <= MAX_ID:
        raise NotFound(what)
    return int(raw)


def query(request: web.Request, model: type[M]) -> M:
    """Validate the query string against ``model``."""
    return validate(model, dict(request.query))
