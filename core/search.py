"""Finding the audio for a Spotify track: a search backend, then the matcher picks a candidate.

Backends share one small interface and are chosen by ``STEMFORGE_SEARCH_BACKEND``:

- ``ytdlp`` (default): yt-dlp's own search (``ytsearch5:artist - title``), used as a library; it
  needs nothing but the network.
- ``invidious``: the search API of an Invidious instance (``/api/v1/search``), which self-hosters
  run to keep YouTube traffic off their server or to get past blocks. A result's video id becomes
  a download URL by the ``STEMFORGE_INVIDIOUS_SOURCE_URL`` template: the YouTube watch page by
  default, or ``{instance}/latest_version?id={id}&itag=140&local=true`` to stream the audio through
  the instance itself.

``find_source`` is what the download task calls. It raises ``core.progress`` errors:
``TransientError`` when the search service is unreachable (worth a retry), ``NoMatch`` (a
``BadInput``) when nothing found is convincing, so the user is asked for a source URL instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

import httpx

from core.matching import Candidate, Scored, Target, rank, strip_credits, versions_in
from core.progress import BadInput, TransientError
from core.settings import Settings, get_settings

log = logging.getLogger("stemforge.search")

_EDITION = re.compile(r"\s+-\s+.*$")


class SearchBackend(Protocol):
    name: str

    def search(self, query: str, limit: int) -> list[Candidate]:
        """Up to ``limit`` candidates, in the service's order of relevance."""
        ...


class NoMatch(BadInput):
    """Nothing found looks like the track; ``candidates`` says what was considered."""

    def __init__(self, message: str, candidates: list[Scored]) -> None:
        super().__init__(message)
        self.candidates = candidates


class SourceMatch(NamedTuple):
    url: str
    score: float
    candidates: list[Scored]  # best first, the chosen one included


# --- yt-dlp -------------------------------------------------------------------------------------


def candidate_from_ytdlp(entry: Mapping[str, Any]) -> Candidate | None:
    """A flat yt-dlp search entry as a candidate (None for channels, playlists and live streams)."""
    url = entry.get("webpage_url") or entry.get("url")
    if not url or not str(url).startswith(("http://", "https://")):
        return None
    if entry.get("_type") not in (None, "url", "video") or entry.get("live_status") in ("is_live", "is_upcoming"):
        return None
    duration = entry.get("duration")
    return Candidate(
        url=str(url),
        title=str(entry.get("title") or ""),
        channel=str(entry.get("channel") or entry.get("uploader") or ""),
        duration=float(duration) if isinstance(duration, int | float) else None,
        source_id=str(entry.get("id") or ""),
        views=entry.get("view_count") if isinstance(entry.get("view_count"), int) else None,
    )


class YtDlpSearch:
    name = "ytdlp"

    def __init__(self, prefix: str = "ytsearch", socket_timeout_s: float = 20.0) -> None:
        self.prefix = prefix
        self.socket_timeout_s = socket_timeout_s

    def search(self, query: str, limit: int) -> list[Candidate]:
        import yt_dlp  # heavy import: only the worker that searches pays for it

        opts = {"quiet": True, "no_warnings": True, "skip_download": True, "extract_flat": "in_playlist",
                "socket_timeout": self.socket_timeout_s, "noprogress": True}
        try:
            with yt_dlp.YoutubeDL(opts) as ydl:
                info = ydl.extract_info(f"{self.prefix}{limit}:{query}", download=False) or {}
        except yt_dlp.utils.DownloadError as exc:
            raise TransientError(f"The {self.prefix} search failed: {exc}") from exc
        entries = info.get("entries") or []
        return [c for e in entries if e and (c := candidate_from_ytdlp(e))][:limit]


# --- Invidious ----------------------------------------------------------------------------------


class InvidiousSearch:
    name = "invidious"

    def __init__(self, instance_url: str, source_url: str = "https://www.youtube.com/watch?v={id}",
                 timeout_s: float = 15.0) -> None:
        self.instance_url = instance_url.rstrip("/")
        self.source_url = source_url
        self.timeout_s = timeout_s

    def download_url(self, video_id: str) -> str:
        return self.source_url.replace("{instance}", self.instance_url).replace("{id}", quote(video_id, safe=""))

    def candidate(self, item: Mapping[str, Any]) -> Candidate | None:
        """One /api/v1/search item as a candidate; channels, playlists and live streams are none."""
        video_id = item.get("videoId")
        if item.get("type") != "video" or not video_id or item.get("liveNow") or item.get("isUpcoming"):
            return None
        length = item.get("lengthSeconds")
        return Candidate(
            url=self.download_url(str(video_id)),
            title=str(item.get("title") or ""),
            channel=str(item.get("author") or ""),
            duration=float(length) if isinstance(length, int | float) and length > 0 else None,
            source_id=str(video_id),
            views=item.get("viewCount") if isinstance(item.get("viewCount"), int) else None,
        )

    def search(self, query: str, limit: int) -> list[Candidate]:
        where = f"the Invidious instance at {self.instance_url}"
        try:
            response = httpx.get(f"{self.instance_url}/api/v1/search",
                                 params={"q": query, "type": "video", "page": 1},
                                 headers={"Accept": "application/json"}, timeout=self.timeout_s,
                                 follow_redirects=True)
        except httpx.HTTPError as exc:
            raise TransientError(f"Could not search {where}: {exc.__class__.__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"Searching {where} failed (HTTP {response.status_code})")
        if response.status_code >= 400:
            raise BadInput(f"{where.capitalize()} refused the search (HTTP {response.status_code}); "
                           "check STEMFORGE_INVIDIOUS_URL")
        try:
            items = response.json()
        except ValueError as exc:
            raise TransientError(f"{where.capitalize()} answered the search with something other than JSON") from exc
        if not isinstance(items, list):
            raise TransientError(f"{where.capitalize()} answered the search with an unexpected shape")
        found = [c for item in items if isinstance(item, Mapping) and (c := self.candidate(item))]
        return found[:limit]


# --- choosing -----------------------------------------------------------------------------------


def backend_from_settings(settings: Settings) -> SearchBackend:
    if settings.search_backend == "invidious":
        if not settings.invidious_url:
            raise BadInput("STEMFORGE_SEARCH_BACKEND is 'invidious' but STEMFORGE_INVIDIOUS_URL is not set")
        return InvidiousSearch(settings.invidious_url, settings.invidious_source_url)
    return YtDlpSearch(settings.ytdlp_search)


def search_query(title: str, artist: str) -> str:
    """ "First Artist - Title" without credits, and without edition notes unless they name a version."""
    first_artist = re.split(r",\s*", artist or "", maxsplit=1)[0].strip()
    clean = strip_credits(title)
    if not versions_in(clean):
        clean = _EDITION.sub("", clean)
    clean = re.sub(r"\s+", " ", clean).strip() or (title or "").strip()
    return f"{first_artist} - {clean}" if first_artist else clean


def find_source(title: str, artist: str, duration: float | None, *, album: str = "",
                backend: SearchBackend | None = None, settings: Settings | None = None,
                limit: int | None = None, min_score: float | None = None) -> SourceMatch:
    """Search for a track and pick the best-scoring candidate.

    Blocking (network); returns ``(url, score, candidates)`` with candidates best first.
    """
    settings = settings or get_settings()
    backend = backend or backend_from_settings(settings)
    limit = limit or settings.search_results
    floor = settings.match_min_score if min_score is None else min_score
    query = search_query(title, artist)
    candidates = backend.search(query, limit)
    ranked = rank(Target(title=title, artist=artist, duration=duration, album=album), candidates)
    if not ranked:
        raise NoMatch(f"The {backend.name} search for '{query}' found nothing; give a source URL for this track",
                      ranked)
    top = ranked[0]
    log.info("source for %r: %s (score %.2f, %s)", query, top.candidate.url, top.score, ", ".join(top.reasons))
    if top.score < floor:
        raise NoMatch(
            f"No search result for '{query}' looks like the track (best: '{top.candidate.title}', "
            f"score {top.score:.2f} < {floor:.2f}); give a source URL for this track", ranked)
    return SourceMatch(top.candidate.url, top.score, ranked)
