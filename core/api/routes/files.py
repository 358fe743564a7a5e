"""GET /files/<path>: the audio under the uploads dir, to its owner only, with Range support.

The browser's <audio> element and the waveform editor seek by asking for byte ranges, so
Starlette's FileResponse answers ``Range`` with 206 and ``Accept-Ranges: bytes``. Its plain-text
400/416 bodies are rewritten into the error envelope every other error uses.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.types import Message, Receive, Scope, Send

from core import accounts, file_access
from core.api.deps import SessionDep, cookie_user
from core.errors import NotFound, Unauthorized
from data.files import FileStore, UnsafePath
from data.models import User

router = APIRouter(tags=["files"])

# Python's mimetypes table varies by platform and lacks some audio types; these are what browsers expect.
AUDIO_TYPES = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".webm": "audio/webm",
    ".aiff": "audio/aiff",
    ".aif": "audio/aiff",
    ".json": "application/json",
    ".zip": "application/zip",
}

_RANGE_ERRORS = {400: ("Malformed Range header", "bad_request"), 416: ("Requested range not satisfiable",
                                                                     "range_not_satisfiable")}


def media_type(path: Path) -> str:
    return AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class StoredFileResponse(FileResponse):
    """FileResponse whose range errors carry the JSON envelope instead of an empty text body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        held: Message | None = None

        async def enveloped(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] in _RANGE_ERRORS:
                held = message
                return
            if held is not None and message["type"] == "http.response.body":
                error, code = _RANGE_ERRORS[held["status"]]
                body = json.dumps({"error": error, "code": code}).encode()
                headers = [(k, v) for k, v in held["headers"] if k.lower() not in (b"content-length", b"content-type")]
                headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({**held, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await super().__call__(scope, receive, enveloped)


async def _file_user(request: Request, session: SessionDep) -> User:
    """The browser session's user, or a bearer token's (scripts download stems too).

    No per-request rate limit here: a player seeking through a long track makes many requests.
    """
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        found = await accounts.user_for_token(session, token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise Unauthorized("Invalid or revoked API token")
        return found[0]
    user = await cookie_user(request, session)
    if user is None:
        raise Unauthorized("Please log in to open this file")
    return user


@router.get("/files/{path:path}", response_class=FileResponse,
                  responses={200: {"content": {"audio/mpeg": {}, "audio/wav": {}, "audio/flac": {}}},
                             206: {"description": "The requested byte range"},
                             404: {"description": "No such file, or not yours"},
                             416: {"description": "Range not satisfiable"}})
async def get_file(path: str, request: Request, session: SessionDep) -> FileResponse:
    """Serves a stored file (``audio_url`` of a track, a stem's URL) to its owner."""
    user = await _file_user(request, session)
    store: FileStore = request.app.state.store
    try:
        target = store.resolve(path)
    except UnsafePath:
        raise NotFound("file") from None
    relative = store.relative(target)
    await file_access.check_readable(session, user.id, relative)
    if not target.is_file():
        raise NotFound("file")
    return StoredFileResponse(target, media_type=media_type(target), content_disposition_type="inline",
                              filename=target.name, headers={"Cache-Control": "private, max-age=0"})


# HEAD answers the same headers (players probe the size first); kept out of the schema as a duplicate.
router.add_api_route("/files/{path:path}", get_file, methods=["HEAD"], include_in_schema=False)
