"""A small Phoenix Channels v2 client for tests (the real npm client is exercised in test_phoenix_js.py).

Frames are ``[join_ref, ref, topic, event, payload]``; this client speaks them over the ``websockets``
library's synchronous client, so tests read like the protocol table in the spec.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from websockets.sync.client import ClientConnection, connect

Frame = list[Any]


def socket_url(base_url: str, token: str | None = None) -> str:
    url = base_url.replace("http://", "ws://", 1) + "/socket/websocket?vsn=2.0.0"
    return url + (f"&token={token}" if token else "")


class PhxClient:
    def __init__(self, base_url: str, token: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.ws: ClientConnection = connect(socket_url(base_url, token), additional_headers=headers,
                                            proxy=None, ping_interval=None, legacy=True)
        self._refs = itertools.count(1)
        self.inbox: list[Frame] = []

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> PhxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, join_ref: str | None, topic: str, event: str, payload: dict[str, Any] | None = None) -> str:
        ref = str(next(self._refs))
        self.ws.send(json.dumps([join_ref, ref, topic, event, payload or {}]))
        return ref

    def recv(self, timeout: float = 10.0) -> Frame:
        return json.loads(self.ws.recv(timeout=timeout))

    def reply_to(self, ref: str, timeout: float = 10.0) -> Frame:
        """Wait for the phx_reply to ``ref``; other frames received meanwhile go to ``inbox``."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.05, deadline - time.monotonic()))
            if frame[3] == "phx_reply" and frame[1] == ref:
                return frame
            self.inbox.append(frame)

    def join(self, topic: str, payload: dict[str, Any] | None = None) -> tuple[str, Frame]:
        join_ref = str(next(self._refs))
        self.ws.send(json.dumps([join_ref, join_ref, topic, "phx_join", payload or {}]))
        return join_ref, self.reply_to(join_ref)

    def events(self, until: str | tuple[str, ...] = ("job:completed", "job:failed"),
               timeout: float = 30.0, heartbeat_s: float | None = None) -> list[Frame]:
        """Every pushed frame up to and including the first whose event is in ``until``.

        With ``heartbeat_s``, sends a heartbeat every ``heartbeat_s`` seconds, as real clients do (the
        replies are not returned)."""
        until = (until,) if isinstance(until, str) else until
        got: list[Frame] = []
        deadline = time.monotonic() + timeout
        beat_at = time.monotonic() + (heartbeat_s or timeout)
        while True:
            if heartbeat_s and time.monotonic() >= beat_at:
                self.send(None, "phoenix", "heartbeat")
                beat_at = time.monotonic() + heartbeat_s
            if self.inbox:
                frame = self.inbox.pop(0)
            else:
                wait = max(0.05, deadline - time.monotonic())
                try:
                    frame = self.recv(min(wait, max(0.05, beat_at - time.monotonic())))
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        raise
                    continue
            if frame[2] == "phoenix" and frame[3] == "phx_reply":
                continue
            got.append(frame)
            if frame[3] in until:
                return got
