"""Stem separation through the real server: upload a short clip, separate it with the local engine (tiny
demucs models in demucs' own checkpoint format, loaded by demucs' real loader in the embedded worker),
follow the job on /socket, read the job, download the stems singly (with Range) and as a ZIP; the
models list; and every refusal (unknown model or engine, audio not there yet, someone else's track,
stem or job, a corrupt file).
"""

from __future__ import annotations

import asyncio
import io
import secrets
import uuid
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import numpy as np
import pytest
import soundfile as sf

import tests.jobs as tests_jobs
from core.separation.catalog import ENGINES, MODEL_NAMES
from core.settings import Settings
from data.db import make_engine
from data.models import Stem
from tests.audio import stored_files
from tests.conftest import Server, User, error_of, register, track_without_audio, upload_audio
from tests.fakes.spotify import FakeSpotify
from tests.jobs import follow_job

pytestmark = pytest.mark.postgres

SR = 44100
SECONDS = 2.5
FRAMES = int(SR * SECONDS)
FOUR = {"drums", "bass", "other", "vocals"}
SPEC_MODELS = [
    {"name": "htdemucs", "description": "Hybrid Transformer Demucs - default 4-stem model", "stems": 4},
    {"name": "htdemucs_ft", "description": "Fine-tuned Hybrid Transformer Demucs - higher quality, slower",
     "stems": 4},
    {"name": "htdemucs_6s", "description": "6-stem model (vocals, drums, bass, guitar, piano, other)", "stems": 6},
    {"name": "mdx_extra", "description": "MDX-Net Extra - alternative architecture, good for vocals", "stems": 4},
]


# --- helpers (also used by test_lalalai_api.py) ------------------------------------------------------------


def clip_bytes(seconds: float = SECONDS, seed: int = 0) -> bytes:
    """A stereo 16-bit WAV: two tones and a little noise, so every stem has something in it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    left = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.05 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right], axis=1).astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def separate(user: User, **body: Any) -> dict[str, Any]:
    r = user.api.post("/api/processing/separate", json=body)
    assert r.status_code == 202, r.text
    out = r.json()
    assert set(out) == {"data"} and set(out["data"]) == {"job_id", "track_id", "model", "status"}, out
    assert out["data"]["status"] == "queued" and out["data"]["track_id"] == body["track_id"]
    return out["data"]






def stored_path(server: Server, url: str) -> Path:
    """Where the server keeps a file, from its /files/ URL."""
    return server.data_dir / "uploads" / unquote(url.removeprefix("/files/"))


def database_url(server: Server) -> str:
    return Settings(data_dir=server.data_dir, database_url=server.env["STEMFORGE_DATABASE_URL"]).effective_database_url


def db(server: Server, fn: Any) -> Any:
    """Run ``fn(session)`` against the server's own database (SQLite file or PostgreSQL)."""
    from sqlmodel.ext.asyncio.session import AsyncSession

    async def run() -> Any:
        engine = make_engine(database_url(server))
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                return await fn(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def stem_rows(server: Server, job_id: str) -> list[Stem]:
    from sqlmodel import select

    async def query(session: Any) -> list[Stem]:
        return list((await session.exec(select(Stem).where(Stem.job_id == uuid.UUID(job_id)))).all())

    return db(server, query)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(data), dtype="float32", always_2d=True)


# --- the whole way: separate, follow, read, download ---------------------------------------------------------


@pytest.fixture(scope="module")
def separated(server: Server) -> dict[str, Any]:
    """One upload separated with the default model, followed on /socket; shared by the read tests."""
    user = register(server.url)
    track = upload_audio(user, clip_bytes())
    queued = separate(user, track_id=track["id"])
    assert queued["model"] == "htdemucs"
    events = follow(server, user, queued["job_id"])
    return {"user": user, "track": track, "job_id": queued["job_id"], "events": events}


def test_separation_job_streams_progress_and_completes_with_the_stems(server: Server,
                                                                      separated: dict[str, Any]) -> None:
    events, job_id, track = separated["events"], separated["job_id"], separated["track"]
    assert events[-1][0] == "job:completed", events[-3:]
    progress = [p for e, p in events if e == "job:progress"]
    assert progress[0]["status"] == "queued"
    assert {p["status"] for p in progress} >= {"queued", "processing", "completed"}
    running = [p["progress"] for p in progress if p["status"] == "processing"]
    assert running == sorted(running) and len(set(running)) > 3, running  # demucs' chunks, monotonic
    done = events[-1][1]
    assert done["job_id"] == job_id and done["job_type"] == "processing" and done["track_id"] == track["id"]
    result = done["result"]
    assert set(result) == {"model", "stems"} and result["model"] == "htdemucs"
    assert {s["stem_type"] for s in result["stems"]} == FOUR
    for stem in result["stems"]:
        assert stem["track_id"] == track["id"] and stem["job_id"] == job_id
        assert (stem["format"], stem["engine"], stem["model"]) == ("wav", "local", "htdemucs")
        assert stem["url"] == f"/files/stems/{job_id}/{stem['stem_type']}.wav"
        assert stem["download_url"] == f"/export/stem/{stem['id']}"
        path = stored_path(server, stem["url"])
        assert stem["size"] == path.stat().st_size
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (SR, 2, FRAMES)
    # One Stem row per file, with the path relative to the uploads dir.
    rows = stem_rows(server, job_id)
    assert sorted(r.path for r in rows) == sorted(f"stems/{job_id}/{t}.wav" for t in FOUR)
    assert {str(r.id) for r in rows} == {s["id"] for s in result["stems"]}
    assert stored_files(server.data_dir / "uploads" / "stems" / job_id) == \
        sorted(f"{t}.wav" for t in FOUR)  # no partial files left behind


def test_job_route_has_the_spec_shape(separated: dict[str, Any]) -> None:
    user, job_id = separated["user"], separated["job_id"]
    r = user.api.get(f"/api/processing/job/{job_id}")
    assert r.status_code == 200
    assert r.json() == {"data": {"id": job_id, "status": "completed", "progress": 100, "model": "htdemucs",
                                 "error": None, "stems": separated["events"][-1][1]["result"]["stems"]}}


def test_a_queued_job_lists_no_stems_yet(server: Server) -> None:
    user = register(server.url)
    track = upload_audio(user, clip_bytes(seed=3))
    queued = separate(user, track_id=track["id"], model="htdemucs", engine="local")
    job = user.api.get(f"/api/processing/job/{queued['job_id']}").json()["data"]
    assert job["status"] in ("queued", "processing") and job["stems"] == [] and job["model"] == "htdemucs"
    assert wait_job(user, queued["job_id"])["status"] == "completed"


def test_a_stem_downloads_with_its_name_and_range_requests(server: Server, separated: dict[str, Any]) -> None:
    user, track = separated["user"], separated["track"]
    vocals = next(s for s in separated["events"][-1][1]["result"]["stems"] if s["stem_type"] == "vocals")
    on_disk = stored_path(server, vocals["url"]).read_bytes()
    for client in (user.api, user.browser):  # bearer token, and the browser's session cookie
        r = client.get(vocals["download_url"])
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "audio/wav" and r.headers["accept-ranges"] == "bytes"
        assert r.headers["content-disposition"] == 'attachment; filename="The Synths - Night Drive - vocals.wav"'
        assert r.content == on_disk and int(r.headers["content-length"]) == vocals["size"]
        audio, sr = decode(r.content)
        assert sr == SR and audio.shape == (FRAMES, 2)
    r = user.api.get(vocals["download_url"], headers={"Range": "bytes=100-1123"})
    assert r.status_code == 206, r.text
    assert r.content == on_disk[100:1124]
    assert r.headers["content-range"] == f"bytes 100-1123/{len(on_disk)}"
    r = user.api.get(vocals["download_url"], headers={"Range": f"bytes={len(on_disk) + 10}-"})
    assert error_of(r)[0] == 416
    assert user.api.head(vocals["download_url"]).headers["content-length"] == str(len(on_disk))
    assert error_of(httpx.get(server.url + vocals["download_url"])) == (401, "unauthorized")
    assert track["id"] == vocals["track_id"]


def test_all_stems_download_as_one_zip(server: Server, separated: dict[str, Any]) -> None:
    user, track = separated["user"], separated["track"]
    stems = separated["events"][-1][1]["result"]["stems"]
    for client in (user.api, user.browser):
        r = client.get(f"/export/stems/{track['id']}")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/zip"
        assert r.headers["content-disposition"] == 'attachment; filename="The Synths - Night Drive (stems).zip"'
        assert int(r.headers["content-length"]) == len(r.content)  # the size was known before streaming
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            assert archive.testzip() is None
            names = sorted(archive.namelist())
            assert names == sorted(f"The Synths - Night Drive - {s['stem_type']}.wav" for s in stems)
            for stem in stems:
                info = archive.getinfo(f"The Synths - Night Drive - {stem['stem_type']}.wav")
                assert info.compress_type == zipfile.ZIP_STORED
                data = archive.read(info)
                assert data == stored_path(server, stem["url"]).read_bytes()
                audio, sr = decode(data)
                assert sr == SR and audio.shape == (FRAMES, 2)
    assert error_of(httpx.get(f"{server.url}/export/stems/{track['id']}")) == (401, "unauthorized")


def test_six_stems_and_the_zip_follows_the_newest_completed_separation(server: Server, user: User) -> None:
    track = upload_audio(user, clip_bytes(seconds=2.0, seed=1), title="Sechs", artist="Björk")
    queued = separate(user, track_id=track["id"], model="htdemucs_6s")
    assert queued["model"] == "htdemucs_6s"
    six = wait_job(user, queued["job_id"])
    assert six["status"] == "completed", six
    assert six["model"] == "htdemucs_6s"
    assert [s["stem_type"] for s in six["stems"]] == ["drums", "bass", "other", "vocals", "guitar", "piano"]
    for stem in six["stems"]:
        info = sf.info(str(stored_path(server, stem["url"])))
        assert (info.samplerate, info.channels, info.frames) == (SR, 2, 2 * SR)
    r = user.api.get(f"/export/stems/{track['id']}")
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert len(archive.namelist()) == 6 and "Björk - Sechs - guitar.wav" in archive.namelist()
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"Bjork - Sechs (stems).zip\"; filename*=UTF-8''Bj%C3%B6rk%20-%20Sechs%20%28stems%29.zip")
    # A second separation with another model (a bag of four HDemucs): the ZIP now holds its four stems.
    mdx = wait_job(user, separate(user, track_id=track["id"], model="mdx_extra")["job_id"])
    assert mdx["status"] == "completed" and {s["stem_type"] for s in mdx["stems"]} == FOUR, mdx
    with zipfile.ZipFile(io.BytesIO(user.api.get(f"/export/stems/{track['id']}").content)) as archive:
        assert sorted(archive.namelist()) == sorted(f"Björk - Sechs - {t}.wav" for t in FOUR)
        assert archive.read("Björk - Sechs - bass.wav") == \
            stored_path(server, next(s for s in mdx["stems"] if s["stem_type"] == "bass")["url"]).read_bytes()
    # The earlier stems stay downloadable one by one.
    assert user.api.get(six["stems"][4]["download_url"]).status_code == 200


def test_models_list_is_the_spec_list_with_availability(server: Server, user: User, demucs_repo: Path) -> None:
    r = user.api.get("/api/processing/models")
    assert r.status_code == 200, r.text
    models = r.json()["data"]["models"]
    assert [{k: m[k] for k in ("name", "description", "stems")} for m in models] == SPEC_MODELS
    assert [m["available"] for m in models] == [True] * 4  # the offline folder holds all four
    bag = demucs_repo / "htdemucs_ft.yaml"
    bag.rename(bag.with_suffix(".off"))
    try:
        models = user.api.get("/api/processing/models").json()["data"]["models"]
        assert {m["name"]: m["available"] for m in models} == {"htdemucs": True, "htdemucs_ft": False,
                                                                "htdemucs_6s": True, "mdx_extra": True}
    finally:
        bag.with_suffix(".off").rename(bag)
    assert error_of(httpx.get(f"{server.url}/api/processing/models")) == (401, "unauthorized")


# --- refusals ----------------------------------------------------------------------------------------------


def test_unknown_model_or_engine_answers_422_listing_the_allowed_values(user: User) -> None:
    track = upload_audio(user, clip_bytes())
    r = user.api.post("/api/processing/separate", json={"track_id": track["id"], "model": "spleeter"})
    assert error_of(r) == (422, "validation_error")
    assert all(name in r.json()["details"]["model"] for name in MODEL_NAMES), r.json()
    r = user.api.post("/api/processing/separate", json={"track_id": track["id"], "engine": "cloud"})
    assert error_of(r) == (422, "validation_error")
    assert all(name in r.json()["details"]["engine"] for name in ENGINES), r.json()
    for body, field in (({"model": "htdemucs"}, "track_id"), ({"track_id": "not-a-uuid"}, "track_id"),
                        ({"track_id": track["id"], "model": 4}, "model")):
        r = user.api.post("/api/processing/separate", json=body)
        assert error_of(r) == (422, "validation_error") and field in r.json()["details"], (body, r.json())
    assert user.api.get("/api/jobs", params={"kind": "processing"}).json()["meta"]["total_count"] == 0


def test_track_without_audio_answers_409(user: User, spotify_fake: FakeSpotify) -> None:
    track = track_without_audio(user, spotify_fake)
    r = user.api.post("/api/processing/separate", json={"track_id": track["id"]})
    assert error_of(r) == (409, "audio_not_ready")
    assert "download" in r.json()["error"]
    assert error_of(user.api.get(f"/export/stems/{track['id']}")) == (404, "not_found")  # no stems either


def test_someone_elses_track_stem_and_job_answer_404(server: Server, separated: dict[str, Any],
                                                      make_user: Any) -> None:
    owner, track, job_id = separated["user"], separated["track"], separated["job_id"]
    stem = separated["events"][-1][1]["result"]["stems"][0]
    other = make_user()
    for body in ({"track_id": track["id"]}, {"track_id": str(uuid.uuid4())}):
        assert error_of(other.api.post("/api/processing/separate", json=body)) == (404, "not_found"), body
    for path in (f"/api/processing/job/{job_id}", f"/export/stem/{stem['id']}", f"/export/stems/{track['id']}",
                 stem["url"], "/api/processing/job/not-a-uuid", "/export/stem/not-a-uuid", "/export/stems/nope",
                 f"/export/stem/{uuid.uuid4()}", f"/export/stems/{uuid.uuid4()}",
                 f"/api/processing/job/{uuid.uuid4()}"):
        assert error_of(other.api.get(path)) == (404, "not_found"), path
    assert other.api.get("/api/jobs", params={"kind": "processing"}).json()["meta"]["total_count"] == 0
    # The owner still reaches all of it; a job of another kind is not a processing job.
    assert owner.api.get(f"/api/processing/job/{job_id}").status_code == 200
    assert owner.api.get(f"/export/stem/{stem['id']}").status_code == 200
    analysis = owner.api.post("/api/analysis/analyze", json={"track_id": track["id"], "features": ["energy"]})
    assert analysis.status_code == 202, analysis.text
    assert error_of(owner.api.get(f"/api/processing/job/{analysis.json()['data']['job_id']}")) == (404, "not_found")


@pytest.mark.parametrize(("damage", "words"), [
    ("garbage", "not audio StemForge can decode"),
    ("missing", "audio file is missing"),
])
def test_bad_audio_fails_the_job_with_a_readable_error(server: Server, user: User, damage: str, words: str) -> None:
    track = upload_audio(user, clip_bytes())
    path = stored_path(server, track["audio_url"])
    if damage == "garbage":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" + secrets.token_bytes(4000))
    else:
        path.unlink()
    queued = separate(user, track_id=track["id"])
    events = follow(server, user, queued["job_id"])
    assert events[-1][0] == "job:failed", events[-3:]
    job = wait_job(user, queued["job_id"])
    assert job["status"] == "failed" and job["stems"] == []
    assert words in job["error"] and "Traceback" not in job["error"], job["error"]
    assert events[-1][1]["error"] == job["error"] and events[-1][1]["job_type"] == "processing"
    assert user.api.get(f"/api/jobs/{queued['job_id']}").json()["data"]["attempts"] == 1  # bad input: no retry
    assert stem_rows(server, queued["job_id"]) == []
    assert not (server.data_dir / "uploads" / "stems" / queued["job_id"]).exists()
    assert error_of(user.api.get(f"/export/stems/{track['id']}")) == (404, "not_found")


def follow(server: Server, user: User, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    return follow_job(server.url, user.token, job_id, timeout=120.0)


def wait_job(user: User, job_id: str) -> dict[str, Any]:
    return tests_jobs.wait_job(user.api, f"/api/processing/job/{job_id}", timeout=120.0)
