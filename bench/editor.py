"""The DAW editor in Chromium: time to waveforms, time to playback, and the audio memory while playing.

    .venv/bin/python bench/editor.py

What runs: the real server (``main.py serve``, SQLite in a temporary data dir, no embedded worker), a user
registered over HTTP, tracks whose stems are written straight into the server's data dir and database the way
a completed separation leaves them (files under ``uploads/stems/<job>/``, peaks cached by
``draw_waveforms``): a track with 6 stereo stems of 5 minutes (music-like signals) and a track with 4 stems of
60 minutes (silent, sparse files: the content does not matter to what is measured). Headless Chromium (Debian's,
through Playwright) signs in and opens ``/daw/<track>``; each figure is measured from one navigation, 3 runs,
median:

* **waveforms**: navigation start (``performance.timeOrigin``) until the editor marks every lane drawn from the
  server's peaks (``#daw-root[data-waveforms=drawn]``), target < 1.5 s (6 stems of 5 minutes);
* **playback**: navigation start until the engine plays (``play()`` called as soon as the editor exists, then
  the audio clock past its start), target < 2 s;
* **audio memory**: the PCM the engine holds (``engine.state().bytesHeld``: its decoded windows), the maximum
  over 8 s of playing with seeks to the middle and the end, on the 60-minute 4-stem track, target < 300 MB;
  the same figures for a 3-minute track beside them.

The last line is one JSON object with every figure, its target and ``<figure>_ok``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import struct
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from mixdown import start_server, stop_server  # noqa: E402

RATE = 44100
RUNS = 3
TARGETS = {"waveforms_s": 1.5, "playback_s": 2.0, "audio_mb_60min": 300.0}
SIX = ("drums", "bass", "other", "vocals", "guitar", "piano")


def music(path: Path, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = np.sin(2 * np.pi * (110 * (seed + 1)) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * t / 7))
    noise = rng.standard_normal(t.size) * 0.05
    stereo = np.stack([tone * 0.3 + noise, tone * 0.25 - noise], axis=1).astype(np.float32)
    sf.write(path, stereo, RATE, subtype="PCM_16")


def silent_wav(path: Path, seconds: float) -> None:
    """A valid 16-bit stereo WAV of ``seconds`` of silence, written sparsely (costs no disk)."""
    frames = int(seconds * RATE)
    size = frames * 4
    header = (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE" + b"fmt " +
              struct.pack("<IHHIIHH", 16, 1, 2, RATE, RATE * 4, 4, 16) + b"data" + struct.pack("<I", size))
    with path.open("wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + size)


def add_stems(data_dir: Path, track_id: str, names: tuple[str, ...], make: Any) -> None:
    """A completed processing job with one Stem row per file (made in place by ``make(path, index)``)."""
    from datetime import UTC, datetime

    from sqlmodel.ext.asyncio.session import AsyncSession

    from core.daw.waveforms import draw_waveforms
    from core.progress import no_progress
    from core.settings import Settings
    from data.db import make_engine
    from data.models import Job, Stem, Track

    uploads = data_dir / "uploads"
    job_id = uuid.uuid4()
    folder = uploads / "stems" / str(job_id)
    folder.mkdir(parents=True)
    paths = [folder / f"{name}.wav" for name in names]
    for index, path in enumerate(paths):
        make(path, index)
    draw_waveforms(paths, no_progress)

    async def insert() -> None:
        engine = make_engine(Settings(data_dir=data_dir, database_url="").effective_database_url)
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                track = await session.get(Track, uuid.UUID(track_id))
                assert track is not None
                # The track's own audio as long as its stems (A/B plays it), as after a real download.
                track.audio_path = paths[0].relative_to(uploads).as_posix()
                track.audio_format = "wav"
                now = datetime.now(UTC)
                session.add(Job(id=job_id, user_id=track.user_id, track_id=track.id, kind="processing",
                                status="completed", progress=100, started_at=now, finished_at=now))
                await session.flush()
                session.add_all([Stem(user_id=track.user_id, track_id=track.id, job_id=job_id, stem_type=name,
                                      path=p.relative_to(uploads).as_posix(), format="wav", size=p.stat().st_size,
                                      engine="local", model="htdemucs_6s") for name, p in zip(names, paths,
                                                                                                strict=True)])
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(insert())


MEASURE_JS = """
async () => {
  const since = () => performance.now() / 1000;  // performance.now() counts from the navigation's start
  const deadline = performance.now() + 30000;
  const until = async (ok, what) => {
    while (!ok()) {
      if (performance.now() > deadline) {
        const engine = window.dawEditor && window.dawEditor.engine;
        const status = (document.querySelector('.daw-status') || {}).textContent;
        const state = engine ? JSON.stringify({status, playing: engine.playing, time: engine.currentTime,
          ctx: engine.ctx && engine.ctx.state, state: engine.state()}) : "no engine";
        throw new Error(`timed out waiting for ${what}: ${state}`.slice(0, 1500));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  await until(() => window.dawEditor && window.dawEditor.engine, "the editor");
  const editor = window.dawEditor;
  const playing = editor.engine.play().then(async () => {
    const start = editor.engine.currentTime;
    await until(() => editor.engine.playing && editor.engine.currentTime > start, "the audio clock");
    return since();
  });
  await until(() => document.getElementById('daw-root').dataset.waveforms === 'drawn', "the waveforms");
  const waveforms = since();
  return {waveforms, playback: await playing};
}
"""

MEMORY_JS = """
async (duration) => {
  const engine = window.dawEditor.engine;
  let most = 0;
  const watch = async (seconds) => {
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      most = Math.max(most, engine.state().bytesHeld);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  if (!engine.playing) await engine.play();
  await watch(3);
  engine.seek(duration / 2); await watch(2.5);
  engine.seek(Math.max(0, duration - 6)); await watch(2.5);
  engine.stop();
  return most / 1048576;
}
"""


def measure(page: Any, base: str, track_id: str, duration: float) -> dict[str, float]:
    runs = []
    for _ in range(RUNS):
        page.goto(f"{base}/daw/{track_id}", wait_until="domcontentloaded")
        runs.append(page.evaluate(MEASURE_JS))
        page.evaluate("window.dawEditor.engine.stop()")
        print(f"  {track_id[:8]}: {runs[-1]}", file=sys.stderr, flush=True)
    memory = page.evaluate(MEMORY_JS, duration)
    return {"waveforms_s": round(statistics.median(r["waveforms"] for r in runs), 3),
            "playback_s": round(statistics.median(r["playback"] for r in runs), 3),
            "audio_mb": round(memory, 1), "waveforms_runs": [round(r["waveforms"], 3) for r in runs],
            "playback_runs": [round(r["playback"], 3) for r in runs]}


def main() -> int:
    from tests.browser import chromium, log_in
    from tests.conftest import PASSWORD, register, upload_audio

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        proc, base, _log = start_server(data_dir)
        try:
            user = register(base)
            tracks = {}
            for name, seconds, names, make in (
                ("5min-6stems", 300.0, SIX, lambda p, i: music(p, 300.0, i)),
                ("3min-4stems", 180.0, SIX[:4], lambda p, i: music(p, 180.0, i)),
                ("60min-4stems", 3600.0, SIX[:4], lambda p, i: silent_wav(p, 3600.0)),
            )[slice(1, 2) if os.environ.get("BENCH_QUICK") else slice(None)]:
                clip = Path(tmp) / "clip.wav"
                music(clip, 2.0, 9)
                track = upload_audio(user, clip.read_bytes(), title=name, artist="Bench")
                add_stems(data_dir, track["id"], names, make)
                tracks[name] = (track["id"], seconds)
            results: dict[str, Any] = {}
            with chromium(extra_args=["--autoplay-policy=no-user-gesture-required"]) as browser:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                log_in(page, base, user.email, PASSWORD)
                for name, (track_id, seconds) in tracks.items():
                    results[name] = measure(page, base, track_id, seconds)
        finally:
            stop_server(proc)
    six, three, hour = results["5min-6stems"], results["3min-4stems"], results["60min-4stems"]
    figures = {"waveforms_s": six["waveforms_s"], "playback_s": six["playback_s"], "audio_mb_60min": hour["audio_mb"]}
    print(f"StemForge editor bench: Chromium headless, {os.cpu_count()} CPUs")
    print(f"{'figure':<34}{'6 stems x 5 min':>18}{'4 stems x 3 min':>18}{'4 stems x 60 min':>18}{'target':>10}")
    print(f"{'navigation -> waveforms drawn (s)':<34}{six['waveforms_s']:>18}{three['waveforms_s']:>18}"
          f"{hour['waveforms_s']:>18}{'< 1.5':>10}")
    print(f"{'navigation -> playing (s)':<34}{six['playback_s']:>18}{three['playback_s']:>18}"
          f"{hour['playback_s']:>18}{'< 2':>10}")
    print(f"{'audio held while playing (MB)':<34}{six['audio_mb']:>18}{three['audio_mb']:>18}{hour['audio_mb']:>18}"
          f"{'< 300':>10}")
    out: dict[str, Any] = {"bench": "editor", "runs": RUNS, "details": results}
    for key, value in figures.items():
        out[key] = value
        out[f"{key}_target"] = TARGETS[key]
        out[f"{key}_ok"] = value < TARGETS[key]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
