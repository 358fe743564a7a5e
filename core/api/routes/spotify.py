"""POST /api/spotify/fetch: a Spotify link in, the stored tracks out."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from core import spotify
from core.api.deps import CurrentUser, SessionDep, SettingsDep
from core.api.schemas import Envelope, ErrorOut
from data.models import Track

router = APIRouter(prefix="/api/spotify", tags=["spotify"])


class SpotifyFetchIn(BaseModel):
    url: str = Field(max_length=2000, description="A Spotify track, album or playlist link, or a spotify: URI",
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


class FetchedTracks(BaseModel):
    type: Literal["album", "playlist"]
    tracks: list[SpotifyTrackOut] = Field(description="In album or playlist order; each track once")


def _out(track: Track) -> SpotifyTrackOut:
    return SpotifyTrackOut.model_validate(track)


@router.post(
    "/fetch",
    response_model=Envelope[FetchedTrack | FetchedTracks],
    responses={400: {"model": ErrorOut, "description": "invalid_url"},
               401: {"model": ErrorOut, "description": "unauthorized (no API token, or no Spotify credentials)"},
               404: {"model": ErrorOut, "description": "spotify_error: Spotify does not know the id"},
               429: {"model": ErrorOut},
               502: {"model": ErrorOut, "description": "spotify_error"},
               503: {"model": ErrorOut, "description": "spotify_error: Spotify rate limit, see retry_after"}},
)
async def fetch(body: SpotifyFetchIn, user: CurrentUser, session: SessionDep,
                settings: SettingsDep) -> Envelope[FetchedTrack | FetchedTracks]:
    """Stores the tracks of a Spotify track, album or playlist link in the library (every page of a
    long playlist, in one call) and returns them. Fetching again refreshes them; it never duplicates."""
    spotify.parse_spotify_url(body.url)  # a bad link is reported before anything else
    imported = await spotify.import_url(session, user.id, body.url, spotify.get_catalog(settings))
    if imported.kind == "track":
        return Envelope(data=FetchedTrack(track=_out(imported.tracks[0])))
    return Envelope(data=FetchedTracks(type=imported.kind, tracks=[_out(t) for t in imported.tracks]))  # type: ignore[arg-type]
