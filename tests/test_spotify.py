"""Spotify import: link parsing, the spotipy client against the local Spotify fake, and
POST /api/spotify/fetch on the real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from core.progress import BadInput, TransientError
from core.spotify import SpotifyCatalog, SpotifyError, parse_spotify_url, pick_image
from core.spotify.errors import InvalidSpotifyUrl
from core.spotify.metadata import playlist_entry_track, playlist_page, track_from_api
from tests.conftest import Server, error_of, register, start_server, stop_server
from tests.fakes.spotify import FakeSpotify

pytestmark = pytest.mark.postgres

TRACK_FIELDS = {"id", "spotify_id", "title", "artist", "album", "album_art_url", "duration", "spotify_url"}
ID = "4uLU6hMCjMI75M1A2tKUQC"


# --- links ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind"), [
    (f"https://open.spotify.com/track/{ID}", "track"),
    (f"https://open.spotify.com/track/{ID}?si=1a2b3c4d5e6f7a8b", "track"),
    (f"https://open.spotify.com/intl-de/track/{ID}", "track"),
    (f"https://open.spotify.com/intl-pt-BR/album/{ID}?si=x&nd=1", "album"),
    (f"open.spotify.com/playlist/{ID}", "playlist"),
    (f"https://spotify.com/track/{ID}", "track"),
    (f"http://www.spotify.com/album/{ID}/", "album"),
    (f"https://open.spotify.com/embed/playlist/{ID}?utm_source=generator", "playlist"),
    (f"https://open.spotify.com/user/someone/playlist/{ID}", "playlist"),
    (f"  spotify:track:{ID}  ", "track"),
    (f"spotify:album:{ID}", "album"),
    (f"spotify:user:someone:playlist:{ID}", "playlist"),
])
def test_links_that_parse(text: str, kind: str) -> None:
    ref = parse_spotify_url(text)
    assert (ref.kind, ref.id) == (kind, ID)
    assert ref.url == f"https://open.spotify.com/{kind}/{ID}"


@pytest.mark.parametrize("text", [
    "", "hello", "https://example.com/track/" + ID, f"https://open.spotify.com.evil.example/track/{ID}",
    f"https://open.spotify.com/artist/{ID}", f"https://open.spotify.com/episode/{ID}",
    "https://open.spotify.com/track/tooShort", f"https://open.spotify.com/track/{ID}x",
    f"https://open.spotify.com/track/{ID}/extra", f"ftp://open.spotify.com/track/{ID}", f"spotify:artist:{ID}",
    f"spotify:track:{ID}:extra", "https://open.spotify.com/track/", "https://[::1/track", "https://spotify.link/abc",
])
def test_links_that_do_not(text: str) -> None:
    with pytest.raises(InvalidSpotifyUrl) as caught:
        parse_spotify_url(text)
    assert caught.value.code == "invalid_url" and caught.value.status == 400


# --- metadata -----------------------------------------------------------------------------------


def test_album_art_size() -> None:
    images = [{"url": "640", "width": 640, "height": 640}, {"url": "300", "width": 300, "height": 300},
              {"url": "64", "width": 64, "height": 64}]
    assert pick_image(images) == "300"
    assert pick_image(list(reversed(images))) == "300"
    assert pick_image([{"url": "64", "width": 64, "height": 64}, {"url": "200", "width": 200, "height": 200}]) == "200"
    assert pick_image([{"url": "mosaic", "width": None, "height": None}]) == "mosaic"
    assert pick_image([]) is None and pick_image(None) is None


def test_both_playlist_shapes_and_unusable_entries() -> None:
    track = {"id": ID, "type": "track", "name": "Song", "duration_ms": 199_600,
             "artists": [{"name": "A"}, {"name": "B"}], "album": {"name": "LP", "images": []}}
    new = {"items": {"items": [{"item": track}], "next": None}}
    old = {"tracks": {"items": [{"track": track}], "next": None}}
    for shape in (new, old):
        page = playlist_page(shape)
        assert page is not None
        inner = playlist_entry_track(page["items"][0])
        meta = track_from_api(inner)
        assert meta and (meta.title, meta.artist, meta.duration, meta.album) == ("Song", "A, B", 200, "LP")
    assert track_from_api({"id": "x", "type": "episode"}) is None
    assert track_from_api({"id": None, "is_local": True, "type": "track"}) is None
    assert playlist_page({"name": "metadata only"}) is None


# --- the client against the fake ----------------------------------------------------------------


@pytest.fixture(scope="module")
def own_fake() -> Iterator[FakeSpotify]:
    """A fake of our own, so token counting is not disturbed by other tests."""
    fake = FakeSpotify(token_lifetime_s=61, seed=11).start()  # spotipy renews tokens 60 s before expiry
    yield fake
    fake.stop()


def catalog_for(fake: FakeSpotify, secret: str | None = None) -> SpotifyCatalog:
    s = fake.settings()
    return SpotifyCatalog(s["spotify_client_id"], secret or s["spotify_client_secret"], api_url=s["spotify_api_url"],
                          accounts_url=s["spotify_accounts_url"], timeout_s=2, max_retry_wait_s=3)


def test_token_is_cached_until_it_expires(own_fake: FakeSpotify) -> None:
    catalog = catalog_for(own_fake)
    track = own_fake.add_track("Cached", "Tokens")
    before = own_fake.token_requests
    catalog.track(track)
    catalog.track(track)
    assert own_fake.token_requests == before + 1
    time.sleep(2.05)  # whole seconds: the 61 s token is now inside spotipy's 60 s renewal margin
    catalog.track(track)
    assert own_fake.token_requests == before + 2


def test_revoked_token_is_replaced_once(own_fake: FakeSpotify) -> None:
    catalog = catalog_for(own_fake)
    track = own_fake.add_track("Revoked", "Tokens")
    catalog.track(track)
    before = own_fake.token_requests
    own_fake.tokens.clear()
    assert catalog.track(track).title == "Revoked"
    assert own_fake.token_requests == before + 1


def test_refused_credentials(own_fake: FakeSpotify) -> None:
    with pytest.raises(SpotifyError) as caught:
        catalog_for(own_fake, secret="wrong").track(own_fake.add_track("Any", "One"))
    assert "client credentials" in caught.value.message and "invalid_client" in caught.value.message
    assert isinstance(caught.value.as_job_error(), BadInput)  # a download job fails at once


def test_spotify_outage_is_transient_for_jobs(own_fake: FakeSpotify) -> None:
    track = own_fake.add_track("Down", "For Now")
    own_fake.inject(f"/v1/tracks/{track}", 502, times=10)
    with pytest.raises(SpotifyError) as caught:
        catalog_for(own_fake).track(track)
    assert isinstance(caught.value.as_job_error(), TransientError)  # a download job retries later


def test_album_pages_keep_order(own_fake: FakeSpotify) -> None:
    album = own_fake.add_album("Long Album", "Band", tracks=73)
    result = catalog_for(own_fake).album(album)
    assert [t.title for t in result.tracks] == [f"Long Album {n}" for n in range(1, 74)]
    assert own_fake.count(f"/v1/albums/{album}/tracks") == 1  # 50 embedded + one more page


# --- the route --------------------------------------------------------------------------------


def fetch(client: httpx.Client, url: str) -> httpx.Response:
    return client.post("/api/spotify/fetch", json={"url": url})


def test_fetch_track(server: Server, spotify_fake: FakeSpotify, user) -> None:
    track = spotify_fake.add_track("Blinding Lights", ["The Weeknd", "Guest"], seconds=200.04)
    r = fetch(user.api, f"https://open.spotify.com/track/{track}?si=abc")
    assert r.status_code == 200, r.text
    body = r.json()["data"]
    assert body["type"] == "track" and set(body) == {"type", "track"}
    got = body["track"]
    assert set(got) == TRACK_FIELDS
    assert got["spotify_id"] == track and got["title"] == "Blinding Lights"
    assert got["artist"] == "The Weeknd, Guest" and got["album"] == "Blinding Lights (Single)"
    assert got["duration"] == 200 and isinstance(got["duration"], int)
    assert got["album_art_url"].endswith("-300")
    assert got["spotify_url"] == f"https://open.spotify.com/track/{track}"
    library = user.api.get("/api/tracks").json()["data"]
    assert [t["id"] for t in library] == [got["id"]]


def test_every_link_form_finds_the_same_row_and_refetch_refreshes(server: Server, spotify_fake: FakeSpotify,
                                                                  user) -> None:
    track = spotify_fake.add_track("Old Title", "Artist")
    forms = [f"https://open.spotify.com/intl-fr/track/{track}", f"spotify.com/track/{track}",
             f"spotify:track:{track}", f"https://open.spotify.com/track/{track}?si=zz&context=x"]
    ids = set()
    for n, form in enumerate(forms):
        if n == 2:
            spotify_fake.rename_track(track, "New Title")
        r = fetch(user.api, form)
        assert r.status_code == 200, r.text
        ids.add(r.json()["data"]["track"]["id"])
    assert len(ids) == 1
    library = user.api.get("/api/tracks").json()
    assert library["meta"]["total_count"] == 1
    assert library["data"][0]["title"] == "New Title"


def test_concurrent_fetches_store_one_row(server: Server, spotify_fake: FakeSpotify, user) -> None:
    album = spotify_fake.add_album("Raced", "Band", tracks=30)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: fetch(user.api, f"spotify:album:{album}"), range(6)))
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers if r.status_code != 200]
    assert len({tuple(t["id"] for t in r.json()["data"]["tracks"]) for r in answers}) == 1
    assert user.api.get("/api/tracks").json()["meta"]["total_count"] == 30


def test_users_get_their_own_rows(server: Server, spotify_fake: FakeSpotify, make_user) -> None:
    a, b = make_user(), make_user()
    track = spotify_fake.add_track("Shared Song", "Artist")
    id_a = fetch(a.api, f"spotify:track:{track}").json()["data"]["track"]["id"]
    id_b = fetch(b.browser, f"spotify:track:{track}")  # the browser app: cookie + CSRF
    assert error_of(id_b) == (403, "csrf_failed")
    id_b = b.browser.post("/api/spotify/fetch", json={"url": f"spotify:track:{track}"},
                          headers={"X-CSRF-Token": b.csrf}).json()["data"]["track"]["id"]
    assert id_a != id_b
    assert b.api.get(f"/api/tracks/{id_a}").status_code == 404


def test_album(server: Server, spotify_fake: FakeSpotify, user) -> None:
    album = spotify_fake.add_album("Sixty", "Band", tracks=60, images=[(640, 640), (300, 300), (64, 64)])
    r = fetch(user.api, f"https://open.spotify.com/album/{album}")
    assert r.status_code == 200, r.text
    body = r.json()["data"]
    assert body["type"] == "album" and set(body) == {"type", "tracks", "skipped"}
    assert [t["title"] for t in body["tracks"]] == [f"Sixty {n}" for n in range(1, 61)]
    assert all(set(t) == TRACK_FIELDS and t["album"] == "Sixty" for t in body["tracks"])
    assert all(t["album_art_url"].endswith("-300") for t in body["tracks"])


def test_playlist_of_250_tracks_in_one_request(server: Server, spotify_fake: FakeSpotify, user) -> None:
    ids = [spotify_fake.add_track(f"Track {n:03d}", "Various") for n in range(250)]
    ids.append(ids[10])  # a track listed twice is stored once
    playlist = spotify_fake.add_playlist("Big Mix", ids)
    before = spotify_fake.count(f"/v1/playlists/{playlist}")
    r = fetch(user.api, f"https://open.spotify.com/playlist/{playlist}?si=123")
    assert r.status_code == 200, r.text
    body = r.json()["data"]
    assert body["type"] == "playlist"
    assert [t["spotify_id"] for t in body["tracks"]] == ids[:250]
    assert spotify_fake.count(f"/v1/playlists/{playlist}") - before == 3  # the playlist, then 2 more pages
    assert user.api.get("/api/tracks").json()["meta"]["total_count"] == 250
    # Fetching again updates in place.
    assert len(fetch(user.api, f"spotify:playlist:{playlist}").json()["data"]["tracks"]) == 250
    assert user.api.get("/api/tracks").json()["meta"]["total_count"] == 250


@pytest.mark.parametrize("url", ["not a link", f"https://open.spotify.com/artist/{ID}",
                                 f"https://example.com/track/{ID}", "https://open.spotify.com/track/short", ""])
def test_invalid_urls(server: Server, user, url: str) -> None:
    r = fetch(user.api, url)
    assert error_of(r) == (400, "invalid_url")


def test_request_validation(server: Server, user) -> None:
    assert error_of(user.api.post("/api/spotify/fetch", json={})) == (422, "validation_error")
    assert error_of(httpx.post(f"{server.url}/api/spotify/fetch", json={"url": f"spotify:track:{ID}"})) == (
        401, "unauthorized")


def test_unknown_id(server: Server, user) -> None:
    r = fetch(user.api, f"https://open.spotify.com/track/{ID}")
    assert error_of(r) == (404, "spotify_error")
    assert "not found" in r.json()["error"]
    r = fetch(user.api, f"spotify:playlist:{ID}")
    assert error_of(r) == (404, "spotify_error") and "playlist" in r.json()["error"]


def test_rate_limit_is_honoured(server: Server, spotify_fake: FakeSpotify, user) -> None:
    track = spotify_fake.add_track("Busy", "Artist")
    spotify_fake.inject(f"/v1/tracks/{track}", 429, retry_after=1)
    started = time.monotonic()
    r = fetch(user.api, f"spotify:track:{track}")
    assert r.status_code == 200, r.text
    assert time.monotonic() - started >= 1.0
    assert spotify_fake.count(f"/v1/tracks/{track}") == 2


def test_long_rate_limit_is_reported_not_waited_out(server: Server, spotify_fake: FakeSpotify, user) -> None:
    track = spotify_fake.add_track("Very Busy", "Artist")
    spotify_fake.inject(f"/v1/tracks/{track}", 429, retry_after=120)
    started = time.monotonic()
    r = fetch(user.api, f"spotify:track:{track}")
    assert time.monotonic() - started < 10  # answered at once, not after the 120 s
    assert error_of(r) == (503, "spotify_error")
    assert r.json()["details"] == {"retry_after": 120} and "120 s" in r.json()["error"]


def test_server_errors_are_retried_then_reported(server: Server, spotify_fake: FakeSpotify, user) -> None:
    track = spotify_fake.add_track("Flaky", "Artist")
    spotify_fake.inject(f"/v1/tracks/{track}", 500)
    assert fetch(user.api, f"spotify:track:{track}").status_code == 200
    spotify_fake.inject(f"/v1/tracks/{track}", 503, times=10)
    r = fetch(user.api, f"spotify:track:{track}")
    assert error_of(r) == (502, "spotify_error")
    assert "HTTP 503" in r.json()["error"]


def test_timeout(server: Server, spotify_fake: FakeSpotify, user) -> None:
    track = spotify_fake.add_track("Slow", "Artist")
    spotify_fake.inject(f"/v1/tracks/{track}", None, delay=3)  # the server waits 2 s
    r = fetch(user.api, f"spotify:track:{track}")
    assert error_of(r) == (504, "spotify_error")
    assert "did not answer within 2 s" in r.json()["error"]


@pytest.fixture(scope="module")
def unconfigured(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("nospotify"), database_url, spotify_client_id="",
                       spotify_client_secret="")
    yield srv
    stop_server(srv)


def test_credentials_missing(unconfigured: Server) -> None:
    user = register(unconfigured.url)
    r = fetch(user.api, f"https://open.spotify.com/track/{ID}")
    assert error_of(r) == (401, "unauthorized")
    assert "STEMFORGE_SPOTIFY_CLIENT_ID" in r.json()["error"]
    assert error_of(fetch(user.api, "nonsense")) == (400, "invalid_url")
