"""Workers that die mid-job never leave a job spinning; the embedded worker is restarted; idle sockets close;
``worker --workers N`` runs and stops N processes.

A server of its own: its worker gets killed here, and its heartbeats and socket timeout are short.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audio import stored_files
from tests.conftest import ROOT, Server, User, register, start_server, stop_server
from tests.fakes.audio_server import AudioServer
from tests.phoenix import PhxClient
from tests.test_jobs import start_download, unique, wait_job


@pytest.fixture(scope="module")
def rserver(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("recovery"), database_url,
        rate_limit_api="100000/minute", rate_limit_heavy="100000/minute", rate_limit_login="100000/minute",
        queue_concurrency='{"download": 1}', worker_heartbeat_s="0.5", worker_stale_after_s="5",
        worker_recovery_interval_s="1", socket_heartbeat_timeout_s="1.5",
    )
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def ruser(rserver: Server) -> User:
    return register(rserver.url)


def worker_pid(server: Server, not_pid: int | None = None, timeout: float = 20.0) -> int:
    """The embedded worker: the child of the server process running `main.py worker`."""
    deadline = time.monotonic() + timeout
    while True:
        # Children are listed per spawning thread (the supervisor runs in a thread of its own).
        children = [c for task in Path(f"/proc/{server.proc.pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
        for child in map(int, children):
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if b"worker" in cmd and child != not_pid:
                return child
        assert time.monotonic() < deadline, "no (new) embedded worker process"
        time.sleep(0.1)


def wait_progress(user: User, job_id: str, timeout: float = 20.0, attempt: int = 1) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = user.api.get(f"/api/jobs/{job_id}").json()["data"]
        if job["status"] == "downloading" and job["progress"] > 0 and job["attempts"] == attempt:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_sigkilled_worker_job_is_requeued_and_completes(rserver: Server, ruser: User,
                                                        audio_server: AudioServer) -> None:
    job_id, track_id = start_download(ruser, f"{audio_server.url}/slow/3/{unique('killed.wav')}")
    wait_progress(ruser, job_id)
    old = worker_pid(rserver)
    os.kill(old, signal.SIGKILL)
    with PhxClient(rserver.url, ruser.token) as client:  # "since" replays what happened before joining
        client.join(f"jobs:{job_id}", {"since": 0})
        frames = client.events(timeout=60, heartbeat_s=0.5)
    assert worker_pid(rserver, not_pid=old) != old  # the supervisor started a new worker
    job = wait_job(ruser, job_id)
    assert job["status"] == "completed" and job["attempts"] == 2, job
    requeued = [f[4] for f in frames if f[3] == "job:progress" and "worker stopped" in f[4]["message"]]
    assert requeued and requeued[0]["status"] == "queued"
    assert frames[-1][3] == "job:completed"
    files = stored_files(rserver.data_dir / "uploads" / "downloads" / track_id)
    assert files == ["killed.mp3"]  # the first attempt's partial files are gone too


def test_worker_killed_on_every_attempt_fails_the_job(rserver: Server, ruser: User,
                                                      audio_server: AudioServer) -> None:
    job_id, _ = start_download(ruser, f"{audio_server.url}/slow/3/{unique('doomed.wav')}")
    for attempt in (1, 2, 3):
        wait_progress(ruser, job_id, timeout=30, attempt=attempt)
        os.kill(worker_pid(rserver), signal.SIGKILL)
        time.sleep(0.2)
    job = wait_job(ruser, job_id, timeout=30)
    assert job["status"] == "failed" and "worker running this job stopped" in job["error"], job


def test_stopped_worker_hands_its_job_back(rserver: Server, ruser: User, audio_server: AudioServer) -> None:
    job_id, _ = start_download(ruser, f"{audio_server.url}/slow/3/{unique('handed.wav')}")
    wait_progress(ruser, job_id)
    os.kill(worker_pid(rserver), signal.SIGTERM)  # graceful: the attempt does not count
    job = wait_job(ruser, job_id, timeout=40)
    assert job["status"] == "completed" and job["attempts"] == 1, job


def test_silent_socket_is_disconnected_and_heartbeats_keep_it(rserver: Server, ruser: User) -> None:
    with PhxClient(rserver.url, ruser.token) as quiet, PhxClient(rserver.url, ruser.token) as lively:
        started = time.monotonic()
        for _ in range(8):  # 2.4 s of heartbeats every 0.3 s: longer than the 1.5 s timeout
            assert lively.reply_to(lively.send(None, "phoenix", "heartbeat"))[4]["status"] == "ok"
            time.sleep(0.3)
        from websockets.exceptions import ConnectionClosed

        with pytest.raises(ConnectionClosed):
            quiet.recv(timeout=5)
        assert time.monotonic() - started < 6
        assert lively.reply_to(lively.send(None, "phoenix", "heartbeat"))[4]["status"] == "ok"


def test_worker_pool_runs_n_processes_and_stops_them_all(tmp_path: Path) -> None:
    env = {**os.environ, "STEMFORGE_DATA_DIR": str(tmp_path), "STEMFORGE_DATABASE_URL": "",
           "STEMFORGE_LOG_LEVEL": "info"}
    log = (tmp_path / "pool.log").open("w")
    pool = subprocess.Popen([sys.executable, "main.py", "worker", "--workers", "2"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while (tmp_path / "pool.log").read_text().count("ready:") < 2:  # both migrated the fresh database
            assert pool.poll() is None and time.monotonic() < deadline, (tmp_path / "pool.log").read_text()
            time.sleep(0.2)
        children = [int(c) for task in Path(f"/proc/{pool.pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
        assert len(children) == 2
    finally:
        pool.terminate()
        assert pool.wait(timeout=30) == 0
    assert all(not Path(f"/proc/{c}").exists() for c in children)
    assert "Traceback" not in (tmp_path / "pool.log").read_text()
