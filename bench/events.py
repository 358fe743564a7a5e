"""Job-event latency, worker progress call -> /socket client, on the SQLite default and on Redis.

    .venv/bin/python bench/events.py          (about 40 s; needs Redis on 127.0.0.1:6379 for the Redis half)

What runs, for each event-log backend (SQL table on SQLite, then Redis Stream):

* the real server (``python main.py serve``) on a fresh data dir, without its embedded worker;
* a job created over HTTP (``POST /api/download/track``), left queued;
* a "worker": this script re-invoked as a subprocess (``--worker``) that takes the job the way a worker
  does (``core.jobs.start_attempt``) and calls the real progress callback of ``workers.runner``
  (``_Progress``: its data loop, conditional UPDATE and event-log append) every few milliseconds, with
  ``time.time()`` of the call in the message;
* latency: one /socket client (Phoenix v2 frames over ``websockets``) joined to the job records
  ``arrival - call`` for each of ``--events`` (600) progress events: p50 / p95 / p99;
* fan-out: 200 concurrent /socket clients join one job; the worker sends 100 events; counted: clients
  that received every one of them, in order;
* baseline, same server, same run: the /socket round trip of a ``heartbeat`` (client -> server ->
  client), the transport floor under any event latency.

The last line is one JSON object with every figure and its target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIS_URL = "redis://127.0.0.1:6379/0"
TARGETS = {"sqlite_p95_ms": 100.0, "redis_p95_ms": 25.0, "fanout_clients_complete": 200}
FANOUT_CLIENTS = 200
FANOUT_EVENTS = 100


# --- the worker side (subprocess) --------------------------------------------------------------------


def worker_main(job_id: str, count: int, interval: float) -> None:
    from core import jobs
    from core.events import event_log_from_settings
    from core.lifecycle import startup
    from core.settings import get_settings
    from data.files import FileStore
    from workers.runner import DataLoop, JobRunner, _Progress

    settings = get_settings()
    data = DataLoop().start()
    data.run(startup(settings))
    runner = JobRunner(settings, data, event_log_from_settings(settings), FileStore(settings.uploads_dir),
                       f"bench:{os.getpid()}:0")
    claim = runner.db_log(jobs.start_attempt, uuid.UUID(job_id), runner.worker_id)
    assert claim is not None, "job not queued"
    progress = _Progress(runner, claim)
    time.sleep(0.5)  # clients see the "Starting" event first
    for i in range(count):
        progress(i * 99 // count, f"t={time.time():.6f} i={i}")
        time.sleep(interval)
    runner.db_log(jobs.complete, claim, {})
    data.run(runner.events.close())


def run_worker(server, job_id: str, count: int, interval: float) -> subprocess.Popen:  # noqa: ANN001
    return subprocess.Popen([sys.executable, __file__, "--worker", job_id, str(count), str(interval)],
                            cwd=ROOT, env=server.env)


# --- the client side --------------------------------------------------------------------------------


def ws_url(server, token: str) -> str:  # noqa: ANN001
    return server.url.replace("http://", "ws://") + f"/socket/websocket?vsn=2.0.0&token={token}"


async def follow(url: str, job_id: str, joined: asyncio.Queue,
                 limit_s: float = 120.0) -> list[tuple[float, int, float]]:
    """Join, then collect (sent_at, i, arrived_at) of every bench progress event until job:completed."""
    from websockets.asyncio.client import connect

    got: list[tuple[float, int, float]] = []
    async with connect(url, ping_interval=None, max_queue=None, open_timeout=60, proxy=None) as ws:
        await ws.send(json.dumps(["1", "1", f"jobs:{job_id}", "phx_join", {}]))
        reply = json.loads(await ws.recv())
        assert reply[4]["status"] == "ok", reply
        await joined.put(1)
        deadline = time.monotonic() + limit_s
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            now = time.time()
            if frame[3] == "job:completed":
                return got
            message = frame[4].get("message", "")
            if frame[3] == "job:progress" and message.startswith("t="):
                sent, i = message[2:].split(" i=")
                got.append((float(sent), int(i), now))


async def heartbeat_rtt(url: str, rounds: int = 200) -> list[float]:
    from websockets.asyncio.client import connect

    out = []
    async with connect(url, ping_interval=None, proxy=None) as ws:
        for n in range(rounds):
            start = time.perf_counter()
            await ws.send(json.dumps([None, str(n), "phoenix", "heartbeat", {}]))
            await ws.recv()
            out.append((time.perf_counter() - start) * 1000)
    return out


async def measure(server, user, events: int, interval: float) -> dict:  # noqa: ANN001
    from tests.test_jobs import start_download

    url = ws_url(server, user.token)
    # Latency: one client, `events` events.
    job_id, _ = start_download(user, "http://127.0.0.1:9/bench.wav")  # never fetched: no worker takes it
    joined: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(follow(url, job_id, joined))
    await joined.get()
    worker = run_worker(server, job_id, events, interval)
    got = await task
    worker.wait(timeout=60)
    lat = sorted((arrived - sent) * 1000 for sent, _, arrived in got)
    q = statistics.quantiles(lat, n=100, method="inclusive")

    # Fan-out: 200 clients, one job.
    job_id, _ = start_download(user, "http://127.0.0.1:9/fanout.wav")
    joined = asyncio.Queue()
    sem = asyncio.Semaphore(50)

    async def one() -> list[tuple[float, int, float]]:
        async with sem:
            pass
        return await follow(url, job_id, joined)

    tasks = [asyncio.create_task(one()) for _ in range(FANOUT_CLIENTS)]
    for _ in range(FANOUT_CLIENTS):
        await joined.get()
    worker = run_worker(server, job_id, FANOUT_EVENTS, 0.01)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    worker.wait(timeout=60)
    complete = sum(1 for r in results if isinstance(r, list) and [i for _, i, _ in r] == list(range(FANOUT_EVENTS)))
    fan_lat = sorted((a - s) * 1000 for r in results if isinstance(r, list) for s, _, a in r)
    rtt = await heartbeat_rtt(url)
    return {
        "events": len(lat), "lost": events - len(lat),
        "p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2), "p99_ms": round(q[98], 2),
        "fanout_clients": FANOUT_CLIENTS, "fanout_clients_complete": complete,
        "fanout_p95_ms": round(statistics.quantiles(fan_lat, n=100, method="inclusive")[94], 2) if fan_lat else None,
        "ws_rtt_p50_ms": round(statistics.median(rtt), 3),
    }


def run_backend(name: str, events: int, interval: float) -> dict:
    from tests.conftest import register, start_server, stop_server

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-events-{name}-"))
    extra = {"embedded_worker": "false", "rate_limit_api": "100000000/minute",
             "rate_limit_heavy": "100000000/minute", "rate_limit_login": "100000000/minute",
             "socket_heartbeat_timeout_s": "600"}
    prefix = ""
    if name == "redis":
        prefix = f"sfbench{secrets.token_hex(4)}"
        extra.update(redis_url=REDIS_URL, redis_prefix=prefix)
    server = start_server(tmp, "", **extra)
    try:
        user = register(server.url)
        return asyncio.run(measure(server, user, events, interval))
    finally:
        stop_server(server)
        if prefix:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(f"*{prefix}*"):
                client.delete(key)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=600)
    p.add_argument("--interval", type=float, default=0.005, help="seconds between progress calls")
    p.add_argument("--worker", nargs=3, metavar=("JOB_ID", "COUNT", "INTERVAL"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker_main(args.worker[0], int(args.worker[1]), float(args.worker[2]))
        return
    results = {name: run_backend(name, args.events, args.interval) for name in ("sqlite", "redis")}
    print(f"{'backend':8} {'events':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'target p95':>10} "
          f"{'p95/target':>10} {'ws rtt p50':>10} {'p50/rtt':>8} {'fan-out complete':>17}")
    for name, r in results.items():
        target = TARGETS[f"{name}_p95_ms"]
        print(f"{name:8} {r['events']:>6} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} {target:>10} "
              f"{r['p95_ms'] / target:>10.2f} {r['ws_rtt_p50_ms']:>10} {r['p50_ms'] / r['ws_rtt_p50_ms']:>8.1f} "
              f"{r['fanout_clients_complete']:>7} of {r['fanout_clients']}")
    summary = {"targets": TARGETS, **results,
               "ok": all(results[n]["p95_ms"] < TARGETS[f"{n}_p95_ms"] for n in results)
               and all(r["fanout_clients_complete"] == FANOUT_CLIENTS for r in results.values())}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
