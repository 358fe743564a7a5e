"""Domain errors. Services raise these; the API layer turns each into the error
envelope ``{"error", "code"}`` with its status, so services never know about HTTP."""

from __future__ import annotations

from typing import Any


class StemForgeError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class NotFound(StemForgeError):
    code = "not_found"
    status = 404

    def __init__(self, what: str = "resource") -> None:
        super().__init__(f"{what} not found")


class Unauthorized(StemForgeError):
    code = "unauthorized"
    status = 401


class Forbidden(StemForgeError):
    code = "forbidden"
    status = 403


class Conflict(StemForgeError):
    code = "conflict"
    status = 409


class InvalidInput(StemForgeError):
    """Input that passed schema validation but makes no sense (reported as 422)."""

    code = "validation_error"
    status = 422


class BadRequest(StemForgeError):
    code = "bad_request"
    status = 400


class PayloadTooLarge(StemForgeError):
    code = "file_too_large"
    status = 413


class InvalidAudio(StemForgeError):
    code = "invalid_audio"
    status = 422
