"""Health, readiness, metrics and the enum labels."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.core.db import get_engine
from app.core.enums import describe_all
from app.core.errors import RETRY_AFTER_SECONDS, problem_response, problem_responses
from app.core.i18n import CONTENT_LANGUAGE, preferred_language
from app.core.observability import REGISTRY
from app.deps import CurrentUser

router = APIRouter(tags=["meta"])


class Health(BaseModel):
    status: str


class EnumValue(BaseModel):
    value: str
    zh: str
    en: str
    label: str = Field(description="The label in the language Accept-Language prefers (zh or en)")


class _AnswersItself(APIRoute):
    """A route documented like any other whose endpoint takes the request and returns the finished response.

    FastAPI's request handler (dependency solving, an exit stack, validating and serialising the answer) cost a
    parameterless route about 24 us of its 60 us on the bench machine; /healthz, the probe load balancers call
    most, answers a constant (issue 8). The contract still comes from the route's `response_model`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # Nothing would solve a dependency (the contract would still show it, a security scheme say): refuse one.
        if self.dependant.dependencies or self.dependencies:
            raise RuntimeError(f"{self.path}: a route that answers itself takes no dependencies")
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)


_HEALTHY = Health(status="ok").model_dump_json().encode()


async def healthz(_request: Request) -> Response:  # no I/O: answered on the event loop, no worker thread
    """Liveness probe: answers 200 while the process serves requests. It does not touch the database (see /readyz), and
    needs no token."""
    return Response(_HEALTHY, media_type="application/json")


router.add_api_route("/healthz", healthz, methods=["GET"], response_model=Health, operation_id="meta_healthz",
                     summary="The process is up", route_class_override=_AnswersItself)


@router.get("/readyz", response_model=Health, operation_id="meta_readyz", summary="The database is reachable",
            responses=problem_responses(503))
def readyz(request: Request) -> Any:
    """Readiness probe: runs `SELECT 1` on the database and answers 200 `ready`, or a 503 problem with Retry-After when
    the database is not reachable. Needs no token; load balancers use it."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return problem_response(request, 503, "database_unavailable", "Service unavailable",
                                "The database is not reachable.", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return {"status": "ready"}


@router.get("/metrics", operation_id="meta_metrics", summary="Prometheus metrics",
            response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics() -> Response:
    """Prometheus text exposition of the service's own metrics (requests by method, route and status, and their
    latencies). Needs no token: restrict it at the network edge."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/meta/enums", response_model=dict[str, list[EnumValue]], operation_id="meta_enums",
            summary="Every enum with its values and Chinese and English labels",
            description="Each value carries both labels and `label` in the language `Accept-Language` prefers "
                        "(Chinese for zh, zh-CN, ...; English otherwise); the answer names it in `Content-Language`.",
            responses=problem_responses(401))
def enums(request: Request, response: Response, actor: CurrentUser) -> Any:
    language = preferred_language(request.headers.get("accept-language"))
    response.headers["Content-Language"] = CONTENT_LANGUAGE[language]
    response.headers["Vary"] = "Accept-Language"
    return describe_all(language)
