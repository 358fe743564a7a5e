"""A local Spotify: the accounts service (client credentials, and the Authorization Code flow with
PKCE behind a login and a consent page) and the Web API's catalogue and user library, on 127.0.0.1.

It speaks what spotipy, authlib/httpx and a browser speak to the real thing:

* ``POST /api/token``: ``client_credentials``, ``authorization_code`` (with ``code_verifier`` when the
  code was asked for with a ``code_challenge``) and ``refresh_token``; the client authenticates with
  HTTP Basic or ``client_id`` (+ ``client_secret``) in the body; a PKCE code, and the refresh tokens
  it led to, need no secret. Errors: ``{"error", "error_description"}`` with 400.
* ``GET /authorize``: the accounts site. A bad ``client_id`` or a ``redirect_uri`` not in
  ``redirect_uris`` gets a 400 HTML page (never a redirect); other errors redirect (302) to
  ``redirect_uri?error=...&state=...`` as Spotify does (``error`` only, no ``error_description``).
  Nobody signed in (``signed_in``): a "Log in to Spotify" page whose buttons (``POST /login``) sign
  an account in and lead (303) to the consent page ``GET /authorize/consent?rid=``. Signed in: the
  consent page, whose form posts ``rid`` and ``decision`` (accept/cancel) to
  ``POST /authorize/decision``, answered 303 to ``redirect_uri?code=&state=`` or
  ``?error=access_denied&state=``. ``auto_decision`` answers GET /authorize with that redirect at
  once (302); with "accept" it grants for ``signed_in`` or, when nobody is, the first added user.
  ``remember_consent`` (off by default) skips the consent page, as Spotify does, when the account
  already granted those scopes and ``show_dialog`` is not true.
* ``GET /v1/tracks/{id}``, ``/v1/albums/{id}`` (first 50 tracks embedded), ``/v1/albums/{id}/tracks``,
  ``/v1/playlists/{id}`` (first 100 entries embedded), ``/v1/playlists/{id}/items``, each page with
  absolute ``next`` links; with a user token also ``/v1/me``, ``/v1/me/playlists``, ``/v1/me/tracks``.
  Playlists use the shape of Spotify's February 2026 API (``items`` / ``item``), entries and
  simplified playlists also carry the legacy ``track`` / ``tracks`` key with the same object.

Choices where Spotify's behaviour is not pinned down:

* ``/v1/me*`` with a client-credentials token: 401 "This request requires user authentication."
  (expired: 401 "The access token expired"; revoked or unknown: 401 "Invalid access token"; a
  missing scope: 403 "Insufficient client scope"; ``limit`` out of 1..50: 400 "Invalid limit").
* ``/v1/me``: ``email`` only with ``user-read-email``; ``country``, ``product`` and
  ``explicit_content`` only with ``user-read-private`` (as Spotify documents them).
* ``/v1/me/playlists``: a collaborative playlist needs ``playlist-read-collaborative`` (and not also
  ``playlist-read-private``), another private one ``playlist-read-private``. A collaborative
  playlist is always private (Spotify does not allow public collaborative playlists); its
  ``followers`` are its collaborators. A private playlist is a 404 "Resource not found" for anyone
  but its owner and followers, and for every client-credentials token.
* A wrong ``code_verifier`` does not use the code up; a second use of a code is refused and revokes
  every access and refresh token issued for it. ``refresh_requests`` counts every
  ``grant_type=refresh_token`` request, refused ones too; ``token_requests`` still counts only the
  client-credentials tokens issued.
* ``save_tracks`` gives each track a later ``added_at`` than the one before (so in one call the last
  id is the newest); saving a saved track again moves it to the front.
* Tracks are shown with ``is_playable`` as before; with ``market`` in the query a track of
  ``make_unavailable`` gets ``"is_playable": false`` and ``"restrictions": {"reason": "market"}``.

Tests steer it: ``inject(path, status=429, retry_after=2)`` answers the next request(s) to a path
(any of the above, the accounts pages too) with an error, ``inject(path, delay=3)`` answers late;
``requests`` records every call, ``authorize_requests`` every /authorize query.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import random
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

from tests.fakes.loopback import LoopbackServer

CLIENT_ID = "stemforge-test-client"
CLIENT_SECRET = "stemforge-test-secret"
APP_NAME = "StemForge (test)"
_B62 = string.ascii_letters + string.digits
_B64URL = _B62 + "-_"

#: The scopes /authorize knows, as the consent page words them.
SCOPES: dict[str, str] = {
    "user-read-email": "Get your real email address",
    "user-read-private": "Access your subscription details and country",
    "playlist-read-private": "Access your private playlists",
    "playlist-read-collaborative": "Access your collaborative playlists",
    "playlist-modify-public": "Manage your public playlists",
    "playlist-modify-private": "Manage your private playlists",
    "user-library-read": "Access your saved content",
    "user-library-modify": "Manage your saved content",
    "user-top-read": "Read your top artists and content",
    "user-read-recently-played": "Access your recently played items",
    "user-follow-read": "Access your followers and who you are following",
    "streaming": "Play content and control playback on your other devices",
    "user-read-playback-state": "Read your currently playing content and Spotify Connect devices information",
    "user-modify-playback-state": "Control Spotify on your devices",
    "user-read-currently-playing": "Read your currently playing content",
}


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
    track_ids: list[str | None] = field(default_factory=list)
    owner: str = "tester"
    followers: list[str] = field(default_factory=list)


@dataclass
class _User:
    spotify_id: str
    display_name: str
    email: str | None
    country: str
    product: str


@dataclass
class _Pending:
    """An /authorize request waiting for the person's login and decision."""
    client_id: str
    redirect_uri: str
    state: str | None
    scopes: list[str]
    code_challenge: str | None
    user: str | None = None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    user: str
    scopes: list[str]
    code_challenge: str | None
    expires: float
    used: bool = False


@dataclass
class _Grant:
    """What an access or refresh token stands for; ``code`` is the authorization code it came from."""
    user: str
    scopes: list[str]
    code: str
    pkce: bool
    revoked: bool = False


def _redirect_with(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def _page_html(title: str, body: str) -> bytes:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"</head><body>{body}</body></html>").encode()


class FakeSpotify(LoopbackServer):
    def __init__(self, *, token_lifetime_s: int = 3600, seed: int = 7) -> None:
        self.token_lifetime_s = token_lifetime_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.tracks: dict[str, dict[str, Any]] = {}
        self.albums: dict[str, _Album] = {}
        self.playlists: dict[str, _Playlist] = {}
        self.episodes: dict[str, dict[str, Any]] = {}
        self.local_files: dict[str, dict[str, Any]] = {}
        self.unavailable: set[str] = set()
        #: Every access token (client credentials and user) and when it expires; gone = revoked.
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        # Users, the browser's session and the Authorization Code flow.
        self.users: dict[str, _User] = {}
        self.signed_in: str | None = None
        self.redirect_uris: set[str] = set()
        self.auto_decision: str | None = None
        self.remember_consent = False
        self.authorize_requests: list[dict[str, str]] = []
        self.code_lifetime_s: float = 600
        self.user_token_lifetime_s: int = 3600
        self.rotate_refresh_tokens = False
        self.refresh_requests = 0
        self.pending: dict[str, _Pending] = {}
        self.codes: dict[str, _Code] = {}
        self.access_grants: dict[str, _Grant] = {}
        self.refresh_tokens: dict[str, _Grant] = {}
        self.consents: dict[str, set[str]] = {}
        self.library: dict[str, list[str]] = {}  # user -> playlist ids owned or followed, in the order added
        self.saved: dict[str, list[tuple[str, str]]] = {}  # user -> (track id, added_at), oldest first
        self._clock = datetime(2024, 1, 1, tzinfo=UTC)
        super().__init__(self._handler())

    # --- lifecycle ------------------------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        """The STEMFORGE_* settings (lower case, without the prefix) that point the app here."""
        return {"spotify_api_url": f"{self.url}/v1/", "spotify_accounts_url": self.url,
                "spotify_client_id": CLIENT_ID, "spotify_client_secret": CLIENT_SECRET}

    # --- users and the browser's session --------------------------------------------------------

    def add_user(self, spotify_id: str, *, display_name: str, email: str | None, country: str = "DE",
                 product: str = "premium") -> None:
        with self._lock:
            self.users[spotify_id] = _User(spotify_id, display_name, email, country, product)

    def sign_in_as(self, spotify_id: str | None) -> None:
        """The account signed in on the accounts site (None: nobody, /authorize asks to log in)."""
        if spotify_id is not None and spotify_id not in self.users:
            raise KeyError(f"no user {spotify_id!r}; add_user first")
        self.signed_in = spotify_id

    def register_redirect_uri(self, uri: str) -> None:
        with self._lock:
            self.redirect_uris.add(uri)

    def expire_user_tokens(self, spotify_id: str) -> None:
        """Every access token of the user expires now (401 "The access token expired")."""
        with self._lock:
            for token, grant in self.access_grants.items():
                if grant.user == spotify_id and token in self.tokens:
                    self.tokens[token] = time.time() - 1

    def revoke_access_tokens(self, spotify_id: str) -> None:
        """Every access token of the user answers 401 "Invalid access token" from now on."""
        with self._lock:
            for token, grant in self.access_grants.items():
                if grant.user == spotify_id:
                    grant.revoked = True
                    self.tokens.pop(token, None)

    def revoke_refresh_tokens(self, spotify_id: str) -> None:
        with self._lock:
            for grant in self.refresh_tokens.values():
                if grant.user == spotify_id:
                    grant.revoked = True

    def _revoke_code_family(self, code: str) -> None:
        """Tokens issued for a code that is used a second time (RFC 6749, 4.1.2). Caller holds the lock."""
        for token, grant in self.access_grants.items():
            if grant.code == code:
                grant.revoked = True
                self.tokens.pop(token, None)
        for grant in self.refresh_tokens.values():
            if grant.code == code:
                grant.revoked = True

    def _user_obj(self, spotify_id: str) -> dict[str, Any]:
        user = self.users.get(spotify_id)
        name = user.display_name if user else ("Tester" if spotify_id == "tester" else spotify_id)
        return {"display_name": name, "external_urls": {"spotify": f"https://open.spotify.com/user/{spotify_id}"},
                "href": f"{self.url}/v1/users/{spotify_id}", "id": spotify_id, "type": "user",
                "uri": f"spotify:user:{spotify_id}"}

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

    def add_episode(self, title: str) -> str:
        """A podcast episode, for playlists (an entry import code must skip); returns its id."""
        episode_id = self.new_id()
        show_id = self.new_id()
        self.episodes[episode_id] = {
            "audio_preview_url": None, "description": "An episode.", "html_description": "<p>An episode.</p>",
            "duration_ms": 1_800_000, "explicit": False,
            "external_urls": {"spotify": f"https://open.spotify.com/episode/{episode_id}"},
            "href": f"{self.url}/v1/episodes/{episode_id}", "id": episode_id, "images": [],
            "is_externally_hosted": False, "is_playable": True, "language": "en", "languages": ["en"],
            "name": title, "release_date": "2024-01-01", "release_date_precision": "day", "type": "episode",
            "uri": f"spotify:episode:{episode_id}",
            "show": {"available_markets": ["DE", "US"], "copyrights": [], "description": "A show.",
                     "explicit": False, "external_urls": {"spotify": f"https://open.spotify.com/show/{show_id}"},
                     "href": f"{self.url}/v1/shows/{show_id}", "id": show_id, "images": [],
                     "is_externally_hosted": False, "languages": ["en"], "media_type": "audio",
                     "name": "Test Show", "publisher": "Test Publisher", "type": "show",
                     "uri": f"spotify:show:{show_id}", "total_episodes": 1},
        }
        return episode_id

    def add_local_file(self, title: str, artist: str, *, seconds: int = 200) -> str:
        """A local file in a playlist (``is_local``, no id); returns the key to put in ``track_ids``."""
        key = self.new_id()
        self.local_files[key] = {
            "album": {"album_type": None, "artists": [], "available_markets": [], "external_urls": {}, "href": None,
                      "id": None, "images": [], "name": "", "release_date": None,
                      "release_date_precision": None, "type": "album", "uri": None},
            "artists": [{"external_urls": {}, "href": None, "id": None, "name": artist, "type": "artist",
                         "uri": None}],
            "available_markets": [], "disc_number": 0, "duration_ms": seconds * 1000, "explicit": False,
            "external_ids": {}, "external_urls": {}, "href": None, "id": None, "is_local": True, "name": title,
            "popularity": 0, "preview_url": None, "track_number": 0, "type": "track",
            "uri": f"spotify:local:{quote_plus(artist)}::{quote_plus(title)}:{seconds}",
        }
        return key

    def make_unavailable(self, track_id: str) -> None:
        """The track is in no market any more (``available_markets: []``; not playable for any ``market``)."""
        with self._lock:
            self.unavailable.add(track_id)
            self.tracks[track_id]["available_markets"] = []

    def add_playlist(self, name: str, track_ids: list[str | None], *, owner: str = "tester", public: bool = True,
                     collaborative: bool = False, followers: tuple[str, ...] = ()) -> str:
        """A playlist of tracks (or None for a removed track, episode ids, local-file keys); returns its id.

        It is in the library (/v1/me/playlists) of its owner and ``followers``, in that order.
        A collaborative playlist is private, whatever ``public`` says; its followers are collaborators.
        """
        playlist_id = self.new_id()
        obj = {
            "collaborative": collaborative, "description": "made by the test suite",
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist_id}"},
            "href": f"{self.url}/v1/playlists/{playlist_id}", "id": playlist_id,
            # Playlist mosaics come without sizes.
            "images": [{"url": f"https://mosaic.scdn.example/{playlist_id}", "width": None, "height": None}],
            "name": name, "owner": self._user_obj(owner),
            "public": public and not collaborative, "snapshot_id": "MSwxMjM0NTY=", "type": "playlist",
            "uri": f"spotify:playlist:{playlist_id}",
        }
        with self._lock:
            self.playlists[playlist_id] = _Playlist(obj, list(track_ids), owner, [])
            self.library.setdefault(owner, []).append(playlist_id)
        for follower in followers:
            self.follow_playlist(follower, playlist_id)
        return playlist_id

    def follow_playlist(self, spotify_id: str, playlist_id: str) -> None:
        with self._lock:
            playlist = self.playlists[playlist_id]
            if spotify_id not in playlist.followers and spotify_id != playlist.owner:
                playlist.followers.append(spotify_id)
            mine = self.library.setdefault(spotify_id, [])
            if playlist_id not in mine:
                mine.append(playlist_id)

    def save_tracks(self, spotify_id: str, track_ids: list[str]) -> None:
        """Liked Songs: each track saved a second after the one before (listed newest first)."""
        with self._lock:
            saved = self.saved.setdefault(spotify_id, [])
            for track_id in track_ids:
                self._clock += timedelta(seconds=1)
                saved[:] = [(t, a) for t, a in saved if t != track_id]
                saved.append((track_id, self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")))

    def rename_track(self, track_id: str, title: str) -> None:
        self.tracks[track_id]["name"] = title

    def can_see(self, playlist_id: str, user: str | None) -> bool:
        """Whether a token of ``user`` (None: client credentials) may read the playlist."""
        playlist = self.playlists[playlist_id]
        if playlist.obj["public"]:
            return True
        return user is not None and (user == playlist.owner or user in playlist.followers)

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

    def _track(self, track_id: str, *, simplified: bool = False, market: str | None = None) -> dict[str, Any]:
        raw = self.tracks[track_id]
        obj = {k: v for k, v in raw.items() if k != "album_id"}
        if simplified:
            for key in ("external_ids", "popularity"):
                obj.pop(key, None)
        else:
            obj["album"] = self._simplified_album(raw["album_id"])
        if market and track_id in self.unavailable:
            obj["is_playable"] = False
            obj["restrictions"] = {"reason": "market"}
        return obj

    def _simplified_playlist(self, playlist_id: str) -> dict[str, Any]:
        playlist = self.playlists[playlist_id]
        body = {k: v for k, v in playlist.obj.items()}
        items = {"href": f"{self.url}/v1/playlists/{playlist_id}/items", "total": len(playlist.track_ids)}
        body["items"] = items
        body["tracks"] = dict(items)
        return body

    def _page(self, href: str, items: list[Any], offset: int, limit: int, total: int,
              extra: dict[str, str] | None = None) -> dict[str, Any]:
        tail = "".join(f"&{k}={quote_plus(v)}" for k, v in (extra or {}).items())
        nxt = f"{href}?offset={offset + limit}&limit={limit}{tail}" if offset + limit < total else None
        prev = f"{href}?offset={max(0, offset - limit)}&limit={limit}{tail}" if offset > 0 else None
        return {"href": f"{href}?offset={offset}&limit={limit}{tail}", "items": items, "limit": limit, "next": nxt,
                "offset": offset, "previous": prev, "total": total}

    def album_tracks_page(self, album_id: str, offset: int, limit: int, *, market: str | None = None) -> dict[str, Any]:
        ids = self.albums[album_id].track_ids
        items = [self._track(t, simplified=True, market=market) for t in ids[offset:offset + limit]]
        extra = {"market": market} if market else None
        return self._page(f"{self.url}/v1/albums/{album_id}/tracks", items, offset, limit, len(ids), extra)

    def _entry(self, playlist: _Playlist, item_id: str | None, market: str | None) -> dict[str, Any]:
        inner: dict[str, Any] | None
        is_local = False
        if item_id is None:
            inner = None
        elif item_id in self.episodes:
            inner = dict(self.episodes[item_id])
        elif item_id in self.local_files:
            inner, is_local = dict(self.local_files[item_id]), True
        else:
            inner = self._track(item_id, market=market)
        added_by = self._user_obj(playlist.owner)
        added_by.pop("display_name")
        return {"added_at": "2024-01-01T00:00:00Z", "added_by": added_by, "is_local": is_local,
                "item": inner, "track": inner}

    def playlist_items_page(self, playlist_id: str, offset: int, limit: int, *,
                            market: str | None = None) -> dict[str, Any]:
        playlist = self.playlists[playlist_id]
        ids = playlist.track_ids
        items = [self._entry(playlist, t, market) for t in ids[offset:offset + limit]]
        extra = {"market": market} if market else None
        return self._page(f"{self.url}/v1/playlists/{playlist_id}/items", items, offset, limit, len(ids), extra)

    def me(self, grant: _Grant) -> dict[str, Any]:
        user = self.users.get(grant.user) or _User(grant.user, grant.user, None, "DE", "premium")
        body: dict[str, Any] = {
            "display_name": user.display_name,
            "external_urls": {"spotify": f"https://open.spotify.com/user/{user.spotify_id}"},
            "followers": {"href": None, "total": 0}, "href": f"{self.url}/v1/users/{user.spotify_id}",
            "id": user.spotify_id, "images": [], "type": "user", "uri": f"spotify:user:{user.spotify_id}",
        }
        if "user-read-email" in grant.scopes:
            body["email"] = user.email
        if "user-read-private" in grant.scopes:
            body.update(country=user.country, product=user.product,
                        explicit_content={"filter_enabled": False, "filter_locked": False})
        return body

    def my_playlists_page(self, grant: _Grant, offset: int, limit: int) -> dict[str, Any]:
        visible = []
        for playlist_id in self.library.get(grant.user, []):
            obj = self.playlists[playlist_id].obj
            if obj["collaborative"]:
                if "playlist-read-collaborative" not in grant.scopes:
                    continue
            elif not obj["public"] and "playlist-read-private" not in grant.scopes:
                continue
            visible.append(playlist_id)
        items = [self._simplified_playlist(p) for p in visible[offset:offset + limit]]
        return self._page(f"{self.url}/v1/me/playlists", items, offset, limit, len(visible))

    def my_tracks_page(self, grant: _Grant, offset: int, limit: int, market: str | None) -> dict[str, Any]:
        saved = list(reversed(self.saved.get(grant.user, [])))
        items = [{"added_at": added_at, "track": self._track(t, market=market)}
                 for t, added_at in saved[offset:offset + limit]]
        extra = {"market": market} if market else None
        return self._page(f"{self.url}/v1/me/tracks", items, offset, limit, len(saved), extra)

    # --- HTTP ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

            def _html(self, status: int, title: str, body: str) -> None:
                self._send(status, _page_html(title, body), "text/html; charset=utf-8")

            def _redirect(self, status: int, location: str) -> None:
                self._send(status, b"", "text/html; charset=utf-8", {"Location": location})

            def _api_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
                self._json(status, {"error": {"status": status, "message": message}}, headers)

            def _token_error(self, error: str, description: str) -> None:
                self._json(400, {"error": error, "error_description": description})

            def _record(self) -> tuple[str, dict[str, list[str]]]:
                parts = urlsplit(self.path)
                with fake._lock:
                    fake.requests.append((self.command, self.path))
                return parts.path, parse_qs(parts.query)

            def _fault(self, path: str, kind: str) -> bool:
                fault = fake._take_fault(path)
                if fault is None:
                    return False
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status is None:
                    return False
                message = fault.message or {429: "API rate limit exceeded", 500: "Server error",
                                            503: "Service unavailable"}.get(fault.status, "Error")
                if kind == "token":
                    self._json(fault.status, {"error": "server_error", "error_description": message}, fault.headers)
                elif kind == "page":
                    self._send(fault.status, _page_html("Error", f"<h1>{html.escape(message)}</h1>"),
                               "text/html; charset=utf-8", fault.headers)
                else:
                    self._api_error(fault.status, message, fault.headers)
                return True

            # --- POST: the token endpoint and the accounts site's forms ---

            def do_POST(self) -> None:  # noqa: N802
                path, _ = self._record()
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode(), keep_blank_values=True).items()}
                if path == "/api/token":
                    if not self._fault(path, "token"):
                        self._token(form)
                    return None
                if path in ("/login", "/authorize/decision"):
                    if self._fault(path, "page"):
                        return None
                    return self._login(form) if path == "/login" else self._decision(form)
                return self._api_error(404, "Service not found")

            def _client(self, form: dict[str, str]) -> tuple[str, str | None] | None:
                """(client_id, secret or None) from HTTP Basic or the body; None when there is neither."""
                scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
                if scheme == "Basic":
                    try:
                        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
                    except ValueError:
                        return "", ""
                    return client_id, secret
                if "client_id" in form:
                    return form["client_id"], form.get("client_secret")
                return None

            def _token(self, form: dict[str, str]) -> None:
                client = self._client(form)
                if client is None or client[0] != CLIENT_ID or client[1] not in (None, CLIENT_SECRET):
                    return self._token_error("invalid_client", "Invalid client")
                public_client = client[1] is None  # may only redeem PKCE codes and their refresh tokens
                grant_type = form.get("grant_type")
                if grant_type == "client_credentials":
                    if public_client:
                        return self._token_error("invalid_client", "Invalid client")
                    token = "".join(fake._rng.choice(_B62) for _ in range(40))
                    with fake._lock:
                        fake.token_requests += 1
                        fake.tokens[token] = time.time() + fake.token_lifetime_s
                    return self._json(200, {"access_token": token, "token_type": "Bearer",
                                            "expires_in": fake.token_lifetime_s})
                if grant_type == "authorization_code":
                    return self._code_grant(form, public_client)
                if grant_type == "refresh_token":
                    return self._refresh_grant(form, public_client)
                if not grant_type:
                    return self._token_error("unsupported_grant_type", "grant_type parameter is missing")
                return self._token_error("unsupported_grant_type", "grant_type must be client_credentials, "
                                         "authorization_code or refresh_token")

            def _issue(self, grant: _Grant, refresh: bool) -> dict[str, Any]:
                """A new access token (and refresh token) for the grant; caller holds the lock."""
                access = secrets.token_urlsafe(48)
                fake.tokens[access] = time.time() + fake.user_token_lifetime_s
                fake.access_grants[access] = _Grant(grant.user, list(grant.scopes), grant.code, grant.pkce)
                body: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                        "scope": " ".join(grant.scopes), "expires_in": fake.user_token_lifetime_s}
                if refresh:
                    refresh_token = secrets.token_urlsafe(48)
                    fake.refresh_tokens[refresh_token] = _Grant(grant.user, list(grant.scopes), grant.code,
                                                                grant.pkce)
                    body["refresh_token"] = refresh_token
                return body

            def _code_grant(self, form: dict[str, str], public_client: bool) -> None:
                with fake._lock:
                    code = fake.codes.get(form.get("code", ""))
                    if code is None or code.used or code.expires < time.time():
                        if code is not None and code.used:
                            fake._revoke_code_family(form["code"])
                        return self._token_error("invalid_grant", "Invalid authorization code")
                    if form.get("redirect_uri") != code.redirect_uri:
                        return self._token_error("invalid_grant", "Invalid redirect URI")
                    if code.code_challenge is None:
                        if public_client:
                            return self._token_error("invalid_client", "Invalid client")
                    else:
                        verifier = form.get("code_verifier", "")
                        digest = hashlib.sha256(verifier.encode()).digest()
                        if not verifier or base64.urlsafe_b64encode(digest).decode().rstrip("=") != code.code_challenge:
                            return self._token_error("invalid_grant", "code_verifier was incorrect")
                    code.used = True
                    grant = _Grant(code.user, code.scopes, form["code"], code.code_challenge is not None)
                    fake.consents.setdefault(code.user, set()).update(code.scopes)
                    body = self._issue(grant, refresh=True)
                return self._json(200, body)

            def _refresh_grant(self, form: dict[str, str], public_client: bool) -> None:
                with fake._lock:
                    fake.refresh_requests += 1
                    old = form.get("refresh_token", "")
                    grant = fake.refresh_tokens.get(old)
                    if grant is None or grant.revoked:
                        return self._token_error("invalid_grant", "Invalid refresh token")
                    if public_client and not grant.pkce:
                        return self._token_error("invalid_client", "Invalid client")
                    body = self._issue(grant, refresh=fake.rotate_refresh_tokens)
                    if fake.rotate_refresh_tokens:
                        grant.revoked = True
                return self._json(200, body)

            # --- the accounts site ---

            def _authorize(self, query: dict[str, str]) -> None:
                with fake._lock:
                    fake.authorize_requests.append(dict(query))
                if query.get("client_id") != CLIENT_ID:
                    return self._html(400, "Error", "<h1>Oops! Something went wrong</h1>"
                                      "<p>INVALID_CLIENT: Invalid client</p>")
                redirect_uri = query.get("redirect_uri", "")
                if redirect_uri not in fake.redirect_uris:
                    return self._html(400, "Error", "<h1>Oops! Something went wrong</h1>"
                                      "<p>INVALID_CLIENT: Invalid redirect URI</p>")
                state = query.get("state")

                def error(code: str) -> None:
                    self._redirect(302, _redirect_with(redirect_uri, {"error": code, "state": state}))

                if query.get("response_type") != "code":
                    return error("unsupported_response_type")
                scopes = [s for s in query.get("scope", "").split(" ") if s]
                if any(s not in SCOPES for s in scopes):
                    return error("invalid_scope")
                challenge = query.get("code_challenge")
                if challenge is not None and (query.get("code_challenge_method") != "S256" or len(challenge) != 43
                                              or any(c not in _B64URL for c in challenge)):
                    return error("invalid_request")
                rid = secrets.token_urlsafe(16)
                pending = _Pending(CLIENT_ID, redirect_uri, state, list(dict.fromkeys(scopes)), challenge)
                with fake._lock:
                    fake.pending[rid] = pending
                if fake.auto_decision is not None:
                    pending.user = fake.signed_in or next(iter(fake.users), None)
                    if fake.auto_decision == "accept" and pending.user is None:
                        return self._html(409, "Error", "<p>auto_decision needs a user: add_user first</p>")
                    return self._redirect(302, self._decide(rid, fake.auto_decision) or "")
                if fake.signed_in is None:
                    return self._login_page(rid)
                show_dialog = query.get("show_dialog", "false").lower() == "true"
                if (fake.remember_consent and not show_dialog
                        and set(pending.scopes) <= fake.consents.get(fake.signed_in, set())):
                    pending.user = fake.signed_in
                    return self._redirect(302, self._decide(rid, "accept") or "")
                return self._consent_page(rid)

            def _login_page(self, rid: str) -> None:
                buttons = "".join(
                    f'<li><button type="submit" name="account" value="{html.escape(u.spotify_id)}" '
                    f'data-testid="login-{html.escape(u.spotify_id)}">{html.escape(u.display_name)}</button></li>'
                    for u in fake.users.values())
                self._html(200, "Log in to Spotify", (
                    "<h1>Log in to Spotify</h1>"
                    f'<form method="post" action="/login"><input type="hidden" name="rid" value="{rid}">'
                    f"<ul>{buttons}</ul></form>"))

            def _consent_page(self, rid: str) -> None:
                pending = fake.pending[rid]
                pending.user = fake.signed_in
                user = fake.users.get(pending.user or "")
                words = "".join(f"<li data-scope=\"{s}\">{html.escape(SCOPES[s])}</li>" for s in pending.scopes)
                words = words or "<li>View your Spotify account data</li>"
                self._html(200, f"Authorize {APP_NAME}", (
                    f"<h1>{html.escape(APP_NAME)}</h1>"
                    f'<p>You are logged in as <span id="account">{html.escape(user.display_name if user else "")}'
                    "</span>.</p>"
                    f"<p>{html.escape(APP_NAME)} would like to:</p><ul id=\"scopes\">{words}</ul>"
                    f'<form method="post" action="/authorize/decision"><input type="hidden" name="rid" value="{rid}">'
                    '<button name="decision" value="accept" id="auth-accept" data-testid="auth-accept">Agree</button>'
                    '<button name="decision" value="cancel" id="auth-cancel" data-testid="auth-cancel">Cancel</button>'
                    "</form>"))

            def _decide(self, rid: str, decision: str) -> str | None:
                """The redirect for the pending request's decision (which is then gone); None if it is gone."""
                with fake._lock:
                    pending = fake.pending.pop(rid, None)
                    if pending is None:
                        return None
                    if decision != "accept" or pending.user is None:
                        return _redirect_with(pending.redirect_uri, {"error": "access_denied", "state": pending.state})
                    code = secrets.token_urlsafe(96)
                    fake.codes[code] = _Code(pending.client_id, pending.redirect_uri, pending.user, pending.scopes,
                                             pending.code_challenge, time.time() + fake.code_lifetime_s)
                return _redirect_with(pending.redirect_uri, {"code": code, "state": pending.state})

            def _login(self, form: dict[str, str]) -> None:
                rid, account = form.get("rid", ""), form.get("account", "")
                if rid not in fake.pending or account not in fake.users:
                    return self._html(400, "Error", "<p>Something went wrong, please try again.</p>")
                fake.signed_in = account
                return self._redirect(303, f"{fake.url}/authorize/consent?rid={rid}")

            def _decision(self, form: dict[str, str]) -> None:
                rid = form.get("rid", "")
                if rid not in fake.pending or form.get("decision") not in ("accept", "cancel"):
                    return self._html(400, "Error", "<p>Something went wrong, please try again.</p>")
                if fake.pending[rid].user is None:
                    fake.pending[rid].user = fake.signed_in
                location = self._decide(rid, form["decision"])
                if location is None:
                    return self._html(400, "Error", "<p>Something went wrong, please try again.</p>")
                return self._redirect(303, location)

            # --- GET ---

            def do_GET(self) -> None:  # noqa: N802
                path, raw_query = self._record()
                if path in ("/authorize", "/authorize/consent"):
                    if self._fault(path, "page"):
                        return None
                    query = {k: v[0] for k, v in raw_query.items()}
                    if path == "/authorize":
                        return self._authorize(query)
                    rid = query.get("rid", "")
                    if rid not in fake.pending or fake.signed_in is None:
                        return self._html(400, "Error", "<p>Something went wrong, please try again.</p>")
                    return self._consent_page(rid)
                if self._fault(path, "api"):
                    return None
                query = raw_query
                scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
                expires = fake.tokens.get(token) if scheme == "Bearer" else None
                if expires is None:
                    return self._api_error(401, "Invalid access token")
                if expires < time.time():
                    return self._api_error(401, "The access token expired")
                grant = fake.access_grants.get(token)
                market = (query.get("market") or [None])[0]
                parts = path.strip("/").split("/")
                if parts[:2] == ["v1", "me"]:
                    return self._me(grant, parts[2:], query, market)
                if len(parts) < 3 or parts[0] != "v1":
                    return self._api_error(404, "Service not found")
                kind, obj_id, rest = parts[1], parts[2], parts[3:]
                if len(obj_id) != 22 or any(c not in _B62 for c in obj_id):
                    return self._api_error(400, "Invalid base62 id")
                offset = int((query.get("offset") or ["0"])[0])
                if kind == "tracks" and not rest and obj_id in fake.tracks:
                    return self._json(200, fake._track(obj_id, market=market))
                if kind == "albums" and obj_id in fake.albums:
                    limit = max(1, min(50, int((query.get("limit") or ["20"])[0])))
                    if rest == ["tracks"]:
                        return self._json(200, fake.album_tracks_page(obj_id, offset, limit, market=market))
                    if not rest:
                        body = dict(fake.albums[obj_id].obj)
                        body["tracks"] = fake.album_tracks_page(obj_id, 0, 50, market=market)
                        return self._json(200, body)
                if (kind == "playlists" and obj_id in fake.playlists
                        and fake.can_see(obj_id, grant.user if grant else None)):
                    limit = max(1, min(100, int((query.get("limit") or ["20"])[0])))
                    if rest == ["items"]:
                        return self._json(200, fake.playlist_items_page(obj_id, offset, limit, market=market))
                    if not rest:
                        playlist = fake.playlists[obj_id]
                        body = dict(playlist.obj)
                        body["followers"] = {"href": None, "total": len(playlist.followers)}
                        body["items"] = fake.playlist_items_page(obj_id, 0, 100, market=market)
                        return self._json(200, body)
                return self._api_error(404, "Resource not found")

            def _me(self, grant: _Grant | None, rest: list[str], query: dict[str, list[str]],
                    market: str | None) -> None:
                if grant is None:
                    return self._api_error(401, "This request requires user authentication.")
                if not rest:
                    return self._json(200, fake.me(grant))
                if rest not in (["playlists"], ["tracks"]):
                    return self._api_error(404, "Service not found")
                if rest == ["tracks"] and "user-library-read" not in grant.scopes:
                    return self._api_error(403, "Insufficient client scope")
                try:
                    limit = int((query.get("limit") or ["20"])[0])
                except ValueError:
                    limit = 0
                if not 1 <= limit <= 50:
                    return self._api_error(400, "Invalid limit")
                try:
                    offset = int((query.get("offset") or ["0"])[0])
                except ValueError:
                    offset = -1
                if offset < 0:
                    return self._api_error(400, "Invalid offset")
                if rest == ["playlists"]:
                    return self._json(200, fake.my_playlists_page(grant, offset, limit))
                return self._json(200, fake.my_tracks_page(grant, offset, limit, market))

        return Handler
