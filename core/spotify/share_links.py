"""Share links of Spotify's mobile app (``https://spotify.link/AbCdEf``) resolved to the link they stand for.

The app shares short links on ``spotify.link`` that redirect through Branch (``spotify.app.link``) to
``https://open.spotify.com/track/ID?si=...``; a browser-like client may instead get Branch's HTML page,
which names the target in ``og:url`` / ``al:web:url`` meta tags and its redirect script.

``resolve_share_link`` follows such a chain by hand, one request per hop, and only while every hop stays
on a share-link host (``settings.spotify_share_link_hosts``): a Location on Spotify's own web hosts
(``open.spotify.com`` and co.) or a ``spotify:`` URI ends it and is returned without being requested;
anything else is refused. So a pasted link can never make the server request a host other than the
configured share-link hosts.

Errors (``StemForgeError`` subclasses, reported by the API as they are):

* ``InvalidSpotifyUrl`` (400 ``invalid_url``): the link is dead (404 or another 4xx), leads off Spotify's
  hosts, redirects in a loop or more than ``spotify_share_link_max_redirects`` times, or its page names
  no Spotify link.
* ``SpotifyError`` (``spotify_error``, transient): 504 when the whole resolution took longer than
  ``spotify_share_link_timeout_s``; 502 when the share-link host cannot be reached or answers 5xx.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from urllib.parse import urljoin, urlsplit

import httpx

from core.settings import Settings
from core.spotify.errors import InvalidSpotifyUrl, SpotifyError
from core.spotify.urls import is_share_link, is_spotify_web_url

log = logging.getLogger("stemforge.spotify")

# Branch's page is a few KiB; read no more than this of a 200 answer.
MAX_PAGE_BYTES = 512 * 1024
_USER_AGENT = "StemForge (share link resolver)"
_META = re.compile(r"<meta\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_TARGET_META = ("og:url", "al:web:url", "twitter:url")
_OPEN_LINK = re.compile(
    r"https?:(?:\\?/){2}open\.spotify\.com(?:\\?/)(?:intl-[a-zA-Z-]{2,5}(?:\\?/))?"
    r"(?:track|album|playlist|episode|show|artist|audiobook|chapter)(?:\\?/)[0-9A-Za-z]{22}(?:\?[^\s\"'<>\\]*)?"
)


def _shown(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "…"


def _dead(link: str, why: str) -> InvalidSpotifyUrl:
    return InvalidSpotifyUrl(f"The Spotify share link {_shown(link)} {why}. Open it in a browser and paste the "
                             "open.spotify.com link it leads to instead.",
                             details={"url": "a share link that does not resolve"})


def _is_target(url: str) -> bool:
    """Where a chain ends: a link on Spotify's web hosts, or a ``spotify:`` URI."""
    return url.strip()[:8].lower() == "spotify:" or is_spotify_web_url(url)


def target_in_page(page: str) -> str | None:
    """The Spotify link a share link's HTML page stands for: its ``og:url`` / ``al:web:url`` meta tag when
    that is on Spotify's web hosts, else the first ``https://open.spotify.com/KIND/ID`` in the page; None
    when there is neither."""
    for tag in _META.findall(page):
        attrs = {m[0].lower(): m[1] or m[2] for m in _ATTR.findall(tag)}
        name = (attrs.get("property") or attrs.get("name") or "").lower()
        content = html.unescape(attrs.get("content") or "").strip()
        if name in _TARGET_META and is_spotify_web_url(content):
            return content
    found = _OPEN_LINK.search(page)
    return html.unescape(found.group(0).replace("\\/", "/")) if found else None


async def _page_text(response: httpx.Response) -> str:
    """The first ``MAX_PAGE_BYTES`` of a streamed answer as text."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_PAGE_BYTES:
            break
    return b"".join(chunks)[:MAX_PAGE_BYTES].decode(response.encoding or "utf-8", errors="replace")


class _Redirected(Exception):  # noqa: N818  (a signal, not an error)
    """A redirect answer, raised by the response hook so httpx never builds (or validates) the next request."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


async def _stop_at_redirects(response: httpx.Response) -> None:
    """Response hook: hand a redirect's Location to ``_next_hop`` as it is (even a ``spotify:`` URI, which
    httpx would refuse as the next URL)."""
    if response.is_redirect:
        raise _Redirected(response.headers.get("location", "").strip())


async def _next_hop(client: httpx.AsyncClient, link: str, url: str) -> tuple[str, bool]:
    """One request: ``(where it leads, True)`` for a redirect, ``(the target in its page, False)`` for a 200.

    Raises ``InvalidSpotifyUrl`` for 4xx (and other answers) and a page naming no Spotify link;
    ``SpotifyError`` 502 for 5xx.
    """
    try:
        async with client.stream("GET", url) as response:
            status = response.status_code
            if status == 200:
                target = target_in_page(await _page_text(response))
                if target is None:
                    raise _dead(link, "leads to a page that names no Spotify link")
                return target, False
    except _Redirected as redirect:
        return urljoin(url, redirect.location), True
    if status >= 500:
        raise SpotifyError(f"Spotify's share-link service failed for {_shown(link)} (HTTP {status}); "
                           "try again later or paste the open.spotify.com link", status=502, transient=True)
    if status in (404, 410):
        raise _dead(link, f"is not known to Spotify (HTTP {status}); it may be mistyped or expired")
    raise _dead(link, f"was refused by Spotify's share-link service (HTTP {status})")


async def _follow(link: str, url: str, settings: Settings) -> str:
    """The chain from ``url`` to its Spotify target, one hop at a time, every request on a share-link host."""
    hosts = settings.spotify_share_link_hosts
    seen = {url}
    timeout = httpx.Timeout(settings.spotify_share_link_timeout_s)
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout, headers={"User-Agent": _USER_AGENT},
                                 event_hooks={"response": [_stop_at_redirects]}) as client:
        redirects = 0
        while True:
            target, redirected = await _next_hop(client, link, url)
            if not redirected:
                return target
            redirects += 1
            if redirects > settings.spotify_share_link_max_redirects:
                raise _dead(link, f"redirects more than {settings.spotify_share_link_max_redirects} times")
            if _is_target(target):
                return target
            if not is_share_link(target, hosts):
                host = urlsplit(target).hostname or target
                raise _dead(link, f"redirects to {_shown(host)}, which is not Spotify; it was not followed")
            if target in seen:
                raise _dead(link, "redirects in a loop")
            seen.add(target)
            url = target


async def resolve_share_link(text: str, settings: Settings) -> str:
    """The Spotify link a share link (on ``settings.spotify_share_link_hosts``) stands for; other text unchanged.

    ``https://spotify.link/AbC`` -> ``https://open.spotify.com/track/ID?si=...`` (as the last redirect or
    the page names it; it may still be a link ``parse_spotify_url`` refuses, such as a podcast episode).
    A link without a scheme is taken as ``https://``. At most ``spotify_share_link_max_redirects``
    redirects, all within ``spotify_share_link_timeout_s`` seconds in total, and no request to any host
    but the share-link hosts. Raises ``InvalidSpotifyUrl`` (400) or ``SpotifyError`` (504 timeout,
    502 unreachable or 5xx), see the module docstring.
    """
    raw = (text or "").strip()
    if not is_share_link(raw, settings.spotify_share_link_hosts):
        return text
    url = raw if "://" in raw else "https://" + raw
    limit = settings.spotify_share_link_timeout_s
    try:
        async with asyncio.timeout(limit):
            target = await _follow(raw, url, settings)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise SpotifyError(f"Spotify's share-link service did not answer within {limit:g} s for {_shown(raw)}; "
                           "try again, or paste the open.spotify.com link", status=504, transient=True) from exc
    except httpx.HTTPError as exc:  # refused connection, DNS failure, broken answer
        raise SpotifyError(f"Could not reach Spotify's share-link service for {_shown(raw)} "
                           f"({exc.__class__.__name__}); try again later, or paste the open.spotify.com link",
                           status=502, transient=True) from exc
    log.info("Share link %s resolved to %s", raw, target)
    return target
