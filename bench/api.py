"""Throughput of ``GET /api/tracks/{id}`` next to a bare FastAPI route, in one server, in one run.

    .venv/bin/python bench/api.py            (or: make bench)

What runs:

* a server process: the real app from ``main.build_app(settings)`` (REST + NiceGUI, real SQLite file in
  a temporary data dir, rate limiting on at its real code path with limits so high they never refuse),
  plus one bench-only route ``GET /api/bench-bare`` returning ``{"status": "ok"}``, put in front of NiceGUI's
  catch-all mount. uvicorn, one worker, on 127.0.0.1, started the way ``main.py serve`` starts it.
* set-up over HTTP: register a user, create an API token, upload a short WAV -> one track.
* a load generator in its own process, so it never runs on the server's event loop: ``wrk`` when
  installed (1 thread, 32 keep-alive connections), otherwise a small asyncio HTTP/1.1 client with the same
  32 keep-alive connections. Both routes get the identical generator, duration and connection count.
* a warm-up of each route, then ROUNDS rounds alternating the two routes (order swapped each round);
  the median req/s per route is reported, and the ratio tracks/bare against its target.

Every response is checked: a single non-2xx answer (a 401 or a 429 would mean the bench measures the
wrong path) fails the run. The last line of output is one JSON object with every figure and its target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CONNECTIONS = 32
DURATION_S = 5.0
WARMUP_S = 2.0
ROUNDS = 3
TARGET_RATIO_MIN = 0.4
TIME_LIMIT_S = 115  # the whole run, start-up included; a normal one takes about 40 s
# High enough that the limiter counts every request but never refuses one.
HUGE_LIMIT = "100000000/minute"
# Under /api/ like the measured route, so both skip the browser-session cookie the pages get.
BARE_PATH = "/api/bench-bare"


# --- server process -------------------------------------------------------------------------------


def _exit_with_parent() -> None:
    """Never outlive the bench run that started this server (killed bench, broken pipe, ...)."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="bench-parent-watch", daemon=True).start()


def serve(data_dir: str, port: int) -> None:
    """The real application plus the bench-only bare route, served by one uvicorn worker."""
    _exit_with_parent()
    sys.path.insert(0, str(ROOT))
    import uvicorn
    from starlette.routing import Route

    from core.settings import Settings, set_settings
    from main import build_app

    settings = Settings(
        data_dir=Path(data_dir), host=HOST, port=port, database_url="", redis_url="", log_level="warning",
        rate_limit_api=HUGE_LIMIT, rate_limit_heavy=HUGE_LIMIT, rate_limit_login=HUGE_LIMIT,
        max_upload_mb=5,
        # `main.py serve` would also supervise a job worker process; none is needed to answer the API,
        # and on 2 cores an idle worker's polling would only add noise to both routes.
        embedded_worker=False,
    )
    set_settings(settings)
    app = build_app(settings)

    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    # A plain FastAPI route; moved to the front so NiceGUI's mount at "/" does not swallow it.
    app.add_api_route(BARE_PATH, bare, methods=["GET"], include_in_schema=False)
    route = app.router.routes.pop()
    assert isinstance(route, Route) and route.path == BARE_PATH
    app.router.routes.insert(0, route)
    # Same uvicorn arguments as ``main.serve`` (uvloop + httptools when installed).
    uvicorn.run(app, host=HOST, port=port, log_level="warning", workers=1,
                proxy_headers=True, forwarded_allow_ips="127.0.0.1")


# --- load generators (each runs in its own process) --------------------------------------------------


def run_wrk(url: str, headers: dict[str, str], seconds: float) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = re.search(r"Socket errors:.*?connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    if not rps or not total:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else float("nan"),
    }


async def _python_load(port: int, path: str, headers: dict[str, str], seconds: float) -> dict[str, float]:
    """CONNECTIONS keep-alive HTTP/1.1 connections, each sending its next request as the last one ends."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: keep-alive",
             *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    counts = {"ok": 0, "bad": 0}
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while (start := time.perf_counter()) < stop_at:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
                if match is None:
                    raise RuntimeError(f"response without content-length: {head[:200]!r}")
                await reader.readexactly(int(match.group(1)))
                counts["ok" if 200 <= status < 300 else "bad"] += 1
                latencies.append(time.perf_counter() - start)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - began
    total = counts["ok"] + counts["bad"]
    return {
        "rps": total / elapsed,
        "requests": total,
        "non_2xx": counts["bad"],
        "socket_errors": 0,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
    }


def load_main(port: int, path: str, headers_json: str, seconds: float) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_python_load(port, path, json.loads(headers_json), seconds))))


def measure(port: int, path: str, headers: dict[str, str], seconds: float, use_wrk: bool) -> dict[str, float]:
    """One fixed-duration run of the load generator against one path, in a separate process."""
    if use_wrk:
        result = run_wrk(f"http://{HOST}:{port}{path}", headers, seconds)
    else:
        proc = subprocess.run(
            [sys.executable, __file__, "--load", str(port), path, json.dumps(headers), str(seconds)],
            capture_output=True, text=True, timeout=seconds + 30, check=True,
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["non_2xx"] or result["socket_errors"]:
        raise RuntimeError(f"{path}: {result['non_2xx']} non-2xx answers, {result['socket_errors']} socket errors")
    return result


# --- orchestration ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def short_wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A mono 16-bit PCM WAV of a quiet sine, built with the standard library alone."""
    frames = int(seconds * rate)
    pcm = b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(frames))
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(pcm))
    return header + pcm


def set_up(base: str) -> tuple[str, str]:
    """Register a user, create a token, upload one track; returns (token, track_id)."""
    import httpx

    with httpx.Client(base_url=base, timeout=30) as browser:
        r = browser.post("/users/register", json={"email": "bench@example.com", "password": "bench passphrase 42"})
        r.raise_for_status()
        csrf = r.json()["data"]["csrf_token"]
        r = browser.post("/users/tokens", json={"name": "bench"}, headers={"X-CSRF-Token": csrf})
        r.raise_for_status()
        token = r.json()["data"]["token"]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=30, headers=auth) as api:
        r = api.post("/api/tracks/upload", files={"file": ("Bench Artist - Bench Tone.wav", short_wav(), "audio/wav")})
        r.raise_for_status()
        track_id = r.json()["data"]["id"]
        r = api.get(f"/api/tracks/{track_id}")
        r.raise_for_status()
        if r.json()["data"]["id"] != track_id or "x-ratelimit-remaining" not in r.headers:
            raise RuntimeError(f"unexpected track answer: {r.headers} {r.text}")
        bare = httpx.get(base + BARE_PATH, timeout=10)
        if bare.status_code != 200 or bare.json() != {"status": "ok"}:
            raise RuntimeError(f"bare route not reachable: {bare.status_code} {bare.text[:200]}")
    return token, track_id


def wait_healthy(base: str, proc: subprocess.Popen, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not start within 60 s:\n{log.read_text()}")


def bench(duration: float, rounds: int, force_python: bool) -> dict[str, object]:
    use_wrk = shutil.which("wrk") is not None and not force_python
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="stemforge-bench-"))
    port = free_port()
    log = data_dir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMFORGE_")}
    with log.open("w") as log_fh:
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(data_dir), str(port)], cwd=ROOT,
                                env=env, stdout=log_fh, stderr=subprocess.STDOUT)
    base = f"http://{HOST}:{port}"
    try:
        wait_healthy(base, proc, log)
        token, track_id = set_up(base)
        routes = {
            "tracks_get": (f"/api/tracks/{track_id}", {"Authorization": f"Bearer {token}"}),
            "bare": (BARE_PATH, {}),
        }
        for path, headers in routes.values():
            measure(port, path, headers, WARMUP_S, use_wrk)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in routes}
        for i in range(rounds):
            order = list(routes) if i % 2 == 0 else list(reversed(routes))
            for name in order:
                runs[name].append(measure(port, *routes[name], duration, use_wrk))
        if proc.poll() is not None:
            raise RuntimeError(f"server died during the run:\n{log.read_text()}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    tracks_rps, bare_rps = med("tracks_get", "rps"), med("bare", "rps")
    ratio = tracks_rps / bare_rps if bare_rps else 0.0
    return {
        "bench": "api",
        "tracks_get_rps": round(tracks_rps, 1),
        "bare_rps": round(bare_rps, 1),
        "ratio": round(ratio, 3),
        "target_ratio_min": TARGET_RATIO_MIN,
        "meets_target": ratio >= TARGET_RATIO_MIN,
        "tracks_get_p50_ms": round(med("tracks_get", "p50_ms"), 2),
        "bare_p50_ms": round(med("bare", "p50_ms"), 2),
        "tracks_get_rps_runs": [round(r["rps"], 1) for r in runs["tracks_get"]],
        "bare_rps_runs": [round(r["rps"], 1) for r in runs["bare"]],
        "generator": "wrk" if use_wrk else "python-asyncio",
        "connections": CONNECTIONS,
        "duration_s": duration,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        # Other work on the machine skews both routes; a high figure here means: run it again.
        "loadavg_1m_before": round(load_before, 2),
    }


def report(result: dict[str, object]) -> None:
    print(f"StemForge API bench: {result['generator']}, {result['connections']} keep-alive connections, "
          f"{result['rounds']} x {result['duration_s']:g} s per route, median of rounds, {result['cpus']} CPUs, "
          f"load average {result['loadavg_1m_before']} before the run")
    print()
    print(f"{'route':<36}{'req/s':>10}{'p50 ms':>10}   runs")
    print(f"{'GET /api/tracks/{id} (bearer)':<36}{result['tracks_get_rps']:>10.1f}{result['tracks_get_p50_ms']:>10.2f}"
          f"   {result['tracks_get_rps_runs']}")
    print(f"{'GET ' + BARE_PATH + ' (bare FastAPI)':<36}{result['bare_rps']:>10.1f}{result['bare_p50_ms']:>10.2f}"
          f"   {result['bare_rps_runs']}")
    print()
    verdict = "OK" if result["meets_target"] else "BELOW TARGET"
    print(f"ratio tracks/bare: {result['ratio']:.3f}   target >= {result['target_ratio_min']}   {verdict}")
    print(json.dumps(result))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=DURATION_S, help="seconds per measured run")
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT"), help=argparse.SUPPRESS)
    p.add_argument("--load", nargs=4, metavar=("PORT", "PATH", "HEADERS", "SECONDS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    if args.load:
        load_main(int(args.load[0]), args.load[1], args.load[2], float(args.load[3]))
        return 0
    # SIGTERM ends the run through the finally blocks (server stopped, temp dir removed); so does the
    # overall time limit, whatever hangs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def out_of_time(*_: object) -> None:
        raise TimeoutError(f"bench still running after {TIME_LIMIT_S} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(TIME_LIMIT_S)
    result = bench(args.duration, args.rounds, args.python_load)
    signal.alarm(0)
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
