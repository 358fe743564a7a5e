"""Accounts, browser sessions, CSRF and API tokens against the real server."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PASSWORD, Server, error_of, hidden_csrf, register

pytestmark = pytest.mark.postgres


def test_health(server: Server) -> None:
    r = httpx.get(server.url + "/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_register_login_logout_json(server: Server) -> None:
    user = register(server.url)
    # The session cookie authenticates /api for the browser app.
    assert user.browser.get("/api/tracks").status_code == 200

    fresh = httpx.Client(base_url=server.url)
    r = fresh.post("/users/log-in", json={"email": user.email.upper(), "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()["data"]
    assert body["user"]["email"] == user.email
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie

    # Log-out is a cookie-authenticated change: refused without the CSRF token.
    assert error_of(fresh.delete("/users/log-out")) == (403, "csrf_failed")
    assert fresh.delete("/users/log-out", headers={"X-CSRF-Token": body["csrf_token"]}).status_code == 204
    assert error_of(fresh.get("/api/tracks")) == (401, "unauthorized")


def test_login_failures_do_not_reveal_accounts(server: Server, user) -> None:
    client = httpx.Client(base_url=server.url)
    wrong_pw = client.post("/users/log-in", json={"email": user.email, "password": "not the password"})
    no_user = client.post("/users/log-in", json={"email": "nobody@example.com", "password": "not the password"})
    assert wrong_pw.status_code == no_user.status_code == 401
    assert wrong_pw.json() == no_user.json()


def test_register_rules(server: Server, user) -> None:
    client = httpx.Client(base_url=server.url)
    assert error_of(client.post("/users/register", json={"email": user.email, "password": PASSWORD})) == (
        409, "email_taken")
    r = client.post("/users/register", json={"email": "short@example.com", "password": "short"})
    assert error_of(r) == (422, "validation_error")
    assert "password" in r.json()["details"]
    r = client.post("/users/register", json={"email": "not-an-email", "password": PASSWORD})
    assert error_of(r) == (422, "validation_error")
    assert "email" in r.json()["details"]


def test_form_register_and_login_with_csrf(server: Server) -> None:
    browser = httpx.Client(base_url=server.url)
    page = browser.get("/users/register")
    assert page.status_code == 200
    csrf = hidden_csrf(page.text)
    email = "formuser@example.com"
    r = browser.post("/users/register", data={"email": email, "password": PASSWORD, "_csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert browser.get("/api/tracks").status_code == 200

    other = httpx.Client(base_url=server.url)
    # A cross-site form post carries no token: refused.
    r = other.post("/users/log-in", data={"email": email, "password": PASSWORD})
    assert error_of(r) == (403, "csrf_failed")
    csrf = hidden_csrf(other.get("/users/log-in").text)
    r = other.post("/users/log-in", data={"email": email, "password": "wrong password!", "_csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"].startswith("/users/log-in?error=")
    r = other.post("/users/log-in", data={"email": email, "password": PASSWORD, "_csrf_token": csrf,
                                          "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
    assert other.get("/api/tracks").status_code == 200


def test_csrf_required_for_cookie_changes(server: Server, user) -> None:
    r = user.browser.put("/users/settings", json={"display_name": "DJ Test"})
    assert error_of(r) == (403, "csrf_failed")
    r = user.browser.put("/users/settings", json={"display_name": "DJ Test"}, headers={"X-CSRF-Token": "forged"})
    assert error_of(r) == (403, "csrf_failed")
    r = user.browser.put("/users/settings", json={"display_name": "DJ Test"}, headers={"X-CSRF-Token": user.csrf})
    assert r.status_code == 200 and r.json()["data"]["display_name"] == "DJ Test"
    assert error_of(user.browser.post("/users/tokens", json={})) == (403, "csrf_failed")
    # Bearer clients are not cookie-authenticated and need no CSRF token.
    assert user.api.patch("/api/tracks/00000000-0000-0000-0000-000000000000", json={}).status_code == 404


def test_password_change_signs_out_other_browsers(server: Server, user) -> None:
    other = httpx.Client(base_url=server.url)
    assert other.post("/users/log-in", json={"email": user.email, "password": PASSWORD}).status_code == 200
    new = "another long passphrase"
    r = user.browser.put("/users/settings", json={"current_password": "wrong wrong wrong", "new_password": new},
                         headers={"X-CSRF-Token": user.csrf})
    assert error_of(r) == (422, "validation_error")
    r = user.browser.put("/users/settings", json={"current_password": PASSWORD, "new_password": new},
                         headers={"X-CSRF-Token": user.csrf})
    assert r.status_code == 200
    assert user.browser.get("/api/tracks").status_code == 200  # this browser stays in
    assert other.get("/api/tracks").status_code == 401  # the other one is out
    assert other.post("/users/log-in", json={"email": user.email, "password": new}).status_code == 200


def test_token_create_list_revoke(server: Server, user) -> None:
    h = {"X-CSRF-Token": user.csrf}
    r = user.browser.post("/users/tokens", json={"name": "second"}, headers=h)
    assert r.status_code == 201
    created = r.json()["data"]
    assert created["token"].startswith("sf_")
    listed = user.browser.get("/users/tokens").json()["data"]
    assert {t["name"] for t in listed} == {"tests", "second"}
    assert all("token" not in t for t in listed)  # never shown again

    second = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {created['token']}"})
    assert second.get("/api/tracks").status_code == 200
    assert user.browser.delete(f"/users/tokens/{created['id']}", headers=h).status_code == 204
    assert error_of(second.get("/api/tracks")) == (401, "unauthorized")
    assert error_of(user.browser.delete(f"/users/tokens/{created['id']}", headers=h)) == (404, "not_found")
    assert user.api.get("/api/tracks").status_code == 200  # the other token still works


def test_tokens_of_others_cannot_be_revoked(make_user) -> None:
    a, b = make_user(), make_user()
    token_id = a.browser.get("/users/tokens").json()["data"][0]["id"]
    r = b.browser.delete(f"/users/tokens/{token_id}", headers={"X-CSRF-Token": b.csrf})
    assert error_of(r) == (404, "not_found")
    assert a.api.get("/api/tracks").status_code == 200


def test_api_requires_valid_bearer(server: Server) -> None:
    client = httpx.Client(base_url=server.url)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer sf_" + "x" * 43}):
        r = client.get("/api/tracks", headers=headers)
        assert error_of(r) == (401, "unauthorized"), headers
        assert "x-ratelimit-limit" in r.headers


def test_cli_users_and_tokens(server: Server) -> None:
    email = "cli-user@example.com"
    r = server.cli("users", "create", "--email", email, "--password", PASSWORD)
    assert r.returncode == 0, r.stderr
    r = server.cli("tokens", "create", "--email", email, "--name", "script")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("sf_") and "\n" not in token  # stdout is the token alone
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
    assert api.get("/api/tracks").status_code == 200
    listed = server.cli("tokens", "list", "--email", email).stdout
    token_id = listed.split()[0]
    assert server.cli("tokens", "revoke", "--email", email, "--id", token_id).returncode == 0
    assert api.get("/api/tracks").status_code == 401
    assert server.cli("tokens", "create", "--email", "ghost@example.com").returncode == 1


def test_server_uses_the_configured_database(server: Server, user, database_url: str) -> None:
    """Guards the PostgreSQL run: the accounts really land in the database under test."""
    import asyncio
    import sqlite3

    if database_url:
        import asyncpg

        async def count() -> int:
            conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                return await conn.fetchval('SELECT count(*) FROM "user" WHERE email = $1', user.email)
            finally:
                await conn.close()

        assert asyncio.run(count()) == 1
    else:
        with sqlite3.connect(server.data_dir / "stemforge.db") as conn:
            assert conn.execute("SELECT count(*) FROM user WHERE email = ?", (user.email,)).fetchone()[0] == 1
