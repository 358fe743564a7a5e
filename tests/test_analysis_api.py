"""Audio analysis through the real server: upload a synthesised clip, enqueue its analysis, follow the job
on /socket, read the result from the job, the latest-result route and the export file; feature subsets,
stems, and every refusal (unknown features, audio not there yet, someone else's track or stem, a corrupt
or too-short file).

The embedded worker runs the real analysis on clips whose tempo and key are known by
construction (tests/synth.py).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import numpy as np
import pytest
import soundfile as sf

import tests.jobs as tests_jobs
from core.analysis import ALLOWED
from core.settings import Settings
from data.db import make_engine
from data.models import AnalysisResult, Stem
from tests import synth
from tests.conftest import Server, User, error_of, track_without_audio, upload_audio
from tests.fakes.spotify import FakeSpotify
from tests.jobs import follow_job

pytestmark = pytest.mark.postgres

BPM = 128
KEY = "A minor"


# --- helpers -----------------------------------------------------------------------------------------


def song_bytes(tonic: int = 9, mode: str = "minor", bpm: float = BPM, seconds: float = 16 * 60 / BPM + 1.0) -> bytes:
    """A stereo drums-and-chords clip as 16-bit WAV bytes (A minor at 128 BPM: one whole progression)."""
    path = Path(f"/tmp/stemforge-song-{secrets.token_hex(4)}.wav")
    try:
        return synth.song(tonic, mode, bpm, seconds).write(path).read_bytes()
    finally:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def song() -> bytes:
    return song_bytes()


def start(user: User, **body: Any) -> dict[str, Any]:
    r = user.api.post("/api/analysis/analyze", json=body)
    assert r.status_code == 202, r.text
    out = r.json()
    assert set(out) == {"data"} and set(out["data"]) == {"job_id", "track_id", "status"}, out
    assert out["data"]["status"] == "queued"
    return out["data"]






def stored_path(server: Server, track: dict[str, Any]) -> Path:
    """Where the server keeps the track's audio (from its /files/ URL)."""
    return server.data_dir / "uploads" / unquote(track["audio_url"].removeprefix("/files/"))


def database_url(server: Server) -> str:
    return Settings(data_dir=server.data_dir, database_url=server.env["STEMFORGE_DATABASE_URL"]).effective_database_url


async def _db(server: Server, fn: Any) -> Any:
    """Run ``fn(session)`` against the server's own database (SQLite file or PostgreSQL)."""
    from sqlmodel.ext.asyncio.session import AsyncSession

    engine = make_engine(database_url(server))
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            return await fn(session)
    finally:
        await engine.dispose()


def add_stem(server: Server, user_id: str, track_id: str, stem_type: str, audio: np.ndarray) -> str:
    """A stem as the separation job leaves it: a WAV under stems/<job_id>/ and its Stem row."""
    folder = f"stems/{uuid.uuid4()}"
    (server.data_dir / "uploads" / folder).mkdir(parents=True)
    sf.write(server.data_dir / "uploads" / folder / f"{stem_type}.wav", audio, synth.SR, subtype="PCM_16")
    stem = Stem(user_id=uuid.UUID(user_id), track_id=uuid.UUID(track_id), stem_type=stem_type,
                path=f"{folder}/{stem_type}.wav", format="wav", model="htdemucs")

    async def insert(session: Any) -> str:
        session.add(stem)
        await session.commit()
        return str(stem.id)

    return asyncio.run(_db(server, insert))


def analysis_rows(server: Server, job_id: str) -> list[AnalysisResult]:
    from sqlmodel import select

    async def query(session: Any) -> list[AnalysisResult]:
        return list((await session.exec(select(AnalysisResult).where(AnalysisResult.job_id == uuid.UUID(job_id))))
                    .all())

    return asyncio.run(_db(server, query))


def user_id_of(server: Server, user: User) -> str:
    from sqlmodel import select

    from data.models import User as UserRow

    async def query(session: Any) -> str:
        return str((await session.exec(select(UserRow.id).where(UserRow.email == user.email))).one())

    return asyncio.run(_db(server, query))


def assert_tempo(measured: float | None, bpm: float) -> None:
    assert measured is not None and abs(measured / bpm - 1) <= 0.02, f"{measured} BPM measured for {bpm}"


# --- the whole way: analyse, follow, read, export ----------------------------------------------------


@pytest.fixture(scope="module")
def analysed(server: Server, song: bytes) -> dict[str, Any]:
    """One upload analysed with every feature, followed on /socket; shared by the read tests."""
    from tests.conftest import register

    user = register(server.url)
    track = upload_audio(user, song)
    queued = start(user, track_id=track["id"])
    assert queued["track_id"] == track["id"]
    events = follow(server, user, queued["job_id"])
    return {"user": user, "track": track, "job_id": queued["job_id"], "events": events}


def test_analysis_job_streams_progress_and_completes_with_the_result(analysed: dict[str, Any]) -> None:
    events, job_id, track = analysed["events"], analysed["job_id"], analysed["track"]
    assert events[-1][0] == "job:completed", events[-3:]
    progress = [p for e, p in events if e == "job:progress"]
    assert progress[0]["status"] == "queued"
    assert {p["status"] for p in progress} >= {"queued", "processing", "completed"}
    running = [p["progress"] for p in progress if p["status"] == "processing"]
    assert running == sorted(running) and len(set(running)) > 3, running  # real, monotonic progress
    assert all(isinstance(p["progress"], int) and 0 <= p["progress"] <= 100 for p in progress)
    done = events[-1][1]
    assert done["job_id"] == job_id and done["job_type"] == "analysis" and done["track_id"] == track["id"]
    result = done["result"]
    assert_tempo(result["tempo"], BPM)
    assert result["key"] == KEY and 0 < result["key_confidence"] <= 1
    assert 0 < result["energy"] <= 1 and 0 < result["zero_crossing_rate"] < 1
    assert 200 < result["spectral_centroid"] < result["spectral_rolloff"] < 11025
    assert result["features_analyzed"] == ["tempo", "key", "energy", "spectral", "mfcc", "chroma",
                                          "structure"]
    mfcc, chroma = result["features"]["mfcc"], result["features"]["chroma"]
    assert len(mfcc) == 13 and len(chroma) == 12
    assert 0 < result["frame_rate"] <= 2 and len(mfcc[0]) == len(chroma[0]) <= 2 * result["duration"] + 1


def test_job_route_has_the_spec_shape(analysed: dict[str, Any]) -> None:
    user, job_id = analysed["user"], analysed["job_id"]
    r = user.api.get(f"/api/analysis/job/{job_id}")
    assert r.status_code == 200
    body = r.json()
    assert body == {"data": {"id": job_id, "status": "completed", "progress": 100, "error": None,
                             "result": analysed["events"][-1][1]["result"]}}


def test_latest_result_and_typed_columns(server: Server, analysed: dict[str, Any]) -> None:
    user, track, job_id = analysed["user"], analysed["track"], analysed["job_id"]
    result = analysed["events"][-1][1]["result"]
    r = user.api.get(f"/api/analysis/{track['id']}")
    assert r.status_code == 200, r.text
    latest = r.json()["data"]
    assert latest["track_id"] == track["id"] and latest["job_id"] == job_id and latest["stem_id"] is None
    assert latest["result"] == result  # the stored row gives back exactly what the job returned
    [row] = analysis_rows(server, job_id)
    # Scalars in typed columns (so the library can sort and filter), arrays in the JSON column.
    assert (row.tempo, row.key, row.energy) == (result["tempo"], KEY, result["energy"])
    assert row.spectral_centroid == result["spectral_centroid"] and row.key_confidence == result["key_confidence"]
    assert "tempo" not in row.data and len(row.data["features"]["mfcc"]) == 13


def test_export_is_a_json_file_as_the_spec_shows(server: Server, analysed: dict[str, Any]) -> None:
    user, track = analysed["user"], analysed["track"]
    result = analysed["events"][-1][1]["result"]
    expected = {"track_id": track["id"], "title": "Night Drive", "artist": "The Synths", "analysis": result}
    for client in (user.api, user.browser):  # bearer token, and the browser's session cookie
        r = client.get(f"/export/analysis/{track['id']}")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.headers["content-disposition"] == 'attachment; filename="The Synths - Night Drive.analysis.json"'
        assert r.json() == expected
    assert error_of(httpx.get(f"{server.url}/export/analysis/{track['id']}")) == (401, "unauthorized")


# --- subsets, stems ----------------------------------------------------------------------------------


def test_feature_subset_and_latest_is_newest(server: Server, user: User) -> None:
    track = upload_audio(user, song_bytes(bpm=100, seconds=6.0), title="Titel", artist="Björk")
    first = start(user, track_id=track["id"], features=["energy"])
    assert wait_job(user, first["job_id"])["status"] == "completed"
    second = start(user, track_id=track["id"], features=["tempo", "KEY"])
    job = wait_job(user, second["job_id"])
    assert job["status"] == "completed", job
    result = job["result"]
    assert result["features_analyzed"] == ["tempo", "key"]
    assert_tempo(result["tempo"], 100)
    assert "energy" not in result and "features" not in result and "spectral_centroid" not in result
    params = user.api.get(f"/api/jobs/{second['job_id']}").json()["data"]["params"]
    assert params == {"features": ["tempo", "key"]}
    latest = user.api.get(f"/api/analysis/{track['id']}").json()["data"]
    assert latest["job_id"] == second["job_id"] and latest["result"] == result
    # A partial analysis stores no value for what it did not measure, not a null one.
    [row] = analysis_rows(server, second["job_id"])
    assert row.energy is None and row.tempo == result["tempo"]
    r = user.api.get(f"/export/analysis/{track['id']}")
    assert r.json()["analysis"] == result and r.json()["artist"] == "Björk"
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"Bjork - Titel.analysis.json\"; filename*=UTF-8''Bj%C3%B6rk%20-%20Titel.analysis.json")


def test_stem_analysis(server: Server, user: User) -> None:
    track = upload_audio(user, song_bytes(seconds=4.0))
    drums = synth.mono(synth.drums(100, 8.0, style="four"))
    stem_id = add_stem(server, user_id_of(server, user), track["id"], "drums", drums)
    queued = start(user, stem_id=stem_id, features=["tempo", "energy"])
    assert queued["track_id"] == track["id"]  # the stem's track
    job = wait_job(user, queued["job_id"])
    assert job["status"] == "completed", job
    assert_tempo(job["result"]["tempo"], 100)
    latest = user.api.get(f"/api/analysis/stem/{stem_id}").json()["data"]
    assert latest["stem_id"] == stem_id and latest["track_id"] == track["id"] and latest["result"] == job["result"]
    [row] = analysis_rows(server, queued["job_id"])
    assert str(row.stem_id) == stem_id and row.tempo == job["result"]["tempo"]
    # The track itself was never analysed: a stem's result is not the track's.
    assert error_of(user.api.get(f"/api/analysis/{track['id']}")) == (404, "not_found")
    assert error_of(user.api.get(f"/export/analysis/{track['id']}")) == (404, "not_found")


def test_tempo_range_counts_the_beat_at_the_asked_level(server: Server, user: User) -> None:
    track = upload_audio(user, song_bytes(bpm=150, seconds=8.0))
    queued = start(user, track_id=track["id"], features=["tempo", "structure"], tempo_range={"min": 50, "max": 100})
    job = wait_job(user, queued["job_id"])
    assert job["status"] == "completed", job
    result = job["result"]
    assert_tempo(result["tempo"], 75)
    assert result["tempo_range"] == [50.0, 100.0]
    assert any("counted at" in note and "50–100 BPM" in note for note in result["notes"]), result["notes"]
    assert np.diff(result["beats"]).mean() == pytest.approx(60 / 75, rel=0.03)
    params = user.api.get(f"/api/jobs/{queued['job_id']}").json()["data"]["params"]
    assert params == {"features": ["tempo", "structure"], "tempo_range": [50.0, 100.0]}
    # the library's summary takes the tempo as counted
    assert_tempo(user.api.get(f"/api/tracks/{track['id']}").json()["data"]["tempo"], 75)


# --- refusals ----------------------------------------------------------------------------------------


def test_unknown_features_answer_422_listing_the_allowed_ones(user: User, song: bytes) -> None:
    track = upload_audio(user, song)
    r = user.api.post("/api/analysis/analyze", json={"track_id": track["id"], "features": ["tempo", "loudness"]})
    assert error_of(r) == (422, "validation_error")
    message = r.json()["details"]["features"]
    assert "loudness" in message and all(name in message for name in ALLOWED), message
    cases = [
        ({"track_id": track["id"], "features": "tempo"}, "features"),  # not a list
        ({"track_id": track["id"], "features": [5]}, "features.0"),
        ({"track_id": "not-a-uuid"}, "track_id"),
        ({}, "track_id"),  # neither
        ({"track_id": track["id"], "stem_id": str(uuid.uuid4())}, "stem_id"),  # both
        ({"track_id": track["id"], "tempo_range": {"min": 100, "max": 150}}, "tempo_range"),  # under an octave
        ({"track_id": track["id"], "tempo_range": {"min": 10, "max": 100}}, "tempo_range"),  # under 30 BPM
        ({"track_id": track["id"], "tempo_range": {"min": 140, "max": 70}}, "tempo_range"),  # min above max
        ({"track_id": track["id"], "tempo_range": {"min": 70}}, "tempo_range.max"),
        ({"track_id": track["id"], "tempo_range": [70, 140]}, "tempo_range"),  # not an object
    ]
    for body, field in cases:
        r = user.api.post("/api/analysis/analyze", json=body)
        assert error_of(r) == (422, "validation_error"), body
        assert field in r.json()["details"], (body, r.json())
    assert user.api.get("/api/jobs", params={"kind": "analysis"}).json()["meta"]["total_count"] == 0


def test_track_without_audio_answers_409(user: User, spotify_fake: FakeSpotify) -> None:
    track = track_without_audio(user, spotify_fake)
    r = user.api.post("/api/analysis/analyze", json={"track_id": track["id"]})
    assert error_of(r) == (409, "audio_not_ready")
    assert "download" in r.json()["error"]


def test_someone_elses_track_stem_job_and_result_answer_404(server: Server, analysed: dict[str, Any],
                                                            make_user: Any, audio_server: Any) -> None:
    owner, track, job_id = analysed["user"], analysed["track"], analysed["job_id"]
    stem_id = add_stem(server, user_id_of(server, owner), track["id"], "bass", synth.mono(synth.click_track(90, 2.0)))
    other = make_user()
    for body in ({"track_id": track["id"]}, {"stem_id": stem_id}, {"track_id": str(uuid.uuid4())},
                 {"stem_id": str(uuid.uuid4())}):
        assert error_of(other.api.post("/api/analysis/analyze", json=body)) == (404, "not_found"), body
    for path in (f"/api/analysis/job/{job_id}", f"/api/analysis/{track['id']}", f"/api/analysis/stem/{stem_id}",
                 f"/export/analysis/{track['id']}", "/api/analysis/job/not-a-uuid", "/api/analysis/not-a-uuid",
                 "/export/analysis/not-a-uuid", f"/export/analysis/{uuid.uuid4()}"):
        assert error_of(other.api.get(path)) == (404, "not_found"), path
    assert other.api.get("/api/jobs", params={"kind": "analysis"}).json()["meta"]["total_count"] == 0
    # The owner still reaches all of it.
    assert owner.api.get(f"/api/analysis/job/{job_id}").status_code == 200
    # A job of another kind is not an analysis job.
    r = owner.api.post("/api/download/track", json={"url": f"{audio_server.url}/missing/{uuid.uuid4()}.wav"})
    assert r.status_code == 202, r.text
    assert error_of(owner.api.get(f"/api/analysis/job/{r.json()['data']['job_id']}")) == (404, "not_found")


@pytest.mark.parametrize(("damage", "words"), [
    ("garbage", "is not audio that StemForge can read"),
    ("short", "analysis needs at least 1 s"),
    ("missing", "does not exist"),
])
def test_bad_audio_fails_the_job_with_a_readable_error(server: Server, user: User, song: bytes, damage: str,
                                                       words: str) -> None:
    track = upload_audio(user, song)
    path = stored_path(server, track)
    if damage == "garbage":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" + secrets.token_bytes(4000))
    elif damage == "short":
        sf.write(path, synth.mono(synth.click_track(120, 0.2)), synth.SR, subtype="PCM_16")
    else:
        path.unlink()
    queued = start(user, track_id=track["id"])
    events = follow(server, user, queued["job_id"])
    assert events[-1][0] == "job:failed", events[-3:]
    job = wait_job(user, queued["job_id"])
    assert job["status"] == "failed" and job["result"] is None
    assert words in job["error"] and "Traceback" not in job["error"], job["error"]
    assert events[-1][1]["error"] == job["error"] and events[-1][1]["job_type"] == "analysis"
    assert user.api.get(f"/api/jobs/{queued['job_id']}").json()["data"]["attempts"] == 1  # bad input: no retry
    assert error_of(user.api.get(f"/api/analysis/{track['id']}")) == (404, "not_found")
    assert analysis_rows(server, queued["job_id"]) == []


def follow(server: Server, user: User, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    return follow_job(server.url, user.token, job_id, timeout=90.0)


def wait_job(user: User, job_id: str) -> dict[str, Any]:
    return tests_jobs.wait_job(user.api, f"/api/analysis/job/{job_id}", timeout=90.0)
