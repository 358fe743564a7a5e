"""Scale-out: one web process and two worker processes sharing Redis (queue + event log) and PostgreSQL.

Needs PostgreSQL (127.0.0.1:5432, database ``test``, trust auth) and Redis (127.0.0.1:6379), which
``make test`` starts (tests/scripts/services.sh). Each run uses a throw-away database and its own Redis
key prefix, removed afterwards, so runs never collide.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from tests.conftest import ROOT, Server, _pg_admin, register, start_server, stop_server
from tests.fakes.audio_server import AudioServer
from tests.phoenix import PhxClient
from tests.test_jobs import start_download, unique, wait_job

PG_BASE = os.environ.get("STEMFORGE_TEST_DATABASE_URL") or "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
JOBS = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[subprocess.Popen], str, str]]:
    name = f"stemforge_scale_{secrets.token_hex(4)}"
    _pg_admin(PG_BASE, f'CREATE DATABASE "{name}"')
    db_url = PG_BASE.rsplit("/", 1)[0] + "/" + name
    prefix = f"sftest{secrets.token_hex(4)}"
    tmp = tmp_path_factory.mktemp("scale")
    web = start_server(tmp, db_url, redis_url=REDIS_URL, redis_prefix=prefix, embedded_worker="false",
                       rate_limit_api="100000/minute", rate_limit_heavy="100000/minute",
                       rate_limit_login="100000/minute", queue_concurrency='{"download": 1}')
    workers = []
    for i in (1, 2):
        log = (tmp / f"worker{i}.log").open("w")
        workers.append(subprocess.Popen([sys.executable, "main.py", "worker"], cwd=ROOT, env=web.env, stdout=log,
                                        stderr=subprocess.STDOUT))
    yield web, workers, db_url, prefix
    for proc in workers:
        proc.terminate()
    for proc in workers:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    stop_server(web)
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)
    _pg_admin(PG_BASE, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _worker_ids(db_url: str, job_ids: list[str]) -> dict[str, str]:
    async def query() -> dict[str, str]:
        conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            rows = await conn.fetch("SELECT id::text, worker_id FROM job WHERE id::text = ANY($1)", job_ids)
            return {r["id"]: r["worker_id"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(query())


def test_two_workers_share_a_batch_and_every_event_reaches_the_socket(cluster, audio_server: AudioServer) -> None:
    web, workers, db_url, prefix = cluster
    user = register(web.url)
    jobs = [start_download(user, f"{audio_server.url}/slow/1/{unique('batch.wav')}")[0] for _ in range(JOBS)]
    with PhxClient(web.url, user.token) as client:
        for job_id in jobs:
            client.join(f"jobs:{job_id}", {"since": 0})
        received: dict[str, list[dict]] = {job_id: [] for job_id in jobs}
        finished: set[str] = set()
        while len(finished) < JOBS:
            for frame in client.events(timeout=60, heartbeat_s=10):
                job_id = frame[2].split(":", 1)[1]
                received[job_id].append({"event": frame[3], **frame[4]})
                if frame[3] in ("job:completed", "job:failed"):
                    finished.add(job_id)

    assert all(p.poll() is None for p in workers)
    for job_id in jobs:
        assert wait_job(user, job_id)["status"] == "completed"
    owners = _worker_ids(db_url, jobs)
    pids = {wid.split(":")[1] for wid in owners.values()}
    assert pids == {str(p.pid) for p in workers}, owners  # both workers took part

    # Every event of the durable log (the Redis Stream of each job) reached the client, in order.
    stream = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    for job_id in jobs:
        logged = [int(entry_id.split("-")[0]) for entry_id, _ in stream.xrange(f"{prefix}:events:job:{job_id}")]
        got = [e["seq"] for e in received[job_id]]
        assert got == logged and len(got) >= 4, (job_id, got, logged)
        statuses = [e["status"] for e in received[job_id] if e["event"] == "job:progress"]
        assert statuses[0] == "queued" and statuses[-1] == "completed" and "downloading" in statuses
    assert Path(web.data_dir / "uploads" / "downloads").is_dir()
