"""create_app(): routers, middleware, exception handlers; nothing else."""

from __future__ import annotations

import gc
import inspect
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.types import Scope

from app import models  # noqa: F401  (every table registered)
from app.core.config import get_settings
from app.core.docs import install_docs
from app.core.errors import PROBLEM_MEDIA_TYPE, Problem, install_error_handlers, problem_responses
from app.core.history import recorded_info
from app.core.input_guard import InputGuardMiddleware
from app.core.observability import ObservabilityMiddleware, configure_logging
from app.core.openapi import finish_contract
from app.core.report_cache import serves_json_from_cache
from app.deps import as_async_endpoint, audited_read
from app.routers import ROUTERS

DESCRIPTION = """Records of a city's grassroots Party organisations: the organisation tree, its people,
the three lists, standardisation audits, funds and subsidies, duty posts, evaluations and training.

Every error is an RFC 9457 problem document (`application/problem+json`) with a stable `code`.
Text is UTF-8 and never holds NUL characters or unpaired surrogates (in bodies, query strings and paths):
such input is a 422, as is a body that is not valid UTF-8; a body over 1 MiB is a 413.
Log in with `POST /api/v1/auth/token` (or the Authorize button) and send `Authorization: Bearer …`."""


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # The pool the synchronous routes run in (settings.worker_threads; per event loop, so set once it runs).
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().worker_threads
    # What start-up built (modules, models, schemas, the route table) lives as long as the process: keep it
    # out of the collector's generations. A full collection walked all of it, and under load it paused the
    # worker for about 125 ms every few seconds: p99 8-10 times p50 (issue 8); with it frozen, about twice.
    gc.collect()
    gc.freeze()
    yield


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        lifespan=_lifespan,
        title="Grassroots Party organisation records",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,  # installed below with assets served by the service itself (no CDN)
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        # Metrics are Prometheus (/metrics) and logs JSON lines (app.core.observability); FastAPI's own
        # OpenTelemetry hooks asked the global providers whether they were configured on every request
        # (about 20 us of a 150 us /healthz, issue 8).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    if settings.docs_enabled:
        install_docs(app)
    install_error_handlers(app)
    for router in ROUTERS:
        _digits_only_ids(router)
        _one_hop_per_endpoint(router)
        app.include_router(router)
    # Innermost: text no database can hold is a 422 before routing (inside CORS, so browsers can read it).
    app.add_middleware(InputGuardMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "Idempotency-Key", "Accept-Language"],
            expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After", "Idempotent-Replayed"],
        )
    app.add_middleware(ObservabilityMiddleware, max_body_bytes=settings.max_body_bytes)
    _register_problem_schema(app)
    _skip_routers_by_prefix(app)
    return app


def _skip_routers_by_prefix(app: FastAPI) -> None:
    """Try an included router's routes only when the path starts with what all of them start with.

    FastAPI matches a request against every route of every included router in turn, a regular expression
    each: about 130 for a path near the end of the list, a third of a cached summary's CPU (issue 8). A path
    that does not start with a router's common prefix matches none of its routes, not even partly (405), so
    the answer is the same. Routers without a common prefix (the meta routes) are tried as before."""
    from starlette._utils import get_route_path
    from starlette.routing import Match

    for included in app.router.routes:
        contexts = getattr(included, "effective_route_contexts", None)
        if contexts is None:
            continue
        paths = [getattr(c.original_route, "path", "") for c in contexts()]
        prefix = os.path.commonpath(paths).split("{", 1)[0] if paths else ""
        if len(prefix) <= 1:
            continue
        tried = included.matches

        def matches(scope: Scope, prefix: str = prefix, tried: Any = tried) -> tuple[Match, Scope]:
            if not get_route_path(scope).startswith(prefix):
                return Match.NONE, {}
            return tried(scope)

        included.matches = matches  # type: ignore[method-assign]


def _one_hop_per_endpoint(router: APIRouter) -> None:
    """A synchronous endpoint runs in a worker thread together with the end of its request's transaction (or, for
    a short read on SQLite, both in the event loop: `app.deps.as_async_endpoint`), and its answer is validated in
    the event loop (CPU work, no I/O).

    FastAPI gave such a request three more hops to a worker thread after its dependencies: the endpoint, the
    validation of its answer and, from `get_session`, the commit. Each hop is a thread handoff both ways
    (about 10 % of a get by id's time, issue 8). The commit still comes before the answer is sent, and a failed
    commit is still an error response; the session then has no transaction left, so `get_session` only closes
    it."""
    for route in router.routes:
        if isinstance(route, APIRoute) and not inspect.iscoroutinefunction(route.endpoint):
            route.endpoint = as_async_endpoint(route.endpoint, short_read=_short_read(route),
                                               audited=audited_read(route))


def _short_read(route: APIRoute) -> bool:
    """A route answering one record by id (`@recorded`) or a cached summary (`@serves_json`). An audited one
    among them runs as a short read only for a caller whose read writes no audit row (app.deps.as_async_endpoint
    looks at the caller and the request's session)."""
    return recorded_info(route.endpoint) is not None or serves_json_from_cache(route.endpoint)


def _digits_only_ids(router: APIRouter) -> None:
    """An integer path parameter matches digits only (Starlette's `int` convertor).

    Otherwise `/{problem_id}` also matched its static siblings (`/problems/summary`): an undeclared method there
    answered 422 on the id instead of 405 and `Allow` named the id route's methods, and pydantic's lax mode read
    "1.0", "+1" or "1_0" as an id. Anything but digits is now no such resource (404); digits out of range stay a
    422. The contract is unchanged: the convertor never shows in `path_format`, which the OpenAPI is built from.
    """
    from fastapi.routing import APIRoute
    from starlette.routing import compile_path

    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        path = route.path
        for param in route.dependant.path_params:
            if param.field_info.annotation is int:
                path = path.replace(f"{{{param.name}}}", f"{{{param.name}:int}}")
        if path != route.path:
            route.path = path
            route.path_regex, route.path_format, route.param_convertors = compile_path(path)


def _register_problem_schema(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        from pydantic.json_schema import models_json_schema

        _, defs = models_json_schema([(Problem, "validation")], ref_template="#/components/schemas/{model}")
        components.update(defs.get("$defs", {}))
        _problem_for_validation_errors(schema)
        _city_only_documented(schema)
        # readable schema names, the database's 503, examples everywhere
        finish_contract(schema, database_operations=_database_operations())
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _database_operations() -> set[str]:
    """The operations whose route takes the request's session (app.deps.get_session), directly or through another
    dependency: each may answer the database's 503."""
    from fastapi.dependencies.models import Dependant

    from app.deps import get_session

    def uses(dependant: Dependant) -> bool:
        return any(d.call is get_session or uses(d) for d in dependant.dependencies)

    return {route.operation_id for router in ROUTERS for route in router.routes
            if isinstance(route, APIRoute) and route.operation_id and uses(route.dependant)}


def _city_only_documented(schema: dict) -> None:
    """The 403 of an operation that asks for a city-wide permission names its second cause (app.deps.require)."""
    from fastapi.dependencies.models import Dependant

    from app.deps import checks_city_wide

    def asks(dependant: Dependant) -> bool:
        return any(checks_city_wide(d.call) or asks(d) for d in dependant.dependencies if d.call is not None)

    wide = {route.operation_id for router in ROUTERS for route in router.routes
            if isinstance(route, APIRoute) and route.operation_id and asks(route.dependant)}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            forbidden = operation.get("responses", {}).get("403") if isinstance(operation, dict) else None
            if operation.get("operationId") in wide and isinstance(forbidden, dict):
                forbidden["description"] = (
                    "Forbidden: the caller's role lacks the permission (`permission_denied`), or the permission is "
                    "city-wide and the caller's scope is below the city (`city_only`, a service client)")


def _problem_for_validation_errors(schema: dict) -> None:
    """FastAPI documents a 422 `HTTPValidationError` (application/json) on every operation that declares no
    422 of its own; the service answers every 422 with a problem document, so the contract says so."""
    problem = problem_responses(422)[422]
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            content = responses.get("422", {}).get("content", {})
            if "application/json" in content and PROBLEM_MEDIA_TYPE not in content:
                responses["422"] = dict(problem)
    components = schema.get("components", {}).get("schemas", {})
    if "HTTPValidationError" in components and '"#/components/schemas/HTTPValidationError"' not in json.dumps(
        schema.get("paths", {})
    ):
        components.pop("HTTPValidationError")
        components.pop("ValidationError", None)


app = create_app()
