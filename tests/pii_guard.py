"""Suite-wide guard: no response to a caller without `pii_read` carries an unmasked ID or mobile number.

`install(client)` adds an httpx response hook to a TestClient (the `client` fixture does it for every
test). Each response to a request whose bearer token belongs to a role without `pii_read` (or whose
token cannot be read at all) is searched for 18-character ID numbers and 11-digit mobile numbers; a hit
raises `PiiLeak`, failing the test with the method and path. Requests without a token (logins, health
checks) and callers holding `pii_read` are not checked. `STATS` counts what was checked, so a test can
prove the guard is not passing vacuously.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from app.core.permissions import Permission, permissions_for
from app.core.security import TokenError, decode_token

# Like \b\d{17}[\dXx]\b and \b1\d{10}\b, but bounded by ASCII letters and digits only: in Unicode mode
# \b sees no boundary between a Chinese character and a digit, so "电话13812345678" would slip through.
_EDGE_BEFORE, _EDGE_AFTER = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
ID_NUMBER = re.compile(_EDGE_BEFORE + r"[0-9]{17}[0-9Xx]" + _EDGE_AFTER)
MOBILE = re.compile(_EDGE_BEFORE + r"1[0-9]{10}" + _EDGE_AFTER)


class PiiLeak(AssertionError):
    """A response to a caller without pii_read contained an unmasked ID or phone number."""


@dataclass
class GuardStats:
    checked: int = 0
    skipped: int = 0


STATS = GuardStats()


def unmasked_values(text: str) -> list[str]:
    """Every substring of `text` that looks like a whole ID number or mobile number."""
    return ID_NUMBER.findall(text) + MOBILE.findall(text)


def caller_may_read_pii(request: httpx.Request) -> bool | None:
    """None without a bearer token; otherwise whether the token's role holds pii_read."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        claims = decode_token(token.strip(), expected_type="access")
    except TokenError:
        return False  # an unreadable token is checked like the weakest caller's
    if Permission.pii_read in permissions_for(str(claims.get("role", ""))):
        return True
    # A service client's permissions are its own, named in its token's scope claim (a client token without
    # one is refused).
    scope = claims.get("scope")
    return isinstance(scope, str) and Permission.pii_read.value in scope.split(" ")


def check_response(response: httpx.Response) -> None:
    request = response.request
    may_read = caller_may_read_pii(request)
    if may_read is None or may_read:
        STATS.skipped += 1
        return
    response.read()
    STATS.checked += 1
    hits = unmasked_values(response.text)
    if hits:
        shown = ", ".join(h[:4] + "…" for h in hits[:5])
        raise PiiLeak(
            f"{request.method} {request.url.path} answered a caller without pii_read with "
            f"{len(hits)} unmasked ID/phone number(s): {shown}"
        )


def install(client: httpx.Client) -> httpx.Client:
    """Check every response `client` receives from now on."""
    hooks = dict(client.event_hooks)
    if check_response not in hooks.get("response", []):
        hooks["response"] = [*hooks.get("response", []), check_response]
        client.event_hooks = hooks
    return client


def is_installed(client: httpx.Client) -> bool:
    return check_response in client.event_hooks.get("response", [])
