"""Structured logs: one JSON object per line, ready for any log collector."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _WorkerField(logging.Filter):
    """Marks each line with the worker process that wrote it (its pid)."""

    def __init__(self, worker: int) -> None:
        super().__init__()
        self._worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self._worker
        return True


def configure_logging(level: str, as_json: bool, worker: int | None = None) -> None:
    """Log lines on stderr at ``level``, as JSON or text; a worker's carry ``worker`` (its pid)."""
    handler = logging.StreamHandler(sys.stderr)
    text = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if worker is not None:
        handler.addFilter(_WorkerField(worker))
        text = "%(asctime)s %(levelname)s [worker %(worker)s] %(name)s: %(message)s"
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(text))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every plugin it loads at INFO; only its warnings matter to an operator.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # aiosqlite's debug lines print each call with its arguments: SQL parameters, stream keys.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))


# Query parameters whose values never reach a log, should a client put a secret in a URL.
_SECRET_PARAMS = frozenset(
    {"token", "access_token", "key", "stream_key", "password", "secret", "client_secret"}
)


def loggable_path(request: web.BaseRequest) -> str:
    """The path and query, with the values of secret-looking parameters replaced by ``***``."""
    if not request.query_string:
        return request.path
    parts = []
    for pair in request.query_string.split("&"):
        name, eq, _value = pair.partition("=")
        parts.append(f"{name}=***" if eq and name.lower() in _SECRET_PARAMS else pair)
    return f"{request.path}?{'&'.join(parts)}"


class AccessLogger(AbstractAccessLogger):
    """``address "METHOD path HTTP/x.y" status bytes seconds``; never a header (tokens, cookies
    and stream keys travel in ``Authorization`` and ``Cookie``), never a secret query value."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        version = f"{request.version.major}.{request.version.minor}"
        line = f"{request.method} {loggable_path(request)} HTTP/{version}"
        self.logger.info(
            _ACCESS_LINE, request.remote, line, response.status, response.body_length, time
        )


_ACCESS_LINE = '%s "%s" %s %s %.6fs'
_ACCESS = logging.getLogger("aiohttp.access")  # aiohttp's access logger, which AccessLogger gets


def log_access(
    remote: str, method: str, path: str, version: str, status: int, length: int, seconds: float
) -> None:
    """The access-log line of a request answered outside aiohttp (``fastlane``), as
    ``AccessLogger`` writes it; ``path`` holds no query (so no secret)."""
    if _ACCESS.isEnabledFor(logging.INFO):
        _ACCESS.info(
            _ACCESS_LINE, remote, f"{method} {path} HTTP/{version}", status, length, seconds
        )
