"""Who is looking at a page: the signed session cookie, decoded by the middleware."""

from __future__ import annotations

from fastapi import Request

from core import accounts
from core.security import SessionData
from data.db import session_scope
from data.models import User


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


def csrf_token(request: Request) -> str:
    sess = browser_session(request)
    return sess.csrf if sess else ""
