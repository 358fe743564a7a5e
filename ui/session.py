"""Who is looking at a page: the signed session cookie, decoded by the middleware."""

from __future__ import annotations

import uuid

from fastapi import Request

from core import accounts, tracks
from core.errors import NotFound
from core.security import SessionData
from data.db import session_scope
from data.models import Track, User


def browser_session(request: Request) -> SessionData | None:
    return request.scope.get("state", {}).get("session")


async def page_user(request: Request) -> User | None:
    sess = browser_session(request)
    if sess is None or sess.user_id is None:
        return None
    async with session_scope() as db:
        user = await accounts.get_user(db, sess.user_id)
    if user is None or user.session_epoch != sess.epoch:
        return None
    return user


async def owned_track(request: Request, track_id: str) -> tuple[User | None, Track | None]:
    """The signed-in user and their track ``track_id`` (None for a malformed, missing or foreign id)."""
    user = await page_user(request)
    if user is None:
        return None, None
    try:
        async with session_scope() as db:
            return user, await tracks.get_track(db, user.id, uuid.UUID(track_id))
    except (ValueError, NotFound):
        return user, None


def csrf_token(request: Request) -> str:
    sess = browser_session(request)
    return sess.csrf if sess else ""
