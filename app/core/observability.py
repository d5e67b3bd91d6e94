"""One ASGI middleware: request id, body limit, security headers, metrics, JSON access logs."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import request_id_var
from app.core.i18n import CONTENT_LANGUAGE, localize, preferred_language

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]

log = logging.getLogger("app.access")
# Set by the current-user dependency: (username, role) of the caller, logged with the request.
PRINCIPAL_SCOPE_KEY = "app.principal"
# Set by a response that stopped because its client left before it was answered (app.core.pagination's exports,
# waiting for their turn): logged and counted as 499, nginx's "client closed request", not as a 500.
CLIENT_LEFT_SCOPE_KEY = "app.client_left"
CLIENT_LEFT = 499
error_log = logging.getLogger("app.errors")

# Last line of defence for messages and tracebacks that echo input: ID numbers, mobile numbers, tokens.
_REDACTIONS = [
    (re.compile(r"(?<![0-9A-Za-z])\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
                r"(?![0-9A-Za-z])"), "[id-number]"),
    (re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"), "[phone]"),
    (re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*"), "[token]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+"), r"\1 [credentials]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line; personal data never reaches a log (only ids and paths)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
            "request_id": request_id_var.get(),
        }
        for key in ("method", "route", "status", "duration_ms", "user", "role", "error"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


class BodyTooLarge(Exception):
    pass


_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram of one (method, route template, status).

    Kept, not looked up with `labels()` on every request: that takes the metric's lock and builds the label
    tuple each time (about a tenth of a /healthz's own CPU, issue 8). The keys are bounded as the metrics'
    own are: route templates, not paths."""
    key = (method, route, status)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES[key] = (REQUESTS.labels(method, route, str(status)),
                                 LATENCY.labels(method, route, str(status)))
    return series


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_OK.fullmatch(incoming) else os.urandom(16).hex()
        token = request_id_var.set(request_id)
        status_holder = {"status": 500}
        authenticated = b"authorization" in headers
        limit = self.max_body_bytes

        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            await _send_problem(scope, send, request_id, 422, "validation_error", "Invalid input",
                                "NUL characters are not allowed in the URL.")
            request_id_var.reset(token)
            return

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_too_large(scope, send, request_id)
            request_id_var.reset(token)
            return

        received = 0
        # API answers (tokens included) are never cached; so is anything asked with a token.
        no_store = authenticated or scope.get("path", "").startswith("/api/")
        state = {"too_large": False, "started": False, "replaced": False}

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    state["too_large"] = True
                    raise BodyTooLarge()
            return message

        async def send_wrapper(message: Message) -> None:
            if state["replaced"]:
                return  # the rest of an answer we replaced
            if message["type"] == "http.response.start":
                state["started"] = True
                if state["too_large"]:
                    # The framework turns an interrupted body into a 400; the client sent too much: 413.
                    state["replaced"] = True
                    status_holder["status"] = 413
                    await _send_too_large(scope, send, request_id)
                    return
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                if no_store and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
            if not state["started"] and scope.get(CLIENT_LEFT_SCOPE_KEY):
                status_holder["status"] = CLIENT_LEFT
        except BodyTooLarge:
            if state["started"]:
                raise
            await _send_too_large(scope, send, request_id)
            status_holder["status"] = 413
        except Exception:
            if state["started"]:
                raise
            # Answered here, not by the outermost handler, so the 500 still carries the request id,
            # the security headers and a log line tied to the request.
            error_log.exception("unhandled error")
            await _send_problem(scope, send, request_id, 500, "internal_error", "Internal server error", None)
            status_holder["status"] = 500
        finally:
            route = scope.get("route")
            # path_format: the template as the contract writes it (`path` may carry a convertor, `{id:int}`).
            template = getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - start
            count, latency = _series(scope["method"], template, status_holder["status"])
            count.inc()
            latency.observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                extra: dict[str, Any] = {"method": scope["method"], "route": template,
                                         "status": status_holder["status"], "duration_ms": round(elapsed * 1000, 2)}
                principal = scope.get(PRINCIPAL_SCOPE_KEY)
                if principal is not None:
                    extra["user"], extra["role"] = principal
                log.info("request", extra=extra)
            request_id_var.reset(token)


async def _send_too_large(scope: Scope, send: Send, request_id: str) -> None:
    await _send_problem(scope, send, request_id, 413, "payload_too_large", "Payload too large",
                        "The request body is larger than the 1 MiB the service accepts.")


async def _send_problem(scope: Scope, send: Send, request_id: str, status: int, code: str, title: str,
                        detail: str | None) -> None:
    """A problem document from below the framework (before routing), in the language the request prefers."""
    language = preferred_language(dict(scope["headers"]).get(b"accept-language", b"").decode("latin-1"))
    title, detail = localize(language, code, title, detail)
    body = json.dumps({
        "type": "https://partyrecords.example.gov.cn/problems/" + code.replace("_", "-"),
        "title": title, "status": status, "code": code, "detail": detail, "instance": scope.get("path"),
    }).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()), (b"cache-control", b"no-store"), *SECURITY_HEADERS,
        (b"content-language", CONTENT_LANGUAGE[language].encode()), (b"vary", b"Accept-Language"),
    ]})
    await send({"type": "http.response.body", "body": body})
