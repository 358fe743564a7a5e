"""Rate limits at their real defaults (60/min per user on /api, 10/min on log-in per client)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, Server, error_of, register, start_server, stop_server


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("limits"), database_url)
    yield srv
    stop_server(srv)


def test_api_limit_per_user_with_headers(default_server: Server) -> None:
    a = register(default_server.url)
    b = register(default_server.url)
    remaining = []
    for _ in range(60):
        r = a.api.get("/api/tracks")
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "60"
        assert 0 <= int(r.headers["x-ratelimit-reset"]) <= 60
        remaining.append(int(r.headers["x-ratelimit-remaining"]))
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    r = a.api.get("/api/tracks")
    assert error_of(r) == (429, "rate_limited")
    body = r.json()
    assert body["error"] == "rate limit exceeded"
    assert int(r.headers["retry-after"]) == body["retry_after"] >= 1
    assert r.headers["x-ratelimit-remaining"] == "0"
    # The cookie session is the same user and shares the budget; another user has their own.
    assert a.browser.get("/api/tracks").status_code == 429
    assert b.api.get("/api/tracks").status_code == 200


def test_login_attempts_are_limited(default_server: Server, tmp_path: Path) -> None:
    client = httpx.Client(base_url=default_server.url)
    codes = [client.post("/users/log-in", json={"email": "x@example.com", "password": "wrong"}).status_code
             for _ in range(12)]
    assert codes[:8] == [401] * 8 and codes[-1] == 429
    assert client.post("/users/log-in", json={"email": "x@example.com", "password": PASSWORD}).status_code == 429


def test_heavy_routes_have_their_own_smaller_budget(default_server: Server) -> None:
    # Made on the command line: the log-in test above has used up this address's register budget.
    email = "heavy@example.com"
    assert default_server.cli("users", "create", "--email", email, "--password", PASSWORD).returncode == 0
    token = default_server.cli("tokens", "create", "--email", email).stdout.strip()
    user = httpx.Client(base_url=default_server.url, headers={"Authorization": f"Bearer {token}"})
    missing = {"track_id": "6f1c0d2e-0000-4000-8000-000000000000"}
    for i in range(10):
        r = user.post("/api/analysis/analyze", json=missing)
        assert error_of(r) == (404, "not_found")
        assert r.headers["x-ratelimit-limit"] == "10"
        assert r.headers["x-ratelimit-remaining"] == str(9 - i)
    for path, body in (("/api/analysis/analyze", missing),
                       ("/api/processing/separate", missing),
                       ("/api/download/track", {"url": "http://127.0.0.1:9/song.wav"})):
        r = user.post(path, json=body)
        assert error_of(r) == (429, "rate_limited"), path
        assert int(r.headers["retry-after"]) >= 1
    # The ordinary budget is not used up: light routes still answer.
    r = user.get("/api/tracks")
    assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "60"
