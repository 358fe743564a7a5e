"""Figures of the structure analysis and of the analysis' memory, for bench/analysis.py.

* ``downbeat_figures``: downbeat F-measure (70 ms window, each reference matched once) on a generated set of
  songs with a known bar grid (tests/structure_songs.py): 3/4 and 4/4, tempos over 70-170 BPM, pickups of 0-3
  beats, some with 6 s of silence first, forms of 2-5 sections of 8 bars. Beside it the grid an editor would
  draw without downbeat analysis: every ``beats_per_bar``-th tracked beat from the first one (the metre given
  for free). Also: how often the metre is right, and the section boundaries found within one beat.
* ``drum_loop_figures``: drum loops with a snare or clap on 2 and 4 (a house loop, a rock beat, sixteenths),
  alone and under chords: how many are read a beat off (the bar starting on the backbeat).
* ``analyze_peak_mb``: the peak resident memory (VmHWM) of ``python main.py analyze FILE`` in a fresh
  process, and of the same process analysing 5 s of audio (the floor: the libraries' code and data).
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generated_set(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Song parameters spread over metres, tempos, pickups, intros and forms (fixed seed)."""
    rng = random.Random(seed)
    songs = []
    for i in range(count):
        metre = 3 if i % 2 else 4
        sections = rng.randint(2, 5)
        form = "".join(rng.choice("ABCD") for _ in range(sections))
        songs.append({"bpm": round(70 + 100 * i / max(1, count - 1)), "beats_per_bar": metre, "form": form,
                      "bars_per_section": 8, "pickup_beats": rng.randint(0, metre - 1),
                      "intro_seconds": 6.0 if i % 3 == 0 else 0.0, "tonic": rng.randint(0, 11), "seed": i})
    rng.shuffle(songs)
    return songs


def downbeat_figures(count: int = 24) -> dict[str, Any]:
    from core.analysis import analyze
    from tests.structure_songs import bar_song, f_measure

    ours, naive, metres, boundaries_hit, boundaries = [], [], 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, params in enumerate(generated_set(count)):
            song = bar_song(**params)
            path = Path(tmp) / f"song{i}.wav"
            sf.write(path, song.audio, song.sr, subtype="PCM_16")
            result = analyze(path, ["tempo", "structure"])
            ours.append(f_measure(result["downbeats"], song.downbeats))
            naive.append(f_measure(result["beats"][:: song.beats_per_bar], song.downbeats))
            metres += result["beats_per_bar"] == song.beats_per_bar
            beat = 60.0 / song.bpm
            found = [s["start"] for s in result["sections"][1:]]
            truth = [start for (start, _e, letter), (_s, _e2, before) in zip(song.sections[1:], song.sections,
                                                                           strict=False) if letter != before]
            boundaries += len(truth)
            boundaries_hit += sum(any(abs(f - t) <= beat for f in found) for t in truth)
    return {
        "downbeat_f": round(sum(ours) / len(ours), 4),
        "downbeat_f_every_nth_beat": round(sum(naive) / len(naive), 4),
        "metre_right": round(metres / len(ours), 4),
        "section_boundaries_within_a_beat": round(boundaries_hit / max(1, boundaries), 4),
        "structure_songs": len(ours),
    }


DRUM_STYLES = ("four", "rock", "sixteenths")  # tests/synth.py's patterns; all with a snare or clap on 2 and 4
DRUM_TEMPOS = (96, 120, 124, 128, 140)


def drum_loop_figures(seconds: float = 24.0) -> dict[str, Any]:
    """Bars on drum loops: each of ``DRUM_STYLES`` at ``DRUM_TEMPOS``, alone, over one held chord, and over a
    chord a bar. ``loops_a_beat_off``: loops whose downbeats land on beat 2 or 4 (the backbeat), beside the
    same for every 4th tracked beat from the first; ``loops_half_a_bar_off``: on beat 3 (a one-bar loop whose
    beats 1 and 3 sound alike can't tell them apart); ``drum_loop_downbeat_f``: the mean F-measure."""
    import numpy as np

    from core.analysis import analyze
    from tests import synth
    from tests.structure_songs import f_measure

    beat_off = naive_beat_off = half_bar = loops = 0
    fs = []
    with tempfile.TemporaryDirectory() as tmp:
        for style in DRUM_STYLES:
            for harmony in ("drums alone", "one chord", "a chord a bar"):
                for bpm in DRUM_TEMPOS:
                    audio = synth.drums(bpm, seconds, style, seed=bpm % 5)
                    if harmony == "a chord a bar":
                        audio = audio + synth.harmony(9, "minor", bpm, seconds, progression=bpm % 3)
                    elif harmony == "one chord":
                        audio = audio + synth.one_chord(9, "minor", bpm, seconds)[: len(audio)]
                    path = Path(tmp) / "loop.wav"
                    sf.write(path, synth.mono(audio), synth.SR, subtype="PCM_16")
                    result = analyze(path, ["tempo", "structure"])
                    beat = 60.0 / bpm
                    truth = [k * 4 * beat for k in range(int(seconds / (4 * beat)) + 1) if k * 4 * beat < seconds - 0.5]
                    found = result["downbeats"]
                    fs.append(f_measure(found, truth))
                    loops += 1
                    position = round(found[len(found) // 2] / beat) % 4 if found else 0
                    beat_off += position in (1, 3)
                    half_bar += position == 2
                    naive = result["beats"][::4]
                    naive_beat_off += bool(naive) and round(naive[len(naive) // 2] / beat) % 4 in (1, 3)
    return {"drum_loops": loops, "loops_a_beat_off": beat_off, "loops_a_beat_off_every_4th_beat": naive_beat_off,
            "loops_half_a_bar_off": half_bar, "drum_loop_downbeat_f": round(float(np.mean(fs)), 4)}


_PEAK = ("import atexit, sys\n"
         "def hwm():\n"
         "    line = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
         "    print('VMHWM_KB', line.split()[1], file=sys.stderr)\n"
         "atexit.register(hwm)\n"
         "sys.argv = ['main.py', 'analyze', sys.argv[1]]\n"
         "import runpy\n"
         "runpy.run_path('main.py', run_name='__main__')\n")


def _peak_kib(path: Path) -> int:
    done = subprocess.run([sys.executable, "-c", _PEAK, str(path)], cwd=ROOT, capture_output=True, text=True,
                          check=True, timeout=600)
    line = next(line for line in done.stderr.splitlines() if line.startswith("VMHWM_KB"))
    return int(line.split()[1])


def analyze_peak_mb(path: Path) -> dict[str, Any]:
    """Peak RSS (VmHWM, the process' own) of ``python main.py analyze`` on ``path`` and on 5 s of it."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        data, sr = sf.read(path, frames=5 * sf.info(path).samplerate, dtype="float32", always_2d=True)
        short = Path(tmp) / "five-seconds.wav"
        sf.write(short, np.ascontiguousarray(data), sr)
        floor = _peak_kib(short)
    return {"analyze_peak_mb": round(_peak_kib(path) / 1024, 1), "analyze_5s_peak_mb": round(floor / 1024, 1)}


DOWNBEAT_F_TARGET = 0.9
PEAK_MB_TARGET = 250.0


def main() -> int:
    """Run alone: the structure figures and the memory of ``analyze`` on a 3-minute song, one JSON line."""
    import json

    from tests import synth

    figures = downbeat_figures()
    with tempfile.TemporaryDirectory() as tmp:
        path = synth.song(9, "minor", 124.0, 180.0, seed=7).write(Path(tmp) / "long.wav")
        figures.update(analyze_peak_mb(path))
    figures.update(downbeat_f_target=DOWNBEAT_F_TARGET, downbeat_f_ok=figures["downbeat_f"] >= DOWNBEAT_F_TARGET,
                   analyze_peak_mb_target=PEAK_MB_TARGET,
                   analyze_peak_mb_ok=figures["analyze_peak_mb"] < PEAK_MB_TARGET)
    print(f"downbeat F-measure {figures['downbeat_f']} (target >= {DOWNBEAT_F_TARGET}); every n-th beat "
          f"{figures['downbeat_f_every_nth_beat']}; analyze peak {figures['analyze_peak_mb']} MB (target < "
          f"{PEAK_MB_TARGET:.0f}; 5 s of audio: {figures['analyze_5s_peak_mb']} MB)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
