"""Spotify tracks in a user's library: one row per user and Spotify id, refreshed on every fetch.

``import_url`` is the whole "paste a Spotify link" use case (parse, fetch every page, store);
``save_tracks`` is the upsert the download task reuses for a single track; ``track_for_download``
is what ``POST /api/download/track`` does with a Spotify track link.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings
from core.spotify.client import SpotifyCatalog
from core.spotify.errors import SpotifyError
from core.spotify.metadata import SpotifyCollection, SpotifyTrack, no_skips
from core.spotify.urls import SpotifyRef, parse_spotify_url
from core.spotify.user_api import SpotifyLinkExpired, SpotifyNotLinked, SpotifyUserApi
from data.models import Track, utcnow

log = logging.getLogger("stemforge.spotify")

# Bound the SQL IN (...) list; PostgreSQL and SQLite both take far more, but big playlists exist.
_LOOKUP_CHUNK = 500
# Each lost insert race is retried as an update; overlapping imports (an album and a playlist
# sharing tracks) can lose more than once.
_ATTEMPTS = 3


@dataclass(frozen=True)
class Imported:
    kind: str  # track | album | playlist
    name: str
    tracks: list[Track]
    # What the album or playlist listed but was not imported, by reason (all four keys, zeros included):
    # {"removed": n, "local": n, "episode": n, "unavailable": n}; see core.spotify.metadata.skip_reason.
    skipped: dict[str, int] = field(default_factory=no_skips)


def _apply(row: Track, meta: SpotifyTrack) -> None:
    row.title = meta.title[:500]
    row.artist = meta.artist[:500]
    row.album = meta.album[:500]
    row.album_art_url = meta.album_art_url
    row.duration = meta.duration
    row.spotify_url = meta.spotify_url


async def _existing(session: AsyncSession, user_id: uuid.UUID, ids: list[str]) -> dict[str, Track]:
    found: dict[str, Track] = {}
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start:start + _LOOKUP_CHUNK]
        rows = await session.exec(select(Track).where(Track.user_id == user_id, col(Track.spotify_id).in_(chunk)))
        found.update({row.spotify_id: row for row in rows.all() if row.spotify_id})
    return found


async def save_tracks(session: AsyncSession, user_id: uuid.UUID, tracks: list[SpotifyTrack]) -> list[Track]:
    """Insert new tracks and refresh the metadata of known ones; rows come back in the given order.

    A track listed twice (playlists allow that) is stored once. Two requests racing to insert the
    same track meet the unique (user_id, spotify_id) constraint; the loser retries as an update.
    """
    unique = list({t.spotify_id: t for t in tracks}.values())
    for attempt in range(_ATTEMPTS):
        existing = await _existing(session, user_id, [t.spotify_id for t in unique])
        rows: list[Track] = []
        now = utcnow()
        for meta in unique:
            row = existing.get(meta.spotify_id)
            if row is None:
                row = Track(user_id=user_id, spotify_id=meta.spotify_id)
            _apply(row, meta)
            row.updated_at = now
            session.add(row)
            rows.append(row)
        try:
            await session.commit()
            return rows
        except IntegrityError:
            await session.rollback()
            if attempt + 1 == _ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _through_linked_account(session: AsyncSession, user_id: uuid.UUID, playlist_id: str,
                                  settings: Settings) -> tuple[SpotifyCollection | None, bool]:
    """A playlist read with the user's own Spotify token (their private playlists, which the app's
    client-credentials token cannot see): ``(collection or None, whether a usable account is linked)``."""
    try:
        async with await SpotifyUserApi.for_user(settings, session, user_id) as api:
            entries = await api.playlist(playlist_id)
    except (SpotifyNotLinked, SpotifyLinkExpired):
        return None, False
    except SpotifyError:
        return None, True
    return SpotifyCollection("playlist", playlist_id, entries.name, entries.tracks, dict(entries.skipped)), True


async def import_url(session: AsyncSession, user_id: uuid.UUID, url: str, catalog: SpotifyCatalog,
                     *, settings: Settings | None = None) -> Imported:
    """Fetch what a Spotify link points at (all pages) and store its tracks in the user's library.

    ``url`` is a link or URI ``parse_spotify_url`` takes (resolve share links first:
    ``core.spotify.share_links.resolve_share_link``); ``InvalidSpotifyUrl`` otherwise. With ``settings``, a
    playlist Spotify does not show the app (a private one) is read through the user's linked Spotify account.
    """
    ref = parse_spotify_url(url)
    try:
        collection = await asyncio.to_thread(catalog.fetch, ref)
    except SpotifyError as exc:
        private, linked = None, False
        if exc.status == 404 and ref.kind == "playlist" and settings is not None:
            private, linked = await _through_linked_account(session, user_id, ref.id, settings)
        if private is None:
            if exc.status == 404 and ref.kind == "playlist":
                hint = ("It may be a private playlist of another Spotify account: only its owner and collaborators "
                        "can import it." if linked else
                        "If it is your private playlist, link your Spotify account (Settings > Link Spotify) to "
                        "import it.")
                raise SpotifyError(f"{exc.message}. {hint}", status=404) from exc
            raise
        collection = private
    rows = await save_tracks(session, user_id, collection.tracks)
    return Imported(collection.kind, collection.name, rows, dict(collection.skipped))


async def _bare_row(session: AsyncSession, user_id: uuid.UUID, ref: SpotifyRef) -> Track:
    """The user's row for a Spotify id as it is, or a new one that only knows the id."""
    for attempt in range(_ATTEMPTS):
        row = (await _existing(session, user_id, [ref.id])).get(ref.id)
        if row is not None:
            return row
        row = Track(user_id=user_id, spotify_id=ref.id, title=f"Spotify track {ref.id}", spotify_url=ref.url)
        session.add(row)
        try:
            await session.commit()
            return row
        except IntegrityError:  # a concurrent request inserted it first: use that row
            await session.rollback()
            if attempt + 1 == _ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def track_for_download(session: AsyncSession, user_id: uuid.UUID, ref: SpotifyRef,
                             catalog: SpotifyCatalog) -> tuple[Track, bool]:
    """The user's row for a Spotify track, refreshed from Spotify: ``(row, metadata_fetched)``.

    An unknown id or refused credentials raise ``SpotifyError`` (the request fails, nothing is stored).
    When Spotify is only briefly unavailable (rate limit, 5xx, timeout) the download should not be
    refused for that: the row is kept as it is (or created knowing only the id) and
    ``metadata_fetched`` is False, so the download job fetches the metadata itself, retrying with backoff.
    """
    try:
        meta = await asyncio.to_thread(catalog.track, ref.id)
    except SpotifyError as exc:
        if not exc.transient:
            raise
        log.info("Spotify unavailable for track %s (%s); the download job will fetch it", ref.id, exc.message)
        return await _bare_row(session, user_id, ref), False
    (row,) = await save_tracks(session, user_id, [meta])
    return row, True
