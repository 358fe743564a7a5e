"""The mobile app's share-link host: ``https://spotify.link/<code>`` on 127.0.0.1.

The real short link answers 307 to ``https://spotify.app.link/<code>?_p=...`` (Branch), which
answers 307 to ``https://open.spotify.com/track/<id>?si=...``. Here both hops are on one host:
``add(code, target)`` makes ``GET /<code>`` answer 307 to ``<url>/app/<code>?_p=c1``, which answers
307 to the target (``hops=1``: straight to the target; more hops: ``?_p=c2``, ``c3``, ...).

Misbehaving links: ``add_loop`` (redirects to itself forever), ``add_offsite`` (to a foreign host),
``add_slow`` (answers the redirect to the target late), ``add_html`` (200 with Branch's browser page:
``og:url`` and a ``window.location`` script naming the target). Unknown codes get 404. ``HEAD``
answers as ``GET`` does, without the body. ``requests`` records every path (with its query).
"""

from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer


@dataclass
class _Link:
    kind: str  # "redirect", "loop", "offsite", "slow" or "html"
    target: str = ""
    hops: int = 2
    delay_s: float = 0.0


class FakeShortLinks(LoopbackServer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.links: dict[str, _Link] = {}
        self.requests: list[str] = []
        super().__init__(self._handler())

    def link(self, code: str) -> str:
        """The short link of ``code`` (as https://spotify.link/<code> would be)."""
        return f"{self.url}/{code}"

    def add(self, code: str, target_url: str, hops: int = 2) -> str:
        if hops < 1:
            raise ValueError("hops must be at least 1")
        self.links[code] = _Link("redirect", target_url, hops)
        return self.link(code)

    def add_loop(self, code: str) -> str:
        self.links[code] = _Link("loop")
        return self.link(code)

    def add_offsite(self, code: str, url: str) -> str:
        self.links[code] = _Link("offsite", url)
        return self.link(code)

    def add_slow(self, code: str, target: str, delay_s: float) -> str:
        self.links[code] = _Link("slow", target, delay_s=delay_s)
        return self.link(code)

    def add_html(self, code: str, target: str) -> str:
        self.links[code] = _Link("html", target)
        return self.link(code)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str, location: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if location is not None:
                    self.send_header("Location", location)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _redirect(self, location: str) -> None:
                self._send(307, b"", "text/html; charset=utf-8", location)

            def do_HEAD(self) -> None:  # noqa: N802
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                with fake._lock:
                    fake.requests.append(self.path)
                segments = parts.path.strip("/").split("/")
                if len(segments) == 2 and segments[0] == "app":
                    link = fake.links.get(segments[1])
                    if link is None or link.kind != "redirect":
                        return self._send(404, b"Not found", "text/plain; charset=utf-8")
                    try:
                        hop = int((parse_qs(parts.query).get("_p") or ["c1"])[0].removeprefix("c"))
                    except ValueError:
                        hop = 1
                    if hop + 1 < link.hops:
                        return self._redirect(f"{fake.url}/app/{segments[1]}?_p=c{hop + 1}")
                    return self._redirect(link.target)
                link = fake.links.get(segments[0]) if len(segments) == 1 else None
                if link is None:
                    return self._send(404, b"Not found", "text/plain; charset=utf-8")
                code = segments[0]
                if link.kind == "redirect":
                    if link.hops == 1:
                        return self._redirect(link.target)
                    return self._redirect(f"{fake.url}/app/{code}?_p=c1")
                if link.kind == "loop":
                    return self._redirect(f"{fake.url}/{code}")
                if link.kind == "offsite":
                    return self._redirect(link.target)
                if link.kind == "slow":
                    time.sleep(link.delay_s)
                    return self._redirect(link.target)
                target = html.escape(link.target, quote=True)
                script_target = json.dumps(link.target).replace("</", "<\\/")
                page = (
                    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Spotify</title>"
                    f'<meta property="og:url" content="{target}">'
                    '<meta property="og:title" content="Spotify">'
                    f"<script>window.location = {script_target};</script>"
                    f'</head><body><a href="{target}">Open in Spotify</a></body></html>'
                )
                return self._send(200, page.encode(), "text/html; charset=utf-8")

        return Handler
