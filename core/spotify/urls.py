"""Turning what people paste (links, URIs) into a Spotify object reference.

Accepted: ``https://open.spotify.com/track/ID``, the same with a locale segment
(``/intl-de/``), without ``open.`` or the scheme, with ``?si=...`` or other query strings,
embed links (``/embed/track/ID``), the legacy ``/user/NAME/playlist/ID`` form, and URIs
such as ``spotify:track:ID``. Only tracks, albums and playlists: that is what can be imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from core.spotify.errors import InvalidSpotifyUrl

Kind = Literal["track", "album", "playlist"]
KINDS: tuple[Kind, ...] = ("track", "album", "playlist")

# Spotify ids are 22 base-62 characters.
_ID = re.compile(r"[0-9A-Za-z]{22}")
_HOSTS = {"open.spotify.com", "play.spotify.com", "spotify.com", "www.spotify.com"}
_LOCALE = re.compile(r"intl-[a-z]{2}(?:-[a-z]{2})?", re.IGNORECASE)
_URI = re.compile(
    r"spotify:(?:(?P<kind>track|album|playlist)|user:[^:\s]+:(?P<legacy>playlist)):(?P<id>[0-9A-Za-z]{22})"
)


@dataclass(frozen=True)
class SpotifyRef:
    kind: Kind
    id: str

    @property
    def url(self) -> str:
        return f"https://open.spotify.com/{self.kind}/{self.id}"

    @property
    def uri(self) -> str:
        return f"spotify:{self.kind}:{self.id}"


def _invalid(text: str) -> InvalidSpotifyUrl:
    shown = text if len(text) <= 200 else text[:200] + "…"
    return InvalidSpotifyUrl(
        f"Not a Spotify track, album or playlist link: {shown!r}. "
        "Paste a link like https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC or a spotify:track:… URI."
    )


def parse_spotify_url(text: str) -> SpotifyRef:
    """The track, album or playlist a link or URI points at; ``InvalidSpotifyUrl`` otherwise."""
    raw = (text or "").strip()
    uri = _URI.fullmatch(raw)
    if uri:
        return SpotifyRef(uri["kind"] or uri["legacy"], uri["id"])  # type: ignore[arg-type]

    with_scheme = raw if "://" in raw else "https://" + raw
    try:
        parts = urlsplit(with_scheme)
        host = (parts.hostname or "").lower()
    except ValueError as exc:  # e.g. an invalid port or IPv6 literal
        raise _invalid(raw) from exc
    if parts.scheme.lower() not in ("http", "https") or host not in _HOSTS:
        raise _invalid(raw)

    segments = [s for s in parts.path.split("/") if s]
    if segments and _LOCALE.fullmatch(segments[0]):
        segments = segments[1:]
    if segments and segments[0] == "embed":
        segments = segments[1:]
    if len(segments) == 4 and segments[0] == "user" and segments[2] == "playlist":
        segments = segments[2:]
    if len(segments) != 2 or segments[0] not in KINDS or not _ID.fullmatch(segments[1]):
        raise _invalid(raw)
    return SpotifyRef(segments[0], segments[1])  # type: ignore[arg-type]
