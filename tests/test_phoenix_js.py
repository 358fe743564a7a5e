"""The official ``phoenix`` npm client against the real server (the compatibility promise of the spec).

The client is installed at test time from the committed tests/js/package.json + package-lock.json into
the git-ignored tests/js/node_modules (``make test`` does the same with ``npm ci``). tests/js/join_job.mjs
runs the exact snippet of the spec; why it passes ``transport`` from the ``ws`` package is explained there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Server, register
from tests.fakes.audio_server import AudioServer
from tests.test_jobs import start_download, unique

JS = ROOT / "tests" / "js"


@pytest.fixture(scope="module")
def join_script() -> Path:
    if not all((JS / "node_modules" / pkg / "package.json").exists() for pkg in ("phoenix", "ws")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS, check=True,
                       timeout=300)
    return JS / "join_job.mjs"


def run_client(script: Path, server: Server, token: str, job_id: str) -> tuple[int, list[dict[str, Any]]]:
    proc = subprocess.run(["node", str(script), server.url, token, job_id], capture_output=True, text=True,
                          timeout=90, check=False)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stderr
    return proc.returncode, lines


def test_official_client_receives_progress_and_completion(jobs_server: Server, audio_server: AudioServer,
                                                          join_script: Path) -> None:
    user = register(jobs_server.url)
    job_id, track_id = start_download(user, f"{audio_server.url}/slow/4/{unique('js.wav')}")
    code, lines = run_client(join_script, jobs_server, user.token, job_id)
    assert code == 0, lines
    assert lines[0]["kind"] == "join" and lines[0]["response"]["job"]["id"] == job_id
    events = lines[1:]
    progress = [e["payload"] for e in events if e["event"] == "job:progress"]
    assert any(p["status"] == "downloading" and 0 < p["progress"] < 100 for p in progress), events
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
    done = events[-1]
    assert done["event"] == "job:completed"
    assert done["payload"]["job_id"] == job_id and done["payload"]["track_id"] == track_id
    assert done["payload"]["result"]["output_path"].startswith(f"/files/downloads/{track_id}/")


def test_official_client_cannot_join_someone_elses_job(jobs_server: Server, audio_server: AudioServer,
                                                       join_script: Path) -> None:
    owner, stranger = register(jobs_server.url), register(jobs_server.url)
    job_id, _ = start_download(owner, f"{audio_server.url}/missing/{unique('x.wav')}")
    code, lines = run_client(join_script, jobs_server, stranger.token, job_id)
    assert code == 2 and lines == [{"kind": "error", "response": {"reason": "not_found"}}]
