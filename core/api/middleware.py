"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware on every request).

``SessionMiddleware`` decodes the signed session cookie into ``scope["state"]``
for routes and NiceGUI pages alike, and gives a browser that has none a fresh
anonymous session, so the first form it sees already carries a CSRF token.
``RateLimitHeaders`` copies the limiter's verdict onto every ``/api`` response.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import security

# Paths that never render a page, so they never need a fresh anonymous session.
_NO_NEW_SESSION = ("/api/", "/_nicegui", "/socket", "/files/", "/export/", "/health", "/docs", "/openapi",
                   "/redoc", "/favicon")


class SessionMiddleware:
    def __init__(self, app: ASGIApp, signer: security.SessionSigner, cookie_name: str, secure: bool) -> None:
        self.app = app
        self.signer = signer
        self.cookie_name = cookie_name
        self.secure = secure

    def _read(self, scope: Scope) -> security.SessionData | None:
        for name, value in scope.get("headers", ()):
            if name == b"cookie" and self.cookie_name.encode() in value:
                jar = SimpleCookie()
                try:
                    jar.load(value.decode("latin-1"))
                except Exception:  # a malformed Cookie header from some client is not our problem
                    return None
                morsel = jar.get(self.cookie_name)
                return self.signer.loads(morsel.value) if morsel else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sess = self._read(scope)
        scope.setdefault("state", {})["session"] = sess
        path: str = scope.get("path", "")
        fresh = (
            sess is None
            and scope["type"] == "http"
            and scope.get("method") == "GET"
            and not path.startswith(_NO_NEW_SESSION)
        )
        if not fresh:
            await self.app(scope, receive, send)
            return
        new = security.SessionData(csrf=security.new_csrf_token())
        scope["state"]["session"] = new
        cookie = (
            f"{self.cookie_name}={self.signer.dumps(new)}; Path=/; Max-Age={self.signer.max_age}; "
            f"HttpOnly; SameSite=Lax" + ("; Secure" if self.secure else "")
        )

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                already = any(
                    v.startswith(self.cookie_name + "=") for v in headers.getlist("set-cookie")
                )
                if not already:
                    headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class RateLimitHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/api"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state", {}).get("ratelimit")
                if state is not None:
                    # Appended as raw pairs: nothing else sets these names, so no look-up is needed.
                    message["headers"] = [
                        *message.get("headers", ()),
                        (b"x-ratelimit-limit", str(state.limit).encode()),
                        (b"x-ratelimit-remaining", str(state.remaining).encode()),
                        (b"x-ratelimit-reset", str(state.reset_in).encode()),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class UploadSizeLimit:
    """Answer 413 from the Content-Length alone, before a huge upload is read and spooled to disk."""

    def __init__(self, app: ASGIApp, max_bytes: int, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in ("POST", "PUT") and scope["path"].startswith(
            self.prefixes
        ):
            length = dict(scope.get("headers", ())).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                from starlette.responses import JSONResponse

                limit_mb = self.max_bytes // (1024 * 1024)
                response = JSONResponse(
                    {"error": f"The file is larger than the {limit_mb} MB limit", "code": "file_too_large"},
                    status_code=413,
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
