"""The lalal.ai engine and its management routes through the real server, against the local fake of the
lalal.ai API v1 (tests/fakes/lalalai.py): the license key stored through PUT /users/settings (encrypted,
never returned in full), a separation on lalal.ai followed on /socket, the quota mapping, cancelling one
task or all of them (the jobs end ``cancelled``), and the refusals (no key, a refused key, an outage).
"""

from __future__ import annotations

import io
import secrets
import time
import zipfile
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from sqlmodel import select

from core.security import SecretBox
from data.models import User as UserRow
from data.models import UserSettings
from tests.conftest import Server, User, error_of, upload_audio
from tests.fakes.lalalai import GAINS, FakeLalalai
from tests.jobs import FINAL
from tests.test_processing_api import (
    SR,
    clip_bytes,
    db,
    decode,
    follow,
    separate,
    stem_rows,
    stored_path,
    wait_job,
)

pytestmark = pytest.mark.postgres

FOUR = ["drums", "bass", "other", "vocals"]


def new_key(fake: FakeLalalai, minutes: float = 100.0) -> str:
    key = f"lalal-{secrets.token_hex(8)}"
    fake.keys[key] = minutes
    return key


def set_key(user: User, key: str) -> dict[str, Any]:
    r = user.browser.put("/users/settings", json={"lalalai_key": key}, headers={"X-CSRF-Token": user.csrf})
    assert r.status_code == 200, r.text
    return r.json()["data"]


@pytest.fixture
def keyed(user: User, lalalai_fake: FakeLalalai) -> tuple[User, str]:
    """A user whose lalal.ai key (100 minutes) is stored in their settings."""
    key = new_key(lalalai_fake)
    set_key(user, key)
    return user, key


def stored_settings(server: Server, user: User) -> UserSettings:
    async def query(session: Any) -> UserSettings:
        user_id = (await session.exec(select(UserRow.id).where(UserRow.email == user.email))).one()
        return await session.get(UserSettings, user_id)

    return db(server, query)


def job_params(user: User, job_id: str) -> dict[str, Any]:
    return user.api.get(f"/api/jobs/{job_id}").json()["data"]["params"]


def wait_for_task(user: User, job_id: str, timeout: float = 30.0) -> str:
    """The lalal.ai task id the running job recorded."""
    deadline = time.monotonic() + timeout
    while "lalalai_task_id" not in (params := job_params(user, job_id)):
        assert time.monotonic() < deadline, params
        time.sleep(0.05)
    return params["lalalai_task_id"]


def wait_status(user: User, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (job := user.api.get(f"/api/jobs/{job_id}").json()["data"])["status"] not in FINAL:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


@pytest.fixture
def slow_lalalai(lalalai_fake: FakeLalalai) -> Any:
    """lalal.ai tasks that stay in progress until they are cancelled."""
    before = lalalai_fake.checks_until_done
    lalalai_fake.checks_until_done = 10**9
    yield lalalai_fake
    lalalai_fake.checks_until_done = before


# --- the key -----------------------------------------------------------------------------------------------


def test_the_key_is_stored_encrypted_and_never_returned_in_full(server: Server, user: User,
                                                                lalalai_fake: FakeLalalai) -> None:
    key = new_key(lalalai_fake)
    shown = set_key(user, key)
    assert shown["lalalai_key"] == "••••••••" + key[-4:] and key not in str(shown)
    row = stored_settings(server, user)
    assert row.lalalai_key_encrypted and key not in row.lalalai_key_encrypted
    secret = (server.data_dir / ".encryption_key").read_text().strip()
    assert SecretBox(secret).decrypt(row.lalalai_key_encrypted) == key
    # Other changes leave the key alone; the quota works with it; an empty string removes it.
    r = user.browser.put("/users/settings", json={"display_name": "DJ"}, headers={"X-CSRF-Token": user.csrf})
    assert r.json()["data"]["lalalai_key"] == shown["lalalai_key"]
    assert user.api.get("/api/lalalai/quota").status_code == 200
    assert set_key(user, "")["lalalai_key"] is None
    assert stored_settings(server, user).lalalai_key_encrypted is None
    assert error_of(user.api.get("/api/lalalai/quota")) == (401, "unauthorized")
    # Only the browser (with its CSRF token) changes settings: a bearer token cannot set a key.
    r = user.api.put("/users/settings", json={"lalalai_key": key})
    assert error_of(r)[0] == 401
    r = user.browser.put("/users/settings", json={"lalalai_key": "x" * 201}, headers={"X-CSRF-Token": user.csrf})
    assert error_of(r) == (422, "validation_error") and "lalalai_key" in r.json()["details"]


def test_without_a_key_every_lalalai_route_answers_401_saying_where_to_set_it(user: User) -> None:
    track = upload_audio(user, clip_bytes())
    for response in (user.api.get("/api/lalalai/quota"),
                     user.api.post("/api/lalalai/cancel", json={"task_id": "abc"}),
                     user.api.post("/api/lalalai/cancel-all"),
                     user.api.post("/api/processing/separate", json={"track_id": track["id"], "engine": "lalalai"})):
        assert error_of(response) == (401, "unauthorized"), response.text
        message = response.json()["error"]
        assert "Settings page" in message and "PUT /users/settings" in message and "lalalai_key" in message, message
    assert user.api.get("/api/jobs", params={"kind": "processing"}).json()["meta"]["total_count"] == 0


# --- separating on lalal.ai --------------------------------------------------------------------------------


def test_separation_on_lalalai_end_to_end_and_the_quota(server: Server, keyed: tuple[User, str],
                                                        lalalai_fake: FakeLalalai) -> None:
    user, key = keyed
    assert user.api.get("/api/lalalai/quota").json() == {
        "data": {"quota_minutes": 100.0, "used_minutes": 0.0, "remaining_minutes": 100.0}}
    source = clip_bytes(seconds=3.0, seed=7)
    track = upload_audio(user, source, title="Cloud Song", artist="Lalala")
    queued = separate(user, track_id=track["id"], engine="lalalai")
    events = follow(server, user, queued["job_id"])
    assert events[-1][0] == "job:completed", events[-3:]
    running = [p["progress"] for e, p in events if e == "job:progress" and p["status"] == "processing"]
    assert running == sorted(running) and len(set(running)) > 3, running
    result = events[-1][1]["result"]
    assert result["model"] == "htdemucs" and [s["stem_type"] for s in result["stems"]] == FOUR
    original, _ = decode(source)
    gains = {"drums": GAINS["drum"], "bass": GAINS["bass"], "vocals": GAINS["vocals"],
             "other": 1 - GAINS["drum"] - GAINS["bass"] - GAINS["vocals"]}
    for stem in result["stems"]:
        assert (stem["engine"], stem["model"], stem["format"]) == ("lalalai", "htdemucs", "wav")
        assert stem["url"] == f"/files/stems/{queued['job_id']}/{stem['stem_type']}.wav"
        audio, sr = sf.read(str(stored_path(server, stem["url"])), dtype="float32", always_2d=True)
        assert sr == SR and audio.shape == original.shape
        assert np.abs(audio - original * gains[stem["stem_type"]]).max() < 3 / 32768  # lalal.ai's track, as sent
    assert len(stem_rows(server, queued["job_id"])) == 4
    assert user.api.get(f"/api/processing/job/{queued['job_id']}").json()["data"]["stems"] == result["stems"]
    # The job remembers its task (for cancel) and what it cost; the source was deleted from lalal.ai.
    params = job_params(user, queued["job_id"])
    assert params["engine"] == "lalalai" and params["lalalai_task_id"] in lalalai_fake.tasks
    assert lalalai_fake.tasks[params["lalalai_task_id"]].stems == ["vocals", "drum", "bass"]
    assert key not in str(params) and not [s for s in lalalai_fake.sources.values() if s.key == key]
    # 3 s x 3 stems = 0.15 minutes charged; the quota maps minutes_left onto the contract.
    assert user.api.get("/api/lalalai/quota").json() == {
        "data": {"quota_minutes": 100.0, "used_minutes": 0.15, "remaining_minutes": 99.85}}
    # The stems export like local ones.
    with zipfile.ZipFile(io.BytesIO(user.api.get(f"/export/stems/{track['id']}").content)) as archive:
        assert sorted(archive.namelist()) == sorted(f"Lalala - Cloud Song - {t}.wav" for t in FOUR)


def test_six_stems_on_lalalai(keyed: tuple[User, str], lalalai_fake: FakeLalalai) -> None:
    user, _ = keyed
    track = upload_audio(user, clip_bytes(seconds=2.0))
    job = wait_job(user, separate(user, track_id=track["id"], engine="lalalai", model="htdemucs_6s")["job_id"])
    assert job["status"] == "completed", job
    assert [s["stem_type"] for s in job["stems"]] == ["drums", "bass", "other", "vocals", "guitar", "piano"]
    task = lalalai_fake.tasks[job_params(user, job["id"])["lalalai_task_id"]]
    assert task.stems == ["vocals", "drum", "bass", "electric_guitar", "piano"]


def test_a_refused_key_fails_the_job_and_the_quota_with_a_readable_error(user: User) -> None:
    set_key(user, "not-a-key-lalal-ai-knows")
    r = user.api.get("/api/lalalai/quota")
    assert error_of(r) == (401, "unauthorized") and "refused" in r.json()["error"]
    track = upload_audio(user, clip_bytes())
    job = wait_job(user, separate(user, track_id=track["id"], engine="lalalai")["job_id"])
    assert job["status"] == "failed" and "refused the license key" in job["error"], job
    assert "Settings page" in job["error"]


def test_lalalai_outage_answers_503(keyed: tuple[User, str], lalalai_fake: FakeLalalai) -> None:
    user, _ = keyed
    lalalai_fake.fail_next(503)
    r = user.api.get("/api/lalalai/quota")
    assert error_of(r) == (503, "lalalai_unavailable") and "unavailable" in r.json()["error"]
    assert user.api.get("/api/lalalai/quota").status_code == 200  # it passes


# --- cancelling ----------------------------------------------------------------------------------------------


def test_cancel_a_task_ends_its_job_cancelled(server: Server, keyed: tuple[User, str],
                                              slow_lalalai: FakeLalalai, make_user: Any) -> None:
    user, key = keyed
    track = upload_audio(user, clip_bytes())
    job_id = separate(user, track_id=track["id"], engine="lalalai")["job_id"]
    task_id = wait_for_task(user, job_id)
    assert [t.id for t in slow_lalalai.running(key)] == [task_id]
    # Someone else cannot cancel it, even with a key of their own.
    other = make_user()
    set_key(other, new_key(slow_lalalai))
    assert error_of(other.api.post("/api/lalalai/cancel", json={"task_id": task_id})) == (404, "not_found")
    assert slow_lalalai.tasks[task_id].status == "progress"

    r = user.api.post("/api/lalalai/cancel", json={"task_id": task_id})
    assert r.status_code == 200, r.text
    assert r.json() == {"data": {"cancelled_tasks": [task_id], "cancelled_jobs": [job_id]}}
    job = wait_status(user, job_id)
    assert job["status"] == "cancelled"
    assert slow_lalalai.tasks[task_id].status == "cancelled"
    deadline = time.monotonic() + 10
    while (server.data_dir / "uploads" / "stems" / job_id).exists():  # the worker removes partial files
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert stem_rows(server, job_id) == []
    # A task that is not running any more.
    assert error_of(user.api.post("/api/lalalai/cancel", json={"task_id": task_id})) == (404, "not_found")
    assert error_of(user.api.post("/api/lalalai/cancel", json={"task_id": ""})) == (422, "validation_error")


def test_cancel_all_ends_every_unfinished_lalalai_job(keyed: tuple[User, str], slow_lalalai: FakeLalalai) -> None:
    user, key = keyed
    track = upload_audio(user, clip_bytes())
    first = separate(user, track_id=track["id"], engine="lalalai")["job_id"]
    task_id = wait_for_task(user, first)
    second = separate(user, track_id=track["id"], engine="lalalai", model="mdx_extra")["job_id"]  # waits its turn
    r = user.api.post("/api/lalalai/cancel-all")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["cancelled_tasks"] == [task_id]
    assert sorted(r.json()["data"]["cancelled_jobs"]) == sorted([first, second])
    assert [wait_status(user, j)["status"] for j in (first, second)] == ["cancelled", "cancelled"]
    assert slow_lalalai.running(key) == []
    assert user.api.post("/api/lalalai/cancel-all").json() == {"data": {"cancelled_tasks": [], "cancelled_jobs": []}}


def test_a_task_cancelled_on_lalalai_itself_fails_the_job_saying_so(keyed: tuple[User, str],
                                                                    slow_lalalai: FakeLalalai) -> None:
    user, key = keyed
    track = upload_audio(user, clip_bytes())
    job_id = separate(user, track_id=track["id"], engine="lalalai")["job_id"]
    task_id = wait_for_task(user, job_id)
    slow_lalalai.tasks[task_id].status = "cancelled"  # as if stopped on lalal.ai's site
    job = wait_status(user, job_id)
    assert job["status"] == "failed" and "cancelled outside StemForge" in job["error"], job
