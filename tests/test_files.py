"""GET /files/...: owners only, no way out of uploads/, the right Content-Type, and Range seeking."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from core.errors import NotFound
from core.file_access import check_readable
from tests.audio import write_audio
from tests.conftest import Server, error_of

pytestmark = pytest.mark.postgres


def upload(user, path: Path) -> dict:
    with path.open("rb") as fh:
        r = user.api.post("/api/tracks/upload", files={"file": (path.name, fh)}, data={"title": "Seek Test"})
    assert r.status_code == 201, r.text
    return r.json()["data"]


@pytest.fixture
def wav_track(user, tmp_path: Path) -> tuple[dict, bytes]:
    path = write_audio(tmp_path / "Artist - Seek Test.wav", seconds=1.0)
    return upload(user, path), path.read_bytes()


def raw_get(server: Server, path: str, token: str) -> tuple[int, bytes]:
    """A request whose path goes out byte for byte (httpx would normalise the dots away)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_owner_gets_the_file_with_its_type(server: Server, user, wav_track) -> None:
    track, data = wav_track
    url = track["audio_url"]
    assert url.startswith(f"/files/downloads/{track['id']}/")
    r = user.api.get(url)
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["accept-ranges"] == "bytes"
    assert int(r.headers["content-length"]) == len(data)
    # The browser app: the session cookie alone is enough for a GET.
    assert user.browser.get(url).content == data
    head = user.api.head(url)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == len(data)


def test_mp3_content_type(server: Server, user, tmp_path: Path) -> None:
    track = upload(user, write_audio(tmp_path / "tone.mp3", seconds=1.0))
    r = user.api.get(track["audio_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"


def test_range_requests(server: Server, user, wav_track) -> None:
    track, data = wav_track
    url, size = track["audio_url"], len(data)
    r = user.api.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == data[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{size}"
    r = user.api.get(url, headers={"Range": f"bytes={size - 10}-"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = user.api.get(url, headers={"Range": "bytes=-50"})
    assert r.status_code == 206 and r.content == data[-50:]
    r = user.api.get(url, headers={"Range": f"bytes={size}-"})
    assert error_of(r) == (416, "range_not_satisfiable")
    assert r.headers["content-range"] == f"bytes */{size}"
    r = user.api.get(url, headers={"Range": "bytes=oops"})
    assert error_of(r) == (400, "bad_request")


def test_other_users_and_strangers(server: Server, make_user, wav_track, user) -> None:
    track, _ = wav_track
    other = make_user()
    assert error_of(other.api.get(track["audio_url"])) == (404, "not_found")
    assert error_of(other.browser.get(track["audio_url"])) == (404, "not_found")
    assert error_of(httpx.get(server.url + track["audio_url"])) == (401, "unauthorized")
    assert error_of(httpx.get(server.url + track["audio_url"], headers={"Authorization": "Bearer nope"})) == (
        401, "unauthorized")
    assert error_of(user.api.get(f"/files/downloads/{track['id']}/missing.wav")) == (404, "not_found")
    assert error_of(user.api.get(f"/files/downloads/{uuid.uuid4()}/x.wav")) == (404, "not_found")
    assert error_of(user.api.get("/files/")) == (404, "not_found")


@pytest.mark.parametrize("path", [
    "/files/../stemforge.db",
    "/files/downloads/../../stemforge.db",
    "/files/downloads/%2e%2e/%2e%2e/stemforge.db",
    "/files/..%2fstemforge.db",
    "/files/%2E%2E%2Fstemforge.db",
    "/files/..%5cstemforge.db",
    "/files/%252e%252e/stemforge.db",
    "/files//etc/passwd",
    "/files/%2Fetc%2Fpasswd",
    "/files/downloads/%00/x.wav",
])
def test_no_way_out_of_uploads(server: Server, user, wav_track, path: str) -> None:
    status, body = raw_get(server, path, user.token)
    assert (status, json.loads(body)["code"]) == (404, "not_found"), (status, body[:100])


def test_symlinks_out_of_uploads_or_into_other_folders(server: Server, user, make_user, wav_track,
                                                       tmp_path: Path) -> None:
    track, _ = wav_track
    folder = server.data_dir / "uploads" / "downloads" / track["id"]
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF not yours")
    os.symlink(secret, folder / "escape.wav")
    assert error_of(user.api.get(f"/files/downloads/{track['id']}/escape.wav")) == (404, "not_found")

    other = make_user()
    theirs = upload(other, write_audio(tmp_path / "theirs.wav", seconds=0.5))
    their_file = server.data_dir / "uploads" / theirs["audio_url"].removeprefix("/files/")
    os.symlink(their_file, folder / "borrowed.wav")
    assert error_of(user.api.get(f"/files/downloads/{track['id']}/borrowed.wav")) == (404, "not_found")
    assert other.api.get(theirs["audio_url"]).status_code == 200


async def test_folder_and_row_ownership(tmp_path: Path) -> None:
    """Stem folders belong to their job's owner; files outside owner folders need a row naming them."""
    from sqlmodel.ext.asyncio.session import AsyncSession

    from data import db
    from data.models import Job, Stem, Track, User

    url = f"sqlite+aiosqlite:///{tmp_path / 'access.db'}"
    await asyncio.to_thread(db.run_migrations, url)
    engine = db.make_engine(url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            alice, bob = User(email="a@example.com"), User(email="b@example.com")
            session.add_all([alice, bob])
            await session.flush()
            track = Track(user_id=alice.id, title="t")
            session.add(track)
            await session.flush()
            job = Job(user_id=alice.id, track_id=track.id, kind="processing")
            session.add(job)
            await session.flush()
            session.add(Stem(user_id=alice.id, track_id=track.id, job_id=job.id, stem_type="vocals",
                             path="exports/mix-1/vocals.wav"))
            await session.commit()

            await check_readable(session, alice.id, f"stems/{job.id}/vocals.wav")
            await check_readable(session, alice.id, f"downloads/{track.id}/a.wav")
            await check_readable(session, alice.id, "exports/mix-1/vocals.wav")
            for path in (f"stems/{job.id}/vocals.wav", f"downloads/{track.id}/a.wav", "exports/mix-1/vocals.wav"):
                with pytest.raises(NotFound):
                    await check_readable(session, bob.id, path)
            for path in ("stemforge.db", "downloads/not-a-uuid/x.wav", f"stems/{uuid.uuid4()}/x.wav"):
                with pytest.raises(NotFound):
                    await check_readable(session, alice.id, path)
    finally:
        await engine.dispose()
