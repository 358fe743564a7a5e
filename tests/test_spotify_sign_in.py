"""Sign in with Spotify, linking, and Your Spotify over REST, against the fake accounts service and Web API.

A browser is played by an httpx client that keeps cookies and follows redirects hop by hop, so each hop
(StemForge -> Spotify's authorize page -> StemForge's callback) can be checked.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from tests.conftest import PASSWORD, Server, User, error_of, register
from tests.fakes.spotify import FakeSpotify

pytestmark = pytest.mark.postgres

SCOPES = {"user-read-email", "user-read-private", "playlist-read-private", "playlist-read-collaborative",
          "user-library-read"}


@pytest.fixture(autouse=True)
def _redirect_registered(server: Server, spotify_fake: FakeSpotify) -> Iterator[None]:
    spotify_fake.register_redirect_uri(server.url + "/auth/spotify/callback")
    spotify_fake.auto_decision = "accept"
    yield
    spotify_fake.auto_decision = None
    spotify_fake.sign_in_as(None)


def new_spotify_user(fake: FakeSpotify, email: str | None = None) -> str:
    spotify_id = "sp" + secrets.token_hex(6)
    fake.add_user(spotify_id, display_name=f"DJ {spotify_id}", email=email or f"{spotify_id}@mail.example")
    fake.sign_in_as(spotify_id)
    return spotify_id


def round_trip(browser: httpx.Client, start: str = "/auth/spotify") -> tuple[httpx.Response, str]:
    """GET ``start`` and follow every redirect; ``(last response, callback URL that was visited)``."""
    r = browser.get(start)
    callback = ""
    for _ in range(10):
        if r.status_code not in (301, 302, 303, 307):
            break
        location = r.headers["location"]
        url = location if location.startswith("http") else str(r.url.join(location))
        if "/auth/spotify/callback" in url:
            callback = url
        r = browser.get(url)
    return r, callback


def signed_in_email(browser: httpx.Client) -> str | None:
    r = browser.get("/users/settings")
    if r.status_code == 303:  # to the log-in page
        return None
    # The settings page says who is signed in.
    marker = "Signed in as "
    text = r.text
    return text[text.index(marker) + len(marker):].split('"')[0].split("<")[0].strip() if marker in text else ""


def browser_client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def test_authorize_request_uses_pkce_s256_a_random_state_and_only_the_needed_scopes(
        server: Server, spotify_fake: FakeSpotify) -> None:
    spotify_fake.auto_decision = None
    with browser_client(server) as browser:
        first = browser.get("/auth/spotify")
        second = browser.get("/auth/spotify")
    assert first.status_code == 302
    query = parse_qs(urlsplit(first.headers["location"]).query)
    assert first.headers["location"].startswith(spotify_fake.url + "/authorize?")
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256, no padding
    assert set(query["scope"][0].split()) == SCOPES
    assert query["redirect_uri"] == [server.url + "/auth/spotify/callback"]
    other = parse_qs(urlsplit(second.headers["location"]).query)
    assert len(query["state"][0]) >= 20 and query["state"] != other["state"]
    assert query["code_challenge"] != other["code_challenge"]


def test_a_new_spotify_user_gets_an_account_and_can_set_a_password_later(
        server: Server, spotify_fake: FakeSpotify) -> None:
    spotify_id = new_spotify_user(spotify_fake)
    with browser_client(server) as browser:
        r, _ = round_trip(browser, "/auth/spotify?next=/jobs")
        assert r.status_code == 200 and "/users/settings" in str(r.url)  # a new account lands on the settings
        assert "Welcome" in r.text
        assert signed_in_email(browser) == f"{spotify_id}@mail.example"
        r = browser.get("/api/spotify/account")
        assert r.status_code == 200 and r.json()["data"]["spotify_user_id"] == spotify_id
        assert set(r.json()["data"]["scope"]) == SCOPES
        # No password yet: setting one needs no current password.
        page = browser.get("/users/settings").text
        assert "has no password yet" in page
    # Log in with the password afterwards (a fresh session through the JSON API).
    with browser_client(server) as browser:
        round_trip(browser)  # signed in again through Spotify
        csrf = _csrf(browser)
        r = browser.put("/users/settings", json={"new_password": PASSWORD}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["has_password"] is True
    r = httpx.post(server.url + "/users/log-in", json={"email": f"{spotify_id}@mail.example", "password": PASSWORD})
    assert r.status_code == 200


def _csrf(browser: httpx.Client) -> str:
    """The session's CSRF token, read from the signed (not encrypted) session cookie, as the page's JS has it."""
    cookie = browser.cookies["stemforge_session"]
    payload = cookie.rsplit(".", 2)[0]
    return URLSafeTimedSerializer("unused").load_payload(payload.encode())["c"]


def test_a_returning_spotify_user_signs_into_the_same_account(server: Server, spotify_fake: FakeSpotify) -> None:
    spotify_id = new_spotify_user(spotify_fake)
    with browser_client(server) as first:
        round_trip(first)
        email = signed_in_email(first)
    with browser_client(server) as again:
        r, _ = round_trip(again, "/auth/spotify?next=/jobs")
        assert str(r.url).endswith("/jobs")  # a returning user goes where they wanted
        assert signed_in_email(again) == email == f"{spotify_id}@mail.example"


def test_an_existing_email_is_never_merged_silently(server: Server, spotify_fake: FakeSpotify) -> None:
    existing = register(server.url)
    new_spotify_user(spotify_fake, email=existing.email.upper())
    with browser_client(server) as browser:
        r, _ = round_trip(browser)
        assert "/users/log-in" in str(r.url)
        assert "already exists" in parse_qs(urlsplit(str(r.url)).query)["error"][0]
        assert signed_in_email(browser) is None
    # Still not linked to the existing account.
    assert existing.api.get("/api/spotify/account").status_code == 409


def test_link_from_settings_then_refuse_the_same_account_for_someone_else(
        server: Server, spotify_fake: FakeSpotify, make_user) -> None:
    owner: User = make_user()
    spotify_id = new_spotify_user(spotify_fake)
    r, _ = round_trip(owner.browser)
    assert "/users/settings" in str(r.url) and "linked" in parse_qs(urlsplit(str(r.url)).query)["notice"][0]
    assert owner.api.get("/api/spotify/account").json()["data"]["spotify_user_id"] == spotify_id
    # The link survives; signing in with Spotify now opens the owner's account.
    with browser_client(server) as browser:
        round_trip(browser)
        assert signed_in_email(browser) == owner.email

    other: User = make_user()
    r, _ = round_trip(other.browser)
    assert "already linked to another" in parse_qs(urlsplit(str(r.url)).query)["error"][0]
    assert error_of(other.api.get("/api/spotify/account")) == (409, "spotify_not_linked")

    # Unlinking deletes the tokens; the account is free again.
    assert owner.api.delete("/api/spotify/account").status_code == 204
    assert error_of(owner.api.get("/api/spotify/playlists")) == (409, "spotify_not_linked")
    r, _ = round_trip(other.browser)
    assert other.api.get("/api/spotify/account").json()["data"]["spotify_user_id"] == spotify_id


def test_consent_denied_creates_nothing(server: Server, spotify_fake: FakeSpotify) -> None:
    spotify_id = new_spotify_user(spotify_fake)
    spotify_fake.auto_decision = "cancel"
    with browser_client(server) as browser:
        r, _ = round_trip(browser)
        assert "/users/log-in" in str(r.url)
        assert "cancelled" in parse_qs(urlsplit(str(r.url)).query)["error"][0]
        assert signed_in_email(browser) is None
    r = httpx.post(server.url + "/users/register", json={"email": f"{spotify_id}@mail.example", "password": PASSWORD})
    assert r.status_code == 201  # no user was made with that e-mail


def test_a_replayed_or_foreign_state_is_refused(server: Server, spotify_fake: FakeSpotify) -> None:
    new_spotify_user(spotify_fake)
    with browser_client(server) as browser:
        _, callback = round_trip(browser)
        assert callback
        email = signed_in_email(browser)
        browser.cookies.clear()
        r = browser.get(callback, follow_redirects=True)
        assert "already used" in parse_qs(urlsplit(str(r.url)).query)["error"][0]
        assert signed_in_email(browser) is None and email

    # A callback that reaches another browser than the one that started the sign-in (login CSRF).
    spotify_fake.auto_decision = "accept"
    with browser_client(server) as victim, browser_client(server) as attacker:
        start = attacker.get("/auth/spotify")
        approved = attacker.get(start.headers["location"])
        callback = approved.headers["location"]
        victim.get("/users/log-in")  # the victim's browser has its own session
        r = victim.get(callback, follow_redirects=True)
        assert "another browser" in parse_qs(urlsplit(str(r.url)).query)["error"][0]
        assert signed_in_email(victim) is None

    # Made-up and missing states.
    with browser_client(server) as browser:
        browser.get("/users/log-in")
        for query in ("?code=abc&state=" + secrets.token_urlsafe(32), "?code=abc"):
            r = browser.get("/auth/spotify/callback" + query, follow_redirects=True)
            assert "/users/log-in" in str(r.url) and "error=" in str(r.url)


def test_a_failed_code_exchange_is_reported(server: Server, spotify_fake: FakeSpotify) -> None:
    new_spotify_user(spotify_fake)
    spotify_fake.inject("/api/token", 400, message="Invalid authorization code")
    with browser_client(server) as browser:
        r, _ = round_trip(browser)
        assert "/users/log-in" in str(r.url)
        assert "did not accept" in parse_qs(urlsplit(str(r.url)).query)["error"][0]
        assert signed_in_email(browser) is None


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture
def linked(server: Server, spotify_fake: FakeSpotify, make_user) -> tuple[User, str]:
    user: User = make_user()
    spotify_id = new_spotify_user(spotify_fake)
    r, _ = round_trip(user.browser)
    assert "linked" in str(r.url), r.url
    return user, spotify_id


def test_playlists_private_and_collaborative_with_paging(linked: tuple[User, str], spotify_fake: FakeSpotify) -> None:
    user, spotify_id = linked
    song = spotify_fake.add_track("Warm Up", "Opener")
    names = []
    for n in range(23):
        name = f"Set {n:02d}"
        spotify_fake.add_playlist(name, [song], owner=spotify_id, public=n % 3 != 0, collaborative=n == 4)
        names.append(name)
    r = user.api.get("/api/spotify/playlists", params={"page_size": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"] == {"page": 1, "page_size": 10, "total_count": 23, "total_pages": 3}
    seen = [p["name"] for p in body["data"]]
    seen += [p["name"] for page in (2, 3)
             for p in user.api.get("/api/spotify/playlists", params={"page_size": 10, "page": page}).json()["data"]]
    assert seen == names
    first = body["data"][0]
    assert first["public"] is False and first["track_count"] == 1 and first["image_url"]
    assert body["data"][4]["collaborative"] is True


def test_liked_songs_import_queues_downloads_once(linked: tuple[User, str], spotify_fake: FakeSpotify) -> None:
    user, spotify_id = linked
    ids = [spotify_fake.add_track(f"Liked {n}", "Fav Artist") for n in range(3)]
    spotify_fake.save_tracks(spotify_id, ids)
    r = user.api.get("/api/spotify/liked")
    assert r.status_code == 200, r.text
    assert [t["title"] for t in r.json()["data"]] == ["Liked 2", "Liked 1", "Liked 0"]  # newest first
    assert r.json()["meta"]["total_count"] == 3

    r = user.api.post("/api/spotify/import", json={"source": "liked", "quality": "low"})
    assert r.status_code == 202, r.text
    data = r.json()["data"]
    assert data["queued"] == 3 and all(t["job_id"] for t in data["tracks"])
    assert data["skipped"] == {"removed": 0, "local": 0, "episode": 0, "unavailable": 0}
    job = user.api.get(f"/api/jobs/{data['tracks'][0]['job_id']}").json()["data"]
    assert job["kind"] == "download"
    # Importing again stores nothing twice and queues nothing new while those downloads are pending.
    again = user.api.post("/api/spotify/import", json={"source": "liked"}).json()["data"]
    assert {t["track_id"] for t in again["tracks"]} == {t["track_id"] for t in data["tracks"]}
    assert again["queued"] == 0
    titles = [t["title"] for t in user.api.get("/api/tracks", params={"page_size": 100}).json()["data"]]
    assert sorted(t for t in titles if t.startswith("Liked")) == ["Liked 0", "Liked 1", "Liked 2"]


def test_import_chosen_tracks_of_a_private_playlist(linked: tuple[User, str], spotify_fake: FakeSpotify) -> None:
    user, spotify_id = linked
    ids = [spotify_fake.add_track(f"Cut {n}", "Private Artist") for n in range(4)]
    playlist = spotify_fake.add_playlist("Secret crate", ids, owner=spotify_id, public=False)
    tracks = user.api.get(f"/api/spotify/playlists/{playlist}/tracks")
    assert tracks.status_code == 200, tracks.text
    assert [t["title"] for t in tracks.json()["data"]["tracks"]] == ["Cut 0", "Cut 1", "Cut 2", "Cut 3"]
    r = user.api.post("/api/spotify/import", json={"source": "playlist", "playlist_id": playlist,
                                                   "track_ids": [ids[1], ids[3]], "download": False})
    assert r.status_code == 202, r.text
    assert [t["title"] for t in r.json()["data"]["tracks"]] == ["Cut 1", "Cut 3"]
    assert r.json()["data"]["queued"] == 0
    # Ids that are not in the playlist, an empty choice, a playlist id with Liked Songs: refused, nothing stored.
    bad = user.api.post("/api/spotify/import", json={"source": "playlist", "playlist_id": playlist,
                                                     "track_ids": [ids[0], "0" * 22]})
    assert error_of(bad) == (422, "validation_error") and "0" * 22 in bad.json()["details"]["track_ids"]
    for body in ({"source": "playlist", "playlist_id": playlist, "track_ids": []},
                 {"source": "liked", "playlist_id": playlist}):
        assert error_of(user.api.post("/api/spotify/import", json=body))[0] == 422
    assert error_of(user.api.get("/api/spotify/playlists/has%20space/tracks")) == (404, "not_found")
    # Someone else's private playlist does not exist for this account.
    stranger = "sx" + secrets.token_hex(5)
    spotify_fake.add_user(stranger, display_name="Stranger", email=None)
    hidden = spotify_fake.add_playlist("Not yours", ids, owner=stranger, public=False)
    assert error_of(user.api.get(f"/api/spotify/playlists/{hidden}/tracks"))[0] == 404


def test_a_pasted_link_to_an_own_private_playlist_is_read_with_the_linked_account(
        linked: tuple[User, str], spotify_fake: FakeSpotify, make_user) -> None:
    user, spotify_id = linked
    ids = [spotify_fake.add_track(f"Dub {n}", "Basement") for n in range(2)]
    playlist = spotify_fake.add_playlist("Only mine", ids, owner=spotify_id, public=False)
    r = user.api.post("/api/spotify/fetch", json={"url": f"https://open.spotify.com/playlist/{playlist}?si=x"})
    assert r.status_code == 200, r.text
    assert [t["title"] for t in r.json()["data"]["tracks"]] == ["Dub 0", "Dub 1"]
    # Without a linked account the app cannot see it, and says how to fix that.
    other: User = make_user()
    r = other.api.post("/api/spotify/fetch", json={"url": f"spotify:playlist:{playlist}"})
    assert error_of(r) == (404, "spotify_error") and "link your Spotify account" in r.json()["error"]


def test_not_linked_and_bad_requests_get_clear_errors(server: Server, make_user) -> None:
    user: User = make_user()
    for path in ("/api/spotify/playlists", "/api/spotify/liked", "/api/spotify/account"):
        assert error_of(user.api.get(path)) == (409, "spotify_not_linked")
    assert error_of(user.api.post("/api/spotify/import", json={"source": "liked"})) == (409, "spotify_not_linked")
    assert error_of(user.api.post("/api/spotify/import", json={"source": "playlist"}))[0] == 422
    assert error_of(user.api.get("/api/spotify/playlists", params={"page_size": 500}))[0] == 422
    assert error_of(httpx.get(server.url + "/api/spotify/playlists"))[0] == 401


def test_tokens_are_refreshed_before_they_expire_and_once_on_a_401(
        linked: tuple[User, str], spotify_fake: FakeSpotify) -> None:
    user, spotify_id = linked
    spotify_fake.save_tracks(spotify_id, [spotify_fake.add_track("Keep Going", "Refresher")])
    before = spotify_fake.refresh_requests
    spotify_fake.expire_user_tokens(spotify_id)
    assert user.api.get("/api/spotify/liked").status_code == 200
    assert spotify_fake.refresh_requests == before + 1
    # The refreshed token was stored: the next call needs no refresh.
    assert user.api.get("/api/spotify/liked").status_code == 200
    assert spotify_fake.refresh_requests == before + 1
    # Revoked early (401 although not expired): refreshed once and repeated.
    spotify_fake.revoke_access_tokens(spotify_id)
    assert user.api.get("/api/spotify/liked").status_code == 200
    assert spotify_fake.refresh_requests == before + 2
    # The person removed StemForge's access at Spotify: link again.
    spotify_fake.revoke_access_tokens(spotify_id)
    spotify_fake.revoke_refresh_tokens(spotify_id)
    assert error_of(user.api.get("/api/spotify/liked")) == (409, "spotify_link_expired")


def _stored_tokens(server: Server, spotify_id: str) -> tuple[str, str]:
    """The spotifyaccount row's token columns, read straight from the database (SQLite file or PostgreSQL)."""
    query = "SELECT access_token_encrypted, refresh_token_encrypted FROM spotifyaccount WHERE spotify_user_id = "
    url = server.env["STEMFORGE_DATABASE_URL"]
    if url.startswith("postgresql"):
        import asyncio

        import asyncpg

        async def read() -> tuple[str, str]:
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                row = await conn.fetchrow(query + "$1", spotify_id)
            finally:
                await conn.close()
            return row[0], row[1]

        return asyncio.run(read())
    import sqlite3

    with sqlite3.connect(server.data_dir / "stemforge.db") as db:
        return db.execute(query + "?", (spotify_id,)).fetchone()


def test_the_stored_tokens_are_encrypted(linked: tuple[User, str], server: Server, spotify_fake: FakeSpotify) -> None:
    _, spotify_id = linked
    access, refresh = _stored_tokens(server, spotify_id)
    assert access.startswith("gAAAAA") and refresh.startswith("gAAAAA")  # Fernet tokens
    issued = [t for t, grant in spotify_fake.access_grants.items() if grant.user == spotify_id]
    assert issued and not any(t in access or t in refresh for t in issued)


def test_openapi_documents_the_spotify_routes(server: Server) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    for path in ("/api/spotify/account", "/api/spotify/playlists", "/api/spotify/playlists/{playlist_id}/tracks",
                 "/api/spotify/liked", "/api/spotify/import", "/auth/spotify", "/auth/spotify/callback"):
        assert path in paths, path
    assert "409" in paths["/api/spotify/playlists"]["get"]["responses"]
    # How to authenticate is in the document too: a bearer token (or the browser's cookie) for /api routes,
    # nothing for the sign-in redirects.
    assert {"bearerAuth": []} in paths["/api/spotify/playlists"]["get"]["security"]
    assert "security" not in paths["/auth/spotify"]["get"]
    assert "202" in paths["/api/spotify/import"]["post"]["responses"]
