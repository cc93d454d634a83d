"""The API's route table: each operation is registered with aiohttp and described in OpenAPI 3.1.

Both come from the same declaration, so the document cannot drift from the routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from livecommerce.errors import ErrorCode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Operation:
    """One method on one path. ``path`` may carry aiohttp regexes (``{id:\\d+}``)."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    auth: bool = False
    status: int = 200
    errors: tuple[int, ...] = ()
    headers: tuple[tuple[str, bool, str], ...] = ()
    raw_body: str | None = None
    raw_body_schema: dict[str, Any] | None = None
    response_type: str = "application/json"

    @property
    def openapi_path(self) -> str:
        return _PARAM.sub(lambda m: "{" + m.group(1) + "}", self.path)


@dataclass
class RouteTable:
    operations: list[Operation] = field(default_factory=list)

    def add(self, *operations: Operation) -> None:
        self.operations.extend(operations)

    def register(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, op.path, op.handler)

    def document(self, title: str, version: str, description: str = "") -> dict[str, Any]:
        return build_document(self.operations, title, version, description)

    def publish(
        self, app: web.Application, path: str, title: str, version: str, description: str = ""
    ) -> None:
        """Serve the document at ``path``, built once, describing itself among the operations."""
        self.add(Operation("GET", path, openapi, "This document", "operations"))
        app[DOCUMENT] = self.document(title, version, description)


DOCUMENT = web.AppKey("openapi_document", dict)


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document (see ``RouteTable.publish``)."""
    return web.json_response(request.app[DOCUMENT])


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": [c.value for c in ErrorCode]},
                    "message": {"type": "string"},
                },
            }
        },
    }


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """Replace local ``$defs`` references: query parameters cannot point into a model."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def _operation_id(op: Operation, taken: set[str]) -> str:
    """The handler's name; OpenAPI wants it unique, so a shared handler (WHIP and WHEP share
    theirs) is told apart by method and path."""
    name = op.handler.__name__
    if name in taken:
        slug = re.sub(r"[^a-z0-9]+", "_", op.openapi_path.lower()).strip("_")
        name = f"{op.method.lower()}_{slug}"
    taken.add(name)
    return name


def build_document(
    operations: Iterable[Operation], title: str, version: str, description: str = ""
) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _error_schema()}
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for op in operations:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": _operation_id(op, taken),
        }
        parameters: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            }
            for name in _PARAM.findall(op.path)
        ]
        if op.query is not None:
            schema = op.query.model_json_schema()
            required_names = set(schema.get("required", []))
            defs = schema.get("$defs", {})
            for name, prop in schema.get("properties", {}).items():
                prop = _inline(prop, defs)
                parameters.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required_names,
                        "schema": prop,
                    }
                )
        for name, is_required, about in op.headers:
            parameters.append(
                {
                    "name": name,
                    "in": "header",
                    "required": is_required,
                    "description": about,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                }
            )
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema_ref(op.body, components)}},
            }
        elif op.raw_body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {op.raw_body: {"schema": op.raw_body_schema or {"type": "string"}}},
            }
        responses: dict[str, Any] = {
            str(op.status): {
                "description": "OK",
                "content": {
                    op.response_type: {
                        "schema": {"type": "object"}
                        if op.response_type == "application/json"
                        else {"type": "string"}
                    }
                },
            }
        }
        codes = set(op.errors)
        if op.body is not None or op.query is not None:
            codes |= {400, 415, 422} if op.body is not None else {422}
        if op.auth:
            codes |= {401, 403}
        if _PARAM.search(op.path):
            codes.add(404)
        for code in sorted(codes):
            responses[str(code)] = {
                "description": "Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        entry["responses"] = responses
        if op.auth:
            entry["security"] = [{"bearer": []}, {"cookie": []}]
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version}
        | ({"description": description} if description else {}),
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "lc_session"},
            },
        },
    }
