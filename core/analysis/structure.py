"""Bars, downbeats, song sections and loop suggestions, from features the analysis computes anyway.

Bars. The beats are there (tempo.py); a bar is ``beats_per_bar`` of them, and the question is which beat is
the first. Four cues mark a downbeat, each measured per beat and standardised over the track: the chord
changes (cosine distance between the chroma of a beat and of the one before: harmony moves at bar lines),
a low-frequency onset (kick and bass note land on the one), the overall onset strength (accents), and the
backbeat: a beat whose 1-5 kHz onset (a snare's or clap's crack) stands out over its low onset is a 2 or a
4, so the beats either side of it score and it loses. The backbeat cue is what keeps a house loop (a kick on
every beat, a clap on 2 and 4) from being read a beat off: there the clap's body makes the low and overall
cues louder on the 2 and the 4. A cue that barely varies (the chroma of a drum loop alone) is not blown up to
full weight, and the first beat counts for no phase (it has no beat before it to change from). For each
metre (3 and 4 beats) and each phase, the contrast of the summed cue between the beats it calls downbeats and
the others is measured; the best phase of the metre with the larger contrast wins (4 unless 3 is clearly
better: most music is in 4). Beats before the music starts (a silent intro; beats the tracker puts into
silence) are not counted, so a late start does not shift the grid. A one-bar loop whose beats 1 and 3 sound
alike (a kick on each, nothing else moving) leaves those two a toss-up: the bar lines are then right or half a
bar off, never on the backbeat.

Sections. Each bar becomes one vector: its mean chroma (harmony) and its mean MFCC 1-12 (timbre), each
standardised. Their cosine self-similarity, bar by bar, shows sections as blocks; a checkerboard kernel
slid along the diagonal (Foote 2000) peaks where one block ends and another starts. The strongest peaks,
at least ``MIN_SECTION_BARS`` apart and no more than one section per ``SECONDS_PER_SECTION`` seconds on
average, are the boundaries, all on downbeats. Sections are then labelled by how alike they are, bar for bar
from their starts: a section as alike as ``SAME_MUSIC`` to an earlier one takes its letter (verse 2 is
another A), else the next letter. ``energy`` is the section's mean RMS relative to the loudest section.

Loops. A 4- or 8-bar stretch loops seamlessly when the music after it repeats it: the bars that follow it
are compared with its own, bar for bar, and the mean similarity is its score (1 = the next bars are the
same music, so jumping back from the end to the start is heard as nothing). The best few, not overlapping,
inside one section, are suggested.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

METRES = (4, 3)
# 3/4 is chosen only when its downbeat contrast beats 4/4's by this factor.
THREE_OVER_FOUR = 1.15
ONSET_WINDOW = 2  # frames either side of a beat where its onset is looked for
EDGE_FRAMES = 2  # an onset this near the first frame has no frame before it: not measured
# Spread (standard deviation of the cosine distance) under which the chroma of successive beats only wobbles:
# a chord change is 0.1-0.5 (0.1 under drums); a drum loop alone varies by ~0.005, which is no cue.
CHORD_CHANGE_FLOOR = 0.02
# Onset strength (tempo.MIN_ONSET's scale) where the music is taken to start; for a track whose strongest onset
# is weaker (a legato melody alone), half of that strongest onset.
MUSIC_ONSET = 0.1
# Seconds a downbeat may lie after the last onset of the music (the 70 ms of the downbeat tolerance).
LAST_DOWNBEAT_SLACK = 0.07
# Weight of the backbeat cue (a snare or clap beat is not a downbeat; the beats either side of it may be).
BACKBEAT_WEIGHT = 1.0
# The cue counts only where every other beat has a snare: its alternation from BACKBEAT_FROM (none) to
# BACKBEAT_FULL (all of it); see _backbeat_weight.
BACKBEAT_FROM, BACKBEAT_FULL = 0.5, 1.0
MIN_SECTION_BARS = 4
SECONDS_PER_SECTION = 8.0
WINDOW_BARS = (4, 8)  # bars either side of a candidate boundary whose means are compared
MIN_NOVELTY = 0.25  # distance of those means under which there is no boundary
SAME_MUSIC = 0.8
TIMBRE_WEIGHT = 0.3
LOOP_LENGTHS = (4, 8)
LOOPS_PER_LENGTH = 2
MIN_LOOP_SCORE = 0.5


@dataclass
class Structure:
    downbeats: list[float] = field(default_factory=list)  # seconds
    beats_per_bar: int | None = None
    sections: list[dict[str, float | str]] = field(default_factory=list)  # start, end (s), label, energy
    loops: list[dict[str, float | int]] = field(default_factory=list)  # start, end (s), bars, score
    notes: list[str] = field(default_factory=list)


def _standardise(x: np.ndarray) -> np.ndarray:
    std = float(np.std(x))
    return (x - float(np.mean(x))) / std if std > 1e-12 else np.zeros_like(x)


def _standardise_measured(x: np.ndarray, unmeasured: np.ndarray, std_floor: float = 0.0) -> np.ndarray:
    """``x`` standardised over the entries measured, dividing by no less than ``std_floor`` (a cue that barely
    varies stays small instead of being blown up to full weight); those not measured (``unmeasured`` True) get
    0, the mean."""
    out = np.zeros(len(x))
    measured = x[~unmeasured]
    if measured.size:
        std = max(float(np.std(measured)), std_floor)
        out[~unmeasured] = (measured - float(np.mean(measured))) / std if std > 1e-12 else 0.0
    return out


def _unit_columns(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=0, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _segment_means(frames: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Mean of ``frames`` (rows, T) over each [bounds[i], bounds[i+1]) -> (rows, len(bounds) - 1)."""
    bounds = np.clip(bounds, 0, frames.shape[1])
    sums = np.add.reduceat(frames, np.minimum(bounds[:-1], frames.shape[1] - 1), axis=1)
    counts = np.maximum(np.diff(bounds), 1)
    out = sums / counts
    out[:, np.diff(bounds) <= 0] = 0.0
    return out


def _peak_near(envelope: np.ndarray, frames: np.ndarray) -> np.ndarray:
    padded = np.pad(envelope, ONSET_WINDOW)
    return np.max([padded[frames + k] for k in range(2 * ONSET_WINDOW + 1)], axis=0)


def _snare_share(snare: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Per beat, ``log(snare / low)`` of the two onset strengths (each floored at a tenth of its mean): high
    where a snare or clap cracks over what the kick and bass do, the same for an accent in every band."""
    return np.log(snare + 0.1 * float(np.mean(snare)) + 1e-9) - np.log(low + 0.1 * float(np.mean(low)) + 1e-9)


def _backbeat_weight(snare: np.ndarray, counted: np.ndarray) -> float:
    """How far the backbeat cue counts: by how much the snare share (standardised) of every other beat differs
    from that of the beats between, ``a``; none under ``BACKBEAT_FROM``, all from ``BACKBEAT_FULL``. A drum
    loop with a snare or clap on 2 and 4 has ``a`` ~1.6-2.0; music without drums 0.0-0.4 (bench/README)."""
    index = np.flatnonzero(counted)
    even, odd = snare[index[index % 2 == 0]], snare[index[index % 2 == 1]]
    if not even.size or not odd.size:
        return 0.0
    a = abs(float(even.mean() - odd.mean()))
    return BACKBEAT_WEIGHT * float(np.clip((a - BACKBEAT_FROM) / (BACKBEAT_FULL - BACKBEAT_FROM), 0.0, 1.0))


def _backbeat(snare: np.ndarray) -> np.ndarray:
    """Per beat, how much more its neighbours are snare beats than it is: ``(s[i-1] + s[i+1]) / 2 - s[i]``
    (one neighbour at either end). High on the beat before and after a backbeat: beats 1 and 3 of a 4/4
    bar whose snare or clap is on 2 and 4."""
    if len(snare) < 2:
        return np.zeros_like(snare)
    before = np.concatenate([snare[1:2], snare[:-1]])
    after = np.concatenate([snare[1:], snare[-2:-1]])
    return (before + after) / 2.0 - snare


def downbeat_phase(beats: np.ndarray, beat_frames: np.ndarray, onset: np.ndarray, low_onset: np.ndarray,
                   chroma: np.ndarray, snare_onset: np.ndarray | None = None) -> tuple[int, int, float]:
    """``(beats_per_bar, index of the first downbeat among beats, contrast)`` from the per-beat cues."""
    bounds = np.append(beat_frames, beat_frames[-1] + max(1, int(np.median(np.diff(beat_frames)))))
    beat_chroma = _unit_columns(_segment_means(chroma, bounds))
    change = np.zeros(len(beats))
    change[1:] = 1.0 - np.sum(beat_chroma[:, 1:] * beat_chroma[:, :-1], axis=0)
    # What can't be measured counts as average: the first beat has no beat before it to change from, and an
    # onset in the first frames (the audio starting on a hit) has no frame before it to rise from.
    from_start = np.arange(len(beats)) == 0
    at_edge = beat_frames < EDGE_FRAMES
    low = _standardise_measured(_peak_near(low_onset, beat_frames), at_edge)
    cue = (_standardise_measured(change, from_start, CHORD_CHANGE_FLOOR) + low
           + 0.5 * _standardise_measured(_peak_near(onset, beat_frames), at_edge))
    counted = ~from_start  # the first beat's cues are half measured: it counts for no phase
    if snare_onset is not None:
        snare = _standardise_measured(
            _snare_share(_peak_near(snare_onset, beat_frames), _peak_near(low_onset, beat_frames)), at_edge)
        cue += _backbeat_weight(snare, counted) * _backbeat(snare)
    best: dict[int, tuple[float, int]] = {}
    for metre in METRES:
        if len(beats) < 2 * metre:
            continue
        index = np.arange(len(beats)) % metre
        contrasts = [float(cue[counted & (index == p)].mean() - cue[counted & (index != p)].mean())
                     for p in range(metre)]
        phase = int(np.argmax(contrasts))
        best[metre] = (contrasts[phase], phase)
    if not best:
        return 4, 0, 0.0
    four, three = best.get(4, (-np.inf, 0)), best.get(3, (-np.inf, 0))
    metre = 3 if three[0] > THREE_OVER_FOUR * max(four[0], 0.0) and three[0] > 0 else 4
    contrast, phase = best[metre]
    return metre, phase, contrast


def _novelty(bars: np.ndarray, halves: tuple[int, ...]) -> np.ndarray:
    """Per bar start j: the distance between the mean bar vector of the ``half`` bars before it and of the
    ``half`` bars from it, averaged over the window sizes ``halves`` (a chord progression averages out over
    its cycle, so the long windows are steady inside a section and jump where the music changes; the short
    ones say at which bar)."""
    n = bars.shape[1]
    cumulative = np.concatenate([np.zeros((bars.shape[0], 1)), np.cumsum(bars, axis=1)], axis=1)
    novelty = np.zeros(n)
    for half in halves:
        for j in range(1, n):
            a, b = max(0, j - half), min(n, j + half)
            before = (cumulative[:, j] - cumulative[:, a]) / (j - a)
            after = (cumulative[:, b] - cumulative[:, j]) / (b - j)
            novelty[j] += float(np.linalg.norm(before - after)) / len(halves)
    return novelty


def _boundaries(novelty: np.ndarray, max_sections: int) -> list[int]:
    """Bar indices where sections start (0 first): the strongest local peaks of novelty, spaced."""
    n = len(novelty)
    reach = MIN_SECTION_BARS - 1  # a boundary is the strongest within this many bars either side
    peaks = [j for j in range(MIN_SECTION_BARS, n - MIN_SECTION_BARS + 1)
             if novelty[j] > 0 and novelty[j] >= novelty[max(0, j - reach): j + reach + 1].max()]
    if not peaks:
        return [0]
    chosen: list[int] = []
    for j in sorted(peaks, key=lambda j: -novelty[j]):
        if len(chosen) + 1 >= max_sections or novelty[j] < MIN_NOVELTY:
            break
        if all(abs(j - c) >= MIN_SECTION_BARS for c in chosen):
            chosen.append(j)
    return [0, *sorted(chosen)]


def _alike(bars: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    """Mean cosine similarity of two bar ranges, bar for bar from their starts."""
    length = min(a[1] - a[0], b[1] - b[0])
    if length <= 0:
        return 0.0
    return float(np.mean(np.sum(bars[:, a[0]: a[0] + length] * bars[:, b[0]: b[0] + length], axis=0)))


def _labels(bars: np.ndarray, spans: list[tuple[int, int]]) -> list[str]:
    """A letter per section: the letter of the most alike earlier section if it is alike enough (cosine of
    the sections' mean bar vectors, less the track's mean), else the next letter."""
    centred = bars - bars.mean(axis=1, keepdims=True)
    means = _unit_columns(np.stack([centred[:, a:b].mean(axis=1) for a, b in spans], axis=1))
    labels: list[str] = []
    letters = iter(string.ascii_uppercase)
    for i in range(len(spans)):
        scores = [(float(means[:, i] @ means[:, j]), labels[j]) for j in range(i)]
        best = max(scores, default=(0.0, ""))
        labels.append(best[1] if best[0] >= SAME_MUSIC else next(letters, "Z"))
    return labels


def _loops(bars: np.ndarray, starts: np.ndarray, spans: list[tuple[int, int]]) -> list[dict[str, float | int]]:
    n = bars.shape[1]
    found: list[tuple[float, int, int]] = []
    for length in LOOP_LENGTHS:
        candidates = []
        for a, b in spans:
            for j in range(a, b - length + 1):
                follow = min(length, n - (j + length))
                if follow < 1:
                    continue
                score = _alike(bars, (j, j + length), (j + length, j + length + follow))
                candidates.append((score, j, length))
        taken: list[tuple[float, int, int]] = []
        for score, j, length_ in sorted(candidates, key=lambda c: (-c[0], c[1])):
            if score < MIN_LOOP_SCORE or len(taken) >= LOOPS_PER_LENGTH:
                break
            if all(j + length_ <= k or k + m <= j for _, k, m in taken):
                taken.append((score, j, length_))
        found.extend(taken)
    return [{"start": round(float(starts[j]), 3), "end": round(float(starts[j + m]), 3), "bars": m,
             "score": round(min(1.0, max(0.0, s)), 3)} for s, j, m in sorted(found, key=lambda f: (f[2], f[1]))]


def _music_span(onset: np.ndarray, fps: float) -> tuple[float, float] | None:
    """(start, end) in seconds of the music: the first and last onset of ``MUSIC_ONSET`` strength; None without."""
    inner = onset.copy()
    inner[-4:] = 0.0  # the STFT's padding makes a transient at the very end (see tempo.py)
    loud = np.flatnonzero(inner >= min(MUSIC_ONSET, 0.5 * float(inner.max(initial=0.0))))
    return None if loud.size == 0 else (loud[0] / fps, loud[-1] / fps)


def _beats_in_music(beats: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """The beats from the start of the music to a beat after its end: the tracker keeps its grid going through a
    silent intro and the tail, and those beats belong to no bar."""
    period = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
    return beats[(beats >= span[0] - 0.1) & (beats <= span[1] + period)]


def bar_grid(beats: np.ndarray, onset: np.ndarray, low_onset: np.ndarray, chroma: np.ndarray,
             fps: float, snare_onset: np.ndarray | None = None) -> tuple[int, float] | None:
    """``(beats_per_bar, first downbeat in seconds)`` of a beat grid (the bars ``analyse_structure`` would find),
    or None with too few beats. Shapes as ``analyse_structure``'s."""
    span = _music_span(onset, fps)
    if span is None or len(beats) < 8:
        return None
    beats = _beats_in_music(beats, span)
    if len(beats) < 8:
        return None
    beat_frames = np.clip(np.round(beats * fps).astype(int), 0, onset.shape[0] - 1)
    metre, phase, _ = downbeat_phase(beats, beat_frames, onset, low_onset, chroma, snare_onset)
    return metre, float(beats[phase])


def analyse_structure(beats: np.ndarray, onset: np.ndarray, low_onset: np.ndarray, chroma: np.ndarray,
                      timbre: np.ndarray, rms: np.ndarray, fps: float, duration: float,
                      anchor: tuple[int, float] | None = None, snare_onset: np.ndarray | None = None) -> Structure:
    """Downbeats, metre, sections and loops.

    ``beats``: beat times (s); ``onset``/``low_onset``: onset strength of all / the low mel bands per frame;
    ``chroma`` (12, T), ``timbre`` (MFCC, n, T) and ``rms`` (T) at ``fps`` frames a second; ``duration`` (s).
    ``anchor`` (beats per bar, a downbeat in seconds) fixes the bars instead of finding them: a grid counted
    at half or twice the tempo found keeps the bar lines of the grid it came from (service.py).
    """
    result = Structure()
    span = _music_span(onset, fps)
    if span is None or len(beats) < 8:
        result.notes.append("Too few beats to find bars, sections or loops")
        return result
    music_end = span[1]
    beats = _beats_in_music(beats, span)
    if len(beats) < 8:
        result.notes.append("Too few beats to find bars, sections or loops")
        return result
    total = onset.shape[0]
    beat_frames = np.clip(np.round(beats * fps).astype(int), 0, total - 1)
    if anchor is None:
        metre, phase, _ = downbeat_phase(beats, beat_frames, onset, low_onset, chroma, snare_onset)
    else:
        metre = anchor[0]
        phase = int(np.argmin(np.abs(beats - anchor[1]))) % metre
    downbeats = beats[phase::metre]
    result.beats_per_bar = metre
    # A downbeat after the last onset starts no bar: the tracker's grid runs on into the tail (a loop that ends
    # on beat 4 got a "bar" at the file's end). One on the last onset (a final hit on the one) is a bar.
    result.downbeats = np.round(downbeats[downbeats <= music_end + LAST_DOWNBEAT_SLACK], 3).tolist()
    if len(downbeats) < 2:
        return result

    bar_seconds = float(np.median(np.diff(downbeats)))
    if downbeats[-1] + 0.5 * bar_seconds > music_end:  # the last downbeat only starts the decay: not a bar
        downbeats = downbeats[:-1]
    edges = np.append(downbeats, min(duration, downbeats[-1] + bar_seconds))
    frames = np.clip(np.round(edges * fps).astype(int), 0, total)
    harmony = _unit_columns(_segment_means(chroma, frames))
    colour = _segment_means(timbre[1:13], frames)
    colour = (colour - colour.mean(axis=1, keepdims=True)) / np.maximum(colour.std(axis=1, keepdims=True), 1e-9)
    # Harmony (unit chroma) and timbre (standardised MFCC, scaled to weigh less: it changes with the drums).
    features = np.vstack([harmony, TIMBRE_WEIGHT * colour / np.sqrt(colour.shape[0])])
    bars = _unit_columns(features)
    n = bars.shape[1]
    max_sections = max(1, int(duration // SECONDS_PER_SECTION))
    starts = _boundaries(_novelty(features, WINDOW_BARS), max_sections) if n >= 2 * MIN_SECTION_BARS else [0]
    spans = [(a, b) for a, b in zip(starts, [*starts[1:], n], strict=True)]
    labels = _labels(features, spans)
    loudness = [float(np.mean(rms[frames[a]: max(frames[a] + 1, frames[b])])) for a, b in spans]
    peak = max(loudness) or 1.0
    result.sections = [{"start": round(float(edges[a]), 3), "end": round(float(edges[b]), 3), "label": label,
                        "energy": round(level / peak, 3)}
                       for (a, b), label, level in zip(spans, labels, loudness, strict=True)]
    result.loops = _loops(bars, edges, spans)
    return result
