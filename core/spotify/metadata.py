"""Spotify's JSON objects reduced to what StemForge keeps about a track.

Playlists changed shape in Spotify's February 2026 API update (``tracks`` -> ``items`` on the
playlist, ``track`` -> ``item`` on each entry); both shapes are read here so one client works
against either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Album art is shown as a thumbnail and on the track page: the smallest image at least this big.
ART_MIN_PX = 300


@dataclass(frozen=True)
class SpotifyTrack:
    spotify_id: str
    title: str
    artist: str  # all artists, comma separated, as Spotify credits them
    album: str
    album_art_url: str | None
    duration: int | None  # seconds
    spotify_url: str
    artists: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpotifyCollection:
    """What one link resolved to: a single track, or an album's or playlist's tracks in order."""

    kind: str  # track | album | playlist
    spotify_id: str
    name: str
    tracks: list[SpotifyTrack]


def pick_image(images: Iterable[Mapping[str, Any]] | None, min_px: int = ART_MIN_PX) -> str | None:
    """The smallest image whose shorter side is at least ``min_px``, else the largest one.

    Spotify lists 640, 300 and 64 px versions of album art; the 300 px one is sharp enough for
    a card and a fraction of the bytes. Images without sizes (some playlists) rank as unknown.
    """
    sized: list[tuple[int, str]] = []
    unsized: list[str] = []
    for image in images or ():
        url = image.get("url")
        if not url:
            continue
        width, height = image.get("width"), image.get("height")
        if isinstance(width, int) and isinstance(height, int):
            sized.append((min(width, height), url))
        else:
            unsized.append(url)
    big_enough = [s for s in sized if s[0] >= min_px]
    if big_enough:
        return min(big_enough, key=lambda s: s[0])[1]
    if unsized:
        return unsized[0]
    return max(sized, key=lambda s: s[0])[1] if sized else None


def track_from_api(obj: Mapping[str, Any], album: Mapping[str, Any] | None = None) -> SpotifyTrack | None:
    """A track object (full, or simplified plus its album) as a SpotifyTrack; None for what is no track.

    Playlists may hold episodes, local files and removed tracks (null or without an id): those
    cannot be looked up or downloaded, so they are left out.
    """
    if not obj or obj.get("type", "track") != "track" or obj.get("is_local") or not obj.get("id"):
        return None
    album = obj.get("album") or album or {}
    artists = tuple(a.get("name", "") for a in obj.get("artists") or () if a.get("name"))
    duration_ms = obj.get("duration_ms")
    track_id = str(obj["id"])
    return SpotifyTrack(
        spotify_id=track_id,
        title=str(obj.get("name") or ""),
        artist=", ".join(artists),
        album=str(album.get("name") or ""),
        album_art_url=pick_image(album.get("images")),
        duration=round(duration_ms / 1000) if isinstance(duration_ms, int | float) else None,
        spotify_url=(obj.get("external_urls") or {}).get("spotify") or f"https://open.spotify.com/track/{track_id}",
        artists=artists,
    )


def playlist_page(playlist: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first page of entries embedded in a playlist object (``items``, formerly ``tracks``)."""
    for key in ("items", "tracks"):
        page = playlist.get(key)
        if isinstance(page, Mapping) and "items" in page:
            return page
    return None


def playlist_entry_track(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The track inside a playlist entry (``item``, formerly ``track``)."""
    inner = entry.get("item") or entry.get("track")
    return inner if isinstance(inner, Mapping) else None
