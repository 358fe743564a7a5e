"""Retrying a failed or cancelled job (``POST /api/jobs/{id}/retry``) and the filters of ``GET /api/jobs``,
through the real server with its embedded worker and real yt-dlp against the local audio server."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

import tests.jobs as tests_jobs
from tests.conftest import Server, User, error_of, register, upload_audio
from tests.fakes.audio_server import AudioServer
from tests.fakes.lalalai import FakeLalalai
from tests.test_lalalai_api import new_key, set_key, wait_for_task
from tests.test_processing_api import clip_bytes, separate

pytestmark = pytest.mark.postgres


@pytest.fixture
def juser(jobs_server: Server) -> User:
    return register(jobs_server.url)


def unique(name: str) -> str:
    return f"{secrets.token_hex(4)}/{name}"


def download(user: User, url: str, quality: str | None = None) -> tuple[str, str]:
    r = user.api.post("/api/download/track", json={"url": url, **({"quality": quality} if quality else {})})
    assert r.status_code == 202, r.text
    return r.json()["data"]["job_id"], r.json()["data"]["track_id"]


def wait_job(user: User, job_id: str, statuses: tuple[str, ...] = tests_jobs.FINAL,
             timeout: float = 60.0) -> dict[str, Any]:
    return tests_jobs.wait_job(user.api, f"/api/jobs/{job_id}", statuses, timeout)


def retry(user: User, job_id: str) -> httpx.Response:
    return user.api.post(f"/api/jobs/{job_id}/retry")


def retried(user: User, job_id: str) -> dict[str, Any]:
    r = retry(user, job_id)
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"data"}
    return body["data"]


def test_retry_a_failed_download_runs_the_same_job_again(juser: User, audio_server: AudioServer) -> None:
    path = f"/missing/{unique('gone.wav')}"  # 404: fails at once, and again when retried
    old_id, track_id = download(juser, audio_server.url + path, "lossless")
    old = wait_job(juser, old_id)
    assert old["status"] == "failed" and "404" in old["error"]

    new = retried(juser, old_id)
    # The same shape as GET /api/jobs/{id}, a new id, the same kind, track and parameters plus retry_of.
    assert set(new) == set(juser.api.get(f"/api/jobs/{old_id}").json()["data"])
    assert new["id"] != old_id and new["status"] == "queued" and new["kind"] == "download"
    assert new["track_id"] == track_id and new["attempts"] == 0 and new["error"] is None
    assert new["params"] == {**old["params"], "retry_of": old_id}
    assert new["params"]["quality"] == "lossless"

    again = wait_job(juser, new["id"])
    assert again["status"] == "failed" and again["attempts"] == 1 and "404" in again["error"]
    assert audio_server.fetched(path) == 2  # the retry really ran
    assert juser.api.get(f"/api/jobs/{old_id}").json()["data"] == old  # the old job stays as it was


def test_a_retried_download_can_succeed(juser: User, audio_server: AudioServer) -> None:
    path = f"/flaky/3/{unique('Late%20Song.wav')}"  # 503 three times: the job gives up; the fourth fetch works
    old_id, track_id = download(juser, audio_server.url + path)
    old = wait_job(juser, old_id)
    assert old["status"] == "failed" and old["attempts"] == 3 and "503" in old["error"]

    new = retried(juser, old_id)
    done = wait_job(juser, new["id"])
    assert done["status"] == "completed" and done["attempts"] == 1 and done["params"]["retry_of"] == old_id
    r = juser.api.get(f"/api/tracks/{track_id}")
    assert r.status_code == 200, r.text
    track = r.json()["data"]
    assert track["audio_url"] and track["title"] == "Late Song"
    assert error_of(retry(juser, new["id"])) == (409, "job_not_retryable")  # a completed job
    third = retried(juser, old_id)  # the old one is still failed, and its retry has ended: again is fine
    assert wait_job(juser, third["id"])["status"] == "completed"


def test_retry_a_cancelled_job_and_refuse_a_running_one(juser: User, audio_server: AudioServer) -> None:
    old_id, track_id = download(juser, f"{audio_server.url}/slow/6/{unique('long.wav')}")
    wait_job(juser, old_id, ("downloading",))
    r = retry(juser, old_id)
    assert error_of(r) == (409, "job_not_retryable") and "still downloading" in r.json()["error"]
    assert juser.api.delete(f"/api/jobs/{old_id}").status_code == 200
    assert wait_job(juser, old_id)["status"] == "cancelled"

    new = retried(juser, old_id)
    assert new["params"]["retry_of"] == old_id and new["track_id"] == track_id
    # A second click while the retry is queued or running starts nothing twice.
    r = retry(juser, old_id)
    assert error_of(r) == (409, "job_already_retried") and new["id"] in r.json()["error"]
    r = retry(juser, new["id"])
    assert error_of(r) == (409, "job_not_retryable")
    assert wait_job(juser, new["id"])["status"] == "completed"
    total = juser.api.get("/api/jobs").json()["meta"]["total_count"]
    assert total == 2


def test_someone_elses_job_and_bad_ids_answer_404(jobs_server: Server, juser: User,
                                                   audio_server: AudioServer) -> None:
    job_id, _ = download(juser, f"{audio_server.url}/missing/{unique('x.wav')}")
    wait_job(juser, job_id)
    other = register(jobs_server.url)
    assert error_of(retry(other, job_id)) == (404, "not_found")
    assert error_of(retry(other, "not-a-uuid")) == (404, "not_found")
    assert error_of(retry(juser, secrets.token_hex(16))) == (404, "not_found")
    assert other.api.get("/api/jobs").json()["meta"]["total_count"] == 0
    r = httpx.post(f"{jobs_server.url}/api/jobs/{job_id}/retry")
    assert error_of(r) == (401, "unauthorized")
    # A browser session needs its CSRF token for a change, like every other.
    assert error_of(juser.browser.post(f"/api/jobs/{job_id}/retry")) == (403, "csrf_failed")
    r = juser.browser.post(f"/api/jobs/{job_id}/retry", headers={"X-CSRF-Token": juser.csrf})
    assert r.status_code == 202 and r.json()["data"]["params"]["retry_of"] == job_id


def test_filters_by_kind_and_status(juser: User, audio_server: AudioServer) -> None:
    failed, _ = download(juser, f"{audio_server.url}/missing/{unique('x.wav')}")
    wait_job(juser, failed)
    running, _ = download(juser, f"{audio_server.url}/slow/6/{unique('long.wav')}")
    wait_job(juser, running, ("downloading",))
    queued, _ = download(juser, f"{audio_server.url}/audio/{unique('next.wav')}")  # one download at a time

    def ids(**params: str) -> list[str]:
        r = juser.api.get("/api/jobs", params=params)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["data"]]

    assert ids() == [queued, running, failed]
    assert ids(status="failed") == [failed]
    assert ids(status="queued") == [queued]
    assert ids(status="downloading") == [running] == ids(status="running")
    assert ids(status="active") == [queued, running]
    assert ids(status="active", kind="download") == [queued, running]
    assert ids(status="active", kind="processing") == [] == ids(kind="analysis")
    for params, field in (({"status": "spinning"}, "status"), ({"kind": "upload"}, "kind"),
                          ({"page_size": "0"}, "page_size")):
        r = juser.api.get("/api/jobs", params=params)
        assert error_of(r) == (422, "validation_error") and field in r.json()["details"], r.json()
    for job_id in (queued, running):
        juser.api.delete(f"/api/jobs/{job_id}")
    assert ids(status="cancelled") == [queued, running]


def test_openapi_documents_retry_and_the_filters(jobs_server: Server) -> None:
    paths = httpx.get(jobs_server.url + "/openapi.json").json()["paths"]
    retry_op = paths["/api/jobs/{job_id}/retry"]["post"]
    assert {"202", "401", "403", "404", "409", "422", "429"} <= set(retry_op["responses"])
    assert "job_not_retryable" in retry_op["responses"]["409"]["description"]
    listing = paths["/api/jobs"]["get"]
    assert {"200", "401", "422", "429"} <= set(listing["responses"])
    params = {p["name"]: p for p in listing["parameters"]}
    assert "active" in str(params["status"]["schema"]) and "analysis" in str(params["kind"]["schema"])
    assert {"401", "403", "404", "409", "429"} <= set(paths["/api/jobs/{job_id}"]["delete"]["responses"])
    assert {"401", "404", "429"} <= set(paths["/api/jobs/{job_id}"]["get"]["responses"])


def test_retry_a_cancelled_separation_checks_it_like_a_new_one(server: Server, lalalai_fake: FakeLalalai) -> None:
    """A lalal.ai separation cancelled mid-way: its retry keeps model and engine, drops the old task's
    bookkeeping, and is refused (401) while the user has no license key, like a new separation."""
    user = register(server.url)
    key = new_key(lalalai_fake)
    set_key(user, key)
    track = upload_audio(user, clip_bytes(seed=7))
    before = lalalai_fake.checks_until_done
    lalalai_fake.checks_until_done = 10**9  # the task stays in progress until cancelled
    try:
        old_id = separate(user, track_id=track["id"], model="htdemucs", engine="lalalai")["job_id"]
        wait_for_task(user, old_id)
        assert user.api.delete(f"/api/jobs/{old_id}").status_code == 200
    finally:
        lalalai_fake.checks_until_done = before
    old = wait_job(user, old_id)
    assert old["status"] == "cancelled" and "lalalai_task_id" in old["params"]

    set_key(user, "")
    r = retry(user, old_id)
    assert error_of(r) == (401, "unauthorized") and "lalal.ai" in r.json()["error"]
    set_key(user, key)
    new = retried(user, old_id)
    assert new["kind"] == "processing" and new["track_id"] == track["id"]
    assert new["params"] == {"model": "htdemucs", "engine": "lalalai", "retry_of": old_id}
    done = wait_job(user, new["id"], timeout=90)
    assert done["status"] == "completed", done
    assert {s["stem_type"] for s in done["result"]["stems"]} >= {"vocals"}
    # Someone else's separation answers 404, as if it did not exist.
    assert error_of(retry(register(server.url), old_id)) == (404, "not_found")

