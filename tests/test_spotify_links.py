"""What people paste as a Spotify link: every accepted form, the kinds that are refused with a message of
their own, share links of the mobile app (resolved against a local short-link host, never followed off it),
and the entries an album or playlist import skips, counted in the ``/api/spotify/fetch`` answer.

Table-driven: each form is one row. The end-to-end tests run the real server against the Spotify fake and
the share-link fake (tests/fakes/spotify_links.py), with the fake's ``host:port`` as the share-link host.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.settings import Settings
from core.spotify.errors import InvalidSpotifyUrl, SpotifyError
from core.spotify.library import Imported
from core.spotify.metadata import (
    describe_skipped,
    entry_skip_reason,
    no_skips,
    skip_reason,
    track_from_api,
)
from core.spotify.share_links import resolve_share_link, target_in_page
from core.spotify.urls import is_share_link, parse_spotify_url
from tests.conftest import Server, User, error_of, fake_services, free_port, register, start_server, stop_server
from tests.fakes.invidious import FakeInvidious
from tests.fakes.spotify import FakeSpotify
from tests.fakes.spotify_links import FakeShortLinks

# Only the tests that store tracks also run on PostgreSQL; the link forms are pure parsing.
on_postgres_too = pytest.mark.postgres

ID = "4uLU6hMCjMI75M1A2tKUQC"
OTHER = "0VjIjW4GlUZAMYd2vXMi3b"


# --- accepted forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind"), [
    # https links, with and without scheme, "open.", locale, embed, query, fragment
    (f"https://open.spotify.com/track/{ID}", "track"),
    (f"http://open.spotify.com/track/{ID}", "track"),
    (f"open.spotify.com/track/{ID}", "track"),
    (f"spotify.com/album/{ID}", "album"),
    (f"https://www.spotify.com/playlist/{ID}", "playlist"),
    (f"https://open.spotify.com/intl-de/track/{ID}", "track"),
    (f"https://open.spotify.com/intl-pt-BR/playlist/{ID}?si=abc", "playlist"),
    (f"https://open.spotify.com/embed/album/{ID}?utm_source=generator&theme=0", "album"),
    (f"https://open.spotify.com/intl-fr/embed/track/{ID}", "track"),
    (f"https://open.spotify.com/track/{ID}?si=1a2b3c4d5e6f7a8b&context=spotify%3Aplaylist%3Ax", "track"),
    (f"https://open.spotify.com/track/{ID}#comments", "track"),
    (f"https://open.spotify.com/album/{ID}?si=x#top", "album"),
    (f"https://open.spotify.com/track/{ID}/", "track"),
    (f"  https://open.spotify.com/track/{ID}\n", "track"),
    (f"https://OPEN.SPOTIFY.COM/track/{ID}", "track"),
    # the legacy user playlist link
    (f"https://open.spotify.com/user/someone/playlist/{ID}", "playlist"),
    (f"https://open.spotify.com/user/someone/playlist/{ID}?si=q", "playlist"),
    # spotify: URIs, with and without a query string (the desktop app copies ?si=...)
    (f"spotify:track:{ID}", "track"),
    (f"spotify:album:{ID}", "album"),
    (f"spotify:playlist:{ID}", "playlist"),
    (f"spotify:playlist:{ID}?si=7b8f9c2d1e3a4b5c", "playlist"),
    (f"spotify:track:{ID}?si=abc&utm_source=copy-link", "track"),
    (f"spotify:album:{ID}#x", "album"),
    (f"spotify:user:someone:playlist:{ID}", "playlist"),
    (f"spotify:user:someone:playlist:{ID}?si=abc", "playlist"),
    (f"  spotify:track:{ID}  ", "track"),
])
def test_accepted_forms(text: str, kind: str) -> None:
    ref = parse_spotify_url(text)
    assert (ref.kind, ref.id) == (kind, ID)
    assert ref.url == f"https://open.spotify.com/{kind}/{ID}" and ref.uri == f"spotify:{kind}:{ID}"


# --- refused kinds: the message names them and what to import instead -----------------------------------


@pytest.mark.parametrize(("text", "kind", "words"), [
    (f"https://open.spotify.com/episode/{ID}", "episode", ["podcast episode link", "track, an album or a playlist"]),
    (f"https://open.spotify.com/episode/{ID}?si=abc", "episode", ["podcast episode link"]),
    (f"spotify:episode:{ID}", "episode", ["podcast episode link", "not podcasts"]),
    (f"spotify:episode:{ID}?si=abc", "episode", ["podcast episode link"]),
    (f"https://open.spotify.com/intl-de/embed/episode/{ID}", "episode", ["podcast episode link"]),
    (f"https://open.spotify.com/show/{ID}", "show", ["podcast show link", "not podcasts"]),
    (f"spotify:show:{ID}", "show", ["podcast show link"]),
    (f"https://open.spotify.com/artist/{ID}", "artist", ["artist link", "one of the artist's albums or a playlist"]),
    (f"open.spotify.com/intl-es/artist/{ID}?si=z", "artist", ["artist link", "artist's albums"]),
    (f"spotify:artist:{ID}", "artist", ["artist link", "artist's albums"]),
    (f"https://open.spotify.com/audiobook/{ID}", "audiobook", ["audiobook link", "not audiobooks"]),
    (f"spotify:audiobook:{ID}", "audiobook", ["audiobook link"]),
    (f"https://open.spotify.com/chapter/{ID}", "chapter", ["audiobook chapter link"]),
    ("https://open.spotify.com/user/someone", "user", ["user profile link", "one of their playlists"]),
    ("spotify:user:someone", "user", ["user profile link"]),
    ("https://open.spotify.com/collection/tracks", "collection", ["Liked Songs", "Your Spotify"]),
    ("spotify:user:someone:collection", "collection", ["Liked Songs"]),
    ("https://open.spotify.com/genre/0JQ5DAqbMKFEC4WFtoNRpw", "genre", ["genre page", "playlists"]),
])
def test_refused_kinds_say_what_they_are(text: str, kind: str, words: list[str]) -> None:
    with pytest.raises(InvalidSpotifyUrl) as caught:
        parse_spotify_url(text)
    error = caught.value
    assert (error.code, error.status) == ("invalid_url", 400)
    assert error.message.startswith("That is a Spotify "), error.message
    for word in words:
        assert word in error.message, error.message
    assert error.details["kind"] == kind


@pytest.mark.parametrize("text", [
    "", "   ", "hello", "not a link at all", f"https://example.com/track/{ID}",
    f"https://open.spotify.com.evil.example/track/{ID}", f"https://evil.example/open.spotify.com/track/{ID}",
    f"https://user@open.spotify.com/track/{ID}", f"ftp://open.spotify.com/track/{ID}",
    "https://open.spotify.com/track/tooShort", f"https://open.spotify.com/track/{ID}x",
    f"https://open.spotify.com/track/{ID}/extra", "https://open.spotify.com/track/", "https://open.spotify.com/",
    f"https://open.spotify.com/search/{ID}", "https://[::1/track", f"https://open.spotify.com:99999/track/{ID}",
    f"spotify:track:{ID}:extra", "spotify:track:nope", "spotify:track:", f"spotify:bogus:{ID}", "spotify:",
    f"spotify:episode:{ID}:extra",
    # share links are not resolved by the (pure) parser
    "https://spotify.link/AbCdEfGhIjK", "spotify.app.link/AbCdEfGhIjK",
])
def test_garbage_gets_the_generic_message(text: str) -> None:
    with pytest.raises(InvalidSpotifyUrl) as caught:
        parse_spotify_url(text)
    assert (caught.value.code, caught.value.status) == ("invalid_url", 400)
    assert caught.value.message.startswith("Not a Spotify track, album or playlist link"), caught.value.message


# --- share links: recognising them -------------------------------------------------------------------------

HOSTS = ["spotify.link", "spotify.app.link", "127.0.0.1:8123"]


@pytest.mark.parametrize(("text", "expected"), [
    ("https://spotify.link/AbCdEfGhIjK", True),
    ("http://spotify.link/AbCdEfGhIjK", True),
    ("spotify.link/AbCdEfGhIjK", True),
    ("  https://SPOTIFY.LINK/AbC?si=1  ", True),
    ("https://spotify.app.link/AbC?_p=c1", True),
    ("https://spotify.link:443/AbC", True),
    ("http://127.0.0.1:8123/AbC", True),
    ("https://spotify.link:8443/AbC", False),  # a bare host is its default port only
    ("http://127.0.0.1/AbC", False),
    ("http://127.0.0.1:8124/AbC", False),
    ("https://spotify.link.evil.example/AbC", False),
    ("https://evil.example/spotify.link/AbC", False),
    ("https://spotify.link@evil.example/AbC", False),
    ("https://me@spotify.link/AbC", False),
    ("ftp://spotify.link/AbC", False),
    (f"https://open.spotify.com/track/{ID}", False),
    (f"spotify:track:{ID}", False),
    ("", False),
    ("spotify.link/a b", False),
])
def test_share_link_hosts(text: str, expected: bool) -> None:
    assert is_share_link(text, HOSTS) is expected


def test_no_share_link_hosts_means_no_share_links() -> None:
    assert not is_share_link("https://spotify.link/AbC", [])


# --- share links: resolving them against the fake short-link host ----------------------------------------


@pytest.fixture(scope="module")
def short_links() -> Iterator[FakeShortLinks]:
    fake = FakeShortLinks().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def foreign() -> Iterator[FakeShortLinks]:
    """A host that is not a share-link host: share links must never make the server request it."""
    fake = FakeShortLinks().start()
    yield fake
    fake.stop()


def host_of(fake: FakeShortLinks) -> str:
    return f"127.0.0.1:{fake.port}"


def settings_for(fake: FakeShortLinks, **kw: Any) -> Settings:
    return Settings(spotify_share_link_hosts=[host_of(fake)], **{"spotify_share_link_timeout_s": 1.0, **kw})


def code() -> str:
    return f"c{time.monotonic_ns()}"


@pytest.mark.parametrize(("hops", "target"), [
    (1, f"https://open.spotify.com/track/{ID}?si=abc"),
    (2, f"https://open.spotify.com/playlist/{ID}?si=abc&_branch_match_id=123"),
    (5, f"https://open.spotify.com/album/{ID}"),
    (2, f"https://open.spotify.com/episode/{ID}?si=x"),  # resolved; parse_spotify_url then names it
    (2, f"spotify:track:{ID}"),
])
async def test_share_link_redirects_are_followed(short_links: FakeShortLinks, hops: int, target: str) -> None:
    link = short_links.add(code(), target, hops=hops)
    before = len(short_links.requests)
    assert await resolve_share_link(link, settings_for(short_links)) == target
    assert len(short_links.requests) - before == hops  # one request per hop, the target never requested


async def test_share_link_without_scheme_is_https(short_links: FakeShortLinks) -> None:
    """``spotify.link/x`` means https: the plain-http fake never sees an HTTP request for it, and it fails."""
    c = code()
    link = short_links.add(c, f"https://open.spotify.com/track/{ID}").removeprefix("http://")
    with pytest.raises(SpotifyError) as caught:
        await resolve_share_link(link, settings_for(short_links))
    assert caught.value.status in (502, 504) and "share-link service" in caught.value.message
    assert not any(c in path for path in short_links.requests)


async def test_share_link_html_page(short_links: FakeShortLinks) -> None:
    target = f"https://open.spotify.com/track/{ID}?si=from-page&a=1"
    link = short_links.add_html(code(), target)
    assert await resolve_share_link(link, settings_for(short_links)) == target


async def test_other_text_is_left_alone(short_links: FakeShortLinks) -> None:
    before = len(short_links.requests)
    for text in (f"https://open.spotify.com/track/{ID}", f"spotify:track:{ID}", "hello", "",
                 f"{short_links.url.replace('127.0.0.1', 'localhost')}/x"):
        assert await resolve_share_link(text, settings_for(short_links)) == text
    assert len(short_links.requests) == before


@pytest.mark.parametrize(("make", "status", "words"), [
    ("loop", 400, "redirects in a loop"),
    ("offsite", 400, "which is not Spotify; it was not followed"),
    ("too_many", 400, "redirects more than 5 times"),
    ("unknown", 400, "is not known to Spotify (HTTP 404)"),
    ("slow", 504, "did not answer within 1 s"),
])
async def test_share_links_that_do_not_resolve(short_links: FakeShortLinks, foreign: FakeShortLinks, make: str,
                                               status: int, words: str) -> None:
    target = f"https://open.spotify.com/track/{ID}"
    links = {
        "loop": lambda c: short_links.add_loop(c),
        "offsite": lambda c: short_links.add_offsite(c, foreign.add(c, target)),
        "too_many": lambda c: short_links.add(c, target, hops=6),
        "unknown": lambda c: short_links.link(c),
        "slow": lambda c: short_links.add_slow(c, target, 3.0),
    }
    link = links[make](code())
    started = time.monotonic()
    with pytest.raises((InvalidSpotifyUrl, SpotifyError)) as caught:
        await resolve_share_link(link, settings_for(short_links))
    assert time.monotonic() - started < 2.5
    assert caught.value.status == status and words in caught.value.message, caught.value.message
    assert link in caught.value.message
    assert foreign.requests == []  # never followed off the share-link hosts


async def test_unreachable_share_link_host() -> None:
    port = free_port()  # nothing listens there
    settings = Settings(spotify_share_link_hosts=[f"127.0.0.1:{port}"], spotify_share_link_timeout_s=1.0)
    with pytest.raises(SpotifyError) as caught:
        await resolve_share_link(f"http://127.0.0.1:{port}/AbC", settings)
    assert caught.value.status == 502 and caught.value.transient
    assert "Could not reach Spotify's share-link service" in caught.value.message


@pytest.mark.parametrize(("page", "expected"), [
    (f'<meta property="og:url" content="https://open.spotify.com/track/{ID}?si=a&amp;b=1">',
     f"https://open.spotify.com/track/{ID}?si=a&b=1"),
    (f"<meta content='https://open.spotify.com/album/{ID}' property='og:url' />",
     f"https://open.spotify.com/album/{ID}"),
    (f'<meta property="al:web:url" content="https://open.spotify.com/playlist/{ID}">',
     f"https://open.spotify.com/playlist/{ID}"),
    # og:url naming the share link itself is passed over for the link in the script
    (f'<meta property="og:url" content="https://spotify.link/x"><script>window.location = '
     f'"https:\\/\\/open.spotify.com\\/track\\/{ID}?si=q";</script>', f"https://open.spotify.com/track/{ID}?si=q"),
    (f'<a href="https://open.spotify.com/intl-de/track/{ID}">open</a>', f"https://open.spotify.com/intl-de/track/{ID}"),
    ('<meta property="og:url" content="https://evil.example/track/x">', None),
    ("<html><body>Nothing here</body></html>", None),
])
def test_target_in_page(page: str, expected: str | None) -> None:
    assert target_in_page(page) == expected


# --- skipped entries --------------------------------------------------------------------------------------

TRACK = {"id": ID, "type": "track", "name": "Song", "artists": [{"name": "A"}], "album": {"name": "LP"}}


@pytest.mark.parametrize(("entry", "reason"), [
    ({"item": TRACK}, None),
    ({"track": TRACK}, None),
    ({"item": {**TRACK, "is_playable": True, "available_markets": ["DE"]}}, None),
    ({"item": {**TRACK, "available_markets": None}}, None),
    (None, "removed"),
    ({"item": None, "track": None}, "removed"),
    ({"item": {**TRACK, "id": None}}, "removed"),
    ({"is_local": True, "item": {**TRACK, "id": None, "is_local": True}}, "local"),
    ({"is_local": False, "item": {**TRACK, "id": None, "is_local": True, "available_markets": []}}, "local"),
    ({"item": {"id": ID, "type": "episode", "name": "Ep"}}, "episode"),
    ({"item": {**TRACK, "episode": True, "track": False}}, "episode"),
    ({"item": {**TRACK, "is_playable": False}}, "unavailable"),
    ({"item": {**TRACK, "restrictions": {"reason": "market"}}}, "unavailable"),
    ({"item": {**TRACK, "available_markets": []}}, "unavailable"),
    ({"item": {**TRACK, "restrictions": {"reason": "explicit"}}}, None),
])
def test_entry_skip_reasons(entry: dict[str, Any] | None, reason: str | None) -> None:
    assert entry_skip_reason(entry) == reason
    inner = (entry or {}).get("item") or (entry or {}).get("track")
    if not (entry or {}).get("is_local"):
        assert skip_reason(inner) == reason
    assert (track_from_api(inner) is None) == (reason is not None)


def test_a_single_unavailable_track_is_still_a_track() -> None:
    assert track_from_api({**TRACK, "available_markets": []}) is None
    meta = track_from_api({**TRACK, "available_markets": []}, allow_unavailable=True)
    assert meta is not None and meta.spotify_id == ID
    assert track_from_api({**TRACK, "is_local": True}, allow_unavailable=True) is None


@pytest.mark.parametrize(("skipped", "text"), [
    ({}, ""),
    (no_skips(), ""),
    ({"episode": 1, "local": 1}, "skipped 2: 1 local file, 1 podcast episode"),
    ({"removed": 2, "local": 0, "episode": 0, "unavailable": 1},
     "skipped 3: 2 removed tracks, 1 track unavailable in Spotify's market"),
    ({"episode": 3}, "skipped 3: 3 podcast episodes"),
])
def test_describe_skipped(skipped: dict[str, int], text: str) -> None:
    assert describe_skipped(skipped) == text


@pytest.mark.parametrize(("count", "queued", "skipped", "notice"), [
    (12, 12, {"removed": 0, "local": 1, "episode": 1, "unavailable": 0},
     "Downloading 12 tracks of the playlist; skipped 2: 1 local file, 1 podcast episode"),
    (1, 1, no_skips(), "Downloading 1 track of the playlist"),
    (5, 2, no_skips(), "Downloading 2 tracks of the playlist (3 already in the library or downloading)"),
    (0, 0, {"episode": 2}, "No tracks to download in the playlist; skipped 2: 2 podcast episodes"),
])
def test_library_page_notice(count: int, queued: int, skipped: dict[str, int], notice: str) -> None:
    from ui.library_page import _import_notice

    imported = Imported("playlist", "Mix", [object()] * count, skipped)  # type: ignore[list-item]
    assert _import_notice(imported, queued) == notice


# --- end to end: the running server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def links_server(tmp_path_factory: pytest.TempPathFactory, database_url: str, spotify_fake: FakeSpotify,
                 invidious_fake: FakeInvidious, short_links: FakeShortLinks) -> Iterator[Server]:
    """The app with the fakes, and the share-link fake's ``host:port`` as the only share-link host."""
    srv = start_server(
        tmp_path_factory.mktemp("links"), database_url,
        rate_limit_api="100000/minute", rate_limit_heavy="100000/minute", rate_limit_login="100000/minute",
        spotify_share_link_hosts=json.dumps([host_of(short_links)]), spotify_share_link_timeout_s="1",
        **fake_services(spotify_fake, invidious_fake),
    )
    yield srv
    stop_server(srv)


@pytest.fixture
def member(links_server: Server) -> Iterator[User]:
    user = register(links_server.url)
    yield user
    user.api.close()
    user.browser.close()


def fetch(user: User, url: str) -> httpx.Response:
    return user.api.post("/api/spotify/fetch", json={"url": url})


@on_postgres_too
def test_playlist_skips_are_counted(member: User, spotify_fake: FakeSpotify, short_links: FakeShortLinks) -> None:
    good = [spotify_fake.add_track(f"Kept {n}", "Artist") for n in range(3)]
    gone = spotify_fake.add_track("Region Locked", "Artist")
    spotify_fake.make_unavailable(gone)
    episodes = [spotify_fake.add_episode("Talk 1"), spotify_fake.add_episode("Talk 2")]
    local = spotify_fake.add_local_file("Home Demo", "Me")
    playlist = spotify_fake.add_playlist(
        "Mixed Bag", [good[0], None, episodes[0], local, good[1], gone, episodes[1], good[2], good[0]])
    link = short_links.add(code(), f"https://open.spotify.com/playlist/{playlist}?si=shared")

    for url in (link, f"spotify:playlist:{playlist}?si=abc"):
        r = fetch(member, url)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert set(data) == {"type", "tracks", "skipped"} and data["type"] == "playlist"
        assert [t["spotify_id"] for t in data["tracks"]] == good  # each once, in playlist order
        assert data["skipped"] == {"removed": 1, "local": 1, "episode": 2, "unavailable": 1}
    assert member.api.get("/api/tracks").json()["meta"]["total_count"] == 3


@on_postgres_too
def test_album_without_skips_reports_zeros(member: User, spotify_fake: FakeSpotify) -> None:
    album = spotify_fake.add_album("Clean Album", "Band", tracks=3)
    data = fetch(member, f"https://open.spotify.com/intl-de/album/{album}#x").json()["data"]
    assert len(data["tracks"]) == 3
    assert data["skipped"] == {"removed": 0, "local": 0, "episode": 0, "unavailable": 0}
    locked = spotify_fake.add_album("Locked Album", "Band", tracks=2)
    spotify_fake.make_unavailable(spotify_fake.albums[locked].track_ids[1])
    data = fetch(member, f"spotify:album:{locked}?si=q").json()["data"]
    assert [t["title"] for t in data["tracks"]] == ["Locked Album 1"]
    assert data["skipped"] == {"removed": 0, "local": 0, "episode": 0, "unavailable": 1}


@on_postgres_too
def test_track_answer_is_unchanged(member: User, spotify_fake: FakeSpotify, short_links: FakeShortLinks) -> None:
    track = spotify_fake.add_track("Shared Song", "Singer")
    link = short_links.add_html(code(), f"https://open.spotify.com/track/{track}?si=page")
    data = fetch(member, link).json()["data"]
    assert set(data) == {"type", "track"} and data["track"]["spotify_id"] == track


def test_openapi_documents_skipped(links_server: Server) -> None:
    schemas = httpx.get(f"{links_server.url}/openapi.json").json()["components"]["schemas"]
    skipped = schemas["SkippedEntries"]["properties"]
    assert set(skipped) == {"removed", "local", "episode", "unavailable"}
    assert "description" in schemas["FetchedTracks"]["properties"]["skipped"]


@on_postgres_too
@pytest.mark.parametrize(("make", "status", "code_", "words"), [
    ("episode", 400, "invalid_url", "podcast episode link"),
    ("artist", 400, "invalid_url", "artist's albums"),
    ("show_uri", 400, "invalid_url", "podcast show link"),
    ("shared_episode", 400, "invalid_url", "podcast episode link"),
    ("loop", 400, "invalid_url", "redirects in a loop"),
    ("offsite", 400, "invalid_url", "not Spotify"),
    ("dead", 400, "invalid_url", "HTTP 404"),
    ("slow", 504, "spotify_error", "did not answer within 1 s"),
])
def test_fetch_refusals(member: User, short_links: FakeShortLinks, foreign: FakeShortLinks, make: str, status: int,
                        code_: str, words: str) -> None:
    c = code()
    url = {
        "episode": lambda: f"https://open.spotify.com/episode/{ID}?si=x",
        "artist": lambda: f"spotify:artist:{ID}",
        "show_uri": lambda: f"spotify:show:{ID}?si=x",
        "shared_episode": lambda: short_links.add(c, f"https://open.spotify.com/episode/{ID}?si=x"),
        "loop": lambda: short_links.add_loop(c),
        "offsite": lambda: short_links.add_offsite(c, f"{foreign.url}/admin"),
        "dead": lambda: short_links.link(c),
        "slow": lambda: short_links.add_slow(c, f"https://open.spotify.com/track/{ID}", 3.0),
    }[make]()
    r = fetch(member, url)
    assert error_of(r) == (status, code_), r.text
    assert words in r.json()["error"], r.json()
    assert foreign.requests == []


@on_postgres_too
def test_download_takes_share_links(member: User, spotify_fake: FakeSpotify, short_links: FakeShortLinks) -> None:
    track = spotify_fake.add_track("Downloaded Via Share", "Singer")
    album = spotify_fake.add_album("Shared Album", "Singer", tracks=2)
    r = member.api.post("/api/download/track",
                        json={"url": short_links.add(code(), f"https://open.spotify.com/track/{track}?si=s")})
    assert r.status_code == 202, r.text
    stored = member.api.get(f"/api/tracks/{r.json()['data']['track_id']}").json()["data"]
    assert (stored["spotify_id"], stored["title"]) == (track, "Downloaded Via Share")

    cases: list[tuple[dict[str, str], int, str, str]] = [
        ({"url": short_links.add(code(), f"https://open.spotify.com/album/{album}")}, 422, "validation_error",
         "/api/spotify/fetch"),
        ({"url": short_links.add(code(), f"https://open.spotify.com/episode/{ID}")}, 400, "invalid_url",
         "podcast episode link"),
        ({"url": f"spotify:episode:{ID}?si=x"}, 400, "invalid_url", "podcast episode link"),
        ({"url": short_links.add_loop(code())}, 400, "invalid_url", "loop"),
        ({"url": f"spotify:track:{track}?si=x", "source_url": short_links.link("anything")}, 422,
         "validation_error", "not Spotify"),
    ]
    for body, status, code_, words in cases:
        r = member.api.post("/api/download/track", json=body)
        assert error_of(r) == (status, code_), (body, r.text)
        assert words in r.json()["error"], r.json()
    assert member.api.get("/api/tracks").json()["meta"]["total_count"] == 1
