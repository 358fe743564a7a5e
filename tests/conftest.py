"""Test fixtures: the real server (``python main.py serve``) in a subprocess, on a
fresh data dir and database, driven over real HTTP.

``STEMFORGE_TEST_DATABASE_URL`` (a PostgreSQL URL) makes the server use a fresh,
throw-away database on that PostgreSQL server; otherwise SQLite in the data dir.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.fakes.invidious import FakeInvidious
from tests.fakes.lalalai import FakeLalalai
from tests.fakes.spotify import FakeSpotify
from tests.separation_fixtures import demucs_repo, lalalai  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a good long passphrase"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """'' for SQLite in the data dir, or a fresh PostgreSQL database dropped afterwards."""
    base = os.environ.get("STEMFORGE_TEST_DATABASE_URL", "")
    if not base:
        yield ""
        return
    name = f"stemforge_test_{secrets.token_hex(4)}"
    _pg_admin(base, f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + "/" + name
    _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen = field(repr=False)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=120, check=False)


def start_server(tmp: Path, database_url: str, **overrides: str) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "STEMFORGE_DATA_DIR": str(tmp),
        "STEMFORGE_DATABASE_URL": database_url,
        "STEMFORGE_HOST": "127.0.0.1",
        "STEMFORGE_PORT": str(port),
        "STEMFORGE_LOG_LEVEL": "warning",
        **{f"STEMFORGE_{k.upper()}": v for k, v in overrides.items()},
    }
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "main.py", "serve"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{(tmp / 'server.log').read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return Server(url, tmp, env, proc)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{(tmp / 'server.log').read_text()}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def spotify_fake() -> Iterator[FakeSpotify]:
    """Spotify's accounts service and Web API on loopback (tests/fakes/spotify.py)."""
    fake = FakeSpotify().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def invidious_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeInvidious]:
    """An Invidious search API whose results stream a short m4a (tests/fakes/invidious.py)."""
    from tests.audio import write_audio

    audio = write_audio(tmp_path_factory.mktemp("invidious") / "stream.m4a", seconds=3.0).read_bytes()
    fake = FakeInvidious(audio).start()
    yield fake
    fake.stop()


def fake_services(spotify: FakeSpotify, invidious: FakeInvidious) -> dict[str, str]:
    """Settings that point a server at the fakes; quick Spotify timeouts keep error tests short."""
    return {**spotify.settings(), **invidious.settings(), "spotify_timeout_s": "2", "spotify_max_retry_wait_s": "3"}


@pytest.fixture(scope="session")
def lalalai_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLalalai]:
    """One lalal.ai for the shared server (tests/fakes/lalalai.py); tests add their own keys to ``keys``."""
    fake = FakeLalalai(tmp_path_factory.mktemp("lalalai-server")).start()
    yield fake
    fake.stop()


def separation_services(repo: Path, lalalai_fake: FakeLalalai) -> dict[str, str]:
    """Settings for separation jobs: the tiny demucs models in ``repo``, the fake lalal.ai checked every 50 ms."""
    return {"demucs_repo": str(repo), "lalalai_api_url": lalalai_fake.url, "lalalai_poll_interval_s": "0.05"}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, database_url: str, spotify_fake: FakeSpotify,
           invidious_fake: FakeInvidious, demucs_repo: Path,  # noqa: F811  (the fixture imported above)
           lalalai_fake: FakeLalalai) -> Iterator[Server]:
    """The app with generous rate limits, so tests are not throttled by each other."""
    srv = start_server(
        tmp_path_factory.mktemp("data"), database_url,
        rate_limit_api="100000/minute", rate_limit_heavy="100000/minute", rate_limit_login="100000/minute",
        max_upload_mb="3", **fake_services(spotify_fake, invidious_fake),
        **separation_services(demucs_repo, lalalai_fake),
    )
    yield srv
    stop_server(srv)


@dataclass
class User:
    email: str
    password: str
    browser: httpx.Client  # carries the session cookie
    csrf: str
    token: str
    api: httpx.Client  # carries the bearer token


def register(base_url: str, email: str | None = None, password: str = PASSWORD) -> User:
    email = email or f"user-{secrets.token_hex(5)}@example.com"
    browser = httpx.Client(base_url=base_url, timeout=30)
    r = browser.post("/users/register", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    csrf = r.json()["data"]["csrf_token"]
    r = browser.post("/users/tokens", json={"name": "tests"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    token = r.json()["data"]["token"]
    api = httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})
    return User(email, password, browser, csrf, token, api)


@pytest.fixture
def make_user(server: Server) -> Iterator[Callable[..., User]]:
    made: list[User] = []

    def factory(**kw: str) -> User:
        user = register(server.url, **kw)
        made.append(user)
        return user

    yield factory
    for user in made:
        user.browser.close()
        user.api.close()


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user()


def upload_audio(user: User, data: bytes, title: str = "Night Drive", artist: str = "The Synths",
                 name: str = "clip.wav") -> dict:
    """POST /api/tracks/upload of WAV bytes; the new track."""
    r = user.api.post("/api/tracks/upload", files={"file": (name, data, "audio/wav")},
                      data={"title": title, "artist": artist})
    assert r.status_code == 201, r.text
    return r.json()["data"]


def track_without_audio(user: User, spotify: FakeSpotify) -> dict:
    """A track imported from Spotify's metadata only: its audio has not been downloaded."""
    spotify_id = spotify.add_track("Not Downloaded Yet", "Someone")
    r = user.api.post("/api/spotify/fetch", json={"url": f"spotify:track:{spotify_id}"})
    assert r.status_code == 200, r.text
    return r.json()["data"]["track"]


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) >= {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"]
    return response.status_code, body["code"]


def hidden_csrf(html: str) -> str:
    match = re.search(r'_csrf_token[^>]*?value[\\"=:\s]+([A-Za-z0-9_\-]{20,})', html)
    assert match, "no CSRF field in page"
    return match.group(1)


# --- jobs: a plain audio file server and a server tuned for job tests (tests/test_jobs*.py, test_socket*) ---


@pytest.fixture(scope="session")
def audio_server() -> Iterator[object]:
    """WAV files over plain HTTP for yt-dlp: normal, slow, flaky (503 first), 404, HTML, garbage."""
    from tests.fakes.audio_server import AudioServer

    fake = AudioServer(seconds=2.0).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def jobs_server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Server]:
    """The app with its embedded worker: one download at a time (so a second job stays queued) and a
    short retry backoff."""
    srv = start_server(
        tmp_path_factory.mktemp("jobs"), database_url,
        rate_limit_api="100000/minute", rate_limit_heavy="100000/minute", rate_limit_login="100000/minute",
        queue_concurrency='{"download": 1}', job_retry_base_s="0.3",
    )
    yield srv
    stop_server(srv)
