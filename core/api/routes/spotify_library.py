"""Your Spotify: the linked account, its playlists and Liked Songs, and importing them in one call.

Every route answers ``409 spotify_not_linked`` when the user has no Spotify account linked, and
``409 spotify_link_expired`` when Spotify no longer accepts the stored tokens (link again).
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, model_validator

from core import spotify
from core.api.deps import CurrentUser, HeavyUser, SessionDep, SettingsDep
from core.api.schemas import BAD_BODY, Envelope, ErrorOut, PageMeta, Quality
from core.downloader import DEFAULT_QUALITY
from core.errors import InvalidInput, NotFound
from core.spotify import sign_in
from core.spotify.metadata import SKIP_REASONS
from core.spotify.user_api import Entries, SpotifyNotLinked, SpotifyUserApi
from data.models import User
from workers.submit import submit_spotify_import

router = APIRouter(prefix="/api/spotify", tags=["spotify"])
PLAYLIST_ID = re.compile(r"[0-9A-Za-z]{22}")

_errors = {401: {"model": ErrorOut, "description": "unauthorized (no API token, or no Spotify credentials)"},
           409: {"model": ErrorOut, "description": "spotify_not_linked, or spotify_link_expired: link Spotify "
                                                   "(again) in the settings"},
           404: {"model": ErrorOut, "description": "not_found / spotify_error: no such playlist for this account"},
           422: {"model": ErrorOut, "description": "validation_error: a bad query parameter or body field"},
           429: {"model": ErrorOut}, 502: {"model": ErrorOut, "description": "spotify_error"},
           503: {"model": ErrorOut, "description": "spotify_error: Spotify rate limit, see retry_after"},
           504: {"model": ErrorOut, "description": "spotify_error: Spotify did not answer in time"}}


class AccountOut(BaseModel):
    spotify_user_id: str
    display_name: str
    scope: list[str] = Field(description="The scopes Spotify granted")
    linked_at: datetime


class PlaylistOut(BaseModel):
    id: str = Field(description="Spotify playlist id")
    name: str
    owner: str
    track_count: int = Field(description="Entries in the playlist (podcast episodes and local files included)")
    image_url: str | None = None
    public: bool | None = None
    collaborative: bool
    spotify_url: str


class PlaylistPage(BaseModel):
    data: list[PlaylistOut]
    meta: PageMeta


class LikedTrackOut(BaseModel):
    spotify_id: str | None = None
    title: str = ""
    artist: str = ""
    album: str = ""
    album_art_url: str | None = None
    duration: int | None = Field(default=None, description="Length in seconds")
    spotify_url: str | None = None
    added_at: str | None = Field(default=None, description="When it was liked (ISO 8601)")
    skip_reason: Literal["removed", "local", "episode", "unavailable"] | None = Field(
        default=None, description="Why it cannot be imported; null when it can")


class LikedPage(BaseModel):
    data: list[LikedTrackOut]
    meta: PageMeta


class Skipped(BaseModel):
    removed: int = 0
    local: int = 0
    episode: int = 0
    unavailable: int = Field(default=0, description="Not playable in the account's market")


class EntriesOut(BaseModel):
    name: str
    tracks: list[LikedTrackOut]
    skipped: Skipped


class ImportIn(BaseModel):
    source: Literal["liked", "playlist"]
    playlist_id: str | None = Field(default=None, pattern=r"^[0-9A-Za-z]{22}$",
                                    description="Spotify playlist id; required when source is playlist")
    track_ids: list[str] | None = Field(default=None, min_length=1, max_length=10_000,
                                        description="Only these Spotify track ids of the source; all when absent")
    quality: Quality = DEFAULT_QUALITY  # type: ignore[assignment]
    download: bool = Field(default=True, description="Queue a download for each imported track without audio")

    @model_validator(mode="after")
    def _playlist_named(self) -> ImportIn:
        if self.source == "playlist" and not self.playlist_id:
            raise ValueError("playlist_id is required when source is 'playlist'")
        if self.source == "liked" and self.playlist_id:
            raise ValueError("playlist_id goes only with source 'playlist'")
        return self


class ImportedTrack(BaseModel):
    track_id: uuid.UUID
    spotify_id: str
    title: str
    artist: str
    job_id: uuid.UUID | None = Field(default=None, description="The download job; null when the track already "
                                                               "has audio or a download under way")


class ImportOut(BaseModel):
    name: str
    tracks: list[ImportedTrack]
    queued: int = Field(description="Download jobs created")
    skipped: Skipped


def _meta(page: int, page_size: int, total: int) -> PageMeta:
    return PageMeta(page=page, page_size=page_size, total_count=total,
                    total_pages=max(1, math.ceil(total / page_size)))


def _track_out(track: spotify.SpotifyTrack | None, reason: str | None = None,
               added_at: str | None = None) -> LikedTrackOut:
    if track is None:
        return LikedTrackOut(skip_reason=reason, added_at=added_at)  # type: ignore[arg-type]
    return LikedTrackOut(spotify_id=track.spotify_id, title=track.title, artist=track.artist, album=track.album,
                         album_art_url=track.album_art_url, duration=track.duration, spotify_url=track.spotify_url,
                         added_at=added_at)


def _skipped(entries: Entries) -> Skipped:
    return Skipped(**{k: entries.skipped.get(k, 0) for k in SKIP_REASONS})


@router.get("/account", response_model=Envelope[AccountOut], responses=_errors)
async def account(user: CurrentUser, session: SessionDep) -> Envelope[AccountOut]:
    """The Spotify account linked to this user."""
    row = await sign_in.account_of(session, user.id)
    if row is None:
        raise SpotifyNotLinked()
    return Envelope(data=AccountOut(spotify_user_id=row.spotify_user_id, display_name=row.display_name,
                                    scope=row.scope.split(), linked_at=row.created_at))


@router.delete("/account", status_code=204, responses={**_errors, 409: {"model": ErrorOut, "description":
               "spotify_not_linked; password_required: an account made with Spotify needs a password first"}})
async def unlink_account(user: CurrentUser, session: SessionDep) -> Response:
    """Unlinks the Spotify account and deletes its stored tokens (revoke the access at spotify.com as well)."""
    row = await session.get(User, user.id)
    if row is None or not await sign_in.unlink(session, row):
        raise SpotifyNotLinked()
    return Response(status_code=204)


@router.get("/playlists", response_model=PlaylistPage, responses=_errors)
async def playlists(user: CurrentUser, session: SessionDep, settings: SettingsDep, page: int = Query(1, ge=1),
                    page_size: int = Query(20, ge=1, le=50)) -> PlaylistPage:
    """The linked account's playlists, owned and followed, private and collaborative ones included."""
    async with await SpotifyUserApi.for_user(settings, session, user.id) as api:
        listing = await api.playlists((page - 1) * page_size, page_size)
    return PlaylistPage(data=[PlaylistOut(**vars(p)) for p in listing.items],
                        meta=_meta(page, page_size, listing.total))


@router.get("/playlists/{playlist_id}/tracks", response_model=Envelope[EntriesOut], responses=_errors)
async def playlist_tracks(playlist_id: str, user: CurrentUser, session: SessionDep,
                          settings: SettingsDep) -> Envelope[EntriesOut]:
    """Every importable track of one of the account's playlists (all pages), and what cannot be imported."""
    if not PLAYLIST_ID.fullmatch(playlist_id):
        raise NotFound("Spotify playlist")
    async with await SpotifyUserApi.for_user(settings, session, user.id) as api:
        entries = await api.playlist(playlist_id)
    return Envelope(data=EntriesOut(name=entries.name, tracks=[_track_out(t) for t in entries.tracks],
                                    skipped=_skipped(entries)))


@router.get("/liked", response_model=LikedPage, responses=_errors)
async def liked(user: CurrentUser, session: SessionDep, settings: SettingsDep, page: int = Query(1, ge=1),
                page_size: int = Query(20, ge=1, le=50)) -> LikedPage:
    """The linked account's Liked Songs, newest first; entries that cannot be imported carry `skip_reason`."""
    async with await SpotifyUserApi.for_user(settings, session, user.id) as api:
        listing = await api.liked((page - 1) * page_size, page_size)
    return LikedPage(data=[_track_out(*item) for item in listing.items], meta=_meta(page, page_size, listing.total))


@router.post("/import", status_code=202, response_model=Envelope[ImportOut],
             responses={**BAD_BODY, **_errors, 422: {"model": ErrorOut}})
async def import_library(body: ImportIn, request: Request, user: HeavyUser, session: SessionDep,
                         settings: SettingsDep) -> Envelope[ImportOut]:
    """Adds Liked Songs or a playlist (or chosen tracks of it) to the library and queues their downloads at
    `quality`; progress comes over `/socket` like any download."""
    async with await SpotifyUserApi.for_user(settings, session, user.id) as api:
        entries = await (api.all_liked() if body.source == "liked" else api.playlist(body.playlist_id or ""))
    if body.track_ids is not None:
        importable = {t.spotify_id for t in entries.tracks}
        unknown = [t for t in body.track_ids if t not in importable]
        if unknown:
            raise InvalidInput(f"{len(unknown)} of the track_ids are not importable tracks of {entries.name}",
                               details={"track_ids": f"not in it, or not importable: {', '.join(unknown[:20])}"})
    rows, created = await submit_spotify_import(session, request.app.state.events, user.id, entries.tracks,
                                                only=body.track_ids, quality=body.quality, download=body.download)
    jobs_by_track = {job.track_id: job.id for job in created}
    tracks = [ImportedTrack(track_id=r.id, spotify_id=r.spotify_id or "", title=r.title, artist=r.artist,
                            job_id=jobs_by_track.get(r.id)) for r in rows]
    return Envelope(data=ImportOut(name=entries.name, tracks=tracks, queued=len(jobs_by_track),
                                   skipped=_skipped(entries)))

