"""Stem previews through the real server: ``POST /api/processing/separate`` with ``preview`` separates only a
window of the track (local demucs: exactly that window of a full separation; lalal.ai: only the window's audio
is uploaded), its stems are marked and kept apart from the full stems (never in the ZIP, the editor or the
library's "separated"), the default window is the loudest part, and windows outside the track are refused.
"""

from __future__ import annotations

import io
import zipfile
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from core.preview_window import loudest_start
from tests.conftest import Server, User, error_of, register, upload_audio
from tests.fakes.lalalai import FakeLalalai
from tests.test_lalalai_api import new_key, set_key
from tests.test_processing_api import SR, separate, stem_rows, stored_path, wait_job

pytestmark = pytest.mark.postgres

SECONDS = 14.0  # the tiny htdemucs cuts 1.5 s chunks every 1.125 s: a window spans several
FOUR = {"drums", "bass", "other", "vocals"}


def clip(seconds: float = SECONDS, loud_from: float | None = None, seed: int = 0) -> bytes:
    """Stereo 16-bit WAV of tones and noise; from ``loud_from`` seconds on 6 times louder."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    left = 0.05 * np.sin(2 * np.pi * 110 * t) + 0.01 * rng.standard_normal(t.size)
    right = 0.05 * np.sin(2 * np.pi * 330 * t) + 0.01 * rng.standard_normal(t.size)
    audio = np.stack([left, right], axis=1)
    if loud_from is not None:
        audio[int(loud_from * SR):] *= 6.0
    buf = io.BytesIO()
    sf.write(buf, audio.astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def stems_of(server: Server, result: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for stem in result["stems"]:
        audio, sr = sf.read(str(stored_path(server, stem["url"])), dtype="float32", always_2d=True)
        assert sr == SR
        out[stem["stem_type"]] = audio
    return out


@pytest.fixture(scope="module")
def previewed(server: Server) -> dict[str, Any]:
    """One track separated in full and previewed over 4.5-9.5 s (a window across chunk boundaries)."""
    user = register(server.url)
    track = upload_audio(user, clip())
    full = wait_job(user, separate(user, track_id=track["id"])["job_id"])
    queued = separate(user, track_id=track["id"], preview={"start": 4.5, "duration": 5})
    preview = wait_job(user, queued["job_id"])
    return {"user": user, "track": track, "full": full, "preview": preview, "job_id": queued["job_id"]}


def test_preview_stems_are_exactly_that_window_of_the_full_separation(server: Server,
                                                                      previewed: dict[str, Any]) -> None:
    full, preview = previewed["full"], previewed["preview"]
    assert preview["status"] == "completed", preview
    assert preview["preview"] == {"start": 4.5, "end": 9.5}
    assert {s["stem_type"] for s in preview["stems"]} == FOUR
    whole, part = stems_of(server, full), stems_of(server, preview)
    a, b = int(4.5 * SR), int(9.5 * SR)
    for name in FOUR:
        assert part[name].shape == (b - a, 2)
        # the same chunks with the same normalisation: equal to the 16-bit step the files are written with
        assert np.max(np.abs(part[name] - whole[name][a:b])) <= 1.5 / 32768, name


def test_preview_stems_are_marked_and_kept_apart(server: Server, previewed: dict[str, Any]) -> None:
    user, track, full, preview = previewed["user"], previewed["track"], previewed["full"], previewed["preview"]
    for stem in preview["stems"]:
        assert stem["preview"] == {"start": 4.5, "end": 9.5}
    assert all("preview" not in stem for stem in full["stems"])
    rows = stem_rows(server, previewed["job_id"])
    assert {(r.preview_start, r.preview_end) for r in rows} == {(4.5, 9.5)}
    # The ZIP holds the full stems only, although the preview is newer.
    r = user.api.get(f"/export/stems/{track['id']}")
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        for info in archive.infolist():
            audio, _ = sf.read(io.BytesIO(archive.read(info)), always_2d=True)
            assert audio.shape[0] == int(SECONDS * SR), info.filename
    # The editor's default manifest names the full stems.
    manifest = user.api.get(f"/api/daw/{track['id']}").json()["data"]["manifest"]
    named = {s["stem_id"] for s in manifest["stems"]}
    assert named == {s["id"] for s in full["stems"]}
    # A preview stem cannot go into a saved remix.
    bad = {**manifest, "stems": [{**manifest["stems"][0], "stem_id": preview["stems"][0]["id"]}]}
    r = user.api.post(f"/api/daw/{track['id']}/changes", json={"manifest": bad, "base_version": 0})
    assert r.status_code == 422, r.text
    # A single preview stem still downloads, named for the part it holds (never the full stem's name).
    r = user.api.get(preview["stems"][0]["download_url"])
    assert r.status_code == 200
    stem_type = preview["stems"][0]["stem_type"]
    assert r.headers["content-disposition"] == (
        f'attachment; filename="The Synths - Night Drive - {stem_type} (preview 0m04s-0m09s).wav"')


def test_a_preview_alone_does_not_make_the_track_separated(server: Server) -> None:
    user = register(server.url)
    track = upload_audio(user, clip(8.0))
    job = wait_job(user, separate(user, track_id=track["id"], preview={"start": 0, "duration": 5})["job_id"])
    assert job["status"] == "completed" and job["preview"] == {"start": 0.0, "end": 5.0}
    assert user.api.get(f"/api/tracks/{track['id']}").json()["data"].get("has_stems") in (False, None)
    r = user.api.get(f"/export/stems/{track['id']}")
    assert r.status_code == 404, r.text


def test_the_default_window_is_the_loudest_part(server: Server) -> None:
    user = register(server.url)
    track = upload_audio(user, clip(loud_from=8.0, seed=1))
    job = wait_job(user, separate(user, track_id=track["id"], preview={"duration": 5})["job_id"])
    assert job["status"] == "completed", job
    # the loudest 5 s start at 8 s; the engine may nudge a default start by 15 % of the window to save a chunk
    assert 8.0 - 0.75 <= job["preview"]["start"] <= SECONDS - 5.0
    assert job["preview"]["end"] == pytest.approx(job["preview"]["start"] + 5)


def test_loudest_start_picks_the_most_powerful_window() -> None:
    rms = np.r_[np.full(60, 0.1), np.full(40, 0.9), np.full(100, 0.2)]  # 2 values a second
    assert loudest_start(rms, 2.0, 20.0, 100.0) == 30.0
    assert loudest_start(rms, 2.0, 20.0, 15.0) == 0.0  # the track is shorter than the window
    assert loudest_start(np.r_[np.zeros(40), np.ones(20)], 2.0, 20.0, 30.0) == 10.0  # the loud end


@pytest.mark.parametrize(("preview", "field"), [
    ({"start": 0, "duration": 4}, "preview.duration"),
    ({"start": 0, "duration": 61}, "preview.duration"),
    ({"start": -1, "duration": 5}, "preview.start"),
    ({"start": 10, "duration": 5}, "preview.start"),  # past the end of the 14 s track
    ({"start": 200, "duration": 20}, "preview.duration"),  # longer than the track
])
def test_windows_outside_the_track_are_refused(server: Server, preview: dict[str, float], field: str) -> None:
    user = register(server.url)
    track = upload_audio(user, clip(seed=2))
    r = user.api.post("/api/processing/separate", json={"track_id": track["id"], "preview": preview})
    assert error_of(r) == (422, "validation_error"), r.text
    assert field in r.json()["details"], r.json()
    assert not r.json()["error"].startswith("preview."), r.json()  # a sentence, not a field name


def test_someone_elses_track_cannot_be_previewed(server: Server, previewed: dict[str, Any]) -> None:
    other = register(server.url)
    r = other.api.post("/api/processing/separate",
                       json={"track_id": previewed["track"]["id"], "preview": {"duration": 5}})
    assert error_of(r) == (404, "not_found")
    r = other.api.get(f"/api/processing/job/{previewed['job_id']}")
    assert error_of(r) == (404, "not_found")


def test_a_lalalai_preview_uploads_only_the_window(server: Server, user: User, lalalai_fake: FakeLalalai) -> None:
    key = new_key(lalalai_fake)
    set_key(user, key)
    track = upload_audio(user, clip(seed=4))
    before = len(lalalai_fake.uploads)
    queued = separate(user, track_id=track["id"], engine="lalalai", preview={"start": 2, "duration": 6})
    job = wait_job(user, queued["job_id"])
    assert job["status"] == "completed", job
    assert job["preview"] == {"start": 2.0, "end": 8.0}
    upload = lalalai_fake.uploads[before]
    assert upload["size"] < 6.5 * SR * 4 + 1000  # 6 s of 16-bit stereo, not the 14 s track
    for stem in job["stems"]:
        assert stem["engine"] == "lalalai" and stem["preview"] == {"start": 2.0, "end": 8.0}


def test_a_default_start_is_nudged_to_need_the_fewest_chunks(tmp_path: Any) -> None:
    """htdemucs' 7.8 s segment and 5.85 s stride: a 20 s window needs 4 or 5 chunks depending on its start."""
    from core.separation.local import LocalEngine
    from core.separation.windowed import window_chunks
    from core.settings import Settings
    from tests.fakes.demucs_models import build_model_repo

    repo = build_model_repo(tmp_path / "m", ("htdemucs",), htdemucs_segment=Fraction(39, 5))  # the published segment
    engine = LocalEngine(Settings(data_dir=tmp_path, demucs_repo=str(repo)))
    net = engine.model("htdemucs")
    sub = net.models[0] if hasattr(net, "models") else net  # a bag of one model, as demucs loads it
    segment, total = int(sub.samplerate * sub.segment), 180 * SR
    stride = int(0.75 * segment)

    def chunks(at: float) -> int:
        return len(window_chunks(segment, stride, total, (round(at * SR), round((at + 20) * SR))))

    starts = [10.0 + 0.5 * i for i in range(24)]
    assert {chunks(s) for s in starts} == {4, 5}
    for start in starts:
        moved = engine.fewest_chunks_start("htdemucs", start, 20.0, 180.0)
        assert abs(moved - start) <= 2.95 and chunks(moved) == 4, (start, moved)
    assert engine.fewest_chunks_start("htdemucs", 0.0, 20.0, 180.0) >= 0.0
    assert engine.fewest_chunks_start("htdemucs", 160.0, 20.0, 180.0) <= 160.0
