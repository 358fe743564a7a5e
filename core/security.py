"""Passwords, API tokens, signed session cookies, CSRF tokens and secret encryption.

All primitives come from maintained libraries (argon2-cffi, itsdangerous,
cryptography); this module only fixes how StemForge uses them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken
from itsdangerous import BadSignature, URLSafeTimedSerializer

TOKEN_PREFIX = "sf_"

_hasher = PasswordHasher()
# Verifying against this when the e-mail is unknown makes both failure paths cost the same,
# so response timing does not reveal which addresses have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def new_api_token() -> str:
    """A fresh bearer token; only its hash is ever stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    # Tokens carry 256 bits of entropy, so a fast hash is enough (and keeps auth cheap per request).
    return hashlib.sha256(token.encode()).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected and given) and hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class SessionData:
    """What the browser cookie carries: who (if anyone), the CSRF token, and the user's epoch."""

    csrf: str
    user_id: str | None = None
    epoch: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"c": self.csrf, "u": self.user_id, "e": self.epoch}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SessionData | None:
        csrf = raw.get("c")
        if not isinstance(csrf, str) or not csrf:
            return None
        uid = raw.get("u")
        epoch = raw.get("e", 0)
        return cls(csrf=csrf, user_id=uid if isinstance(uid, str) else None, epoch=int(epoch or 0))


class SessionSigner:
    """Signs and checks the session cookie (tamper-proof, expiring, not encrypted)."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._s = URLSafeTimedSerializer(secret, salt="stemforge-session")
        self.max_age = max_age_seconds

    def dumps(self, data: SessionData) -> str:
        return self._s.dumps(data.to_dict())

    def loads(self, cookie: str | None) -> SessionData | None:
        if not cookie:
            return None
        try:
            raw = self._s.loads(cookie, max_age=self.max_age)
        except BadSignature:
            return None
        return SessionData.from_dict(raw) if isinstance(raw, dict) else None


class SecretBox:
    """Encrypts secrets at rest (lalal.ai keys, OAuth tokens) with the data dir's key."""

    def __init__(self, key: str) -> None:
        self._f = Fernet(key.encode())

    def encrypt(self, plain: str) -> str:
        return self._f.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str | None:
        try:
            return self._f.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            return None


def mask_secret(value: str, keep: int = 4) -> str:
    """Show only the last characters of a stored key, so people recognise it without exposing it."""
    if len(value) <= keep:
        return "•" * len(value)
    return "•" * 8 + value[-keep:]
