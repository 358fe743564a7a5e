"""Separation speed and memory: StemForge's local engine against bare demucs, from one run.

    .venv/bin/python bench/separate.py                       # all cores, as the product runs
    .venv/bin/python bench/separate.py --threads 1           # steadier on a busy machine
    .venv/bin/python bench/separate.py --memory-minutes 20   # the 20-minute case with the full model (slow)

Model: the real htdemucs architecture (the hyper-parameters stored in the published checkpoint
955717e8, 42 M parameters) with random weights, saved in demucs' own checkpoint format in a
temporary ``--repo`` folder: it costs what the published model costs. Input: stereo 44.1 kHz WAVs of
tones, pulses and noise written by the script.

(a) job path vs bare apply_model, 30 s clip, warm model: ``LocalEngine.separate()`` as a job calls
    it, with plain demucs (decode, loudness pass, windowed demucs, four 16-bit WAVs written) against
    ``demucs.apply.apply_model(model, wav, shifts=0, split=True, overlap=0.25)`` on the already
    decoded tensor: the same chunks (demucs' default shifts=1 would only add work). Order A B B A,
    each side's mean. Target <= 1.10.
(d) the fast CPU path (core/separation/fast_cpu.py: the network in OpenVINO, bfloat16 where the CPU has it):
    ``LocalEngine.separate()`` with it (the default on the CPU) against the same bare ``apply_model`` in
    float32, measured in (a)'s run: order bare, job, fast, fast, job, bare after a warm-up of each; each side's
    mean. Target <= 0.7. Printed beside it: each stem's error against float32 demucs,
    ``10 log10(sum((fast - ref)^2) / sum(ref^2))`` in dB (bound -40), from the 16-bit WAVs the job wrote
    against ``apply_model``'s float output on the same normalised input (clipped to [-1, 1] as a WAV is);
    the plain job path's error is printed too: the 16-bit floor. Also: the time to prepare the fast path
    for the model, cold (export to OpenVINO IR and the build-time check) and warm (compile only).
(b) three consecutive separations through one fresh engine (the first loads the model, as a
    worker's first job does) against three runs of
    ``python -m demucs.separate --repo DIR -n htdemucs FILE -o OUT`` (its defaults: each run starts
    Python, imports torch, loads the model), interleaved E C E C E C. Target <= 0.85. The engine takes the fast
    path (its default on the CPU; its artefact is already cached by (d), the first run compiles it).
(c) peak memory (the RSS high-water mark of one child process: getrusage(RUSAGE_CHILDREN) in a
    wrapper process per measurement) separating one long file: the engine in a child process (the fast
    path's artefact built beforehand in the bench's data folder, as on a worker that has served the model
    before) against the demucs command line on the same file. Target <= 0.5 (for 20 minutes).
    The full model needs about half the file's duration on 2 idle cores for the command line (a quarter for
    the engine's fast path), so ``--memory-minutes`` (default 3) keeps the bench near 10 minutes;
    ``--memory-minutes 20`` runs the real case (about 20 minutes more). ``--small-minutes`` (default 20)
    repeats it with a small htdemucs (4 channels instead of 48, the real 7.8 s segment) whose compute is
    quick, so a 20-minute file is in every run and what differs is the memory that grows with the track.

Wall time is the figure judged against the targets; CPU seconds (this process for in-process runs,
the waited-for child for command lines) are printed next to it: with ``--threads 1`` they measure
the work done and barely move when other programs compete for the cores.

``--no-fast`` runs the engine without the fast path everywhere and skips (d).

``--threads N`` gives both sides N CPU threads (torch in this process, OMP_NUM_THREADS and
STEMFORGE_SEPARATION_THREADS for children); 0 (default) leaves every side its own default, all
cores. The last line is one JSON object with every figure and its target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

SR = 44100
TARGET_JOB_VS_APPLY = 1.10
TARGET_ENGINE_VS_CLI = 0.85
TARGET_MEMORY = 0.5
TARGET_FAST_VS_APPLY = 0.7
BOUND_DB = -40.0  # every stem's error against float32 demucs (core.separation.fast_cpu.BOUND_DB)
# A cheap htdemucs with the published segment, for the 20-minute memory case.
SMALL = dict(channels=4, bottom_channels=0, t_layers=1, t_heads=1, t_hidden_scale=1.0, dconv_mode=1, dconv_comp=4)

# Runs one command as its only child and reports that child's peak RSS (kB on Linux) and wall time.
WRAPPER = """
import json, resource, subprocess, sys, time
t = time.monotonic()
with open(sys.argv[1], "w") as log:
    rc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=log).returncode
print(json.dumps({"rc": rc, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "seconds": time.monotonic() - t}))
"""


def write_music(path: Path, seconds: float, block_seconds: float = 10.0) -> Path:
    """Stereo tones, a pulse and noise, written block by block (a 20-minute file never sits in memory)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    total = int(seconds * SR)
    with sf.SoundFile(str(path), "w", samplerate=SR, channels=2, subtype="PCM_16") as fh:
        for start in range(0, total, int(block_seconds * SR)):
            t = (start + np.arange(min(int(block_seconds * SR), total - start))) / SR
            left = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
            right = 0.2 * np.sin(2 * np.pi * 165 * t) + 0.1 * np.sin(2 * np.pi * 880 * t)
            pulse = 0.3 * (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.shape)
            noise = 0.02 * rng.standard_normal((2, t.shape[0]))
            fh.write((np.stack([left + pulse, right + pulse]) + noise).T.astype(np.float32))
    return path


def engine_for(repo: Path, data_dir: Path, threads: int = 0, fast: bool = True):  # noqa: ANN201
    """The engine as a worker makes it; ``fast``: with the fast CPU path (artefacts in ``data_dir``)."""
    from core.separation.local import LocalEngine
    from core.settings import Settings

    return LocalEngine(Settings(data_dir=data_dir, demucs_repo=str(repo), separation_model_cache=1,
                                separation_threads=threads), fast_cpu=fast)


def demucs_cli(repo: Path, audio: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "demucs.separate", "--repo", str(repo), "-n", "htdemucs", str(audio), "-o", str(out)]


def child_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMFORGE_")}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   STEMFORGE_SEPARATION_THREADS=str(threads))
    return env


def peak_rss(cmd: list[str], log: Path, env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``cmd`` run as the only child of a fresh wrapper process."""
    done = subprocess.run([sys.executable, "-c", WRAPPER, str(log), *cmd], capture_output=True, text=True,
                          check=False, cwd=ROOT, env=env)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"measurement wrapper failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed:\n{log.read_text()[-3000:]}")
    return result["maxrss_kb"] / 1024, result["seconds"]


def child_separate(audio: str, repo: str, out: str, data: str, fast: bool) -> None:
    """The engine in a process of its own, for (c); threads come from STEMFORGE_SEPARATION_THREADS.

    ``data``: the bench's data folder, where the fast path's artefact was already built (as on a worker that has
    served the model before), so the child compiles it but does not export it."""
    engine = engine_for(Path(repo), Path(data), int(os.environ.get("STEMFORGE_SEPARATION_THREADS", "0")), fast)
    engine.separate(Path(audio), Path(out) / "stems", "htdemucs")


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_seconds(who: int) -> float:
    import resource

    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed_cpu(fn, who: int) -> tuple[float, float]:  # noqa: ANN001
    """(wall seconds, CPU seconds of this process or of its waited-for children) of one call."""
    cpu = cpu_seconds(who)
    wall = timed(fn)
    return wall, cpu_seconds(who) - cpu


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSES TARGET"


def speed(args: argparse.Namespace, repo: Path, clip: Path, tmp: Path, env: dict[str, str],
          result: dict[str, object]) -> None:
    """(a) the job path and (d) the fast path against bare apply_model, warm model, same clip; (b) consecutive runs."""
    import soundfile as sf
    import torch as th
    from demucs.apply import apply_model

    engine = engine_for(repo, tmp / "data", args.threads, fast=False)
    load_s = timed(lambda: engine.model("htdemucs"))
    model = engine.model("htdemucs")
    wav = th.from_numpy(sf.read(str(clip), dtype="float32", always_2d=True)[0].T.copy())
    # The input as the engine normalises it (whole-track mean and std of the mono mix), so that bare apply_model's
    # output is the float32 reference of the job's stems.
    mono = wav.mean(0)
    mean, std = mono.mean(), mono.std() + 1e-8
    normalised = (wav - mean) / std
    segment = int(model.models[0].segment * SR)
    apply_model(model, normalised[None, :, :segment], shifts=0, split=True, overlap=0.25)  # torch's one-time costs
    short = write_music(tmp / "short.wav", 5.0)
    engine.separate(short, tmp / "warm-job", "htdemucs")

    fast_engine = None
    if not args.no_fast:
        fast_engine = engine_for(repo, tmp / "data", args.threads)
        prepare_cold_s = timed(lambda: fast_engine.model("htdemucs"))  # exports and checks (cache empty)
        prepare_warm_s = timed(lambda: engine_for(repo, tmp / "data", args.threads).model("htdemucs"))  # compiles
        fast_engine.separate(short, tmp / "warm-fast", "htdemucs")

    import resource

    self_, children = resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN
    reference: list[th.Tensor] = []

    def bare() -> tuple[float, float]:
        def run() -> None:
            reference[:] = [apply_model(model, normalised[None], shifts=0, split=True, overlap=0.25)[0]]
        return timed_cpu(run, self_)

    def job() -> tuple[float, float]:
        return timed_cpu(lambda: engine.separate(clip, tmp / "job", "htdemucs"), self_)

    def fast() -> tuple[float, float]:
        return timed_cpu(lambda: fast_engine.separate(clip, tmp / "fast", "htdemucs"), self_)

    bare_runs, job_runs, fast_runs = [bare()], [job()], []
    if fast_engine is not None:
        fast_runs += [fast(), fast()]
    job_runs.append(job())
    bare_runs.append(bare())
    (job_s, job_cpu), (bare_s, bare_cpu) = mean_pair(job_runs), mean_pair(bare_runs)
    ratio_a, ratio_a_cpu = job_s / bare_s, job_cpu / bare_cpu
    print("\n(a) one separation, warm model (mean of 2, order A B B A); wall and CPU seconds")
    print(f"    job path (LocalEngine.separate)   {job_s:8.2f} s  {job_cpu:8.2f} s CPU   {rounded(job_runs)}")
    print(f"    bare demucs apply_model           {bare_s:8.2f} s  {bare_cpu:8.2f} s CPU   {rounded(bare_runs)}")
    print(f"    ratio {ratio_a:.3f} (CPU {ratio_a_cpu:.3f})   target <= {TARGET_JOB_VS_APPLY}   "
          f"{verdict(ratio_a <= TARGET_JOB_VS_APPLY)}")
    result.update(clip_seconds=args.seconds, model_load_s=round(load_s, 3), job_s=round(job_s, 3),
                  job_cpu_s=round(job_cpu, 3), apply_model_s=round(bare_s, 3), apply_model_cpu_s=round(bare_cpu, 3),
                  job_runs_s=rounded(job_runs), apply_model_runs_s=rounded(bare_runs),
                  job_vs_apply_model=round(ratio_a, 4), job_vs_apply_model_cpu=round(ratio_a_cpu, 4),
                  target_job_vs_apply_model_max=TARGET_JOB_VS_APPLY)

    # The float32 reference, as the job writes it: de-normalised, clipped to the WAV's range.
    ref = (reference[0] * std + mean).clamp(-1, 1)
    stems = list(model.sources)
    job_err = stem_errors(tmp / "job", stems, ref)
    result.update(job_stem_error_db=job_err)
    if fast_engine is not None:
        runner = fast_engine.runners("htdemucs")[0]
        precision = getattr(runner, "precision", "none (plain demucs)")
        fast_s, fast_cpu = mean_pair(fast_runs)
        ratio_d, ratio_d_cpu = fast_s / bare_s, fast_cpu / bare_cpu
        fast_err = stem_errors(tmp / "fast", stems, ref)
        errors_ok = all(e <= BOUND_DB for e in fast_err.values())
        # The same before the 16-bit WAVs: the fast runners over the normalised clip on the engine's chunk grid.
        from core.separation.fast_cpu import stem_error_db
        from core.separation.windowed import WindowedSeparation

        walk = WindowedSeparation(model, normalised.shape[-1], overlap=0.25, runners=fast_engine.runners("htdemucs"))
        fast_float = th.cat(list(walk.run([normalised])), dim=-1) * std + mean
        float_err = {k: round(e, 1) for k, e in zip(stems, stem_error_db(fast_float, reference[0] * std + mean),
                                                    strict=True)}
        print(f"\n(d) fast CPU path (OpenVINO {precision}), same run as (a): order bare, job, fast, fast, job, bare")
        print(f"    fast job path (LocalEngine.separate) {fast_s:8.2f} s  {fast_cpu:8.2f} s CPU   {rounded(fast_runs)}")
        print(f"    bare demucs apply_model, float32  {bare_s:8.2f} s  {bare_cpu:8.2f} s CPU")
        print(f"    ratio {ratio_d:.3f} (CPU {ratio_d_cpu:.3f})   target <= {TARGET_FAST_VS_APPLY}   "
              f"{verdict(ratio_d <= TARGET_FAST_VS_APPLY)}")
        print(f"    stem error vs float32 demucs, dB (bound {BOUND_DB:g}): {db_list(fast_err)}   "
              f"{'OK' if errors_ok else 'MISSES BOUND'}")
        print(f"    the same in float, before the 16-bit WAVs:      {db_list(float_err)}")
        print(f"    plain job path, from its WAVs (16-bit floor):   {db_list(job_err)}")
        print(f"    preparing the fast path: {prepare_cold_s:.1f} s cold (export + check), "
              f"{prepare_warm_s:.1f} s warm (compile)")
        result.update(fast_precision=precision, fast_s=round(fast_s, 3), fast_cpu_s=round(fast_cpu, 3),
                      fast_runs_s=rounded(fast_runs), fast_vs_apply_model=round(ratio_d, 4),
                      fast_vs_apply_model_cpu=round(ratio_d_cpu, 4),
                      fast_vs_apply_model_ok=ratio_d <= TARGET_FAST_VS_APPLY,
                      target_fast_vs_apply_model_max=TARGET_FAST_VS_APPLY, fast_stem_error_db=fast_err,
                      fast_stem_error_float_db=float_err,
                      fast_stem_error_ok=errors_ok, bound_stem_error_db=BOUND_DB,
                      fast_prepare_cold_s=round(prepare_cold_s, 1), fast_prepare_warm_s=round(prepare_warm_s, 1))

    # (b) consecutive jobs in one fresh engine against consecutive demucs command lines, interleaved.
    fresh = engine_for(repo, tmp / "data", args.threads, fast=not args.no_fast)
    engine_runs, cli_runs = [], []
    for i in range(args.runs):
        engine_runs.append(timed_cpu(lambda i=i: fresh.separate(clip, tmp / f"engine{i}", "htdemucs"), self_))
        cli_runs.append(timed_cpu(lambda i=i: subprocess.run(demucs_cli(repo, clip, tmp / f"cli{i}"), check=True,
                                                             capture_output=True, cwd=ROOT, env=env), children))
    engine_s, engine_cpu = (sum(x) for x in zip(*engine_runs, strict=True))
    cli_s, cli_cpu = (sum(x) for x in zip(*cli_runs, strict=True))
    ratio_b, ratio_b_cpu = engine_s / cli_s, engine_cpu / cli_cpu
    print(f"\n(b) {args.runs} consecutive separations (interleaved); wall and CPU seconds")
    print(f"    one engine (first run loads)      {engine_s:8.2f} s  {engine_cpu:8.2f} s CPU   {rounded(engine_runs)}")
    print(f"    demucs command line x{args.runs}          {cli_s:8.2f} s  {cli_cpu:8.2f} s CPU   {rounded(cli_runs)}")
    print(f"    ratio {ratio_b:.3f} (CPU {ratio_b_cpu:.3f})   target <= {TARGET_ENGINE_VS_CLI}   "
          f"{verdict(ratio_b <= TARGET_ENGINE_VS_CLI)}")
    result.update(runs=args.runs, engine_s=round(engine_s, 3), engine_cpu_s=round(engine_cpu, 3),
                  cli_s=round(cli_s, 3), cli_cpu_s=round(cli_cpu, 3), engine_runs_s=rounded(engine_runs),
                  cli_runs_s=rounded(cli_runs), engine_vs_cli=round(ratio_b, 4),
                  engine_vs_cli_cpu=round(ratio_b_cpu, 4), target_engine_vs_cli_max=TARGET_ENGINE_VS_CLI)


def stem_errors(folder: Path, stems: list[str], reference) -> dict[str, float]:  # noqa: ANN001
    """Each stem's error (dB) of the WAVs a job wrote into ``folder`` against ``reference`` (S, C, T)."""
    import soundfile as sf
    import torch as th

    from core.separation.fast_cpu import stem_error_db

    written = th.stack([th.from_numpy(sf.read(str(folder / f"{s}.wav"), dtype="float32", always_2d=True)[0].T.copy())
                        for s in stems])
    return {s: round(e, 1) for s, e in zip(stems, stem_error_db(written, reference), strict=True)}


def db_list(errors: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in errors.items())


def mean_pair(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return sum(w for w, _ in runs) / len(runs), sum(c for _, c in runs) / len(runs)


def rounded(runs: list[tuple[float, float]]) -> list[list[float]]:
    """[[wall, cpu], ...] rounded for printing and the JSON line."""
    return [[round(w, 2), round(c, 2)] for w, c in runs]


def main() -> None:
    p = argparse.ArgumentParser(description="Separation speed and memory against bare demucs")
    p.add_argument("--seconds", type=float, default=30.0, help="clip length for (a) and (b)")
    p.add_argument("--runs", type=int, default=3, help="consecutive separations in (b)")
    p.add_argument("--memory-minutes", type=float, default=3.0, help="(c) with the full model (0: skip)")
    p.add_argument("--small-minutes", type=float, default=20.0, help="(c) with the small model (0: skip)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for every side; 0: their defaults")
    p.add_argument("--skip-speed", action="store_true", help="only (c): the memory measurements")
    p.add_argument("--no-fast", action="store_true", help="the engine without the fast CPU path; skips (d)")
    p.add_argument("--preview-runs", type=int, default=3, help="warm previews in the preview figure (0: skip)")
    p.add_argument("--child-separate", nargs=4, metavar=("FILE", "REPO", "OUT", "DATA"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_separate:
        child_separate(*args.child_separate, fast=not args.no_fast)
        return

    import torch as th

    from tests.fakes.demucs_models import build_full_htdemucs

    if args.threads:
        th.set_num_threads(args.threads)
    env = child_env(args.threads)
    loadavg = os.getloadavg()[0]
    result: dict[str, object] = {"bench": "separate", "cpus": len(os.sched_getaffinity(0)),
                                 "threads": args.threads or "default", "loadavg_1m_before": round(loadavg, 2)}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-separate-") as tmp_name:
        tmp = Path(tmp_name)
        repo = build_full_htdemucs(tmp / "full")
        clip = write_music(tmp / "clip.wav", args.seconds)
        print(f"htdemucs architecture, random weights; {args.seconds:g} s stereo clip; {result['cpus']} CPUs, "
              f"threads {result['threads']}; load average {loadavg:.2f} before the run")

        if not args.skip_speed:
            speed(args, repo, clip, tmp, env, result)

        # (c) peak memory on a long file: the engine in a child process against the demucs command line.
        cases = []
        if args.memory_minutes > 0:
            cases.append(("full", "htdemucs architecture", args.memory_minutes, repo))
        if args.small_minutes > 0:
            cases.append(("small", "small htdemucs, real segment", args.small_minutes,
                          build_full_htdemucs(tmp / "small", **SMALL)))
        for label, title, minutes, model_repo in cases:
            long = write_music(tmp / f"long-{label}.wav", minutes * 60)
            data = tmp / "data"
            if not args.no_fast:  # the fast path's artefact, built here as on a worker that served the model before
                engine_for(model_repo, data, args.threads).model("htdemucs")
            engine_mb, engine_s = peak_rss([sys.executable, __file__, "--child-separate", str(long), str(model_repo),
                                            str(tmp / f"mem-engine-{label}"), str(data)]
                                           + (["--no-fast"] if args.no_fast else []), tmp / "engine.log", env)
            cli_mb, cli_s = peak_rss(demucs_cli(model_repo, long, tmp / f"mem-cli-{label}"), tmp / "cli.log", env)
            ratio_c = engine_mb / cli_mb
            print(f"\n(c) peak memory, {minutes:g}-minute file, {title}")
            print(f"    engine (windowed), child process  {engine_mb:8.0f} MB   ({engine_s:.0f} s)")
            print(f"    demucs command line               {cli_mb:8.0f} MB   ({cli_s:.0f} s)")
            judged = verdict(ratio_c <= TARGET_MEMORY) if minutes >= 20 else "(the target is for 20 minutes)"
            print(f"    ratio {ratio_c:.3f}   target <= {TARGET_MEMORY}   {judged}")
            result.update({f"memory_{label}_minutes": minutes, f"memory_{label}_engine_mb": round(engine_mb, 1),
                           f"memory_{label}_cli_mb": round(cli_mb, 1), f"memory_{label}_ratio": round(ratio_c, 4),
                           f"memory_{label}_engine_s": round(engine_s, 1), f"memory_{label}_cli_s": round(cli_s, 1)})
            os.unlink(long)
        result["target_memory_ratio_max"] = TARGET_MEMORY
    if args.preview_runs and not args.skip_speed:
        # The preview figure of issue #15, from bench/preview.py: a 20 s preview of a 3-minute track, request to
        # completed job through the real server (the engine's default path).
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import preview

        print()
        result.update(preview.measure(args.preview_runs))
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    result["bench_s"] = round(time.monotonic() - started, 1)
    print()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
