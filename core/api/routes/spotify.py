"""POST /api/spotify/fetch: a Spotify link (or a share link of the app) in, the stored tracks out."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from core import spotify
from core.api.deps import CurrentUser, SessionDep, SettingsDep
from core.api.schemas import Envelope, ErrorOut
from core.spotify.share_links import resolve_share_link
from data.models import Track

router = APIRouter(prefix="/api/spotify", tags=["spotify"])


class SpotifyFetchIn(BaseModel):
    url: str = Field(max_length=2000,
                     description="A Spotify track, album or playlist link, a spotify: URI, or a share link of the "
                                 "app (https://spotify.link/...)",
                     examples=["https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC"])


class SpotifyTrackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    spotify_id: str
    title: str
    artist: str
    album: str
    album_art_url: str | None = None
    duration: int | None = Field(default=None, description="Length in seconds")
    spotify_url: str | None = None


class FetchedTrack(BaseModel):
    type: Literal["track"] = "track"
    track: SpotifyTrackOut


class SkippedEntries(BaseModel):
    """Entries of the album or playlist that were not imported, counted by reason."""

    removed: int = Field(default=0, description="Entries Spotify no longer has (null, or a track without an id)")
    local: int = Field(default=0, description="Local files the playlist's owner added from their own disk")
    episode: int = Field(default=0, description="Podcast episodes")
    unavailable: int = Field(default=0, description="Tracks Spotify marks unavailable (not playable in the market, "
                                                    "or in no market at all)")


class FetchedTracks(BaseModel):
    type: Literal["album", "playlist"]
    tracks: list[SpotifyTrackOut] = Field(description="In album or playlist order; each track once")
    skipped: SkippedEntries = Field(
        default_factory=SkippedEntries,
        description="StemForge's addition to the answer: what the album or playlist lists but was not imported, "
                    "and why; all four counts, zeros included",
        examples=[{"removed": 1, "local": 0, "episode": 2, "unavailable": 0}])


def _out(track: Track) -> SpotifyTrackOut:
    return SpotifyTrackOut.model_validate(track)


@router.post(
    "/fetch",
    response_model=Envelope[FetchedTrack | FetchedTracks],
    responses={400: {"model": ErrorOut, "description": "invalid_url: not a track, album or playlist link (the "
                                                       "message names episodes, artists, ...), or a dead share link; "
                                                       "bad_request: the body is not UTF-8 text"},
               401: {"model": ErrorOut, "description": "unauthorized (no API token, or no Spotify credentials)"},
               404: {"model": ErrorOut, "description": "spotify_error: Spotify does not know the id"},
               429: {"model": ErrorOut},
               502: {"model": ErrorOut, "description": "spotify_error (also: the share-link host is unreachable)"},
               503: {"model": ErrorOut, "description": "spotify_error: Spotify rate limit, see retry_after"},
               504: {"model": ErrorOut, "description": "spotify_error: Spotify (or the share-link host) did not "
                                                       "answer in time"}},
)
async def fetch(body: SpotifyFetchIn, user: CurrentUser, session: SessionDep,
                settings: SettingsDep) -> Envelope[FetchedTrack | FetchedTracks]:
    """Stores the tracks of a Spotify track, album or playlist link in the library (every page of a
    long playlist, in one call) and returns them. Fetching again refreshes them; it never duplicates.

    Share links of the mobile app (`https://spotify.link/...`) are resolved first (redirects followed
    only on the share-link hosts). Links to episodes, shows, artists, audiobooks or profiles are refused
    (400 `invalid_url`) with a message saying what they are and what to paste instead.

    An album or playlist answers `{"type", "tracks", "skipped"}`; `skipped` (beside the spec's fields)
    counts the entries that were not imported: `{"removed": 1, "local": 0, "episode": 2, "unavailable": 0}`."""
    url = await resolve_share_link(body.url, settings)
    spotify.parse_spotify_url(url)  # a bad link is reported before anything else
    imported = await spotify.import_url(session, user.id, url, spotify.get_catalog(settings), settings=settings)
    if imported.kind == "track":
        return Envelope(data=FetchedTrack(track=_out(imported.tracks[0])))
    return Envelope(data=FetchedTracks(type=imported.kind, tracks=[_out(t) for t in imported.tracks],  # type: ignore[arg-type]
                                       skipped=SkippedEntries(**imported.skipped)))
