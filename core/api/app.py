"""The FastAPI application: REST routes, error envelope, middleware, start-up.

NiceGUI pages are attached to this same app by the composition root (main.py),
so one uvicorn process serves pages, REST and /socket.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from core import security
from core.api import socket as job_socket
from core.api.deps import SESSION_COOKIE, api_user
from core.api.errors import install_error_handlers
from core.api.middleware import RateLimitHeaders, SessionMiddleware, UploadSizeLimit
from core.api.routes import (
    analysis,
    daw,
    download,
    export,
    files,
    health,
    jobs,
    lalalai,
    processing,
    spotify,
    spotify_auth,
    spotify_library,
    tracks,
    users,
)
from core.api.schemas import ErrorOut
from core.daw.export import MAX_UPLOADED_STEMS
from core.errors import NotFound
from core.event_hub import EventHub
from core.events import event_log_from_settings
from core.lifecycle import startup
from core.ratelimit import RateLimiter
from core.settings import Settings
from data import db
from data.files import FileStore

log = logging.getLogger("stemforge")

API_DESCRIPTION = """
StemForge REST API. Authenticate with `Authorization: Bearer <token>` (create tokens on the
settings page or with `python main.py tokens create --email ...`).

Success bodies are `{"data": ...}`; errors are `{"error": "...", "code": "..."}` (validation errors add
`details`). Every `/api` response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
`X-RateLimit-Reset` (seconds until the window frees up).
"""


API_CATCH_ALL = "/api/{path:path}"


def _allowed_methods(request: Request) -> list[str]:
    """The methods the app's other routes answer on this request's path (none: the path is unknown)."""
    scope = {**request.scope, "method": "\x00"}  # no route takes this method: every path match is partial
    allowed: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.path != API_CATCH_ALL:
            match, _ = route.matches(scope)
            if match is Match.PARTIAL:
                allowed.update(route.methods or ())
    return sorted(allowed)


def _api_not_found_router() -> APIRouter:
    """/api requests no route takes answer the JSON envelope (after auth), not the page app's HTML 404:
    405 ``method_not_allowed`` with an ``Allow`` header for a method the path does not take (any method:
    PUT on a GET-only path, TRACE, QUERY ...), 404 ``not_found`` for a path that does not exist.

    A plain Starlette route (``methods=None`` takes every method), last in the app's routes."""
    router = APIRouter(include_in_schema=False)

    router.routes.append(Route(API_CATCH_ALL, _ApiNotFound(), methods=None, include_in_schema=False))
    return router


class _ApiNotFound:
    """The catch-all's endpoint, an ASGI app: Starlette gives a plain function endpoint GET only."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await api_user(request)
        allowed = _allowed_methods(request)
        if allowed:
            raise StarletteHTTPException(405, f"{request.method} is not allowed here; use {', '.join(allowed)}",
                                         headers={"Allow": ", ".join(allowed)})
        raise NotFound("endpoint")


# Routes that take only the browser's session cookie (with its CSRF token), not an API token.
_COOKIE_ONLY = ("/users/", "/api/daw/export")


def _document_auth(schema: dict) -> None:
    """How each operation authenticates, for clients generated from the document (and /docs' Authorize
    button): ``/api`` routes take a bearer API token or the session cookie, the browser routes the cookie
    only; ``/health`` and the sign-in routes nothing."""
    schemes = schema["components"].setdefault("securitySchemes", {})
    schemes["bearerAuth"] = {"type": "http", "scheme": "bearer",
                             "description": "An API token (sf_...) from Settings > API tokens or POST /users/tokens"}
    schemes["sessionCookie"] = {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                                "description": "The browser's session; changes also need the X-CSRF-Token header"}
    open_paths = ("/users/log-in", "/users/register", "/health", "/auth/")
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete") or path.startswith(open_paths):
                continue
            if path.startswith(_COOKIE_ONLY):
                operation["security"] = [{"sessionCookie": []}]
            elif path.startswith("/api/"):
                operation["security"] = [{"bearerAuth": []}, {"sessionCookie": []}]


def _openapi_with_envelope(app: FastAPI) -> None:
    """FastAPI documents its own 422 body; ours is the error envelope, so the schema says so."""

    def build() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                response = operation.get("responses", {}).get("422")
                if response:
                    response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components.setdefault("ErrorOut", ErrorOut.model_json_schema())
        _document_auth(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, put on the app's own router.

    ``app.include_router`` would keep them behind a wrapper that FastAPI (0.165) walks on every
    request (a route-version check, an effective route context per route): 17 µs of the ~125 µs
    GET /api/tracks/{id} takes in process (bench/README.md). A route made by an ``APIRouter`` already
    carries all it needs (full path with the prefix, tags, responses, dependencies); the OpenAPI
    document is the same either way.
    """
    app.router.routes.extend(router.routes)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await startup(settings)
        # One EventHub per web process follows the job-event log for /socket and the pages.
        hub = app.state.hub = EventHub(app.state.events)
        await hub.start()
        log.info("StemForge ready on %s (data dir %s)", settings.public_url, settings.data_dir.resolve())
        try:
            yield
        finally:
            await hub.stop()
            await db.dispose_engine()

    app = FastAPI(
        title="StemForge",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    signer = security.SessionSigner(settings.session_secret, settings.session_max_age_days * 86400)
    app.state.settings = settings
    app.state.signer = signer
    app.state.store = FileStore(settings.uploads_dir)
    app.state.events = event_log_from_settings(settings)
    app.state.limiter = RateLimiter(settings.redis_url)

    install_error_handlers(app)
    _openapi_with_envelope(app)
    # Tracks first: routes are matched in order and GET /api/tracks/{id} is the most frequent request.
    routers = (tracks.router, health.router, users.router, spotify.router, files.router, jobs.router,
               download.router, job_socket.router, analysis.router, analysis.export_router, processing.router,
               lalalai.router, export.router, daw.router, spotify_library.router, spotify_auth.router,
               _api_not_found_router())
    for router in routers:
        _add_routes(app, router)

    app.add_middleware(RateLimitHeaders)
    # Multipart overhead on top of the file itself stays well under 1 MB.
    app.add_middleware(
        UploadSizeLimit, max_bytes=settings.max_upload_mb * 1024 * 1024 + 1024 * 1024, prefixes=("/api/tracks/upload",)
    )
    # The export's uploaded stems: each file is checked on its own (422), the whole body bounded here.
    app.add_middleware(UploadSizeLimit, max_bytes=MAX_UPLOADED_STEMS * settings.max_upload_mb * 1024 * 1024
                       + 4 * 1024 * 1024, prefixes=("/api/daw/export",))
    app.add_middleware(SessionMiddleware, signer=signer, cookie_name=SESSION_COOKIE, secure=settings.cookie_secure)
    return app
