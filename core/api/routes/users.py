"""Browser account routes: register, log in/out, settings, API tokens.

The GET forms are NiceGUI pages (ui/); these handle the submissions. Each takes
an HTML form (answering with a redirect, so it works without JavaScript) or JSON
(answering with the envelope). Cross-site HTML forms are stopped by the CSRF
field; cross-site JSON needs a CORS preflight that this server never grants.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ValidationError

from core import accounts, security, user_settings
from core.api.deps import (
    BrowserUser,
    SessionDep,
    SettingsDep,
    browser_session,
    check_csrf,
    login_limit,
    safe_next,
    sign_in_browser,
    write_session,
)
from core.api.ids import id_or_404
from core.api.schemas import (
    Credentials,
    Envelope,
    ErrorOut,
    SessionOut,
    SettingsOut,
    SettingsUpdate,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserOut,
)
from core.errors import StemForgeError
from data.models import User

router = APIRouter(prefix="/users", tags=["accounts"])
M = TypeVar("M", bound=BaseModel)

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _either_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body that may come as JSON or as an HTML form."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    }


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(_FORM_TYPES)


async def _body(request: Request, model: type[M]) -> M:
    """Validate a JSON or form body against a model; form submissions must carry the CSRF field."""
    raw: Any
    if _is_form(request):
        await check_csrf(request)
        form = await request.form()
        raw = {k: v for k, v in form.items() if k != "_csrf_token" and isinstance(v, str)}
    else:
        try:
            raw = await request.json()
        except ValueError as exc:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "Invalid JSON", "ctx": {"error": str(exc)}}]
            ) from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


def _back(path: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def _session_json(request: Request, user: User, status_code: int = 200) -> Response:
    data = security.SessionData(csrf=security.new_csrf_token(), user_id=str(user.id), epoch=user.session_epoch)
    out = SessionOut(user=UserOut.model_validate(user), csrf_token=data.csrf)
    response = JSONResponse({"data": out.model_dump(mode="json")}, status_code=status_code)
    write_session(request, response, data)
    return response


@router.post(
    "/register",
    status_code=201,
    response_model=Envelope[SessionOut],
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}, 303: {"description": "Form: redirect"}},
    openapi_extra=_either_body(Credentials),
    dependencies=[Depends(login_limit)],
)
async def register(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Creates an account and signs it in."""
    form = _is_form(request)
    try:
        creds = await _body(request, Credentials)
        user = await accounts.register(session, creds.email, creds.password, min_length=settings.password_min_length)
    except (StemForgeError, RequestValidationError) as exc:
        if not form or getattr(exc, "code", "") == "csrf_failed":
            raise
        message = exc.message if isinstance(exc, StemForgeError) else "Please fill in e-mail and password"
        return _back("/users/register", error=message, email=str((await request.form()).get("email", "")))
    if form:
        return sign_in_browser(request, RedirectResponse("/", status_code=303), user)
    return _session_json(request, user, status_code=201)


@router.post(
    "/log-in",
    response_model=Envelope[SessionOut],
    responses={401: {"model": ErrorOut}, 429: {"model": ErrorOut}, 303: {"description": "Form: redirect"}},
    openapi_extra=_either_body(Credentials),
    dependencies=[Depends(login_limit)],
)
async def log_in(request: Request, session: SessionDep) -> Response:
    """Signs in with e-mail and password. Failures never say whether the e-mail has an account."""
    form = _is_form(request)
    try:
        creds = await _body(request, Credentials)
        user = await accounts.authenticate(session, creds.email, creds.password)
    except (StemForgeError, RequestValidationError) as exc:
        if not form or getattr(exc, "code", "") == "csrf_failed":
            raise
        message = exc.message if isinstance(exc, StemForgeError) else "Please fill in e-mail and password"
        values = await request.form()
        return _back(
            "/users/log-in", error=message, email=str(values.get("email", "")), next=str(values.get("next", ""))
        )
    if form:
        target = safe_next(str((await request.form()).get("next", "")))
        return sign_in_browser(request, RedirectResponse(target, status_code=303), user)
    return _session_json(request, user)


@router.delete("/log-out", status_code=204, responses={403: {"model": ErrorOut}})
async def log_out(request: Request) -> Response:
    """Ends this browser's session (needs the CSRF token like every cookie-authenticated change)."""
    if browser_session(request) is None:
        return Response(status_code=204)
    await check_csrf(request)
    response = Response(status_code=204)
    write_session(request, response, security.SessionData(csrf=security.new_csrf_token()))
    return response


@router.put(
    "/settings",
    response_model=Envelope[SettingsOut],
    openapi_extra=_either_body(SettingsUpdate),
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def update_settings(request: Request, user: BrowserUser, session: SessionDep, settings: SettingsDep) -> Response:
    """Updates profile and defaults; with ``current_password`` + ``new_password`` also the password
    (which signs out every other browser)."""
    body = await _body(request, SettingsUpdate)
    epoch = user.session_epoch
    out = SettingsOut(**await user_settings.update(session, user, body.model_dump(exclude_unset=True), settings))
    response = JSONResponse({"data": out.model_dump(mode="json")})
    if user.session_epoch != epoch:  # password changed: keep this browser signed in
        sign_in_browser(request, response, user)
    return response


@router.get("/tokens", response_model=Envelope[list[TokenOut]], responses={401: {"model": ErrorOut}})
async def list_tokens(user: BrowserUser, session: SessionDep) -> Envelope[list[TokenOut]]:
    rows = await accounts.list_tokens(session, user)
    return Envelope(data=[TokenOut.model_validate(r) for r in rows])


@router.post(
    "/tokens",
    status_code=201,
    response_model=Envelope[TokenCreated],
    openapi_extra=_either_body(TokenCreate),
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)
async def create_token(request: Request, user: BrowserUser, session: SessionDep) -> Envelope[TokenCreated]:
    """Creates an API token. The response holds the token itself; it is never shown again."""
    body = await _body(request, TokenCreate) if await request.body() else TokenCreate()
    issued = await accounts.create_token(session, user, body.name)
    return Envelope(data=TokenCreated(**TokenOut.model_validate(issued.record).model_dump(), token=issued.token))


@router.delete("/tokens/{token_id}", status_code=204, responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def revoke_token(token_id: str, user: BrowserUser, session: SessionDep) -> Response:
    await accounts.revoke_token(session, user, id_or_404(token_id, "token"))
    return Response(status_code=204)
