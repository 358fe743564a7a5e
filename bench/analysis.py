"""The analysis service against the naive way, and its tempo and key accuracy, in one run.

    .venv/bin/python bench/analysis.py [--rounds 3] [--tracks 48]

1. Speed, on a 3-minute stereo 44.1 kHz WAV (drums, chords and bass, synthesised by tests/synth.py):
   ``core.analysis.analyze(path, ["all"])`` against the naive way to the same outputs: every
   output computed by its own librosa call on a freshly decoded signal (``librosa.load`` each
   time), each computing its own spectrogram (``spectral_centroid(y=...)``, ``mfcc(y=...)``,
   ``chroma_cqt(y=...)``, a CQT of its own for the key, a mel spectrogram of its own for the onset
   envelope of tempo and energy ...). The naive path applies the same tempo/key/energy methods to
   what it computed, and the run checks that both paths agree (same tempo and key, same spectral
   means), so the two timings are for the same answer. Both paths are warmed up first (numba
   compiles librosa's jitted helpers on first use); then ROUNDS rounds alternate the two and the
   median of each is reported. Target: analysis time at most 0.5 of the naive time.
2. Accuracy, on a generated set of 48 tracks: every tonic in both modes, twice, at tempos spread
   evenly over 70-180 BPM (shuffled across keys), cycling through three drum patterns and three
   cadential progressions per mode; each clip holds a whole progression. Targets: key exactly
   right on at least 90 %, tempo within 4 % on at least 95 %. Printed beside them, as a
   reference, librosa's stock methods on the same tracks: ``librosa.feature.tempo`` and
   Krumhansl-Kessler profiles on the mean ``chroma_cqt``.

3. Real music (bench/realmusic.py): key exact and tempo within 4 % on rendered scores, beside librosa's stock
   methods, and the bars: the downbeat F-measure (70 ms) against the scores' own bar lines, beside counting
   every n-th tracked beat (no target: the issue's downbeat target is on the generated songs; this says what
   drumless real music gets).

The last line is one JSON object with every figure and its target.
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

import librosa  # noqa: E402
import numpy as np  # noqa: E402

from core.analysis import analyze, service  # noqa: E402
from core.analysis import energy as energy_mod  # noqa: E402
from core.analysis import key as key_mod  # noqa: E402
from core.analysis import tempo as tempo_mod  # noqa: E402
from tests import synth  # noqa: E402

SR = service.SAMPLE_RATE
TARGET_RATIO_MAX = 0.5
TARGET_KEY_MIN = 0.90
TARGET_TEMPO_MIN = 0.95
TARGET_DOWNBEAT_F = 0.9
TARGET_PEAK_MB = 250.0
TEMPO_TOLERANCE = 0.04
LONG_SECONDS = 180.0
TARGET_REAL_MIN = 0.90
CONFIDENT_KEY = 0.9  # key_confidence from which the bench reports the share of right keys separately


# --- the naive way -------------------------------------------------------------------------------


def _load(path: Path) -> np.ndarray:
    y, _ = librosa.load(path, sr=SR, mono=True)
    return y


def naive_analysis(path: Path) -> dict[str, Any]:
    """Every output from its own decode and its own spectrogram, one librosa call after another."""
    factor = service._pool_factor()
    out: dict[str, Any] = {}

    y = _load(path)  # tempo and beats: a mel spectrogram of its own for the onset envelope
    onset = tempo_mod.onset_envelope(librosa.feature.melspectrogram(y=y, sr=SR), SR, service.HOP_LENGTH)
    estimate = tempo_mod.estimate_tempo(onset, service.FPS)
    out["tempo"] = round(estimate.bpm, 2) if estimate.bpm else None
    out["beats"] = tempo_mod.beat_times(onset, SR, service.HOP_LENGTH, estimate.bpm).tolist() if estimate.bpm else []

    y = _load(path)  # key: tuning and a CQT of its own
    tuning = librosa.estimate_tuning(y=y, sr=SR)
    cqt = np.abs(librosa.cqt(y, sr=SR, fmin=service.CQT_FMIN, n_bins=service.CQT_OCTAVES * service.CQT_BINS_PER_OCTAVE,
                             bins_per_octave=service.CQT_BINS_PER_OCTAVE, tuning=tuning * 3))
    out["key"] = key_mod.estimate_key_from_cqt(cqt, service.CQT_BINS_PER_OCTAVE, service.CQT_FMIN, service.FPS).key

    y = _load(path)  # energy: RMS, and the onset envelope again from another mel spectrogram
    rms = librosa.feature.rms(y=y)[0]
    y = _load(path)
    onset = tempo_mod.onset_envelope(librosa.feature.melspectrogram(y=y, sr=SR), SR, service.HOP_LENGTH)
    out["energy"] = round(energy_mod.energy(rms, onset), 4)
    out["zero_crossing_rate"] = float(np.mean(librosa.feature.zero_crossing_rate(_load(path))))

    out["spectral_centroid"] = float(np.mean(librosa.feature.spectral_centroid(y=_load(path), sr=SR)))
    out["spectral_rolloff"] = float(np.mean(librosa.feature.spectral_rolloff(y=_load(path), sr=SR)))
    out["spectral_bandwidth"] = float(np.mean(librosa.feature.spectral_bandwidth(y=_load(path), sr=SR)))
    out["spectral_contrast"] = librosa.feature.spectral_contrast(y=_load(path), sr=SR).mean(axis=1).tolist()

    mfcc = librosa.feature.mfcc(y=_load(path), sr=SR, n_mfcc=service.N_MFCC)
    chroma = librosa.feature.chroma_cqt(y=_load(path), sr=SR, bins_per_octave=service.CQT_BINS_PER_OCTAVE)
    out["features"] = {"mfcc": service._pool(mfcc, factor).tolist(), "chroma": service._pool(chroma, factor).tolist()}
    return out


def same_answer(ours: dict[str, Any], naive: dict[str, Any]) -> bool:
    """Both paths give the same tempo and key, and the same spectral means to within 1 %."""
    close = all(abs(ours[k] - naive[k]) <= 0.01 * abs(naive[k]) + 1e-6
                for k in ("spectral_centroid", "spectral_rolloff", "spectral_bandwidth", "zero_crossing_rate"))
    return (ours["tempo"] == naive["tempo"] and ours["key"] == naive["key"] and close
            and abs(ours["energy"] - naive["energy"]) < 0.02
            and np.shape(ours["features"]["mfcc"]) == np.shape(naive["features"]["mfcc"]))


# --- accuracy ------------------------------------------------------------------------------------


def accuracy_set(count: int, seed: int = 2024) -> list[dict[str, Any]]:
    """``count`` tracks: tonics and modes in turn, tempos evenly over 70-180 BPM in shuffled order."""
    rng = np.random.default_rng(seed)
    tempos = np.linspace(70.0, 180.0, count)[rng.permutation(count)]
    styles = list(synth.PATTERNS)
    specs = []
    for i in range(count):
        bpm = round(float(tempos[i]), 2)
        specs.append({"tonic": i % 12, "mode": ("major", "minor")[(i // 12) % 2], "bpm": bpm,
                      "style": styles[i % len(styles)], "progression": (i // 3) % 3,
                      "seconds": max(12.0, 16 * 60.0 / bpm + 2.0), "seed": i})
    return specs


def stock_librosa(path: Path) -> tuple[float, str]:
    """Reference: librosa's own tempo estimate and Krumhansl-Kessler on the mean chroma_cqt."""
    y = _load(path)
    bpm = float(librosa.feature.tempo(y=y, sr=SR)[0])
    chroma = librosa.feature.chroma_cqt(y=y, sr=SR).mean(axis=1)
    kk = (np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]),
          np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]))
    scores = [(np.corrcoef(chroma, np.roll(p, t))[0, 1], key_mod.key_name(t, mode))
              for mode, p in zip(key_mod.MODES, kk, strict=True) for t in range(12)]
    return bpm, max(scores)[1]


# --- real music (bench/realmusic.py) ------------------------------------------------------------------


def notated_beat_rate(quarter_bpm: float, time_signature: str) -> float:
    """Beats a minute of the beat a time signature notates, from the quarter-note rate: its denominator's note
    (2/2 and 3/2: the half, 2/4-4/4: the quarter, 3/8: the eighth), or three of them in compound meters (6/8,
    9/8, 12/8: the dotted quarter; 6/4: the dotted half)."""
    numerator, denominator = (int(x) for x in time_signature.split("/"))
    unit = quarter_bpm * denominator / 4
    return unit / 3 if numerator in (6, 9, 12) else unit


def real_music(which: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Key exact and tempo within 4 % on one real-music set, ours beside librosa's stock methods. Ours: the
    service's tempo, and key.estimate_key_from_cqt on the service's CQT (what service.key will call)."""
    import realmusic

    from core.analysis.decode import load_mono

    pieces = [p for p in manifest["pieces"] if p["set"] == which]
    from tests.structure_songs import f_measure

    counts = dict.fromkeys(("key", "tempo", "tempo_strict", "stock_key", "stock_tempo", "stock_tempo_strict",
                            "tempo_octave", "whole", "key_whole", "confident", "key_confident"), 0)
    misses = []
    downbeat_f: list[float] = []
    downbeat_f_every_nth: list[float] = []
    metre_right = 0
    for p in pieces:
        path = realmusic.CACHE / p["file"]
        result = analyze(path, ["tempo", "structure"])
        # Bars against the score's own bar lines (F-measure, 70 ms), beside counting every n-th tracked beat from
        # the first (n: the metre found). Pieces of fewer than two bars say nothing about bars.
        if len(p["downbeats"]) >= 2:
            metre = result.get("beats_per_bar") or 4
            downbeat_f.append(f_measure(result.get("downbeats") or [], p["downbeats"]))
            downbeat_f_every_nth.append(f_measure(result["beats"][::metre], p["downbeats"]))
            numerator = int(p["time_signature"].split("/")[0])
            metre_right += numerator in (3, 4) and result.get("beats_per_bar") == numerator
        sig = service._Signal(load_mono(path, SR, service.MAX_SECONDS))
        key = key_mod.estimate_key_from_cqt(sig.cqt, service.CQT_BINS_PER_OCTAVE, service.CQT_FMIN, service.FPS)
        stock_bpm, stock_key = stock_librosa(path)
        # The truth is the written quarter-note rate, or the beat the time signature notates (the half note in
        # 2/2, the eighth in 3/8, the dotted quarter in 6/8). "strict" accepts the quarter-note rate only.
        rates = [p["bpm"], notated_beat_rate(p["bpm"], p["time_signature"])]

        def within(bpm: float | None, rates: list[float] = rates) -> bool:
            return bpm is not None and any(abs(bpm / r - 1) <= TEMPO_TOLERANCE for r in rates)

        k_ok, t_ok = key.key == p["key"], within(result["tempo"])
        counts["key"] += k_ok
        counts["tempo"] += t_ok
        counts["tempo_strict"] += within(result["tempo"], rates[:1])
        counts["stock_key"] += stock_key == p["key"]
        counts["stock_tempo"] += within(stock_bpm)
        counts["stock_tempo_strict"] += within(stock_bpm, rates[:1])
        # "Accuracy 2" (Gouyon et al. 2006): right up to a metrical level, x2, x3, x1/2 or x1/3 of either rate.
        counts["tempo_octave"] += result["tempo"] is not None and any(
            within(result["tempo"] / f) for f in (1.0, 2.0, 3.0, 0.5, 1 / 3))
        counts["whole"] += p["whole"]
        counts["key_whole"] += p["whole"] and k_ok
        # How far the reported confidence can be trusted: the share right among confident answers.
        counts["confident"] += key.confidence >= CONFIDENT_KEY
        counts["key_confident"] += key.confidence >= CONFIDENT_KEY and k_ok
        if not (k_ok and t_ok):
            misses.append(f"{p['source']} ({p['ensemble']}, {p['time_signature']}): {p['key']} at {p['bpm']} BPM, "
                          f"got {key.key} ({key.confidence:.2f}) at {result['tempo']} BPM")
    n = max(len(pieces), 1)
    shares = {k: v / n for k, v in counts.items() if k not in ("whole", "key_whole", "confident", "key_confident")}
    bars = {"downbeat_f": round(float(np.mean(downbeat_f)), 4) if downbeat_f else None,
            "downbeat_f_every_nth_beat": round(float(np.mean(downbeat_f_every_nth)), 4) if downbeat_f else None,
            "downbeat_f_at_least_0_9": sum(f >= 0.9 for f in downbeat_f), "bar_pieces": len(downbeat_f),
            "metre_right_in_3_and_4": metre_right,
            "pieces_in_3_and_4": sum(p["time_signature"].split("/")[0] in ("3", "4") and len(p["downbeats"]) >= 2
                                     for p in pieces)}
    return {"pieces": len(pieces), **shares, **bars, "whole_pieces": counts["whole"],
            "key_whole": counts["key_whole"] / max(counts["whole"], 1), "confident_keys": counts["confident"],
            "key_when_confident": counts["key_confident"] / max(counts["confident"], 1), "misses": misses}


def print_real_music(name: str, figures: dict[str, Any]) -> None:
    print(f"  {name}: {figures['pieces']} pieces")
    print(f"    key exact          {figures['key']:6.1%}   target >= {TARGET_REAL_MIN:.0%}   "
          f"{'OK' if figures['key'] >= TARGET_REAL_MIN else 'MISSED'}   (stock librosa + Krumhansl-Kessler: "
          f"{figures['stock_key']:.1%})")
    print(f"    tempo within 4 %   {figures['tempo']:6.1%}   target >= {TARGET_REAL_MIN:.0%}   "
          f"{'OK' if figures['tempo'] >= TARGET_REAL_MIN else 'MISSED'}   (stock librosa.feature.tempo: "
          f"{figures['stock_tempo']:.1%}; quarter-note rate only: ours {figures['tempo_strict']:.1%}, "
          f"stock {figures['stock_tempo_strict']:.1%})")
    print(f"    tempo up to the metrical level (x2, x3, x1/2, x1/3: accuracy 2)   {figures['tempo_octave']:6.1%}")
    print(f"    key exact on whole pieces    {figures['key_whole']:6.1%} of {figures['whole_pieces']}; "
          f"where key_confidence >= {CONFIDENT_KEY}: {figures['key_when_confident']:6.1%} of "
          f"{figures['confident_keys']}")
    if figures["downbeat_f"] is not None:
        print(f"    downbeat F (70 ms) against the score's bar lines   {figures['downbeat_f']:.3f}   (no target; "
              f"every n-th tracked beat: {figures['downbeat_f_every_nth_beat']:.3f}; F >= 0.9 in "
              f"{figures['downbeat_f_at_least_0_9']} of {figures['bar_pieces']} pieces; metre right in "
              f"{figures['metre_right_in_3_and_4']} of {figures['pieces_in_3_and_4']} pieces in 3 or 4)")
    for miss in figures["misses"]:
        print(f"      miss: {miss}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tracks", type=int, default=48)
    ap.add_argument("--no-real", action="store_true", help="skip the real-music sets (bench/realmusic.py)")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="stemforge-bench-") as tmp:
        tmpdir = Path(tmp)
        print(f"Synthesising a {LONG_SECONDS:.0f} s stereo track ...", flush=True)
        long_song = synth.song(9, "minor", 124.0, LONG_SECONDS, style="rock", progression=1, seed=7)
        long_path = long_song.write(tmpdir / "long.wav")
        warm = synth.song(0, "major", 120.0, 10.0).write(tmpdir / "warm.wav")
        analyze(warm)
        naive_analysis(warm)

        ours_times, naive_times = [], []
        ours = naive = {}
        for r in range(args.rounds):
            order = ("ours", "naive") if r % 2 == 0 else ("naive", "ours")
            for which in order:
                t0 = time.perf_counter()
                if which == "ours":
                    ours = analyze(long_path)
                    ours_times.append(time.perf_counter() - t0)
                else:
                    naive = naive_analysis(long_path)
                    naive_times.append(time.perf_counter() - t0)
        t_ours, t_naive = statistics.median(ours_times), statistics.median(naive_times)
        ratio = t_ours / t_naive
        agree = same_answer(ours, naive)
        print(f"\n3-minute stereo track, features=all (median of {args.rounds} rounds, alternating; "
              f"{os.cpu_count()} CPUs, load average {load_before:.2f} at start):")
        print(f"  analysis service   {t_ours:7.2f} s   (one decode, one STFT, one CQT)")
        print(f"  naive librosa      {t_naive:7.2f} s   (a decode and a spectrogram per output)")
        print(f"  ratio              {ratio:7.3f}     target <= {TARGET_RATIO_MAX}   "
              f"{'OK' if ratio <= TARGET_RATIO_MAX else 'MISSED'}")
        print(f"  same answer: {'yes' if agree else 'NO'} (tempo {ours['tempo']} / {naive['tempo']}, "
              f"key {ours['key']} / {naive['key']})")

        specs = accuracy_set(args.tracks)
        print(f"\nAccuracy on {len(specs)} generated tracks (every key, both modes, {min(s['bpm'] for s in specs):.0f}-"
              f"{max(s['bpm'] for s in specs):.0f} BPM):", flush=True)
        key_ok = tempo_ok = stock_key_ok = stock_tempo_ok = 0
        misses: list[str] = []
        t_acc = time.perf_counter()
        for spec in specs:
            song = synth.song(spec["tonic"], spec["mode"], spec["bpm"], spec["seconds"], style=spec["style"],
                              progression=spec["progression"], seed=spec["seed"])
            path = song.write(tmpdir / "track.wav")
            result = analyze(path, ["tempo", "key"])
            k_ok = result["key"] == song.key
            t_ok = result["tempo"] is not None and abs(result["tempo"] / song.bpm - 1) <= TEMPO_TOLERANCE
            key_ok += k_ok
            tempo_ok += t_ok
            if not (k_ok and t_ok):
                misses.append(f"{song.key} at {song.bpm} BPM ({spec['style']}, progression {spec['progression']}): "
                              f"got {result['key']} at {result['tempo']} BPM")
            stock_bpm, stock_key = stock_librosa(path)
            stock_key_ok += stock_key == song.key
            stock_tempo_ok += abs(stock_bpm / song.bpm - 1) <= TEMPO_TOLERANCE
        t_acc = time.perf_counter() - t_acc
        n = len(specs)
        key_acc, tempo_acc = key_ok / n, tempo_ok / n
        print(f"  key exact          {key_acc:6.1%}   target >= {TARGET_KEY_MIN:.0%}   "
              f"{'OK' if key_acc >= TARGET_KEY_MIN else 'MISSED'}   (stock librosa + Krumhansl-Kessler: "
              f"{stock_key_ok / n:.1%})")
        print(f"  tempo within 4 %   {tempo_acc:6.1%}   target >= {TARGET_TEMPO_MIN:.0%}   "
              f"{'OK' if tempo_acc >= TARGET_TEMPO_MIN else 'MISSED'}   (stock librosa.feature.tempo: "
              f"{stock_tempo_ok / n:.1%})")
        for miss in misses:
            print(f"    miss: {miss}")
        print(f"  ({t_acc:.1f} s for both methods on all tracks)")

        sys.path.insert(0, str(ROOT / "bench"))
        import structure_figures

        print("\nStructure on generated songs with a known bar grid and form (tests/structure_songs.py):", flush=True)
        structure = structure_figures.downbeat_figures()
        print(f"  downbeat F-measure (70 ms)  {structure['downbeat_f']:.3f}   target >= {TARGET_DOWNBEAT_F}   "
              f"{'OK' if structure['downbeat_f'] >= TARGET_DOWNBEAT_F else 'MISSED'}   (every n-th tracked beat: "
              f"{structure['downbeat_f_every_nth_beat']:.3f})")
        print(f"  metre right {structure['metre_right']:.1%}; section boundaries within one beat "
              f"{structure['section_boundaries_within_a_beat']:.1%} ({structure['structure_songs']} songs)")
        loops = structure_figures.drum_loop_figures()
        print(f"  drum loops (snare or clap on 2 and 4) read a beat off: {loops['loops_a_beat_off']} of "
              f"{loops['drum_loops']}   (no target; every 4th tracked beat: "
              f"{loops['loops_a_beat_off_every_4th_beat']}); half a bar off (beat 1 and 3 alike): "
              f"{loops['loops_half_a_bar_off']}; downbeat F {loops['drum_loop_downbeat_f']:.3f}")
        memory = structure_figures.analyze_peak_mb(long_path)
        print(f"\nPeak memory (VmHWM) of `python main.py analyze` on the 3-minute track: {memory['analyze_peak_mb']} MB"
              f"   target < {TARGET_PEAK_MB:.0f}   {'OK' if memory['analyze_peak_mb'] < TARGET_PEAK_MB else 'MISSED'}"
              f"   (the same command on 5 s of it: {memory['analyze_5s_peak_mb']} MB: the libraries' floor)")

    real: dict[str, dict[str, Any]] = {}
    if not args.no_real:
        sys.path.insert(0, str(ROOT / "bench"))
        import realmusic

        manifest = realmusic.build()
        print("\nReal music: scores from music21's corpus rendered with FluidSynth (bench/realmusic.py):", flush=True)
        for which, name in (("dev", "development set (no Bach)"), ("final", "final set (Bach chorales, not tuned on)")):
            real[which] = real_music(which, manifest)
            print_real_music(name, real[which])
    extra = {f"real_{which}_{k}": (round(v, 4) if isinstance(v, float) else v)
             for which, figures in real.items() for k, v in figures.items() if k != "misses"}
    for which, figures in real.items():
        extra[f"real_{which}_key_ok"] = figures["key"] >= TARGET_REAL_MIN
        extra[f"real_{which}_tempo_ok"] = figures["tempo"] >= TARGET_REAL_MIN

    print(json.dumps({
        "analysis_all_s": round(t_ours, 3),
        "naive_all_s": round(t_naive, 3),
        "ratio": round(ratio, 3),
        "ratio_target_max": TARGET_RATIO_MAX,
        "same_answer": agree,
        "tracks": n,
        "key_accuracy": round(key_acc, 4),
        "key_accuracy_target_min": TARGET_KEY_MIN,
        "tempo_within_4pct": round(tempo_acc, 4),
        "tempo_within_4pct_target_min": TARGET_TEMPO_MIN,
        "stock_librosa_key_accuracy": round(stock_key_ok / n, 4),
        "stock_librosa_tempo_within_4pct": round(stock_tempo_ok / n, 4),
        "cpus": os.cpu_count(),
        "loadavg_1m_before": round(load_before, 2),
        **structure,
        "downbeat_f_target_min": TARGET_DOWNBEAT_F,
        "downbeat_f_ok": structure["downbeat_f"] >= TARGET_DOWNBEAT_F,
        **loops,
        **memory,
        "analyze_peak_mb_target_max": TARGET_PEAK_MB,
        "analyze_peak_mb_ok": memory["analyze_peak_mb"] < TARGET_PEAK_MB,
        "ratio_ok": ratio <= TARGET_RATIO_MAX,
        **extra,
        **({"real_target_min": TARGET_REAL_MIN} if extra else {}),
    }))


if __name__ == "__main__":
    main()
