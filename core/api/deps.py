"""Dependencies every route states in its signature: database session, current user,
CSRF, rate limits. Routes stay a few lines because the rules live here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from core import accounts, security
from core.api.errors import RateLimited
from core.errors import Forbidden, Unauthorized
from core.ratelimit import RateLimiter
from core.settings import Settings
from data.db import session_scope
from data.files import FileStore
from data.models import User

SESSION_COOKIE = "stemforge_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "_csrf_token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def get_session() -> AsyncIterator[AsyncSession]:
    async with session_scope() as session:
        yield session


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> FileStore:
    return request.app.state.store


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[FileStore, Depends(get_store)]


# --- browser sessions -------------------------------------------------------------------------


def browser_session(request: Request) -> security.SessionData | None:
    """The signed-cookie session the middleware decoded (None when absent or tampered with)."""
    return request.scope.get("state", {}).get("session")


def write_session(request: Request, response: Response, data: security.SessionData) -> None:
    settings: Settings = request.app.state.settings
    signer: security.SessionSigner = request.app.state.signer
    response.set_cookie(
        SESSION_COOKIE,
        signer.dumps(data),
        max_age=signer.max_age,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    request.scope.setdefault("state", {})["session"] = data


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this site, else ``/``: an open redirect after login is a phishing tool."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def sign_in_browser(request: Request, response: Response, user: User) -> Response:
    """Sign this browser in as ``user`` on ``response`` (a fresh CSRF token: one planted before is worthless)."""
    data = security.SessionData(csrf=security.new_csrf_token(), user_id=str(user.id), epoch=user.session_epoch)
    write_session(request, response, data)
    return response


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing, cookie-authenticated request without the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    sess = browser_session(request)
    given = request.headers.get(CSRF_HEADER)
    if not given:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            # ``csrf_token`` is the DAW export's field name (its contract); ``_csrf_token`` the pages' forms'.
            given = form.get(CSRF_FIELD) or form.get("csrf_token")  # type: ignore[assignment]
    if not security.csrf_matches(sess.csrf if sess else None, given if isinstance(given, str) else None):
        raise Forbidden("CSRF token missing or invalid; reload the page and try again", code="csrf_failed")


async def cookie_user(request: Request, session: AsyncSession) -> User | None:
    sess = browser_session(request)
    if sess is None or sess.user_id is None:
        return None
    user = await accounts.get_user(session, sess.user_id)
    if user is None or user.session_epoch != sess.epoch:
        return None
    return user


async def browser_user(request: Request, session: SessionDep) -> User:
    """A signed-in browser; state-changing requests must carry the CSRF token."""
    user = await cookie_user(request, session)
    if user is None:
        if request.headers.get("authorization"):
            raise Unauthorized("This is a browser route: it takes the session cookie (log in at /users/log-in) "
                               "and its CSRF token, not an API token", code="unauthorized")
        raise Unauthorized("Please log in", code="unauthorized")
    await check_csrf(request)
    return user


BrowserUser = Annotated[User, Depends(browser_user)]


async def limited_browser_user(request: Request, user: BrowserUser) -> User:
    """A signed-in browser under the per-user API limit (with its X-RateLimit-* headers)."""
    settings: Settings = request.app.state.settings
    await _limit(request, "api", settings.rate_limit_api, str(user.id))
    return user


LimitedBrowserUser = Annotated[User, Depends(limited_browser_user)]


# --- API authentication and rate limits --------------------------------------------------------


async def _limit(request: Request, scope: str, spec: str, key: str) -> None:
    limiter: RateLimiter = request.app.state.limiter
    state = await limiter.hit(limiter.parse(spec), scope, key)
    # The tightest limit wins the headers: heavy routes report their own, smaller budget.
    current = request.scope["state"].get("ratelimit")
    if current is None or state.remaining <= current.remaining:
        request.scope["state"]["ratelimit"] = state
    if not state.allowed:
        raise RateLimited(state.retry_after)


def _client_key(request: Request) -> str:
    return "ip:" + (request.client.host if request.client else "unknown")


async def _authenticated(request: Request, scope: str, spec: str) -> User:
    """Bearer token or session cookie (with CSRF on changes), then the user's limit of ``scope``."""
    header = request.headers.get("authorization")
    user: User | None = None
    if header:
        scheme, _, token = header.partition(" ")
        user = await accounts.token_owner(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            await _limit(request, scope, spec, _client_key(request))
            raise Unauthorized("Invalid or revoked API token")
    else:
        async with session_scope() as session:
            user = await cookie_user(request, session)
        if user is None:
            await _limit(request, scope, spec, _client_key(request))
            raise Unauthorized("Authentication required: send 'Authorization: Bearer <token>'")
        await check_csrf(request)
    await _limit(request, scope, spec, str(user.id))
    return user


async def api_user(request: Request) -> User:
    """Bearer token (API clients) or session cookie (the browser app); then the per-user limit.

    The user is a detached, read-only snapshot (routes use ``user.id``): it may be the token cache's
    shared instance, so never change it or add it to a session; load the row to change the account.
    Taking no ``SessionDep`` here means a route that needs no ORM session pays for none.
    """
    settings: Settings = request.app.state.settings
    return await _authenticated(request, "api", settings.rate_limit_api)


async def media_user(request: Request) -> User:
    """Like ``api_user``, under the larger ``rate_limit_media`` budget: the editor's traffic (waveform peaks,
    PCM windows of several stems while it plays, a saved-remix change per gesture)."""
    settings: Settings = request.app.state.settings
    return await _authenticated(request, "media", settings.rate_limit_media)


async def heavy_limit(request: Request, user: Annotated[User, Depends(api_user)]) -> User:
    settings: Settings = request.app.state.settings
    await _limit(request, "heavy", settings.rate_limit_heavy, str(user.id))
    return user


CurrentUser = Annotated[User, Depends(api_user)]
MediaUser = Annotated[User, Depends(media_user)]
HeavyUser = Annotated[User, Depends(heavy_limit)]


async def login_limit(request: Request) -> None:
    settings: Settings = request.app.state.settings
    await _limit(request, "login", settings.rate_limit_login, _client_key(request))


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
