"""Spotify's catalogue through spotipy with the client-credentials flow.

One ``SpotifyCatalog`` per process and set of credentials (``get_catalog``): it keeps the
access token in memory until it expires and reuses one HTTP connection pool. Blocking, like
spotipy: async callers run it in a thread.

Retries are ours rather than urllib3's: spotipy's default session retries 429 and 5xx itself,
sleeps for any Retry-After (even an hour) and reports an exhausted retry as a 429 whatever the
real status was. Here a Retry-After is honoured only while the total wait stays within
``max_retry_wait_s``; past that the caller gets a ``SpotifyError`` saying when to try again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import requests
import spotipy
from requests.adapters import HTTPAdapter
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials
from urllib3.util.retry import Retry

from core.settings import Settings
from core.spotify.errors import SpotifyError, SpotifyNotConfigured
from core.spotify.metadata import (
    SpotifyCollection,
    SpotifyTrack,
    entry_skip_reason,
    no_skips,
    playlist_entry_track,
    playlist_page,
    skip_reason,
    track_from_api,
)
from core.spotify.urls import SpotifyRef

log = logging.getLogger("stemforge.spotify")
# spotipy logs every HTTP error at ERROR level before raising it; _call reports them in its own words.
logging.getLogger("spotipy.client").setLevel(logging.CRITICAL)

T = TypeVar("T")

# Spotify playlists hold at most 10,000 entries; anything past that is a paging loop.
MAX_ITEMS = 10_000
MAX_ATTEMPTS = 5
SERVER_ERROR_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)


class _ClientCredentials(SpotifyClientCredentials):
    """spotipy's client-credentials manager with the accounts service at a configurable URL.

    spotipy reads the token endpoint from ``self.OAUTH_TOKEN_URL``; an instance value overrides the
    class default without patching spotipy.
    """

    def __init__(self, client_id: str, client_secret: str, *, accounts_url: str, **kw: Any) -> None:
        super().__init__(client_id, client_secret, **kw)
        self.OAUTH_TOKEN_URL = accounts_url.rstrip("/") + "/api/token"


class _Spotify(spotipy.Spotify):
    """spotipy's client with the Web API at a configurable base URL (``prefix``)."""

    def __init__(self, *, api_url: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.prefix = api_url.rstrip("/") + "/"


def _retry_after(headers: Mapping[str, str] | None) -> int:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return max(0, int(float(value))) if value is not None else 1
    except ValueError:
        return 1


def _spotify_message(exc: spotipy.SpotifyException) -> str:
    """Spotify's own words without the URL spotipy puts in front of them."""
    text = str(exc.msg or "")
    return text.split(":\n", 1)[-1].strip() or f"HTTP {exc.http_status}"


class SpotifyCatalog:
    def __init__(self, client_id: str, client_secret: str, *, api_url: str, accounts_url: str,
                 timeout_s: float = 10.0, max_retry_wait_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        session = requests.Session()
        # Refused connections are retried by urllib3; every HTTP status (429 included, whatever its
        # Retry-After) comes back to _call untouched.
        retry = Retry(total=None, connect=2, read=False, redirect=3, status=0, other=0,
                      respect_retry_after_header=False)
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._cache = MemoryCacheHandler()
        self._auth = _ClientCredentials(client_id, client_secret, accounts_url=accounts_url, cache_handler=self._cache,
                                        requests_session=session, requests_timeout=timeout_s)
        self._sp = _Spotify(api_url=api_url, auth_manager=self._auth, requests_session=session,
                            requests_timeout=timeout_s)
        self.timeout_s = timeout_s
        self.max_retry_wait_s = max_retry_wait_s
        self._sleep = sleep

    # --- the calls -------------------------------------------------------------------------

    def fetch(self, ref: SpotifyRef) -> SpotifyCollection:
        """Everything a link points at, every page of it; ``skipped`` counts what an album or playlist lists
        but cannot be imported (see ``core.spotify.metadata.skip_reason``)."""
        if ref.kind == "track":
            track = self.track(ref.id)
            return SpotifyCollection("track", ref.id, track.title, [track])
        if ref.kind == "album":
            return self.album(ref.id)
        return self.playlist(ref.id)

    def track(self, track_id: str) -> SpotifyTrack:
        obj = self._call(f"track {track_id}", self._sp.track, track_id)
        # A track asked for by its own link is kept even when Spotify marks it unavailable somewhere.
        track = track_from_api(obj or {}, allow_unavailable=True)
        if track is None:
            raise SpotifyError(f"Spotify returned no usable track for {track_id}")
        return track

    def album(self, album_id: str) -> SpotifyCollection:
        what = f"album {album_id}"
        album = self._call(what, self._sp.album, album_id) or {}
        tracks: list[SpotifyTrack] = []
        skipped = no_skips()
        for obj in self._pages(what, album.get("tracks")):
            reason = skip_reason(obj)
            track = track_from_api(obj, album) if reason is None else None
            if track is None:
                skipped[reason or "removed"] += 1
            else:
                tracks.append(track)
        return SpotifyCollection("album", album_id, str(album.get("name") or ""), tracks, skipped)

    def playlist(self, playlist_id: str) -> SpotifyCollection:
        what = f"playlist {playlist_id}"
        playlist = self._call(what, self._sp.playlist, playlist_id) or {}
        first = playlist_page(playlist)
        if first is None:
            raise SpotifyError(
                f"Spotify lists no tracks for {what}; it may be private, or (for Spotify apps in development "
                "mode) owned by someone else", status=404)
        tracks: list[SpotifyTrack] = []
        skipped = no_skips()
        for entry in self._pages(what, first):
            reason = entry_skip_reason(entry)
            track = track_from_api(playlist_entry_track(entry)) if reason is None else None
            if track is None:
                skipped[reason or "removed"] += 1
            else:
                tracks.append(track)
        return SpotifyCollection("playlist", playlist_id, str(playlist.get("name") or ""), tracks, skipped)

    # --- paging and errors -------------------------------------------------------------------

    def _pages(self, what: str, page: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any] | None]:
        """Every item of a paging object, following ``next`` links to the end; null items come as None
        (a removed entry, for the caller to count)."""
        seen_next: set[str] = set()
        count = 0
        while page:
            for item in page.get("items") or ():
                count += 1
                yield item if isinstance(item, Mapping) and item else None
            nxt = page.get("next")
            if not nxt or nxt in seen_next or count >= MAX_ITEMS:
                return
            seen_next.add(nxt)
            page = self._call(what, self._sp.next, page)

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        waited = 0.0
        token_renewed = False
        for attempt in range(MAX_ATTEMPTS):
            try:
                return fn(*args)
            except spotipy.SpotifyException as exc:
                status = exc.http_status
                if status == 401 and not token_renewed:
                    # The token was revoked or expired early: fetch a fresh one once.
                    self._cache.save_token_to_cache(None)
                    token_renewed = True
                    continue
                if status == 404:
                    raise SpotifyError(f"The Spotify {what} was not found", status=404) from exc
                if status == 429 or status >= 500:
                    delay = float(_retry_after(exc.headers)) if status == 429 else (
                        SERVER_ERROR_BACKOFF_S[min(attempt, len(SERVER_ERROR_BACKOFF_S) - 1)] * random.uniform(1, 1.25))
                    if waited + delay <= self.max_retry_wait_s and attempt + 1 < MAX_ATTEMPTS:
                        log.info("Spotify answered %s for %s; retrying in %.1f s", status, what, delay)
                        self._sleep(delay)
                        waited += delay
                        continue
                    if status == 429:
                        wait = _retry_after(exc.headers)
                        raise SpotifyError(
                            f"Spotify is rate limiting this server; try again in {wait} s", status=503,
                            transient=True, retry_after=wait) from exc
                    raise SpotifyError(f"Spotify failed to answer for {what} (HTTP {status}: "
                                       f"{_spotify_message(exc)})", transient=True) from exc
                raise SpotifyError(f"Spotify refused the request for {what} (HTTP {status}: "
                                   f"{_spotify_message(exc)})") from exc
            except spotipy.SpotifyOauthError as exc:
                reason = exc.error or "error"
                raise SpotifyError(
                    f"Spotify refused this server's client credentials ({reason}"
                    f"{': ' + exc.error_description if exc.error_description else ''}); check "
                    "STEMFORGE_SPOTIFY_CLIENT_ID and STEMFORGE_SPOTIFY_CLIENT_SECRET") from exc
            except requests.Timeout as exc:
                raise SpotifyError(f"Spotify did not answer within {self.timeout_s:g} s for {what}", status=504,
                                   transient=True) from exc
            except requests.RequestException as exc:
                raise SpotifyError(f"Could not reach Spotify for {what}: {exc.__class__.__name__}",
                                   transient=True) from exc
        raise SpotifyError(f"Spotify kept failing for {what}", transient=True)


_catalogs: dict[tuple[Any, ...], SpotifyCatalog] = {}
_catalogs_lock = threading.Lock()


def get_catalog(settings: Settings) -> SpotifyCatalog:
    """The process-wide catalogue for these settings; ``SpotifyNotConfigured`` without credentials."""
    if not settings.spotify_client_id or not settings.spotify_client_secret:
        raise SpotifyNotConfigured()
    key = (settings.spotify_client_id, settings.spotify_client_secret, settings.spotify_api_url,
           settings.spotify_accounts_url, settings.spotify_timeout_s, settings.spotify_max_retry_wait_s)
    with _catalogs_lock:
        catalog = _catalogs.get(key)
        if catalog is None:
            catalog = _catalogs[key] = SpotifyCatalog(
                settings.spotify_client_id, settings.spotify_client_secret, api_url=settings.spotify_api_url,
                accounts_url=settings.spotify_accounts_url, timeout_s=settings.spotify_timeout_s,
                max_retry_wait_s=settings.spotify_max_retry_wait_s)
        return catalog
