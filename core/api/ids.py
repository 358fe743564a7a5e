"""Ids in request paths and bodies: a malformed id is answered exactly like an unknown one (404), so
probing with odd values tells a client nothing it could not learn from a random UUID."""

from __future__ import annotations

import uuid

from core.errors import NotFound


def id_or_404(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(what) from None
