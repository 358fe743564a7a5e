"""The error envelope, installed over every FastAPI/Starlette default error body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import StemForgeError

log = logging.getLogger("stemforge.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "file_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


class RateLimited(StemForgeError):
    code = "rate_limited"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limit exceeded")
        self.retry_after = retry_after


def envelope(status: int, message: str, code: str, *, headers: dict[str, str] | None = None,
             **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "code": code}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie", "form")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def validation_details(errors: list[dict[str, Any]]) -> dict[str, str]:
    details: dict[str, str] = {}
    for err in errors:
        if err.get("type") == "json_invalid":
            details["body"] = f"Invalid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"
            continue
        name = _field_name(tuple(err.get("loc", ())))
        msg = err.get("msg", "invalid value")
        if err.get("type") == "model_attributes_type" or (name == "body" and "dict" in msg):
            # The whole body not an object usually means another Content-Type; a field, a value of another kind.
            msg = ("Expected a JSON object (Content-Type: application/json)" if name == "body"
                   else "Expected a JSON object")
        details.setdefault(name, msg)
    return details


async def _domain_error(_: Request, exc: StemForgeError) -> JSONResponse:
    headers = None
    extra: dict[str, Any] = {"details": exc.details}
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
        extra["retry_after"] = exc.retry_after
    return envelope(exc.status, exc.message, exc.code, headers=headers, **extra)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    details = validation_details(list(exc.errors()))
    first = next(iter(details.items()), ("body", "invalid request"))
    return envelope(422, f"Invalid request: {first[0]}: {first[1]}", "validation_error", details=details)


# FastAPI's words for a body it cannot decode (not UTF-8 text, a broken multipart form).
_BODY_UNREADABLE = "There was an error parsing the body"


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404:
        message = "not found"
    elif exc.status_code == 400 and message == _BODY_UNREADABLE:
        message = "The request body could not be read: send JSON as UTF-8 text (or a well-formed multipart form)"
    return envelope(exc.status_code, message, code, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return envelope(500, "internal server error", "internal_error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StemForgeError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
