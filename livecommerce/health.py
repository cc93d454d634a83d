"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from livecommerce.errors import ErrorCode, Handler, LiveCommerceError
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.lifecycle import LIFECYCLE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.resources import REDIS, SETTINGS

METRICS = web.AppKey("metrics", CollectorRegistry)

_Child = tuple[Counter, Histogram]


class _HttpMetrics:
    """The request counter and latency histogram, with each label set's children kept: finding
    a child through ``labels()`` takes a lock and builds its key on every request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self._children: dict[tuple[str, str, int], _Child] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 10_000:  # routes are few; methods and statuses bounded
                self._children.clear()
            child = self._children[key] = (
                self._requests.labels(method, route, str(status)),
                self._latency.labels(method, route),
            )
        child[0].inc()
        child[1].observe(seconds)


_HTTP = web.AppKey("http_metrics", _HttpMetrics)


def install_metrics(app: web.Application) -> CollectorRegistry:
    """A registry of this app's own (no process-global state), with HTTP request metrics."""
    registry = CollectorRegistry()
    app[METRICS] = registry
    app[_HTTP] = _HttpMetrics(registry)
    return registry


def observe_http(app: web.Application) -> Callable[[str, str, int, float], None]:
    """Counts a request answered outside aiohttp's handlers (method, route, status, seconds)."""
    return app[_HTTP].observe


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[_HTTP].observe(request.method, route, status, time.perf_counter() - start)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with request.app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["sql"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        checks["sql"] = f"failing: {type(exc).__name__}"
    try:
        await request.app[REDIS].ping()
        checks["redis"] = "ok"
    except (RedisError, OSError) as exc:
        checks["redis"] = f"failing: {type(exc).__name__}"
    if request.app[LIFECYCLE].draining:
        checks["process"] = "shutting down"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text; with ``METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``."""
    expected = request.app[SETTINGS].metrics_token
    if expected:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected.encode()
        ):
            raise LiveCommerceError(
                ErrorCode.NOT_AUTHENTICATED, "metrics need Authorization: Bearer <METRICS_TOKEN>"
            )
    body = generate_latest(request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


OPERATIONS = (
    Operation("GET", "/healthz", healthz, "Liveness", "operations"),
    Operation(
        "GET", "/readyz", readyz, "Readiness: SQL and Redis reachable", "operations", errors=(503,)
    ),
    Operation(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics (Bearer METRICS_TOKEN when set)",
        "operations",
        response_type="text/plain",
        errors=(401,),
    ),
)
