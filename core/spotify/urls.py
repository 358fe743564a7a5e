"""Turning what people paste (links, URIs) into a Spotify object reference.

Accepted: ``https://open.spotify.com/track/ID``, the same with a locale segment
(``/intl-de/``), without ``open.`` or the scheme, with ``?si=...`` or other query strings and
``#fragments``, embed links (``/embed/track/ID``), the legacy ``/user/NAME/playlist/ID`` form, and
URIs such as ``spotify:track:ID`` (also with ``?si=...``, as the desktop app copies them). Only
tracks, albums and playlists: that is what can be imported. Links to other things Spotify has
(podcast episodes and shows, artists, audiobooks, profiles, ...) are refused with a message naming
what they are and what to paste instead.

Share links of the mobile app (``https://spotify.link/...``) only say where they lead after an
HTTP round trip: ``is_share_link`` recognises them, ``core.spotify.share_links`` resolves them.
Everything here is pure (no network).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from core.spotify.errors import InvalidSpotifyUrl

Kind = Literal["track", "album", "playlist"]
KINDS: tuple[Kind, ...] = ("track", "album", "playlist")

# Spotify ids are 22 base-62 characters.
_ID = re.compile(r"[0-9A-Za-z]{22}")
SPOTIFY_HOSTS = frozenset({"open.spotify.com", "play.spotify.com", "spotify.com", "www.spotify.com"})
_LOCALE = re.compile(r"intl-[a-z]{2}(?:-[a-z]{2})?", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}

_INSTEAD = "paste the link of a track, an album or a playlist"
# What Spotify links to besides tracks, albums and playlists: (what it is, what to import instead).
REFUSED_KINDS: dict[str, tuple[str, str]] = {
    "episode": ("podcast episode", "StemForge imports music, not podcasts; " + _INSTEAD),
    "show": ("podcast show", "StemForge imports music, not podcasts; " + _INSTEAD),
    "audiobook": ("audiobook", "StemForge imports music, not audiobooks; " + _INSTEAD),
    "chapter": ("audiobook chapter", "StemForge imports music, not audiobooks; " + _INSTEAD),
    "artist": ("artist", "open one of the artist's albums or a playlist and paste its link"),
    "user": ("user profile", "open one of their playlists and paste its link"),
    "collection": ("Liked Songs", "your Liked Songs have no public link: link Spotify (Settings > Link Spotify) and "
                                  "import them from Your Spotify on the library page"),
    "genre": ("genre page", "open one of its playlists and paste its link"),
    "concert": ("concert", _INSTEAD),
    "prerelease": ("pre-release (countdown) page", "once the album is out, paste the album's link"),
}


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


def _shown(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:200] + "…")


def _invalid(text: str) -> InvalidSpotifyUrl:
    return InvalidSpotifyUrl(
        f"Not a Spotify track, album or playlist link: {_shown(text)}. "
        "Paste a link like https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC or a spotify:track:… URI."
    )


def _refused(kind: str, text: str) -> InvalidSpotifyUrl:
    """``That is a Spotify artist link: …`` naming the kind and what can be imported instead."""
    what, instead = REFUSED_KINDS[kind]
    return InvalidSpotifyUrl(
        f"That is a Spotify {what} link: {_shown(text)}. Not a Spotify track, album or playlist: {instead}.",
        details={"url": f"a Spotify {what}", "kind": kind},
    )


def _parse_uri(raw: str) -> SpotifyRef:
    """``spotify:KIND:ID`` (optionally ``?query``/``#fragment``), ``spotify:user:NAME:playlist:ID``."""
    body = re.split(r"[?#]", raw, maxsplit=1)[0]
    parts = body.split(":")
    kind = parts[1].lower() if len(parts) > 1 else ""
    if len(parts) == 3 and kind in KINDS and _ID.fullmatch(parts[2]):
        return SpotifyRef(kind, parts[2])  # type: ignore[arg-type]
    if len(parts) == 5 and kind == "user" and parts[2] and parts[3].lower() == "playlist" and _ID.fullmatch(parts[4]):
        return SpotifyRef("playlist", parts[4])
    if kind == "user" and len(parts) == 4 and parts[3].lower() == "collection":
        raise _refused("collection", raw)
    if kind in REFUSED_KINDS and kind != "collection" and len(parts) == 3 and parts[2]:
        raise _refused(kind, raw)
    raise _invalid(raw)


def _split(raw: str) -> SplitResult | None:
    """The parts of a link (``https://`` assumed without a scheme); None when it cannot be a link."""
    with_scheme = raw if "://" in raw else "https://" + raw
    try:
        parts = urlsplit(with_scheme)
        parts.port  # noqa: B018  (raises ValueError for an invalid port)
    except ValueError:  # e.g. an invalid port or IPv6 literal
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts


def is_spotify_web_url(text: str) -> bool:
    """Whether ``text`` is an http(s) link on Spotify's own web hosts (``open.spotify.com`` and co)."""
    parts = _split((text or "").strip())
    return parts is not None and (parts.hostname or "").lower() in SPOTIFY_HOSTS and parts.username is None


def _path_segments(path: str) -> list[str]:
    """The path without the locale (``intl-de``) and ``embed`` segments and the legacy ``/user/NAME`` prefix."""
    segments = [s for s in path.split("/") if s]
    if segments and _LOCALE.fullmatch(segments[0]):
        segments = segments[1:]
    if segments and segments[0] == "embed":
        segments = segments[1:]
    if len(segments) == 4 and segments[0] == "user" and segments[2] == "playlist":
        segments = segments[2:]
    return segments


def _refused_path(segments: list[str]) -> str | None:
    """The refused kind a link's path points at (``artist``, ``episode``, ...), if any."""
    if not segments:
        return None
    head = segments[0].lower()
    if head == "user" and len(segments) == 3 and segments[2] == "collection":
        return "collection"
    if head == "collection" or (head == "user" and len(segments) == 2):
        return head
    if head in REFUSED_KINDS and len(segments) == 2:
        return head
    return None


def parse_spotify_url(text: str) -> SpotifyRef:
    """The track, album or playlist a link or URI points at.

    Raises ``InvalidSpotifyUrl`` (400 ``invalid_url``): for links to other Spotify things (episodes,
    shows, artists, audiobooks, profiles, ...) with a message naming the kind and what to import
    instead, ``details = {"url": "a Spotify artist", "kind": "artist"}``; for anything else with
    the generic "Not a Spotify track, album or playlist link". Share links (``spotify.link``) are
    not resolved here: see ``core.spotify.share_links.resolve_share_link``.
    """
    raw = (text or "").strip()
    if raw[:8].lower() == "spotify:":
        return _parse_uri(raw)
    parts = _split(raw)
    if parts is None or (parts.hostname or "").lower() not in SPOTIFY_HOSTS or parts.username is not None:
        raise _invalid(raw)
    segments = _path_segments(parts.path)
    refused = _refused_path(segments)
    if refused:
        raise _refused(refused, raw)
    if len(segments) != 2 or segments[0] not in KINDS or not _ID.fullmatch(segments[1]):
        raise _invalid(raw)
    return SpotifyRef(segments[0], segments[1])  # type: ignore[arg-type]


def _host_keys(parts: SplitResult) -> set[str]:
    """``host:port`` of a link, plus the bare host when the port is the scheme's default (or not given)."""
    host = (parts.hostname or "").lower()
    port = parts.port
    keys = {f"{host}:{port}"} if port is not None else set()
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        keys.add(host)
    return keys


def is_share_link(text: str, hosts: Iterable[str]) -> bool:
    """Whether ``text`` is an http(s) link (``https://`` assumed without a scheme) on one of ``hosts``.

    ``hosts`` are ``host`` or ``host:port`` strings (``spotify.link``, ``127.0.0.1:8123``); a bare host
    matches the scheme's default port only. Links with user info (``user@host``) never match.
    """
    raw = (text or "").strip()
    if not raw or raw[:8].lower() == "spotify:" or any(c.isspace() for c in raw):
        return False
    parts = _split(raw)
    if parts is None or parts.username is not None:
        return False
    wanted = {h.strip().lower() for h in hosts if h and h.strip()}
    return bool(_host_keys(parts) & wanted)
