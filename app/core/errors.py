"""The one error type and its RFC 9457 rendering."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.i18n import CONTENT_LANGUAGE, localize, preferred_language, validation_message

log = logging.getLogger("app.errors")

PROBLEM_BASE = "https://partyrecords.example.gov.cn/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
QUERY_CANCELED = "57014"  # SQLSTATE of a statement the server cancelled

_TITLES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    412: ("precondition_failed", "Precondition failed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Invalid input"),
    428: ("precondition_required", "Precondition required"),
    429: ("too_many_requests", "Too many requests"),
    500: ("internal_error", "Internal server error"),
    503: ("service_unavailable", "Service unavailable"),
}


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details, as every 4xx and 5xx answers."""

    type: str
    title: str
    status: int
    detail: str | None = None
    code: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Raise anywhere (services included) to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        default_code, default_title = _TITLES.get(status, ("error", "Error"))
        self.status = status
        self.code = code or default_code
        self.title = title or (default_title if code is None else code.replace("_", " ").capitalize())
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        super().__init__(detail or self.title)


def not_found(entity: str, entity_id: object) -> ProblemError:
    return ProblemError(404, "not_found", f"{entity} {entity_id} does not exist or is outside your scope.")


def conflict(code: str, detail: str) -> ProblemError:
    return ProblemError(409, code, detail)


RETRY_AFTER_SECONDS = 5


def unavailable(code: str, detail: str) -> ProblemError:
    """A 503 that tells the client when to try again (`Retry-After`)."""
    return ProblemError(503, code, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def invalid(loc: list[str | int], msg: str, detail: str | None = None) -> ProblemError:
    """A 422 naming the offending field, for rules pydantic cannot check alone."""
    return ProblemError(422, "validation_error", detail or msg, errors=[{"loc": loc, "msg": msg}])


def problem_response(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str | None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The problem document in the language the request prefers (`code` never changes)."""
    language = preferred_language(request.headers.get("accept-language"))
    title, detail = localize(language, code, title, detail)
    headers = {**(headers or {}), "Content-Language": CONTENT_LANGUAGE[language], "Vary": "Accept-Language"}
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _clean_loc(loc: Any) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in loc]


def _validation_errors(exc: RequestValidationError, request: Request) -> list[dict[str, Any]]:
    language = preferred_language(request.headers.get("accept-language"))
    out = []
    for err in exc.errors():
        msg = validation_message(language, err.get("type"), str(err.get("msg", "invalid")), err.get("ctx"))
        out.append({"loc": _clean_loc(err.get("loc", ())), "msg": msg, "type": err.get("type")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.code, exc.title, exc.detail, exc.errors, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc, request)
        first = errors[0] if errors else None
        detail = (
            f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}" if first else "Invalid input"
        )
        return problem_response(request, 422, "validation_error", "Invalid input", detail, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _TITLES.get(exc.status_code, ("error", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem_response(request, exc.status_code, code, title, detail, headers=headers or None)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # A constraint the service did not pre-check (usually a race): a conflict, never a 500.
        log.warning("integrity error", extra={"error": type(exc.orig).__name__})
        return problem_response(
            request, 409, "conflict", "Conflict",
            "The change conflicts with the current state of the records (a duplicate or a concurrent change).",
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeoutError)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        orig = getattr(exc, "orig", None) or exc
        log.error("database unavailable", extra={"error": type(orig).__name__})
        # SQLSTATE 57014 query_canceled: PostgreSQL's statement_timeout (app.core.db) cancelled the statement.
        detail = ("The database did not answer in the time allowed; try again shortly."
                  if getattr(orig, "sqlstate", None) == QUERY_CANCELED
                  else "The database is not reachable; try again shortly.")
        return problem_response(request, 503, "database_unavailable", "Service unavailable", detail,
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot hold that validation let through: the client's input, not a crash.
        log.warning("data error", extra={"error": type(exc.orig).__name__})
        return problem_response(request, 422, "validation_error", "Invalid input",
                                "A value is out of the range or character set the records can hold.")

    @app.exception_handler(DBAPIError)
    async def _dbapi(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return await _unavailable(request, exc)
        log.exception("database error")
        return problem_response(request, 500, "internal_error", "Internal server error", None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem_response(request, 500, "internal_error", "Internal server error", None)


def _allowed_methods(request: Request) -> str:
    """Every method some route answers on this path (the router names only the first route's, and FastAPI
    makes one route per method): each method is tried against the routes as the router itself would."""
    from starlette.routing import Match

    scope = {k: v for k, v in request.scope.items() if k not in ("route", "endpoint", "path_params")}
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring problem documents for these statuses."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        _, title = _TITLES.get(status, ("error", "Error"))
        out[status] = {
            "description": title,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return out
