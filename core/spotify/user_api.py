"""Spotify's Web API on behalf of a linked user: their playlists (private and collaborative ones too),
their Liked Songs, and the tracks of a playlist only they can see.

Requests go through authlib's ``AsyncOAuth2Client`` (httpx): it refreshes the access token before it
expires (60 s early) and hands the new token to ``_save``, which stores it encrypted. A 401 that comes
anyway (Spotify revoked the token early) refreshes once more and repeats the request once. When Spotify
refuses the refresh token (the person removed StemForge's access at spotify.com), the error is
``SpotifyLinkExpired``: link again from the settings.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict
from core.security import SecretBox
from core.settings import Settings
from core.spotify import sign_in
from core.spotify.client import MAX_ITEMS
from core.spotify.errors import SpotifyError, SpotifyNotConfigured
from core.spotify.metadata import (
    SpotifyTrack,
    entry_skip_reason,
    no_skips,
    pick_image,
    playlist_entry_track,
    skip_reason,
    track_from_api,
)
from data.models import SpotifyAccount

log = logging.getLogger("stemforge.spotify")

# Spotify's page sizes: /me/playlists and /me/tracks take at most 50, /playlists/{id}/items 100.
LIST_LIMIT = 50
ITEMS_LIMIT = 100
# A 429 whose Retry-After is at most this is waited out once; a longer one is reported.
MAX_RETRY_AFTER_S = 5


class SpotifyNotLinked(Conflict):
    code = "spotify_not_linked"

    def __init__(self) -> None:
        super().__init__("No Spotify account is linked to this StemForge account: link one in Settings "
                         "(Link Spotify), then try again.")


class SpotifyLinkExpired(Conflict):
    code = "spotify_link_expired"

    def __init__(self, why: str = "") -> None:
        super().__init__("Spotify no longer accepts StemForge's access to your account"
                         f"{' (' + why + ')' if why else ''}: link Spotify again in Settings.")


@dataclass(frozen=True)
class PlaylistSummary:
    """One playlist as listed in "Your Spotify": ``track_count`` counts every entry (episodes too)."""

    id: str
    name: str
    owner: str
    track_count: int
    image_url: str | None
    public: bool | None
    collaborative: bool
    spotify_url: str


@dataclass(frozen=True)
class Listing:
    """One page of a Spotify listing: ``total`` items in all, ``items`` from ``offset``."""

    items: list[Any]
    total: int
    offset: int
    limit: int


@dataclass
class Entries:
    """Every importable track of a playlist or of Liked Songs, and what was left out and why
    (``removed``, ``local``, ``episode``, ``unavailable``)."""

    name: str
    tracks: list[SpotifyTrack] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=no_skips)


def playlist_summary(obj: Mapping[str, Any]) -> PlaylistSummary | None:
    """A simplified playlist object (``items``, formerly ``tracks``, holds ``{href, total}``) as a summary."""
    playlist_id = obj.get("id")
    if not isinstance(playlist_id, str) or not playlist_id:
        return None
    counts = obj.get("items") if isinstance(obj.get("items"), Mapping) else obj.get("tracks")
    total = counts.get("total") if isinstance(counts, Mapping) else None
    owner = obj.get("owner") or {}
    return PlaylistSummary(
        id=playlist_id, name=str(obj.get("name") or ""), owner=str(owner.get("display_name") or owner.get("id") or ""),
        track_count=int(total) if isinstance(total, int) else 0, image_url=pick_image(obj.get("images")),
        public=obj.get("public") if isinstance(obj.get("public"), bool) else None,
        collaborative=bool(obj.get("collaborative")),
        spotify_url=(obj.get("external_urls") or {}).get("spotify") or f"https://open.spotify.com/playlist/{playlist_id}",
    )


class SpotifyUserApi:
    """Calls for one linked account. ``session`` stores refreshed tokens; use it from one task at a time."""

    def __init__(self, settings: Settings, box: SecretBox, session: AsyncSession, account: SpotifyAccount) -> None:
        token = sign_in.stored_token(account, box)
        if token is None:
            raise SpotifyLinkExpired("its stored tokens cannot be read with this server's key")
        self._settings = settings
        self._box = box
        self._session = session
        self._account = account
        self._api = settings.spotify_api_url.rstrip("/") + "/"
        self._client = AsyncOAuth2Client(
            settings.spotify_client_id, settings.spotify_client_secret, token=token,
            token_endpoint=settings.spotify_accounts_url.rstrip("/") + "/api/token", update_token=self._save,
            leeway=60, timeout=settings.spotify_timeout_s)

    @classmethod
    async def for_user(cls, settings: Settings, session: AsyncSession, user_id: uuid.UUID) -> SpotifyUserApi:
        """The API for the user's linked account; ``SpotifyNotConfigured`` / ``SpotifyNotLinked`` otherwise."""
        if not settings.spotify_client_id or not settings.spotify_client_secret:
            raise SpotifyNotConfigured()
        account = await sign_in.account_of(session, user_id)
        if account is None:
            raise SpotifyNotLinked()
        return cls(settings, SecretBox(settings.fernet_key), session, account)

    async def __aenter__(self) -> SpotifyUserApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _save(self, token: Mapping[str, Any], refresh_token: str | None = None,
                    access_token: str | None = None) -> None:
        sign_in.store_token(self._account, token, self._box)
        self._session.add(self._account)
        await self._session.commit()
        log.info("Refreshed the Spotify token of account %s", self._account.spotify_user_id)

    # --- the calls -------------------------------------------------------------------------------

    async def playlists(self, offset: int = 0, limit: int = 20) -> Listing:
        """A page of the user's playlists (owned and followed, private and collaborative included)."""
        page = await self.get("me/playlists", {"offset": offset, "limit": max(1, min(LIST_LIMIT, limit))})
        items = [s for obj in page.get("items") or () if obj and (s := playlist_summary(obj))]
        return Listing(items, int(page.get("total") or 0), offset, limit)

    async def liked(self, offset: int = 0, limit: int = 20) -> Listing:
        """A page of Liked Songs, newest first: ``(SpotifyTrack | None, skip reason | None, added_at)`` items."""
        page = await self.get("me/tracks", {"offset": offset, "limit": max(1, min(LIST_LIMIT, limit)),
                                            "market": "from_token"})
        items = []
        for entry in page.get("items") or ():
            obj = (entry or {}).get("track")
            reason = skip_reason(obj)
            track = track_from_api(obj) if reason is None and obj else None
            items.append((track, reason, (entry or {}).get("added_at")))
        return Listing(items, int(page.get("total") or 0), offset, limit)

    async def all_liked(self) -> Entries:
        entries = Entries("Liked Songs")
        async for saved in self._every("me/tracks", LIST_LIMIT):
            obj = (saved or {}).get("track")
            self._collect(entries, obj, skip_reason(obj))
        return entries

    async def playlist(self, playlist_id: str) -> Entries:
        """Every entry of a playlist the user can see (their private ones too)."""
        info = await self.get(f"playlists/{playlist_id}", {"fields": "id,name"})
        entries = Entries(str(info.get("name") or ""))
        async for entry in self._every(f"playlists/{playlist_id}/items", ITEMS_LIMIT):
            self._collect(entries, playlist_entry_track(entry or {}), entry_skip_reason(entry))
        return entries

    @staticmethod
    def _collect(entries: Entries, obj: Mapping[str, Any] | None, reason: str | None) -> None:
        track = track_from_api(obj) if reason is None and obj else None
        if track is None:
            entries.skipped[reason or "removed"] += 1
        else:
            entries.tracks.append(track)

    async def _every(self, path: str, limit: int) -> AsyncIterator[Mapping[str, Any] | None]:
        """Every entry of a listing, page by page, in order."""
        offset = 0
        while offset < MAX_ITEMS:
            page = await self.get(path, {"offset": offset, "limit": limit, "market": "from_token"})
            items = page.get("items") or []
            for entry in items:
                yield entry
            offset += len(items)
            if not items or not page.get("next") or offset >= int(page.get("total") or 0):
                return

    # --- HTTP ------------------------------------------------------------------------------------

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``GET <api>/<path>`` as JSON, with the token refreshed as needed; errors as ``SpotifyError`` or
        ``SpotifyLinkExpired``."""
        url = self._api + path.lstrip("/")
        refreshed = waited = False
        while True:
            try:
                response = await self._client.get(url, params=params)
                if response.status_code == 401 and not refreshed:
                    refreshed = True
                    await self._client.refresh_token(self._client.metadata["token_endpoint"])
                    continue
            except OAuthError as exc:
                raise SpotifyLinkExpired(exc.description or exc.error or "") from exc
            except httpx.TimeoutException as exc:
                raise SpotifyError(f"Spotify did not answer within {self._settings.spotify_timeout_s:g} s",
                                   status=504, transient=True) from exc
            except httpx.HTTPError as exc:
                raise SpotifyError(f"Could not reach Spotify: {exc.__class__.__name__}", transient=True) from exc
            status = response.status_code
            if status == 429 and not waited:
                retry_after = _retry_after(response)
                if retry_after <= MAX_RETRY_AFTER_S:
                    waited = True
                    await asyncio.sleep(retry_after)
                    continue
            if status < 400:
                return response.json()
            raise _error(status, response, path)


def _retry_after(response: httpx.Response) -> int:
    try:
        return max(0, int(float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or f"HTTP {response.status_code}")
    return str(body.get("error_description") or error or f"HTTP {response.status_code}")


def _error(status: int, response: httpx.Response, path: str) -> Exception:
    message = _message(response)
    if status == 401:
        return SpotifyLinkExpired(message)
    if status == 403:
        return SpotifyLinkExpired(f"Spotify refused {path}: {message}")
    if status == 404:
        return SpotifyError("Spotify does not know this playlist, or it is private to someone else", status=404)
    if status == 429:
        wait = _retry_after(response)
        return SpotifyError(f"Spotify is rate limiting this server; try again in {wait} s", status=503,
                            transient=True, retry_after=wait)
    if status >= 500:
        return SpotifyError(f"Spotify failed to answer (HTTP {status}: {message})", transient=True)
    return SpotifyError(f"Spotify refused the request (HTTP {status}: {message})")
