"""Following jobs from tests: poll a job route until it ends, or read its events over /socket."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.phoenix import PhxClient

FINAL = ("completed", "failed", "cancelled")


def wait_job(api: httpx.Client, path: str, statuses: tuple[str, ...] = FINAL, timeout: float = 60.0) -> dict[str, Any]:
    """Poll ``path`` (e.g. /api/jobs/ID) until the job's status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        r = api.get(path)
        assert r.status_code == 200, r.text
        job = r.json()["data"]
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job stuck in {job['status']}: {job}"
        time.sleep(0.1)


def follow_job(base_url: str, token: str, job_id: str, timeout: float = 90.0) -> list[tuple[str, dict[str, Any]]]:
    """Every event of the job from the start up to job:completed / job:failed, over /socket."""
    with PhxClient(base_url, token) as client:
        _, reply = client.join(f"jobs:{job_id}", {"since": 0})
        assert reply[4]["status"] == "ok", reply
        frames = client.events(timeout=timeout)
    return [(f[3], f[4]) for f in frames]
