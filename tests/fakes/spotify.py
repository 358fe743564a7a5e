"""A local Spotify: the accounts service's client-credentials token endpoint and the Web API's
catalogue (tracks, albums, playlists with ``next`` paging), on 127.0.0.1.

It speaks what spotipy speaks to the real thing: ``POST /api/token`` with HTTP Basic client
credentials; ``GET /v1/tracks/{id}``, ``/v1/albums/{id}`` (first 50 tracks embedded) and
``/v1/albums/{id}/tracks``, ``/v1/playlists/{id}`` (first 100 entries embedded) and
``/v1/playlists/{id}/items``, each page with absolute ``next`` links. Playlists use the shape
of Spotify's February 2026 API (``items`` / ``item``). Errors use Spotify's bodies:
``{"error": {"status", "message"}}`` for the API, ``{"error", "error_description"}`` for tokens.

Tests steer it: ``inject(path, status=429, retry_after=2)`` answers the next request(s) to a path
with an error, ``inject(path, delay=3)`` answers late; ``requests`` records every call.
"""

from __future__ import annotations

import base64
import json
import random
import string
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

CLIENT_ID = "stemforge-test-client"
CLIENT_SECRET = "stemforge-test-secret"
_B62 = string.ascii_letters + string.digits


@dataclass
class Fault:
    path: str
    status: int | None
    headers: dict[str, str]
    delay: float
    times: int
    message: str


@dataclass
class _Album:
    obj: dict[str, Any]
    track_ids: list[str] = field(default_factory=list)


@dataclass
class _Playlist:
    obj: dict[str, Any]
    track_ids: list[str] = field(default_factory=list)


class FakeSpotify(LoopbackServer):
    def __init__(self, *, token_lifetime_s: int = 3600, seed: int = 7) -> None:
        self.token_lifetime_s = token_lifetime_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.tracks: dict[str, dict[str, Any]] = {}
        self.albums: dict[str, _Album] = {}
        self.playlists: dict[str, _Playlist] = {}
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        super().__init__(self._handler())

    # --- lifecycle ------------------------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        """The STEMFORGE_* settings (lower case, without the prefix) that point the app here."""
        return {"spotify_api_url": f"{self.url}/v1/", "spotify_accounts_url": self.url,
                "spotify_client_id": CLIENT_ID, "spotify_client_secret": CLIENT_SECRET}

    # --- catalogue ----------------------------------------------------------------------------

    def new_id(self) -> str:
        with self._lock:
            return "".join(self._rng.choice(_B62) for _ in range(22))

    def _artist(self, name: str) -> dict[str, Any]:
        artist_id = "".join(c for c in name if c.isalnum())[:22].ljust(22, "0")
        return {"external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"},
                "href": f"{self.url}/v1/artists/{artist_id}", "id": artist_id, "name": name, "type": "artist",
                "uri": f"spotify:artist:{artist_id}"}

    def add_album(self, name: str, artist: str, *, tracks: int = 0, seconds: int = 180,
                  images: list[tuple[int, int]] | None = None) -> str:
        """An album with ``tracks`` tracks named "<name> 1", "<name> 2", ...; returns its id."""
        album_id = self.new_id()
        sizes = images if images is not None else [(640, 640), (300, 300), (64, 64)]
        obj = {
            "album_type": "album", "total_tracks": 0, "available_markets": ["DE", "US"],
            "external_urls": {"spotify": f"https://open.spotify.com/album/{album_id}"},
            "href": f"{self.url}/v1/albums/{album_id}", "id": album_id,
            "images": [{"url": f"https://i.scdn.example/image/{album_id}-{w}", "width": w, "height": h}
                       for w, h in sizes],
            "name": name, "release_date": "2020-03-20", "release_date_precision": "day", "type": "album",
            "uri": f"spotify:album:{album_id}", "artists": [self._artist(artist)], "label": "Test Records",
            "popularity": 50, "copyrights": [], "external_ids": {"upc": "00000000000"}, "genres": [],
        }
        self.albums[album_id] = _Album(obj)
        for n in range(1, tracks + 1):
            self.add_track(f"{name} {n}", artist, album_id=album_id, seconds=seconds + n)
        return album_id

    def add_track(self, title: str, artist: str | list[str], *, album_id: str | None = None,
                  seconds: float = 200, track_id: str | None = None) -> str:
        """A track (on a one-track album of its own unless ``album_id``); returns its id."""
        if album_id is None:
            album_id = self.add_album(f"{title} (Single)", artist if isinstance(artist, str) else artist[0])
        album = self.albums[album_id]
        track_id = track_id or self.new_id()
        names = [artist] if isinstance(artist, str) else artist
        album.track_ids.append(track_id)
        album.obj["total_tracks"] = len(album.track_ids)
        self.tracks[track_id] = {
            "album_id": album_id,
            "artists": [self._artist(n) for n in names], "available_markets": ["DE", "US"], "disc_number": 1,
            "duration_ms": int(seconds * 1000), "explicit": False, "external_ids": {"isrc": "QZTEST000001"},
            "external_urls": {"spotify": f"https://open.spotify.com/track/{track_id}"},
            "href": f"{self.url}/v1/tracks/{track_id}", "id": track_id, "is_local": False, "is_playable": True,
            "name": title, "popularity": 60, "preview_url": None, "track_number": len(album.track_ids),
            "type": "track", "uri": f"spotify:track:{track_id}",
        }
        return track_id

    def add_playlist(self, name: str, track_ids: list[str]) -> str:
        playlist_id = self.new_id()
        obj = {
            "collaborative": False, "description": "made by the test suite",
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist_id}"},
            "href": f"{self.url}/v1/playlists/{playlist_id}", "id": playlist_id,
            # Playlist mosaics come without sizes.
            "images": [{"url": f"https://mosaic.scdn.example/{playlist_id}", "width": None, "height": None}],
            "name": name, "owner": {"id": "tester", "display_name": "Tester", "type": "user",
                                    "uri": "spotify:user:tester"},
            "public": True, "snapshot_id": "MSwxMjM0NTY=", "type": "playlist", "uri": f"spotify:playlist:{playlist_id}",
        }
        self.playlists[playlist_id] = _Playlist(obj, list(track_ids))
        return playlist_id

    def rename_track(self, track_id: str, title: str) -> None:
        self.tracks[track_id]["name"] = title

    # --- steering -----------------------------------------------------------------------------

    def inject(self, path: str, status: int | None = None, *, retry_after: int | None = None, delay: float = 0.0,
               times: int = 1, message: str = "") -> None:
        """The next ``times`` requests whose path starts with ``path`` fail with ``status`` (after
        ``delay`` seconds), or only answer late when ``status`` is None."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self.faults.append(Fault(path, status, headers, delay, times, message))

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for _, p in self.requests if p.split("?", 1)[0].startswith(path))

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and path.startswith(fault.path):
                    fault.times -= 1
                    return fault
        return None

    # --- objects as the API returns them ------------------------------------------------------

    def _simplified_album(self, album_id: str) -> dict[str, Any]:
        obj = self.albums[album_id].obj
        keep = ("album_type", "total_tracks", "available_markets", "external_urls", "href", "id", "images", "name",
                "release_date", "release_date_precision", "type", "uri", "artists")
        return {k: obj[k] for k in keep}

    def _track(self, track_id: str, *, simplified: bool = False) -> dict[str, Any]:
        raw = self.tracks[track_id]
        obj = {k: v for k, v in raw.items() if k != "album_id"}
        if simplified:
            for key in ("external_ids", "popularity"):
                obj.pop(key, None)
        else:
            obj["album"] = self._simplified_album(raw["album_id"])
        return obj

    def _page(self, href: str, items: list[Any], offset: int, limit: int, total: int) -> dict[str, Any]:
        nxt = f"{href}?offset={offset + limit}&limit={limit}" if offset + limit < total else None
        prev = f"{href}?offset={max(0, offset - limit)}&limit={limit}" if offset > 0 else None
        return {"href": f"{href}?offset={offset}&limit={limit}", "items": items, "limit": limit, "next": nxt,
                "offset": offset, "previous": prev, "total": total}

    def album_tracks_page(self, album_id: str, offset: int, limit: int) -> dict[str, Any]:
        ids = self.albums[album_id].track_ids
        items = [self._track(t, simplified=True) for t in ids[offset:offset + limit]]
        return self._page(f"{self.url}/v1/albums/{album_id}/tracks", items, offset, limit, len(ids))

    def playlist_items_page(self, playlist_id: str, offset: int, limit: int) -> dict[str, Any]:
        ids = self.playlists[playlist_id].track_ids
        items = [{"added_at": "2024-01-01T00:00:00Z", "added_by": {"id": "tester", "type": "user"},
                  "is_local": False, "item": self._track(t)} for t in ids[offset:offset + limit]]
        return self._page(f"{self.url}/v1/playlists/{playlist_id}/items", items, offset, limit, len(ids))

    # --- HTTP ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _api_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
                self._json(status, {"error": {"status": status, "message": message}}, headers)

            def _record(self) -> tuple[str, dict[str, list[str]]]:
                parts = urlsplit(self.path)
                with fake._lock:
                    fake.requests.append((self.command, self.path))
                return parts.path, parse_qs(parts.query)

            def _fault(self, path: str, token_endpoint: bool) -> bool:
                fault = fake._take_fault(path)
                if fault is None:
                    return False
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status is None:
                    return False
                message = fault.message or {429: "API rate limit exceeded", 500: "Server error",
                                            503: "Service unavailable"}.get(fault.status, "Error")
                if token_endpoint:
                    self._json(fault.status, {"error": "server_error", "error_description": message}, fault.headers)
                else:
                    self._api_error(fault.status, message, fault.headers)
                return True

            def do_POST(self) -> None:  # noqa: N802
                path, _ = self._record()
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if path != "/api/token":
                    return self._api_error(404, "Service not found")
                if self._fault(path, token_endpoint=True):
                    return None
                scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
                try:
                    client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
                except ValueError:
                    client_id = secret = ""
                if scheme != "Basic" or (client_id, secret) != (CLIENT_ID, CLIENT_SECRET):
                    return self._json(400, {"error": "invalid_client", "error_description": "Invalid client"})
                if form.get("grant_type") != ["client_credentials"]:
                    return self._json(400, {"error": "unsupported_grant_type",
                                            "error_description": "grant_type parameter is missing"})
                token = "".join(fake._rng.choice(_B62) for _ in range(40))
                with fake._lock:
                    fake.token_requests += 1
                    fake.tokens[token] = time.time() + fake.token_lifetime_s
                self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": fake.token_lifetime_s})
                return None

            def do_GET(self) -> None:  # noqa: N802
                path, query = self._record()
                if self._fault(path, token_endpoint=False):
                    return None
                scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
                expires = fake.tokens.get(token) if scheme == "Bearer" else None
                if expires is None:
                    return self._api_error(401, "Invalid access token")
                if expires < time.time():
                    return self._api_error(401, "The access token expired")
                parts = path.strip("/").split("/")
                if len(parts) < 3 or parts[0] != "v1":
                    return self._api_error(404, "Service not found")
                kind, obj_id, rest = parts[1], parts[2], parts[3:]
                if len(obj_id) != 22 or any(c not in _B62 for c in obj_id):
                    return self._api_error(400, "Invalid base62 id")
                offset = int((query.get("offset") or ["0"])[0])
                if kind == "tracks" and not rest and obj_id in fake.tracks:
                    return self._json(200, fake._track(obj_id))
                if kind == "albums" and obj_id in fake.albums:
                    limit = max(1, min(50, int((query.get("limit") or ["20"])[0])))
                    if rest == ["tracks"]:
                        return self._json(200, fake.album_tracks_page(obj_id, offset, limit))
                    if not rest:
                        body = dict(fake.albums[obj_id].obj)
                        body["tracks"] = fake.album_tracks_page(obj_id, 0, 50)
                        return self._json(200, body)
                if kind == "playlists" and obj_id in fake.playlists:
                    limit = max(1, min(100, int((query.get("limit") or ["20"])[0])))
                    if rest == ["items"]:
                        return self._json(200, fake.playlist_items_page(obj_id, offset, limit))
                    if not rest:
                        body = dict(fake.playlists[obj_id].obj)
                        body["items"] = fake.playlist_items_page(obj_id, 0, 100)
                        return self._json(200, body)
                return self._api_error(404, "Resource not found")

        return Handler
