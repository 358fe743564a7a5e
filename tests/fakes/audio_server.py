"""A plain HTTP server with audio files for yt-dlp's generic extractor, on 127.0.0.1.

Paths (``NAME`` is any file name; the extension picks the content):

* ``/audio/NAME.wav``                 a short WAV tone (Content-Length, Range supported)
* ``/slow/SECONDS/NAME.wav``          the same, trickled out over about SECONDS (cancel / kill tests)
* ``/flaky/FAILS/KEY/NAME.wav``       answers 503 to the first FAILS requests for that path, then the WAV
* ``/missing/NAME.wav``               404
* ``/page/NAME.html``                 an HTML page with no media in it
* ``/garbage/NAME.wav``               ``audio/wav`` content that is not audio

Every request path is recorded in ``requests`` so tests can tell what was fetched.
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

import numpy as np
import soundfile as sf

from tests.audio import tone
from tests.fakes.loopback import LoopbackServer


def wav_bytes(seconds: float = 2.0, sr: int = 22050) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, sr), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class AudioServer(LoopbackServer):
    def __init__(self, seconds: float = 2.0) -> None:
        self.wav = wav_bytes(seconds)
        self.garbage = b"RIFF" + bytes(np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8))
        self.requests: list[str] = []
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def fetched(self, path: str) -> int:
        with self._lock:
            return sum(1 for p in self.requests if p.startswith(path))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(head=False)

            def _plain(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append(path)
                    server.hits[path] += 1
                    hits = server.hits[path]
                parts = path.strip("/").split("/")
                kind = parts[0] if parts else ""
                if kind == "missing":
                    return self._plain(404, b"not found")
                if kind == "page":
                    return self._plain(200, b"<html><head><title>Nothing here</title></head>"
                                            b"<body><p>No audio on this page.</p></body></html>",
                                       "text/html; charset=utf-8")
                if kind == "flaky" and len(parts) >= 4 and hits <= int(parts[1]):
                    return self._plain(503, b"try again later")
                delay = float(parts[1]) if kind == "slow" and len(parts) >= 3 else 0.0
                if kind == "garbage":
                    body = server.garbage
                elif kind in ("audio", "slow", "flaky"):
                    body = server.wav
                else:
                    return self._plain(404, b"not found")
                self._send_body(body, head, delay)

            def _send_body(self, body: bytes, head: bool, delay: float) -> None:
                start, end = 0, len(body) - 1
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                status = 200
                if match:
                    start = int(match.group(1))
                    end = min(end, int(match.group(2))) if match.group(2) else end
                    status = 206
                chunk = body[start : end + 1]
                self.send_response(status)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(chunk)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
                self.end_headers()
                if head:
                    return
                step = 8192
                pause = delay * step / max(1, len(body))
                try:
                    for i in range(0, len(chunk), step):
                        self.wfile.write(chunk[i : i + step])
                        if pause:
                            self.wfile.flush()
                            time.sleep(pause)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
