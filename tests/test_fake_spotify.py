"""The fakes of Spotify's accounts service, Web API user library and share links behave like the real ones.

Plain httpx (and spotipy) against tests/fakes/spotify.py and tests/fakes/spotify_links.py, so the app's
tests can trust what the fakes answer.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyPKCE

from tests.fakes.spotify import CLIENT_ID, CLIENT_SECRET, FakeSpotify
from tests.fakes.spotify_links import FakeShortLinks

CALLBACK = "http://127.0.0.1:8000/api/spotify/callback"
ALL_SCOPES = ("user-read-email user-read-private playlist-read-private playlist-read-collaborative "
              "user-library-read")


@pytest.fixture
def fake() -> Iterator[FakeSpotify]:
    """A fake of its own per test (a loopback server starts in milliseconds), with two accounts."""
    spotify = FakeSpotify(seed=3).start()
    spotify.add_user("alice", display_name="Alice Example", email="alice@example.com", country="AT")
    spotify.add_user("bob", display_name="Bob Builder", email=None, product="free")
    spotify.register_redirect_uri(CALLBACK)
    spotify.sign_in_as("alice")
    yield spotify
    spotify.stop()


@pytest.fixture
def http(fake: FakeSpotify) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5, follow_redirects=False) as client:
        yield client


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize_params(scope: str = ALL_SCOPES, state: str | None = "st-1", challenge: str | None = None,
                     **extra: str) -> dict[str, str]:
    params = {"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": CALLBACK, "scope": scope, **extra}
    if state is not None:
        params["state"] = state
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return params


def redirect_query(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def rid_of(page: str) -> str:
    found = re.search(r'name="rid" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def get_code(http: httpx.Client, scope: str = ALL_SCOPES, challenge: str | None = None,
             state: str | None = "st-1") -> str:
    """The consent page, then Agree: the code the redirect carries."""
    page = http.get("/authorize", params=authorize_params(scope, state, challenge))
    assert page.status_code == 200, page.text
    decided = http.post("/authorize/decision", data={"rid": rid_of(page.text), "decision": "accept"})
    assert decided.status_code == 303
    query = redirect_query(decided)
    assert query.get("state") == state
    return query["code"]


def user_tokens(http: httpx.Client, scope: str = ALL_SCOPES) -> dict[str, Any]:
    """A PKCE login of the signed-in account: the token endpoint's answer."""
    verifier, challenge = pkce_pair()
    code = get_code(http, scope, challenge)
    response = http.post("/api/token", data={"grant_type": "authorization_code", "code": code,
                                             "redirect_uri": CALLBACK, "client_id": CLIENT_ID,
                                             "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client_credentials_token(http: httpx.Client) -> str:
    response = http.post("/api/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert response.status_code == 200
    return response.json()["access_token"]


def refresh(http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post("/api/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                                         "client_id": CLIENT_ID})


def api_error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()["error"]
    assert body["status"] == response.status_code
    return response.status_code, body["message"]


def follow_pages(http: httpx.Client, token: str, first: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    url: str | None = first
    while url:
        page = http.get(url, headers=bearer(token))
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["next"] is None or body["next"].startswith("http://127.0.0.1:")  # absolute
        items.extend(body["items"])
        url = body["next"]
    return items


# --- /authorize ------------------------------------------------------------------------------------


def test_pkce_round_trip_to_v1_me(fake: FakeSpotify, http: httpx.Client) -> None:
    verifier, challenge = pkce_pair()
    state = "a b&c=d/é?"
    page = http.get("/authorize", params=authorize_params(state=state, challenge=challenge))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for text in ("StemForge (test)", "Alice Example", "Get your real email address", "Access your private playlists",
                 '<button name="decision" value="accept" id="auth-accept" data-testid="auth-accept">Agree</button>',
                 '<button name="decision" value="cancel" id="auth-cancel" data-testid="auth-cancel">Cancel</button>',
                 'action="/authorize/decision"'):
        assert text in page.text
    sent = fake.authorize_requests[-1]
    assert (sent["code_challenge"], sent["code_challenge_method"], sent["state"]) == (challenge, "S256", state)
    assert sent["scope"].split() == ALL_SCOPES.split()

    decided = http.post("/authorize/decision", data={"rid": rid_of(page.text), "decision": "accept"})
    assert decided.status_code == 303
    assert decided.headers["location"].endswith("&state=a+b%26c%3Dd%2F%C3%A9%3F")
    query = redirect_query(decided)
    assert query["state"] == state and set(query) == {"code", "state"}

    token = http.post("/api/token", data={"grant_type": "authorization_code", "code": query["code"],
                                          "redirect_uri": CALLBACK, "client_id": CLIENT_ID,
                                          "code_verifier": verifier})
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["refresh_token"]
    assert body["scope"].split() == ALL_SCOPES.split()

    me = http.get("/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "id": "alice", "display_name": "Alice Example", "email": "alice@example.com", "country": "AT",
        "product": "premium", "images": [], "type": "user", "uri": "spotify:user:alice",
        "external_urls": {"spotify": "https://open.spotify.com/user/alice"}, "href": f"{fake.url}/v1/users/alice",
        "followers": {"href": None, "total": 0}, "explicit_content": {"filter_enabled": False, "filter_locked": False},
    }


def test_me_leaves_out_what_the_scopes_do_not_cover(http: httpx.Client) -> None:
    tokens = user_tokens(http, scope="")
    me = http.get("/v1/me", headers=bearer(tokens["access_token"])).json()
    assert me["id"] == "alice" and tokens["scope"] == ""
    assert not {"email", "country", "product"} & set(me)


def test_login_page_when_nobody_is_signed_in(fake: FakeSpotify, http: httpx.Client) -> None:
    fake.sign_in_as(None)
    page = http.get("/authorize", params=authorize_params())
    assert page.status_code == 200 and "Log in to Spotify" in page.text
    assert 'value="alice"' in page.text and 'value="bob"' in page.text and 'action="/login"' in page.text
    assert http.post("/login", data={"rid": rid_of(page.text), "account": "nobody"}).status_code == 400
    logged_in = http.post("/login", data={"rid": rid_of(page.text), "account": "bob"})
    assert logged_in.status_code == 303 and fake.signed_in == "bob"
    consent = http.get(logged_in.headers["location"])
    assert consent.status_code == 200 and "Bob Builder" in consent.text and "auth-accept" in consent.text
    decided = http.post("/authorize/decision", data={"rid": rid_of(consent.text), "decision": "accept"})
    code = redirect_query(decided)["code"]
    token = http.post("/api/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
                      auth=(CLIENT_ID, CLIENT_SECRET))
    assert token.status_code == 200  # the confidential flow: no PKCE, the secret instead
    me = http.get("/v1/me", headers=bearer(token.json()["access_token"])).json()
    assert (me["id"], me["email"], me["product"]) == ("bob", None, "free")


def test_authorize_errors_without_a_trustworthy_redirect_uri_are_pages(http: httpx.Client) -> None:
    bad_client = http.get("/authorize", params={**authorize_params(), "client_id": "someone-else"})
    assert bad_client.status_code == 400 and "INVALID_CLIENT: Invalid client" in bad_client.text
    bad_uri = http.get("/authorize", params={**authorize_params(), "redirect_uri": CALLBACK + "/"})
    assert bad_uri.status_code == 400 and "INVALID_CLIENT: Invalid redirect URI" in bad_uri.text
    assert "location" not in bad_client.headers and "location" not in bad_uri.headers


@pytest.mark.parametrize(("change", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "user-read-email user-read-everything"}, "invalid_scope"),
    ({"code_challenge": pkce_pair()[1], "code_challenge_method": "plain"}, "invalid_request"),
])
def test_authorize_errors_redirect_with_error_and_state(http: httpx.Client, change: dict[str, str],
                                                        error: str) -> None:
    response = http.get("/authorize", params={**authorize_params(), **change})
    assert response.status_code == 302
    assert redirect_query(response) == {"error": error, "state": "st-1"}


def test_cancel_and_missing_state(fake: FakeSpotify, http: httpx.Client) -> None:
    page = http.get("/authorize", params=authorize_params(state=None))
    rid = rid_of(page.text)
    cancelled = http.post("/authorize/decision", data={"rid": rid, "decision": "cancel"})
    assert cancelled.status_code == 303 and redirect_query(cancelled) == {"error": "access_denied"}
    assert http.post("/authorize/decision", data={"rid": rid, "decision": "accept"}).status_code == 400
    assert http.post("/authorize/decision", data={"rid": "made-up", "decision": "accept"}).status_code == 400


def test_auto_decision_answers_at_once(fake: FakeSpotify, http: httpx.Client) -> None:
    fake.auto_decision = "accept"
    accepted = http.get("/authorize", params=authorize_params(challenge=pkce_pair()[1]))
    assert accepted.status_code == 302 and set(redirect_query(accepted)) == {"code", "state"}
    fake.auto_decision = "cancel"
    cancelled = http.get("/authorize", params=authorize_params())
    assert cancelled.status_code == 302 and redirect_query(cancelled) == {"error": "access_denied", "state": "st-1"}


# --- /api/token ----------------------------------------------------------------------------------


def test_wrong_verifier_redirect_uri_and_client_are_refused(http: httpx.Client) -> None:
    verifier, challenge = pkce_pair()
    code = get_code(http, challenge=challenge)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": CLIENT_ID}
    for change, expected in [
        ({"code_verifier": pkce_pair()[0]}, ("invalid_grant", "code_verifier was incorrect")),
        ({}, ("invalid_grant", "code_verifier was incorrect")),
        ({"code_verifier": verifier, "redirect_uri": CALLBACK + "?x=1"}, ("invalid_grant", "Invalid redirect URI")),
        ({"code_verifier": verifier, "client_id": "someone-else"}, ("invalid_client", "Invalid client")),
        ({"code_verifier": verifier, "client_secret": "wrong"}, ("invalid_client", "Invalid client")),
    ]:
        refused = http.post("/api/token", data={**form, **change})
        assert refused.status_code == 400
        assert (refused.json()["error"], refused.json()["error_description"]) == expected
    # None of that used the code up.
    assert http.post("/api/token", data={**form, "code_verifier": verifier}).status_code == 200


def test_a_confidential_code_needs_the_secret(http: httpx.Client) -> None:
    code = get_code(http)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    refused = http.post("/api/token", data={**form, "client_id": CLIENT_ID})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
    accepted = http.post("/api/token", data={**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert accepted.status_code == 200


def test_code_reuse_is_refused_and_revokes_its_tokens(http: httpx.Client) -> None:
    verifier, challenge = pkce_pair()
    code = get_code(http, challenge=challenge)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": CLIENT_ID,
            "code_verifier": verifier}
    first = http.post("/api/token", data=form).json()
    assert http.get("/v1/me", headers=bearer(first["access_token"])).status_code == 200
    again = http.post("/api/token", data=form)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "Invalid authorization code"}
    assert api_error(http.get("/v1/me", headers=bearer(first["access_token"]))) == (401, "Invalid access token")
    assert refresh(http, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_expired_and_unknown_codes(fake: FakeSpotify, http: httpx.Client) -> None:
    fake.code_lifetime_s = 0.05
    code = get_code(http)
    time.sleep(0.1)
    for attempt in (code, "no-such-code"):
        refused = http.post("/api/token", data={"grant_type": "authorization_code", "code": attempt,
                                                "redirect_uri": CALLBACK}, auth=(CLIENT_ID, CLIENT_SECRET))
        assert refused.status_code == 400
        assert refused.json()["error_description"] == "Invalid authorization code"


def test_refresh_without_rotation_keeps_the_refresh_token(fake: FakeSpotify, http: httpx.Client) -> None:
    tokens = user_tokens(http)
    before = fake.refresh_requests
    for _ in range(2):
        renewed = refresh(http, tokens["refresh_token"])
        assert renewed.status_code == 200, renewed.text
        body = renewed.json()
        assert "refresh_token" not in body and body["scope"] == tokens["scope"]
        assert body["access_token"] != tokens["access_token"]
        assert http.get("/v1/me", headers=bearer(body["access_token"])).status_code == 200
    assert fake.refresh_requests == before + 2
    unknown = refresh(http, "not-a-refresh-token")
    assert unknown.status_code == 400
    assert unknown.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}


def test_refresh_with_rotation_retires_the_old_one(fake: FakeSpotify, http: httpx.Client) -> None:
    fake.rotate_refresh_tokens = True
    tokens = user_tokens(http)
    renewed = refresh(http, tokens["refresh_token"]).json()
    assert renewed["refresh_token"] and renewed["refresh_token"] != tokens["refresh_token"]
    old = refresh(http, tokens["refresh_token"])
    assert old.status_code == 400 and old.json()["error_description"] == "Invalid refresh token"
    assert refresh(http, renewed["refresh_token"]).status_code == 200


def test_expired_revoked_and_client_credentials_tokens(fake: FakeSpotify, http: httpx.Client) -> None:
    fake.user_token_lifetime_s = 120
    tokens = user_tokens(http)
    assert tokens["expires_in"] == 120
    fake.expire_user_tokens("alice")
    assert api_error(http.get("/v1/me", headers=bearer(tokens["access_token"]))) == (401, "The access token expired")
    fresh = refresh(http, tokens["refresh_token"]).json()["access_token"]
    assert http.get("/v1/me", headers=bearer(fresh)).status_code == 200
    fake.revoke_access_tokens("alice")
    assert api_error(http.get("/v1/me", headers=bearer(fresh))) == (401, "Invalid access token")
    fake.revoke_refresh_tokens("alice")
    assert refresh(http, tokens["refresh_token"]).json()["error"] == "invalid_grant"

    app_token = client_credentials_token(http)
    for path in ("/v1/me", "/v1/me/playlists", "/v1/me/tracks"):
        assert api_error(http.get(path, headers=bearer(app_token))) == (
            401, "This request requires user authentication.")


def test_faults_reach_the_token_endpoint_and_the_accounts_pages(fake: FakeSpotify, http: httpx.Client) -> None:
    fake.inject("/api/token", 503, retry_after=1)
    failed = http.post("/api/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
    assert failed.json()["error"] == "server_error"
    fake.inject("/authorize", 500)
    assert http.get("/authorize", params=authorize_params()).status_code == 500
    tokens = user_tokens(http)
    fake.inject("/v1/me/playlists", 429, retry_after=2)
    assert api_error(http.get("/v1/me/playlists", headers=bearer(tokens["access_token"]))) == (
        429, "API rate limit exceeded")


# --- the library with a user token ---------------------------------------------------------------


def test_my_playlists_follow_the_scopes(fake: FakeSpotify, http: httpx.Client) -> None:
    track = fake.add_track("Song", "Artist")
    public = fake.add_playlist("Public", [track], owner="alice")
    private = fake.add_playlist("Private", [track], owner="alice", public=False)
    shared = fake.add_playlist("Together", [track, track], owner="bob", collaborative=True, followers=("alice",))
    followed = fake.add_playlist("Bob's", [track], owner="bob")
    fake.follow_playlist("alice", followed)
    fake.add_playlist("Not Alice's", [track], owner="bob")

    def names(scope: str) -> list[str]:
        token = user_tokens(http, scope=scope)["access_token"]
        page = http.get("/v1/me/playlists", headers=bearer(token))
        assert page.status_code == 200
        return [p["name"] for p in page.json()["items"]]

    assert names("") == ["Public", "Bob's"]
    assert names("playlist-read-private") == ["Public", "Private", "Bob's"]
    assert names("playlist-read-collaborative") == ["Public", "Together", "Bob's"]
    assert names("playlist-read-private playlist-read-collaborative") == ["Public", "Private", "Together", "Bob's"]

    token = user_tokens(http)["access_token"]
    items = {p["id"]: p for p in http.get("/v1/me/playlists", headers=bearer(token)).json()["items"]}
    assert set(items) == {public, private, shared, followed}
    together = items[shared]
    assert together["collaborative"] is True and together["public"] is False
    assert together["items"] == together["tracks"] == {"href": f"{fake.url}/v1/playlists/{shared}/items", "total": 2}
    assert together["owner"] == {"id": "bob", "display_name": "Bob Builder", "type": "user",
                                 "uri": "spotify:user:bob", "href": f"{fake.url}/v1/users/bob",
                                 "external_urls": {"spotify": "https://open.spotify.com/user/bob"}}
    for key in ("description", "external_urls", "href", "images", "name", "snapshot_id", "type", "uri"):
        assert key in together


def test_paging_gives_every_item_once(fake: FakeSpotify, http: httpx.Client) -> None:
    track = fake.add_track("Song", "Artist")
    ids = [fake.add_playlist(f"List {n:02d}", [track], owner="alice") for n in range(57)]
    saved = [fake.add_track(f"Liked {n:02d}", "Artist") for n in range(45)]
    fake.save_tracks("alice", saved[:30])
    fake.save_tracks("alice", saved[30:])
    token = user_tokens(http)["access_token"]

    first = http.get("/v1/me/playlists", headers=bearer(token)).json()
    assert (first["limit"], first["offset"], first["total"], first["previous"]) == (20, 0, 57, None)
    assert [p["id"] for p in follow_pages(http, token, f"{fake.url}/v1/me/playlists?limit=7")] == ids
    for limit in ("0", "51", "many"):
        assert api_error(http.get("/v1/me/playlists", params={"limit": limit}, headers=bearer(token))) == (
            400, "Invalid limit")

    liked = follow_pages(http, token, f"{fake.url}/v1/me/tracks?limit=50&market=from_token")
    assert [e["track"]["id"] for e in liked] == list(reversed(saved))  # newest saved first
    assert liked[0]["added_at"] > liked[-1]["added_at"] and liked[0]["track"]["album"]["name"] == "Liked 44 (Single)"
    paged = http.get("/v1/me/tracks", params={"limit": 20, "market": "DE"}, headers=bearer(token)).json()
    assert "market=DE" in paged["next"] and paged["total"] == 45
    assert [e["track"]["id"] for e in follow_pages(http, token, paged["next"])] == list(reversed(saved))[20:]


def test_saved_tracks_need_user_library_read(fake: FakeSpotify, http: httpx.Client) -> None:
    fake.save_tracks("alice", [fake.add_track("Liked", "Artist")])
    token = user_tokens(http, scope="playlist-read-private")["access_token"]
    assert api_error(http.get("/v1/me/tracks", headers=bearer(token))) == (403, "Insufficient client scope")


def test_private_playlists_are_hidden_from_others(fake: FakeSpotify, http: httpx.Client) -> None:
    track = fake.add_track("Song", "Artist")
    private = fake.add_playlist("Secret", [track], owner="alice", public=False)
    followed = fake.add_playlist("Secret Too", [track], owner="bob", public=False, followers=("alice",))
    alice = user_tokens(http)["access_token"]
    fake.sign_in_as("bob")
    bob = user_tokens(http)["access_token"]
    app = client_credentials_token(http)
    for path in (f"/v1/playlists/{private}", f"/v1/playlists/{private}/items"):
        assert http.get(path, headers=bearer(alice)).status_code == 200
        assert api_error(http.get(path, headers=bearer(bob))) == (404, "Resource not found")
        assert api_error(http.get(path, headers=bearer(app))) == (404, "Resource not found")
    assert http.get(f"/v1/playlists/{followed}", headers=bearer(alice)).json()["name"] == "Secret Too"
    assert http.get(f"/v1/playlists/{followed}", headers=bearer(bob)).status_code == 200
    assert http.get(f"/v1/playlists/{followed}", headers=bearer(app)).status_code == 404


def test_entries_that_are_no_importable_track(fake: FakeSpotify, http: httpx.Client) -> None:
    good = fake.add_track("Good", "Artist")
    gone = fake.add_track("Gone Abroad", "Artist")
    fake.make_unavailable(gone)
    episode = fake.add_episode("Episode 1")
    local = fake.add_local_file("Title", "Artist")
    playlist = fake.add_playlist("Mixed", [good, None, episode, local, gone])
    token = user_tokens(http)["access_token"]

    entries = http.get(f"/v1/playlists/{playlist}/items", params={"market": "from_token"},
                       headers=bearer(token)).json()["items"]
    assert len(entries) == 5
    for entry in entries:
        assert entry["item"] == entry["track"]
    assert entries[0]["item"]["id"] == good and entries[0]["item"]["is_playable"] is True
    assert "restrictions" not in entries[0]["item"]
    assert entries[1]["item"] is None and entries[1]["track"] is None
    assert (entries[2]["item"]["type"], entries[2]["item"]["id"], entries[2]["is_local"]) == ("episode", episode, False)
    assert entries[3]["is_local"] is True
    assert {k: entries[3]["item"][k] for k in ("id", "uri", "is_local", "name", "type")} == {
        "id": None, "uri": "spotify:local:Artist::Title:200", "is_local": True, "name": "Title", "type": "track"}
    unavailable = entries[4]["item"]
    assert unavailable["id"] == gone and unavailable["available_markets"] == []
    assert unavailable["is_playable"] is False and unavailable["restrictions"] == {"reason": "market"}

    without_market = http.get(f"/v1/tracks/{gone}", headers=bearer(token)).json()
    assert without_market["available_markets"] == [] and "restrictions" not in without_market
    with_market = http.get(f"/v1/tracks/{gone}", params={"market": "DE"}, headers=bearer(token)).json()
    assert with_market["is_playable"] is False and with_market["restrictions"] == {"reason": "market"}
    embedded = http.get(f"/v1/playlists/{playlist}", headers=bearer(token)).json()
    assert embedded["items"]["total"] == 5 and embedded["items"]["items"][1]["item"] is None


# --- spotipy, as an app would use it --------------------------------------------------------------


def test_spotipy_pkce_and_library(fake: FakeSpotify) -> None:
    class LocalPKCE(SpotifyPKCE):
        OAUTH_AUTHORIZE_URL = f"{fake.url}/authorize"
        OAUTH_TOKEN_URL = f"{fake.url}/api/token"

    playlists = [fake.add_playlist(f"P{n}", [], owner="alice") for n in range(23)]
    fake.save_tracks("alice", [fake.add_track("Liked", "Artist")])
    auth = LocalPKCE(client_id=CLIENT_ID, redirect_uri=CALLBACK, scope=ALL_SCOPES.split(), open_browser=False,
                     cache_handler=MemoryCacheHandler(), requests_timeout=5)
    fake.auto_decision = "accept"
    redirect = httpx.get(auth.get_authorize_url(state="xyz"), follow_redirects=False)
    query = redirect_query(redirect)
    assert query["state"] == "xyz"
    assert fake.authorize_requests[-1]["code_challenge_method"] == "S256"
    auth.get_access_token(query["code"], check_cache=False)

    client = spotipy.Spotify(auth_manager=auth, requests_timeout=5, retries=0)
    client.prefix = f"{fake.url}/v1/"
    assert client.current_user()["display_name"] == "Alice Example"
    page = client.current_user_playlists(limit=10)
    seen = []
    while page:
        seen += [p["id"] for p in page["items"]]
        page = client.next(page)
    assert seen == playlists
    assert client.current_user_saved_tracks()["items"][0]["track"]["name"] == "Liked"

    fake.expire_user_tokens("alice")
    cached = auth.cache_handler.get_cached_token()
    cached["expires_at"] = int(time.time()) - 1  # spotipy refreshes on its own clock
    auth.cache_handler.save_token_to_cache(cached)
    before = fake.refresh_requests
    assert client.current_user()["id"] == "alice"
    assert fake.refresh_requests == before + 1


# --- share links ----------------------------------------------------------------------------------


@pytest.fixture
def links() -> Iterator[FakeShortLinks]:
    fake = FakeShortLinks().start()
    yield fake
    fake.stop()


TARGET = "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC?si=abc"


def test_short_link_two_hops(links: FakeShortLinks) -> None:
    links.add("AbCd", TARGET)
    with httpx.Client(timeout=5) as client:
        first = client.get(f"{links.url}/AbCd")
        assert first.status_code == 307 and first.headers["location"] == f"{links.url}/app/AbCd?_p=c1"
        second = client.get(first.headers["location"])
        assert second.status_code == 307 and second.headers["location"] == TARGET
        head = client.head(f"{links.url}/AbCd")
        assert head.status_code == 307 and head.headers["location"] == first.headers["location"]
        assert head.content == b""
    assert links.requests == ["/AbCd", "/app/AbCd?_p=c1", "/AbCd"]


def test_short_link_hops(links: FakeShortLinks) -> None:
    links.add("one", TARGET, hops=1)
    links.add("three", f"{links.url}/end", hops=3)
    links.add("end", f"{links.url}/nowhere", hops=1)
    with httpx.Client(timeout=5) as client:
        assert client.get(f"{links.url}/one").headers["location"] == TARGET
        response = client.get(f"{links.url}/three", follow_redirects=True)
    assert response.status_code == 404 and str(response.url) == f"{links.url}/nowhere"
    assert [str(r.url) for r in response.history] == [f"{links.url}/three", f"{links.url}/app/three?_p=c1",
                                                      f"{links.url}/app/three?_p=c2", f"{links.url}/end"]


def test_misbehaving_short_links(links: FakeShortLinks) -> None:
    links.add_loop("loop")
    links.add_offsite("away", "http://127.0.0.2:9/evil")
    links.add_slow("slow", TARGET, delay_s=0.5)
    links.add_html("page", TARGET)
    with httpx.Client(timeout=5) as client:
        with pytest.raises(httpx.TooManyRedirects):
            client.get(f"{links.url}/loop", follow_redirects=True)
        assert client.get(f"{links.url}/loop").headers["location"] == f"{links.url}/loop"
        assert client.get(f"{links.url}/away").headers["location"] == "http://127.0.0.2:9/evil"
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{links.url}/slow", timeout=0.1)
        started = time.monotonic()
        assert client.get(f"{links.url}/slow").headers["location"] == TARGET
        assert time.monotonic() - started >= 0.5
        page = client.get(f"{links.url}/page")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'<meta property="og:url" content="{TARGET}">' in page.text
        assert f'window.location = "{TARGET}"' in page.text
        head = client.head(f"{links.url}/page")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(page.content)
        assert client.get(f"{links.url}/unknown").status_code == 404
        assert client.get(f"{links.url}/app/unknown?_p=c1").status_code == 404
