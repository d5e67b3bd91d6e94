"""Passwords, tokens and personal data protection.

This module is the only caller of python-jose: every token is made by
`create_token` and read by `decode_token`, with an explicit algorithm list and
every registered claim required.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jose import jwt
from jose.exceptions import JWTError
from pwdlib import PasswordHash

from app.core.config import get_settings

ALGORITHMS = ["HS256"]
TokenType = Literal["access", "refresh"]
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti", "typ")

_password_hash = PasswordHash.recommended()
# Each argon2 hash or verification holds its memory cost (64 MiB) while it runs, so concurrent logins were what
# pushed a worker's peak RSS past 250 MB (issue 8). One at a time per process: the peak is one memory cost, and
# a login waits for the one before it, which also spends its CPU time (the verification is CPU-bound anyway).
_hashing = threading.BoundedSemaphore(1)
# Verified against when the username is unknown, so both failures cost the same.
with _hashing:
    _DUMMY_HASH = _password_hash.hash("not-a-real-password-" + secrets.token_hex(8))


def hash_password(password: str) -> str:
    with _hashing:
        return _password_hash.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    with _hashing:
        if password_hash is None:
            _password_hash.verify(password, _DUMMY_HASH)
            return False
        try:
            return _password_hash.verify(password, password_hash)
        except Exception:
            return False


class TokenError(Exception):
    """Any reason a token is not acceptable; the caller answers 401."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: dt.datetime


def create_token(
    *, subject: str, token_type: TokenType, lifetime: dt.timedelta, claims: dict[str, Any] | None = None,
    jti: str | None = None,
) -> IssuedToken:
    settings = get_settings()
    now = dt.datetime.now(dt.UTC)
    expires = now + lifetime
    token_id = jti or uuid.uuid4().hex
    payload: dict[str, Any] = {
        **(claims or {}),
        "sub": subject,
        "typ": token_type,
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": token_id,
    }
    token = jwt.encode(payload, settings.secret_key, algorithm=ALGORITHMS[0])
    return IssuedToken(token=token, jti=token_id, expires_at=expires)


def decode_token(token: str, *, expected_type: TokenType) -> dict[str, Any]:
    """Verify signature, algorithm, expiry, issuer, audience and type; return the claims."""
    settings = get_settings()
    claims = _verified(token, settings.secret_key, settings.token_audience, settings.token_issuer)
    # A token verified before may have expired since: python-jose's rule (no leeway) on every use.
    if claims["exp"] < _now_seconds():
        raise TokenError("Signature has expired.")
    if claims.get("typ") != expected_type:
        raise TokenError("wrong token type")
    return dict(claims)


def _now_seconds() -> int:
    return int(time.time())  # whole seconds since the epoch, as python-jose reads the clock (timegm of utcnow)


@lru_cache(maxsize=1024)
def _verified(token: str, secret_key: str, audience: str, issuer: str) -> MappingProxyType[str, Any]:
    """The claims of a token that verified, by its text and the settings it verified against.

    Every authenticated request verified its bearer token afresh (python-jose: base64, JSON, HMAC and the claim
    checks, about 8 % of a get by id's CPU, issue 8), although a client sends the same token until it expires.
    The outcome depends on nothing but these arguments and the clock, and the clock only through `exp` (these
    tokens carry no `nbf`), which `decode_token` checks on every use. Only tokens that verified are kept (a
    raised error is not cached); revocation is checked against the database per request as before."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret_key,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            options={
                "require_exp": True, "require_iat": True, "require_iss": True, "require_aud": True,
                "require_sub": True, "require_jti": True, "leeway": 0,
            },
        )
    except JWTError as exc:
        raise TokenError(str(exc)) from exc
    except Exception as exc:  # malformed input of any shape is just a bad token
        raise TokenError("malformed token") from exc
    if any(claims.get(name) in (None, "") for name in REQUIRED_CLAIMS):
        raise TokenError("missing claim")
    if "nbf" in claims:  # never issued here; its check would depend on the clock
        raise TokenError("unexpected claim")
    claims["exp"] = int(claims["exp"])
    return MappingProxyType(claims)


def token_digest(value: str) -> str:
    """Stored form of a refresh token or client secret: never the value itself."""
    return hashlib.sha256(value.encode()).hexdigest()


# --- personal data -------------------------------------------------------


@lru_cache
def _data_keys() -> tuple[bytes, bytes]:
    settings = get_settings()
    master = (settings.data_key or settings.secret_key).encode()

    def derive(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

    return derive(b"pii-encryption"), derive(b"pii-lookup-hash")


@lru_cache
def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_data_keys()[0]))


def encrypt_pii(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt_pii(value: str) -> str:
    try:
        return _fernet().decrypt(value.encode()).decode()
    except InvalidToken as exc:  # a wrong key is a deployment error, not a client's
        raise RuntimeError("personal data cannot be decrypted with the configured key") from exc


def pii_lookup_hash(value: str) -> str:
    """Keyed hash for uniqueness and exact lookup without storing the value."""
    return hmac.new(_data_keys()[1], value.encode(), hashlib.sha256).hexdigest()


def mask_id_number(value: str) -> str:
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str) -> str:
    """A mobile number as 138****5678; a landline with at least half its digits, and at least four, hidden
    (a 7-digit one showed in full when the mask kept three and four)."""
    if len(value) == 11 and value.startswith("1"):
        return value[:3] + "****" + value[-4:]
    hidden = max(4, -(-len(value) // 2))
    if len(value) <= hidden:
        return "*" * len(value)
    tail = min(4, (len(value) - hidden) // 2)
    head = len(value) - hidden - tail
    return value[:head] + "*" * hidden + (value[-tail:] if tail else "")


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
