"""Spotify's JSON objects reduced to what StemForge keeps about a track.

Playlists changed shape in Spotify's February 2026 API update (``tracks`` -> ``items`` on the
playlist, ``track`` -> ``item`` on each entry); both shapes are read here so one client works
against either.

Albums and playlists may list entries that cannot be imported; ``skip_reason`` (a track object) and
``entry_skip_reason`` (a playlist entry) say which and why, as one of ``SKIP_REASONS``:

* ``removed``: a null entry, or a track without an id (Spotify took it down);
* ``local``: a local file the owner added from their own disk (``is_local``);
* ``episode``: a podcast episode (``type == "episode"``, or a track-shaped object with ``episode: true``,
  which is how Spotify lists episodes unless ``additional_types`` asks for them);
* ``unavailable``: a track Spotify does not play where it is asked from: ``is_playable is False`` or
  ``restrictions.reason == "market"``. Spotify only sends those two when the request names a
  ``market``, and with client credentials it takes only an explicit country code (no ``from_token``);
  StemForge has no country of its own to send, so without them a track is also counted unavailable
  when its ``available_markets`` is an empty list (playable nowhere). A track whose
  ``available_markets`` is missing (newer API responses leave it out) is taken as available.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SkipReason = Literal["removed", "local", "episode", "unavailable"]
SKIP_REASONS: tuple[SkipReason, ...] = ("removed", "local", "episode", "unavailable")

# Album art is shown as a thumbnail and on the track page: the smallest image at least this big.
ART_MIN_PX = 300


def no_skips() -> dict[str, int]:
    """``{"removed": 0, "local": 0, "episode": 0, "unavailable": 0}``: a fresh tally of skipped entries."""
    return dict.fromkeys(SKIP_REASONS, 0)


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
    # Entries left out, by reason: always all of SKIP_REASONS, e.g. {"removed": 1, "local": 0, "episode": 2, ...}
    skipped: dict[str, int] = field(default_factory=no_skips)


def _unavailable(obj: Mapping[str, Any]) -> bool:
    """Not playable where Spotify was asked from, or nowhere at all (see the module docstring)."""
    restrictions = obj.get("restrictions")
    if obj.get("is_playable") is False:
        return True
    if isinstance(restrictions, Mapping) and restrictions.get("reason") == "market":
        return True
    markets = obj.get("available_markets")
    return isinstance(markets, list) and not markets


def skip_reason(obj: Mapping[str, Any] | None) -> SkipReason | None:
    """Why a track object (of an album, or inside a playlist entry) is not imported; None for a usable track."""
    if not obj:
        return "removed"
    if obj.get("is_local"):
        return "local"
    if obj.get("type") == "episode" or obj.get("episode") is True:
        return "episode"
    if obj.get("type", "track") != "track" or not obj.get("id"):
        return "removed"
    return "unavailable" if _unavailable(obj) else None


def entry_skip_reason(entry: Mapping[str, Any] | None) -> SkipReason | None:
    """``skip_reason`` for a playlist entry (``{"is_local", "item": {...}}``, formerly ``"track"``)."""
    if entry and entry.get("is_local"):
        return "local"
    return skip_reason(playlist_entry_track(entry) if entry else None)


_SKIP_WORDS: dict[str, tuple[str, str]] = {
    "removed": ("removed track", "removed tracks"),
    "local": ("local file", "local files"),
    "episode": ("podcast episode", "podcast episodes"),
    "unavailable": ("track unavailable in Spotify's market", "tracks unavailable in Spotify's market"),
}


def describe_skipped(skipped: Mapping[str, int]) -> str:
    """``"skipped 2: 1 podcast episode, 1 local file"``; ``""`` when nothing was skipped."""
    parts = [f"{n} {_SKIP_WORDS[k][n != 1]}" for k in SKIP_REASONS if (n := skipped.get(k, 0))]
    total = sum(skipped.get(k, 0) for k in SKIP_REASONS)
    return f"skipped {total}: {', '.join(parts)}" if total else ""


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


def track_from_api(obj: Mapping[str, Any] | None, album: Mapping[str, Any] | None = None, *,
                   allow_unavailable: bool = False) -> SpotifyTrack | None:
    """A track object (full, or simplified plus its album) as a SpotifyTrack; None for what is no track.

    Playlists may hold episodes, local files and removed tracks (null or without an id), and albums and
    playlists tracks unavailable in the market: those are left out (``skip_reason`` says why).
    ``allow_unavailable`` keeps an unavailable track (a single track link asked for by name).
    """
    reason = skip_reason(obj)
    if obj is None or (reason is not None and not (allow_unavailable and reason == "unavailable")):
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


def playlist_entry_track(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The track inside a playlist entry (``item``, formerly ``track``)."""
    inner = (entry.get("item") or entry.get("track")) if entry else None
    return inner if isinstance(inner, Mapping) else None
