"""Jobs end to end: the real server with its embedded worker, real yt-dlp against a local audio server.

Covers the state machine (progress, completion, retry of a transient fault with backoff, immediate
failure of bad input, cancel of a queued and of a running job), the jobs REST routes and the download
routes. The /socket protocol has its own module (test_socket.py).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

import tests.jobs as tests_jobs
from tests.audio import stored_files
from tests.conftest import Server, User, error_of, register
from tests.fakes.audio_server import AudioServer
from tests.jobs import FINAL
from tests.phoenix import PhxClient

pytestmark = pytest.mark.postgres



def start_download(user: User, url: str, quality: str | None = None) -> tuple[str, str]:
    body: dict[str, Any] = {"url": url}
    if quality:
        body["quality"] = quality
    r = user.api.post("/api/download/track", json=body)
    assert r.status_code == 202, r.text
    data = r.json()["data"]
    assert data["status"] == "queued"
    return data["job_id"], data["track_id"]




@pytest.fixture
def juser(jobs_server: Server) -> User:
    return register(jobs_server.url)


def unique(name: str) -> str:
    return f"{secrets.token_hex(4)}/{name}"


def test_download_job_streams_progress_and_completes(jobs_server: Server, juser: User,
                                                     audio_server: AudioServer) -> None:
    job_id, track_id = start_download(juser, f"{audio_server.url}/slow/1.5/Night%20Drive.wav")
    with PhxClient(jobs_server.url, juser.token) as client:
        _, reply = client.join(f"jobs:{job_id}", {"since": 0})
        assert reply[4]["status"] == "ok"
        frames = client.events()
    events = [(f[3], f[4]) for f in frames]
    assert events[-1][0] == "job:completed"
    progress = [p for e, p in events if e == "job:progress"]
    assert progress[0]["status"] == "queued"
    assert {p["status"] for p in progress} >= {"queued", "downloading", "completed"}
    running = [p["progress"] for p in progress if p["status"] == "downloading"]
    assert running == sorted(running) and len(set(running)) > 2, running  # real, monotonic progress
    assert all(isinstance(p["progress"], int) and 0 <= p["progress"] <= 100 for p in progress)
    seqs = [p["seq"] for _, p in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    done = events[-1][1]
    assert done["job_id"] == job_id and done["job_type"] == "download" and done["track_id"] == track_id
    assert done["result"]["output_path"].startswith(f"/files/downloads/{track_id}/")
    assert done["result"]["output_path"].endswith(".mp3") and done["result"]["file_size"] > 1000

    status = juser.api.get(f"/api/download/job/{job_id}").json()["data"]
    assert status == {"id": job_id, "status": "completed", "progress": 100, "error": None,
                      "output_path": done["result"]["output_path"], "file_size": done["result"]["file_size"]}
    track = juser.api.get(f"/api/tracks/{track_id}").json()["data"]
    assert track["title"] == "Night Drive" and track["audio_format"] == "mp3"
    assert track["file_size"] == done["result"]["file_size"] and track["duration"] == 2
    files = stored_files(jobs_server.data_dir / "uploads" / "downloads" / track_id)
    assert files == ["Night Drive.mp3"]  # no partial files left behind


def test_lossless_quality_gives_flac(juser: User, audio_server: AudioServer) -> None:
    job_id, track_id = start_download(juser, f"{audio_server.url}/audio/{unique('tone.wav')}", "lossless")
    job = wait_job(juser, job_id)
    assert job["status"] == "completed", job
    assert juser.api.get(f"/api/tracks/{track_id}").json()["data"]["audio_format"] == "flac"


def test_transient_fault_retries_with_backoff(juser: User, audio_server: AudioServer) -> None:
    path = f"/flaky/2/{unique('song.wav')}"  # 503 twice, then the file
    job_id, _ = start_download(juser, audio_server.url + path)
    job = wait_job(juser, job_id)
    assert job["status"] == "completed", job
    assert job["attempts"] == 3 and job["error"] is None
    assert audio_server.fetched(path) >= 3


def test_transient_fault_gives_up_after_three_attempts(jobs_server: Server, juser: User,
                                                      audio_server: AudioServer) -> None:
    path = f"/flaky/100/{unique('song.wav')}"
    job_id, _ = start_download(juser, audio_server.url + path)
    with PhxClient(jobs_server.url, juser.token) as client:
        client.join(f"jobs:{job_id}", {"since": 0})
        frames = client.events()
    job = wait_job(juser, job_id)
    assert job["status"] == "failed" and job["attempts"] == 3
    assert "503" in job["error"] and "3 attempts" in job["error"] and "Traceback" not in job["error"]
    assert audio_server.fetched(path) == 3
    retries = [f[4]["message"] for f in frames if f[3] == "job:progress" and "retrying in" in f[4]["message"]]
    assert len(retries) == 2 and "0.3 s" in retries[0] and "0.6 s" in retries[1]  # exponential backoff
    assert frames[-1][3] == "job:failed" and frames[-1][4]["error"] == job["error"]
    assert frames[-1][4]["job_type"] == "download"


@pytest.mark.parametrize(("path", "words"), [
    ("/missing/{}", "404"),
    ("/page/{}", "No audio was found"),
    ("/garbage/{}", "not audio"),
])
def test_bad_input_fails_at_once(juser: User, audio_server: AudioServer, path: str, words: str) -> None:
    url_path = path.format(unique("x.wav" if "page" not in path else "x.html"))
    job_id, track_id = start_download(juser, audio_server.url + url_path)
    job = wait_job(juser, job_id)
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert words in job["error"] and "Traceback" not in job["error"]
    assert juser.api.get(f"/api/download/job/{job_id}").json()["data"]["error"] == job["error"]
    track_dir = juser.api.get(f"/api/tracks/{track_id}").json()["data"]
    assert track_dir["audio_url"] is None


def test_cancel_queued_and_running_jobs(jobs_server: Server, juser: User, audio_server: AudioServer) -> None:
    running_id, running_track = start_download(juser, f"{audio_server.url}/slow/8/{unique('long.wav')}")
    wait_job(juser, running_id, ("downloading",))
    time.sleep(0.5)  # some bytes on disk
    queued_path = f"/audio/{unique('never.wav')}"
    queued_id, _ = start_download(juser, audio_server.url + queued_path)  # one download at a time: waits
    assert juser.api.get(f"/api/jobs/{queued_id}").json()["data"]["status"] == "queued"

    with PhxClient(jobs_server.url, juser.token) as client:
        client.join(f"jobs:{running_id}")
        r = juser.api.delete(f"/api/jobs/{queued_id}")
        assert r.status_code == 200 and r.json()["data"]["status"] == "cancelled"
        r = juser.api.delete(f"/api/jobs/{running_id}")
        assert r.status_code == 200 and r.json()["data"]["status"] == "cancelled"
        # A progress point the worker recorded just before the cancel may still be on its way; the
        # cancel is the next status after it, and nothing the worker reports comes after that.
        statuses = [client.events(until="job:progress", timeout=10)[-1][4]["status"]]
        while statuses[-1] == "downloading":
            statuses.append(client.events(until="job:progress", timeout=10)[-1][4]["status"])
        assert statuses[-1] == "cancelled", statuses
        with pytest.raises(TimeoutError):
            client.events(until="job:progress", timeout=1.5)

    deadline = time.monotonic() + 10
    track_dir = jobs_server.data_dir / "uploads" / "downloads" / running_track
    while track_dir.exists() and any(track_dir.iterdir()):  # the worker removes the partial files
        assert time.monotonic() < deadline, list(track_dir.iterdir())
        time.sleep(0.1)
    time.sleep(1.5)  # the worker is free now: a cancelled queued job must still never start
    queued = juser.api.get(f"/api/jobs/{queued_id}").json()["data"]
    assert queued["status"] == "cancelled" and queued["attempts"] == 0 and queued["started_at"] is None
    assert audio_server.fetched(queued_path) == 0
    assert juser.api.get(f"/api/jobs/{running_id}").json()["data"]["status"] == "cancelled"
    assert error_of(juser.api.delete(f"/api/jobs/{running_id}")) == (409, "job_finished")


def test_list_filter_and_paginate(juser: User, audio_server: AudioServer) -> None:
    ids = [start_download(juser, f"{audio_server.url}/missing/{unique('x.wav')}")[0] for _ in range(3)]
    for job_id in ids:
        wait_job(juser, job_id)
    r = juser.api.get("/api/jobs", params={"page_size": 2})
    body = r.json()
    assert r.status_code == 200
    assert body["meta"] == {"page": 1, "page_size": 2, "total_count": 3, "total_pages": 2}
    assert [j["id"] for j in body["data"]] == ids[::-1][:2]  # newest first
    page2 = juser.api.get("/api/jobs", params={"page_size": 2, "page": 2}).json()
    assert [j["id"] for j in page2["data"]] == [ids[0]]
    assert juser.api.get("/api/jobs", params={"status": "failed", "kind": "download"}).json()["meta"][
        "total_count"] == 3
    assert juser.api.get("/api/jobs", params={"status": "completed"}).json()["data"] == []
    assert juser.api.get("/api/jobs", params={"kind": "analysis"}).json()["data"] == []
    r = juser.api.get("/api/jobs", params={"status": "spinning"})
    assert error_of(r) == (422, "validation_error") and "status" in r.json()["details"]


def test_other_users_jobs_answer_not_found(jobs_server: Server, juser: User, audio_server: AudioServer) -> None:
    job_id, _ = start_download(juser, f"{audio_server.url}/missing/{unique('x.wav')}")
    other = register(jobs_server.url)
    for method, path in [("GET", f"/api/jobs/{job_id}"), ("DELETE", f"/api/jobs/{job_id}"),
                         ("GET", f"/api/download/job/{job_id}"), ("GET", "/api/jobs/not-a-uuid")]:
        assert error_of(other.api.request(method, path)) == (404, "not_found"), path
    assert other.api.get("/api/jobs").json()["meta"]["total_count"] == 0
    assert error_of(juser.api.get(f"/api/jobs/{secrets.token_hex(16)}")) == (404, "not_found")


def test_download_request_validation(juser: User) -> None:
    cases = [({}, "url"), ({"url": "ftp://example.com/a.wav"}, "url"),
             ({"url": "https://example.com/a.wav", "quality": "ultra"}, "quality"),
             ({"url": "https://example.com/a.wav", "source_url": "https://example.com/b.wav"}, "source_url")]
    for body, field in cases:
        r = juser.api.post("/api/download/track", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.json()["details"], r.json()
    assert juser.api.get("/api/jobs").json()["meta"]["total_count"] == 0


def wait_job(user: User, job_id: str, statuses: tuple[str, ...] = FINAL, timeout: float = 40.0) -> dict[str, Any]:
    return tests_jobs.wait_job(user.api, f"/api/jobs/{job_id}", statuses, timeout)
