"""Stem preview: a 20 s preview of a 3-minute track, from the request to the completed job, in one run.

    .venv/bin/python bench/preview.py            # about 2-3 minutes on 2 cores; --runs N, --seconds S

Model: the real htdemucs architecture (42 M parameters, the published 7.8 s segment) with random weights,
in demucs' own checkpoint format in a temporary repo folder: it costs what the published model costs.

**Figure:** the real server (``python main.py serve`` with its embedded worker, SQLite, a fresh data dir)
gets ``POST /api/processing/separate {"track_id", "preview": {"duration": 20}}`` for a 3-minute stereo
44.1 kHz track it holds; the clock runs until ``GET /api/processing/job/{id}``, polled every 50 ms, reads
``completed``: the request, the queue, the loudest-window search, the whole-track loudness
pass, the demucs chunks of the window, four 16-bit WAVs, their waveforms, the rows.
A warm-up preview of another track loads the model first (a worker keeps it), then ``--runs`` previews
of fresh tracks; the median is the figure. **Target: under 12 s.**

**Baseline, same run:** bare ``demucs.apply.apply_model(model, wav, shifts=0, split=True, overlap=0.25)``
on the same 20 s, already decoded and normalised, in this process: what demucs alone spends on 20 s of
audio. The ratio says what the job adds (or saves) around that. The first (cold) preview, which also
loads the model, is printed beside. The last line is one JSON object with every figure and its target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

TARGET_PREVIEW_S = 12.0
PREVIEW_SECONDS = 20.0
SR = 44100


def write_track(path: Path, seconds: float, seed: int) -> Path:
    """Stereo tones, a pulse and noise, louder in its second half (so the loudest window is found there)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    left = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
    right = 0.2 * np.sin(2 * np.pi * 165 * t) + 0.1 * np.sin(2 * np.pi * 880 * t)
    pulse = 0.3 * (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.shape)
    audio = np.stack([left + pulse, right + pulse], axis=1) + 0.02 * rng.standard_normal((t.size, 2))
    audio[t.size // 2:] *= 1.8
    sf.write(path, (0.5 * audio / np.abs(audio).max()).astype(np.float32), SR, subtype="PCM_16")
    return path


def timed_preview(user: Any, track_id: str) -> tuple[float, dict[str, Any]]:
    """Seconds from POST until ``GET /api/processing/job/{id}`` (polled every 50 ms) reads completed, and the job."""
    start = time.perf_counter()
    r = user.api.post("/api/processing/separate", json={"track_id": track_id, "preview": {"duration": PREVIEW_SECONDS}})
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["job_id"]
    while True:
        job = user.api.get(f"/api/processing/job/{job_id}").json()["data"]
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if job["status"] != "completed":
        raise SystemExit(f"the preview did not complete: {job}")
    return elapsed, job


def bare_apply_model(repo: Path, track: Path, window: tuple[float, float]) -> float:
    """Seconds demucs' apply_model takes on the window's samples (decoded and normalised beforehand)."""
    import torch as th
    from demucs.apply import apply_model

    from core.separation import weights

    model = weights.load("htdemucs", repo)
    model.eval()
    audio, _ = sf.read(str(track), dtype="float32", always_2d=True)
    wav = th.from_numpy(audio.T.copy())
    ref = wav.mean(0)
    part = ((wav - ref.mean()) / (ref.std() + 1e-8))[:, int(window[0] * SR): int(window[1] * SR)]
    with th.no_grad():
        apply_model(model, part[None, :, : SR], shifts=0, split=True, overlap=0.25)  # warm-up
        start = time.perf_counter()
        apply_model(model, part[None], shifts=0, split=True, overlap=0.25)
        return time.perf_counter() - start


def measure(runs: int = 3, seconds: float = 180.0) -> dict[str, Any]:
    """Run the measurement (printing as it goes); the figures as a dict (what the JSON line holds)."""
    from tests.conftest import register, start_server, stop_server, upload_audio
    from tests.fakes.demucs_models import build_full_htdemucs

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="stemforge-preview-") as tmp_name:
        tmp = Path(tmp_name)
        repo = build_full_htdemucs(tmp / "models")
        (tmp / "data").mkdir()
        server = start_server(tmp / "data", f"sqlite+aiosqlite:///{tmp}/data/stemforge.db", demucs_repo=str(repo),
                              max_upload_mb="200", rate_limit_api="100000/minute",
                              rate_limit_heavy="100000/minute")
        try:
            user = register(server.url)
            tracks = []
            for i in range(runs + 1):
                path = write_track(tmp / f"track{i}.wav", seconds, seed=i)
                tracks.append((path, upload_audio(user, path.read_bytes(), title=f"Track {i}")["id"]))
            print(f"Preview: htdemucs architecture, random weights; {runs} previews of {PREVIEW_SECONDS:g} s of a "
                  f"{seconds:g} s track after one cold one; {os.cpu_count()} CPUs, load average "
                  f"{load_before:.2f} at start", flush=True)
            cold, payload = timed_preview(user, tracks[0][1])
            print(f"  cold (loads the model)   {cold:6.2f} s   window {payload['preview']}", flush=True)
            times, windows = [], []
            for _path, track_id in tracks[1:]:
                elapsed, payload = timed_preview(user, track_id)
                times.append(elapsed)
                windows.append(payload["preview"])
                print(f"  warm                     {elapsed:6.2f} s   window {windows[-1]}", flush=True)
        finally:
            stop_server(server)
        bare = bare_apply_model(repo, tracks[1][0], (windows[0]["start"], windows[0]["end"]))
    median = statistics.median(times)
    ok = median < TARGET_PREVIEW_S
    print(f"  preview, request -> job completed   {median:6.2f} s (median)   target < {TARGET_PREVIEW_S:g} s   "
          f"{'OK' if ok else 'MISSED'}")
    print(f"  bare apply_model on the same {PREVIEW_SECONDS:g} s   {bare:6.2f} s   ratio {median / bare:.3f}")
    return {
        "preview_loadavg_1m_before": round(load_before, 2), "preview_track_seconds": seconds,
        "preview_seconds": PREVIEW_SECONDS, "preview_s": round(median, 3),
        "preview_runs_s": [round(t, 3) for t in times], "preview_cold_s": round(cold, 3),
        "preview_bare_apply_model_s": round(bare, 3), "preview_vs_bare_apply_model": round(median / bare, 3),
        "target_preview_s_max": TARGET_PREVIEW_S, "preview_s_ok": ok,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=180.0, help="length of each track")
    args = ap.parse_args()
    print(json.dumps({"bench": "preview", "cpus": os.cpu_count(), **measure(args.runs, args.seconds)}))


if __name__ == "__main__":
    main()
