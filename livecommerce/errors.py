"""Error codes that travel to clients, the root exception, and the JSON error middleware."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes; clients switch on these, never on messages."""

    INVALID_JSON = "invalid_json"
    INVALID_INPUT = "invalid_input"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    NOT_AUTHENTICATED = "not_authenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    EMAIL_TAKEN = "email_taken"
    BAD_CREDENTIALS = "bad_credentials"
    SKU_TAKEN = "sku_taken"
    INVALID_TRANSITION = "invalid_transition"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    CSRF_REFUSED = "csrf_refused"
    SOLD_OUT = "sold_out"
    INSUFFICIENT_STOCK = "insufficient_stock"
    LIMIT_EXCEEDED = "limit_exceeded"
    TOO_MANY_UNPAID = "too_many_unpaid"
    NOT_IN_LINEUP = "not_in_lineup"
    STREAM_ENDED = "stream_ended"
    SALE_NOT_ACTIVE = "sale_not_active"
    PRICE_CHANGED = "price_changed"
    NOT_ON_SALE = "not_on_sale"
    IDEMPOTENCY_MISMATCH = "idempotency_mismatch"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_UNAVAILABLE = "payment_unavailable"
    BAD_SIGNATURE = "bad_signature"
    AMOUNT_TOO_SMALL = "amount_too_small"
    CARD_UNUSABLE = "card_unusable"
    UNKNOWN_PAYMENT_INTENT = "unknown_payment_intent"
    PAYMENT_INTENT_MISMATCH = "payment_intent_mismatch"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    STREAM_NOT_LIVE = "stream_not_live"
    STREAM_OFFLINE = "stream_offline"
    ALREADY_PUBLISHING = "already_publishing"
    INVALID_SDP = "invalid_sdp"
    TOO_MANY_SESSIONS = "too_many_sessions"
    MEDIA_AT_CAPACITY = "media_at_capacity"
    SHUTTING_DOWN = "shutting_down"
    STORE_UNAVAILABLE = "store_unavailable"
    ADDRESS_REQUIRED = "address_required"
    INTERNAL = "internal_error"


_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_INPUT: 422,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.NOT_AUTHENTICATED: 401,
    ErrorCode.BAD_CREDENTIALS: 401,
    ErrorCode.BAD_SIGNATURE: 400,
    ErrorCode.INVALID_SDP: 400,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.CSRF_REFUSED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
    ErrorCode.TOO_MANY_SESSIONS: 429,
    ErrorCode.MEDIA_AT_CAPACITY: 503,
    ErrorCode.PAYMENT_FAILED: 402,
    ErrorCode.CARD_UNUSABLE: 402,
    ErrorCode.AMOUNT_TOO_SMALL: 422,
    ErrorCode.PAYMENT_UNAVAILABLE: 503,
    ErrorCode.SHUTTING_DOWN: 503,
    ErrorCode.STORE_UNAVAILABLE: 503,
    ErrorCode.ADDRESS_REQUIRED: 409,
    ErrorCode.INTERNAL: 500,
}


class LiveCommerceError(Exception):
    """Root of every error the app raises on purpose; carries its code and data."""

    def __init__(self, code: ErrorCode, message: str, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 409)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.data:
            body.update(self.data)
        return {"error": body}


class NotFound(LiveCommerceError):
    def __init__(self, what: str) -> None:
        super().__init__(ErrorCode.NOT_FOUND, f"{what} not found")


class Forbidden(LiveCommerceError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.FORBIDDEN, message)


class InvalidInput(LiveCommerceError):
    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(ErrorCode.INVALID_INPUT, message, **data)


def error_response(error: LiveCommerceError) -> web.Response:
    status, body, headers = failure(error, "")
    response = web.json_response(body, status=status)
    response.headers.update(headers)
    return response


def failure(exc: Exception, where: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, JSON body and headers answering a use-case's failure, the same on every path
    (``error_middleware``, the fast lane): a ``LiveCommerceError`` as it says; an unreachable
    store 503 with ``Retry-After`` (nothing was taken, the client may retry); anything else 500,
    logged with ``where`` (method and path)."""
    if isinstance(exc, LiveCommerceError):
        headers = {}
        retry_after = exc.data.get("retry_after")
        if isinstance(retry_after, int):
            headers["Retry-After"] = str(retry_after)
        return exc.status, exc.to_dict(), headers
    if isinstance(exc, RedisError):
        log.error("store unavailable on %s: %s", where, exc)
        error = LiveCommerceError(ErrorCode.STORE_UNAVAILABLE, "a data store is unavailable; retry")
        return error.status, error.to_dict(), {"Retry-After": "1"}
    log.error("unhandled error on %s", where, exc_info=exc)
    internal = {"code": ErrorCode.INTERNAL.value, "message": "internal server error"}
    return 500, {"error": internal}, {}


_HTTP_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.INVALID_INPUT,
    401: ErrorCode.NOT_AUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into ``{"error": {"code", "message"}}`` with the right status."""
    try:
        return await handler(request)
    except LiveCommerceError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code = _HTTP_CODES.get(exc.status, ErrorCode.INVALID_INPUT)
        if exc.status >= 500:
            code = ErrorCode.INTERNAL
        message = exc.reason if exc.status != 404 else f"no route for {request.path}"
        response = web.json_response(
            {"error": {"code": code.value, "message": message}}, status=exc.status
        )
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except json.JSONDecodeError as exc:
        return error_response(
            LiveCommerceError(ErrorCode.INVALID_JSON, f"request body is not valid JSON: {exc.msg}")
        )
    except ConnectionResetError:
        # The client went away before we read its request: nobody to answer, nothing to log
        # (thousands of these follow a crowd closing its tabs). 499 as nginx counts it.
        return web.Response(status=499)
    except Exception as exc:  # an unreachable store (503), or a bug (500)
        status, body, headers = failure(exc, f"{request.method} {request.path}")
        response = web.json_response(body, status=status)
        response.headers.update(headers)
        return response
