"""A download job end to end against yt-dlp + ffmpeg alone, on the same input, in the same run.

    .venv/bin/python bench/download.py        (about 60 s; --runs N, --seconds S, --quality Q)

What runs:

* input: a 3-minute 44.1 kHz 16-bit stereo WAV (a chord with vibrato, a bass line and noise hits, so the
  MP3 encoder works as on music), served over plain HTTP on 127.0.0.1 with Content-Length and Range
  (tests/fakes/audio_server.py), each run under a new path so nothing is cached;
* job: the real server (``python main.py serve``, its embedded worker, SQLite) on a fresh data dir; the
  clock runs from just before ``POST /api/download/track`` (``quality=high``: MP3 320 kbps) until the
  ``job:completed`` frame reaches a ``/socket`` client joined to the job. That includes the request,
  the queue, the worker's download (yt-dlp), conversion (ffmpeg from imageio-ffmpeg), probe, tagging,
  the database updates and the event's way back;
* baseline: ``yt_dlp.YoutubeDL`` in this process with the same format and ``FFmpegExtractAudio``
  settings (MP3 320 kbps, the same ffmpeg), on the same URL form — the work any download must do.

One warm-up of each (imports, first connections), then ``--runs`` rounds alternating which goes first;
medians are compared. ``ratio = job / baseline``; target at most 1.15. The job's own timestamps split its
time into queue wait (created -> started), run (started -> finished) and notification (finished ->
frame at the client). The last line is one JSON object with every figure and its target.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.15
SR = 44100


def music_wav(seconds: float) -> bytes:
    """Something an encoder treats like music: a moving chord, a bass line and noise hits."""
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * SR)) / SR
    vibrato = 0.003 * np.sin(2 * np.pi * 5 * t)
    left = sum(0.12 * np.sin(2 * np.pi * f * t * (1 + vibrato)) for f in (220.0, 277.2, 329.6, 440.0))
    bass = 0.2 * np.sin(2 * np.pi * 55 * (1 + (np.floor(t * 2) % 4) / 4) * t)
    hits = rng.normal(0, 0.15, t.size) * (np.mod(t, 0.5) < 0.05)
    right = np.roll(left, 441)
    audio = np.stack([left + bass + hits, right + bass + hits], axis=1)
    audio = (audio / np.max(np.abs(audio)) * 0.8).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def baseline(url: str, out_dir: Path, quality: str) -> float:
    """yt-dlp + ffmpeg alone: the downloader's format and conversion settings, no job around them."""
    import yt_dlp

    from core.audio_io import ffmpeg_exe
    from core.downloader import QUALITIES

    codec, bitrate = QUALITIES[quality]
    pp = {"key": "FFmpegExtractAudio", "preferredcodec": codec, **({"preferredquality": bitrate} if bitrate else {})}
    opts = {"format": "bestaudio/best", "outtmpl": str(out_dir / "source.%(ext)s"), "noplaylist": True,
            "quiet": True, "no_warnings": True, "noprogress": True, "retries": 0, "cachedir": False,
            "ffmpeg_location": ffmpeg_exe(), "postprocessors": [pp]}
    start = time.perf_counter()
    with yt_dlp.YoutubeDL(opts) as ydl:
        info = ydl.extract_info(url, download=True)
    elapsed = time.perf_counter() - start
    produced = Path(info["requested_downloads"][0]["filepath"])
    assert produced.suffix == f".{codec}" and produced.stat().st_size > 100_000, produced
    return elapsed


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def job(server, user, url: str, quality: str) -> dict[str, float]:  # noqa: ANN001
    """Seconds from POST to the job:completed frame, and where they went."""
    from tests.phoenix import PhxClient

    with PhxClient(server.url, user.token) as client:
        start_wall = time.time()
        start = time.perf_counter()
        r = user.api.post("/api/download/track", json={"url": url, "quality": quality})
        assert r.status_code == 202, r.text
        job_id = r.json()["data"]["job_id"]
        client.join(f"jobs:{job_id}", {"since": 0})
        frames = client.events(timeout=300)
        elapsed = time.perf_counter() - start
        arrived = time.time()
    assert frames[-1][3] == "job:completed", frames[-1]
    row = user.api.get(f"/api/jobs/{job_id}").json()["data"]
    created, started, finished = _ts(row["created_at"]), _ts(row["started_at"]), _ts(row["finished_at"])
    return {"total": elapsed, "request": created - start_wall, "queue": started - created,
            "run": finished - started, "notify": arrived - finished,
            "progress_events": sum(1 for f in frames if f[3] == "job:progress")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=180.0, help="length of the track")
    ap.add_argument("--quality", default="high", choices=["lossless", "high", "medium", "low"])
    args = ap.parse_args()

    from tests.conftest import register, start_server, stop_server
    from tests.fakes.audio_server import AudioServer

    source = AudioServer(seconds=0.1).start()
    source.wav = music_wav(args.seconds)
    tmp = Path(tempfile.mkdtemp(prefix="bench-download-"))
    (tmp / "data").mkdir()
    server = start_server(tmp / "data", "", rate_limit_api="100000000/minute",
                          rate_limit_heavy="100000000/minute", rate_limit_login="100000000/minute")
    base_times: list[float] = []
    job_runs: list[dict[str, float]] = []
    try:
        user = register(server.url)

        def url() -> str:
            return f"{source.url}/audio/{secrets.token_hex(4)}/Bench Artist - Bench Track.wav"

        out = tmp / "baseline"
        for n in range(args.runs + 1):  # run 0 is the warm-up of both
            order = ("base", "job") if n % 2 == 0 else ("job", "base")
            for which in order:
                if which == "base":
                    run_dir = out / str(n)
                    run_dir.mkdir(parents=True)
                    took = baseline(url(), run_dir, args.quality)
                    if n:
                        base_times.append(took)
                else:
                    result = job(server, user, url(), args.quality)
                    if n:
                        job_runs.append(result)
    finally:
        stop_server(server)
        source.stop()

    base = statistics.median(base_times)
    total = statistics.median(r["total"] for r in job_runs)
    parts = {k: statistics.median(r[k] for r in job_runs) for k in ("request", "queue", "run", "notify")}
    ratio = total / base
    mb = len(source.wav) / 1e6
    print(f"input: {args.seconds:.0f} s WAV, {mb:.1f} MB over HTTP on 127.0.0.1; quality {args.quality}; "
          f"{args.runs} runs each (medians); cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    print(f"{'':34}{'seconds':>9}")
    print(f"{'yt-dlp + ffmpeg alone (baseline)':34}{base:9.3f}   runs: {' '.join(f'{t:.2f}' for t in base_times)}")
    print(f"{'download job, POST -> completed':34}{total:9.3f}   runs: "
          + " ".join(f"{r['total']:.2f}" for r in job_runs))
    for name, label in (("request", "POST until the job row exists"), ("queue", "queued -> worker starts"),
                        ("run", "worker: download, convert, tag"), ("notify", "finished -> frame at client")):
        print(f"  {label:32}{parts[name]:9.3f}")
    print(f"ratio job / baseline: {ratio:.3f}   (target <= {TARGET_RATIO})   "
          f"{'OK' if ratio <= TARGET_RATIO else 'MISSED'}")
    summary = {
        "bench": "download", "track_seconds": args.seconds, "quality": args.quality, "runs": args.runs,
        "baseline_s": round(base, 4), "job_s": round(total, 4), "ratio": round(ratio, 4),
        "target_ratio_max": TARGET_RATIO, "meets_target": ratio <= TARGET_RATIO,
        **{f"job_{k}_s": round(v, 4) for k, v in parts.items()},
        "progress_events_per_job": statistics.median(r["progress_events"] for r in job_runs),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
