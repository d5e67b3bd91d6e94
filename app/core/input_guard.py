"""Hostile text in a request, refused before routing with a 422 problem document.

Text the records cannot hold must never reach a database driver (PostgreSQL refuses NUL characters and
neither driver can encode a lone surrogate: a driver error, or worse, a 500) nor be silently altered (an
invalid UTF-8 query byte would become U+FFFD). Refused here, for every operation at once:
- a query string or path that is not UTF-8 once percent-decoded;
- a JSON or form body that is not UTF-8;
- a JSON string holding NUL (`\\u0000`) or a lone UTF-16 surrogate (`\\ud800` without its pair);
- a form field holding NUL.
The body is at most `max_body_bytes` (the observability middleware, outside this one, enforces it while this
one reads), so buffering it whole is bounded.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE

# A \uXXXX escape that is really an escape: preceded by an even number of backslashes (0, 2, …).
_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([0-9a-fA-F]{4})")


def _bad_json_text(body: bytes) -> str | None:
    """Why this JSON body's text cannot be stored, or None."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "The request body is not valid UTF-8."
    expect_low_at = -1
    for match in _ESCAPE.finditer(body):
        code = int(match.group(1), 16)
        start = match.end() - 6  # where this \uXXXX begins
        if expect_low_at >= 0:
            if start != expect_low_at or not 0xDC00 <= code <= 0xDFFF:
                return "A string holds an unpaired UTF-16 surrogate."
            expect_low_at = -1
            continue
        if code == 0:
            return "NUL characters are not allowed in text."
        if 0xD800 <= code <= 0xDBFF:
            expect_low_at = match.end()
        elif 0xDC00 <= code <= 0xDFFF:
            return "A string holds an unpaired UTF-16 surrogate."
    if expect_low_at >= 0:
        return "A string holds an unpaired UTF-16 surrogate."
    return None


def _bad_urlencoded(raw: bytes, what: str) -> str | None:
    if raw.isascii() and b"%" not in raw and b"\x00" not in raw:
        return None  # the common case, checked without decoding: plain ASCII is UTF-8 already
    decoded = unquote_to_bytes(raw.replace(b"+", b" "))
    if b"\x00" in decoded:
        return f"NUL characters are not allowed in the {what}."
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return f"The {what} is not valid UTF-8."
    return None


def _media_type(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.split(b";", 1)[0].strip().lower().decode("latin-1")
    return ""


class InputGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _bad_urlencoded(scope.get("query_string", b""), "query string") or _bad_urlencoded(
            scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape"), "path")
        if problem:
            await _refuse(scope, send, problem)
            return
        media_type = _media_type(scope)
        is_json = media_type == "application/json" or media_type.endswith("+json")
        is_form = media_type == "application/x-www-form-urlencoded"
        if not (is_json or is_form) or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = _bad_json_text(body) if is_json else _bad_urlencoded(body, "form body")
        if problem:
            await _refuse(scope, send, problem)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _refuse(scope: Scope, send: Send, detail: str) -> None:
    import json

    body = json.dumps({
        "type": PROBLEM_BASE + "validation-error", "title": "Invalid input", "status": 422,
        "detail": detail, "code": "validation_error", "instance": scope.get("path"),
    }).encode()
    await send({"type": "http.response.start", "status": 422, "headers": [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})
