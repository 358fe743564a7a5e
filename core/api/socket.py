"""``/socket/websocket``: live job updates over the Phoenix Channels JSON protocol, serializer v2.0.0.

The official ``phoenix`` JS client (and Phoenix clients in other languages) work unchanged: every frame
is ``[join_ref, ref, topic, event, payload]``. What the server does (spec: websocket contract):

* auth by ``token`` query param (an API token) or the session cookie; without either the upgrade is
  refused with HTTP 403;
* ``phx_join`` on ``jobs:JOB_ID`` (own jobs only; anything else answers ``not_found``) replies with the
  job's state, then replays the events after ``since`` (join payload), or, for a finished job, its last
  event, so a late client never waits forever; live events follow, deduplicated by ``seq``;
* ``heartbeat`` on ``phoenix``, ``ping`` and ``phx_leave`` on a joined topic; unknown events on a joined
  topic get ``unknown_event``; a client silent for ``socket_heartbeat_timeout_s`` is disconnected;
* a malformed frame closes the socket with 1003 and never reaches anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from core import accounts, jobs
from core.api.deps import cookie_user
from core.api.schemas import JobOut
from core.event_hub import EventHub, Subscription
from core.events import Event
from data.db import session_scope
from data.models import User

log = logging.getLogger("stemforge.socket")

router = APIRouter()

CLOSE_UNSUPPORTED = 1003  # malformed frames
CLOSE_UNAUTHORIZED = 4001
CLOSE_OVERLOADED = 1013  # the client fell too far behind: reconnect and join with "since"


class Malformed(Exception):
    pass


def parse_frame(text: str) -> tuple[str | None, str | None, str, str, dict[str, Any]]:
    try:
        frame = json.loads(text)
    except ValueError as exc:
        raise Malformed("not JSON") from exc
    if not isinstance(frame, list) or len(frame) != 5:
        raise Malformed("a frame is a JSON array of 5 elements")
    join_ref, ref, topic, event, payload = frame
    if not all(x is None or isinstance(x, str) for x in (join_ref, ref)):
        raise Malformed("join_ref and ref are strings or null")
    if not isinstance(topic, str) or not isinstance(event, str) or not isinstance(payload, dict):
        raise Malformed("topic and event are strings, payload an object")
    return join_ref, ref, topic, event, payload


async def authenticate(ws: WebSocket) -> User | None:
    token = ws.query_params.get("token")
    async with session_scope() as session:
        if token:
            found = await accounts.user_for_token(session, token)
            return found[0] if found else None
        return await cookie_user(ws, session)  # type: ignore[arg-type]  (only reads the scope's session)


class Connection:
    def __init__(self, ws: WebSocket, user: User, hub: EventHub, timeout_s: float) -> None:
        self.ws = ws
        self.user_id = user.id
        self.hub = hub
        self.timeout_s = timeout_s
        self.channels: dict[str, tuple[str | None, Subscription, asyncio.Task[None]]] = {}
        self._send_lock = asyncio.Lock()

    async def send(self, join_ref: str | None, ref: str | None, topic: str, event: str,
                   payload: dict[str, Any]) -> None:
        text = json.dumps([join_ref, ref, topic, event, payload], separators=(",", ":"))
        async with self._send_lock:
            await self.ws.send_text(text)

    async def reply(self, join_ref: str | None, ref: str | None, topic: str, status: str,
                    response: dict[str, Any]) -> None:
        await self.send(join_ref, ref, topic, "phx_reply", {"status": status, "response": response})

    async def run(self) -> None:
        try:
            while True:
                try:
                    message = await asyncio.wait_for(self.ws.receive(), timeout=self.timeout_s)
                except TimeoutError:
                    await self.ws.close(code=1000, reason="heartbeat timeout")
                    return
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    raise Malformed("binary frames are not supported")
                await self.handle(*parse_frame(text))
        except Malformed as exc:
            await self.ws.close(code=CLOSE_UNSUPPORTED, reason=str(exc)[:100])
        except WebSocketDisconnect:
            pass
        finally:
            for topic in list(self.channels):
                self.leave(topic)

    async def handle(self, join_ref: str | None, ref: str | None, topic: str, event: str,
                     payload: dict[str, Any]) -> None:
        if topic == "phoenix":
            if event == "heartbeat":
                await self.reply(None, ref, topic, "ok", {})
            else:
                await self.reply(join_ref, ref, topic, "error", {"reason": "unknown_event"})
            return
        if event == "phx_join":
            await self.join(join_ref, ref, topic, payload)
            return
        if topic not in self.channels:
            await self.reply(join_ref, ref, topic, "error", {"reason": "unmatched topic"})
            return
        if event == "phx_leave":
            channel_ref = self.channels[topic][0]
            self.leave(topic)
            await self.reply(join_ref, ref, topic, "ok", {})
            await self.send(channel_ref, channel_ref, topic, "phx_close", {})
        elif event == "ping":
            await self.reply(join_ref, ref, topic, "ok", {"pong": True})
        else:
            await self.reply(join_ref, ref, topic, "error", {"reason": "unknown_event"})

    def leave(self, topic: str) -> None:
        entry = self.channels.pop(topic, None)
        if entry is not None:
            entry[1].close()
            entry[2].cancel()

    async def join(self, join_ref: str | None, ref: str | None, topic: str, payload: dict[str, Any]) -> None:
        prefix, _, raw_id = topic.partition(":")
        job_id = _uuid(raw_id) if prefix == "jobs" else None
        if job_id is None:
            await self.reply(join_ref, ref, topic, "error", {"reason": "bad_topic"})
            return
        since = payload.get("since")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            await self.reply(join_ref, ref, topic, "error", {"reason": "bad_since"})
            return
        self.leave(topic)  # a second join of the same topic replaces the first, as in Phoenix
        # Subscribe before reading state and history, so no event falls between them.
        sub = self.hub.subscribe(job_id)
        try:
            async with session_scope() as session:
                job = await jobs.get_job_for_user(session, self.user_id, job_id)
        except Exception:  # NotFound: someone else's job looks exactly like a missing one
            sub.close()
            await self.reply(join_ref, ref, topic, "error", {"reason": "not_found"})
            return
        history = await self.hub.history(job_id)
        state = JobOut.model_validate(job).model_dump(mode="json")
        state["seq"] = last = history[-1].seq if history else 0
        await self.reply(join_ref, ref, topic, "ok", {"job": state})
        if since is not None:
            replay = [e for e in history if e.seq > since]
        else:
            # Late join: a finished job's last event, right after the reply; a running job: live from here.
            replay = history[-1:] if job.status in jobs.FINISHED else []
        for event in replay:
            await self.push(join_ref, topic, event)
        task = asyncio.create_task(self.forward(join_ref, topic, sub, last))
        self.channels[topic] = (join_ref, sub, task)

    async def push(self, join_ref: str | None, topic: str, event: Event) -> None:
        await self.send(join_ref, None, topic, event.event, event.payload)

    async def forward(self, join_ref: str | None, topic: str, sub: Subscription, last: int) -> None:
        try:
            while (event := await sub.get()) is not None:
                if event.seq > last:
                    last = event.seq
                    await self.push(join_ref, topic, event)
            if sub.overflowed and self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.close(code=CLOSE_OVERLOADED, reason="too far behind; rejoin with since")
        except (WebSocketDisconnect, RuntimeError):
            pass  # the socket closed under us; the reader loop cleans up


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@router.websocket("/socket/websocket")
async def socket_endpoint(ws: WebSocket) -> None:
    user = await authenticate(ws)
    if user is None:
        await ws.close(code=CLOSE_UNAUTHORIZED)  # before accept: the server answers HTTP 403
        return
    await ws.accept()
    conn = Connection(ws, user, ws.app.state.hub, ws.app.state.settings.socket_heartbeat_timeout_s)
    try:
        await conn.run()
    finally:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            if ws.application_state == WebSocketState.CONNECTED:
                await ws.close()
