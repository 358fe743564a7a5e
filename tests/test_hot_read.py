"""The hot read path of GET /api/tracks/{id}: inline SQLite reads, the direct JSON presenter, and the
shared token look-up. Each must give exactly what the general path gives."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event

from core import accounts, tracks
from core.api.presenters import track_envelope_json, track_out
from core.api.schemas import Envelope
from core.errors import NotFound
from data import db
from data.models import Track, User

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine_url(tmp_path: Path, database_url: str) -> AsyncIterator[str]:
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'hot.db'}"
    await asyncio.to_thread(db.run_migrations, url)
    db.init_engine(url)
    try:
        yield url
    finally:
        await db.dispose_engine()


async def add_user_and_track(**fields: object) -> tuple[User, Track]:
    async with db.session_scope() as session:
        user = User(email=f"hot-{time.monotonic_ns()}@example.com")
        session.add(user)
        await session.flush()
        track = Track(user_id=user.id, **fields)
        session.add(track)
        await session.commit()
        return user, track


FULL = dict(
    spotify_id="4uLU6hMCjMI75M1A2tKUQC", title="Ça plane pour moi 🎸", artist="Plastic Bertrand", album="AN1",
    album_art_url="https://i.scdn.co/image/x", duration=181, spotify_url="https://open.spotify.com/track/4u",
    source_url="https://example.com/watch?v=1", source_score=0.8734, audio_path="downloads/x/Song.flac",
    audio_format="flac", file_size=12_345_678_901, sample_rate=44100, channels=2,
)


@pytest.mark.parametrize("fields", [FULL, {}], ids=["every-field", "bare-minimum"])
async def test_fetch_one_returns_what_the_async_engine_returns(engine_url: str, fields: dict) -> None:
    user, track = await add_user_and_track(**fields)
    fast = await tracks.read_track(user.id, track.id)
    async with db.get_engine().connect() as conn:
        slow = (await conn.execute(tracks._TRACK_OF_OWNER, {"track_id": track.id, "user_id": user.id})).one()
    assert tuple(fast) == tuple(slow)
    assert fast._fields == tuple(slow._fields)
    assert fast.id == track.id and fast.created_at == track.created_at and fast.file_size == track.file_size


async def test_fetch_one_keeps_owners_apart(engine_url: str) -> None:
    alice, track = await add_user_and_track(title="mine")
    bob, _ = await add_user_and_track(title="theirs")
    assert (await tracks.read_track(alice.id, track.id)).title == "mine"
    with pytest.raises(NotFound):
        await tracks.read_track(bob.id, track.id)


@pytest.mark.parametrize("fields", [FULL, {}], ids=["every-field", "bare-minimum"])
async def test_direct_json_is_byte_for_byte_the_pydantic_answer(engine_url: str, fields: dict) -> None:
    user, track = await add_user_and_track(**fields)
    row = await tracks.read_track(user.id, track.id)
    assert track_envelope_json(row) == Envelope(data=track_out(track)).model_dump_json().encode()


def sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite+aiosqlite:///")) if url.startswith("sqlite") else None


async def test_inline_reads_see_commits_and_never_wait_for_a_writer(engine_url: str) -> None:
    path = sqlite_path(engine_url)
    if path is None:
        pytest.skip("inline reads exist for SQLite files only")
    assert db._inline is not None  # the path under test is the inline one
    user, track = await add_user_and_track(title="before")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE track SET title = 'after' WHERE id = ?", (track.id.hex,))
        started = time.perf_counter()
        assert (await tracks.read_track(user.id, track.id)).title == "before"  # not committed yet
        assert time.perf_counter() - started < 3.0  # a read that waited for the writer would take 30 s (busy_timeout)
        writer.execute("COMMIT")
        assert (await tracks.read_track(user.id, track.id)).title == "after"
    finally:
        writer.close()


async def test_an_inline_read_that_fails_is_answered_by_the_engine(engine_url: str) -> None:
    if sqlite_path(engine_url) is None:
        pytest.skip("inline reads exist for SQLite files only")
    user, track = await add_user_and_track(title="fallback")
    assert db._inline is not None
    # SQLite aborts the inline statement (OperationalError, as when the file is busy in recovery).
    db._inline._connection().set_progress_handler(lambda: 1, 1)
    try:
        with pytest.raises(sqlite3.OperationalError):
            db._inline.fetch_one(tracks._TRACK_OF_OWNER, {"track_id": track.id, "user_id": user.id})
        assert (await tracks.read_track(user.id, track.id)).title == "fallback"
    finally:
        db._inline._connection().set_progress_handler(None, 1)


async def test_concurrent_requests_share_one_token_look_up(engine_url: str) -> None:
    user, _ = await add_user_and_track()
    async with db.session_scope() as session:
        issued = await accounts.create_token(session, user, "burst")
    accounts._token_cache._entries.clear()
    queries: list[str] = []

    def count(_conn, _cursor, statement: str, *_args) -> None:  # noqa: ANN001
        if "apitoken" in statement.lower() and statement.lstrip().upper().startswith("SELECT"):
            queries.append(statement)

    event.listen(db.get_engine().sync_engine, "before_cursor_execute", count)
    try:
        owners = await asyncio.gather(*(accounts.token_owner(issued.token) for _ in range(20)))
        assert {o.id for o in owners} == {user.id}
        assert len(queries) == 1

        # One waiter giving up does not cancel the look-up the others wait for.
        accounts._token_cache._entries.clear()
        waiters = [asyncio.create_task(accounts.token_owner(issued.token)) for _ in range(3)]
        await asyncio.sleep(0)
        waiters[0].cancel()
        done = await asyncio.gather(*waiters, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError)
        assert [o.id for o in done[1:]] == [user.id, user.id]
        assert await accounts.token_owner("sf_not-a-real-token") is None
    finally:
        event.remove(db.get_engine().sync_engine, "before_cursor_execute", count)
