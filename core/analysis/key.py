"""Musical key by key-profile correlation (the Krumhansl-Schmuckler method) on a CQT chroma.

The 12-bin pitch-class profile of the whole track is correlated (Pearson) with a major and a
minor key profile rotated to each of the 12 tonics; the best of the 24 is the key. We average
the correlations of two corpus-derived profile sets, Temperley's (Kostka-Payne corpus, 2007) and
Albrecht & Shanahan's (2013): each on its own tends to one mode confusion (Temperley towards the
relative major), averaging them cancels part of that. Since audio carries every note's overtones
as well, each profile is first spread over the partials of its notes (see ``HARMONIC_DECAY``).

The pitch-class profile is summed from a log-compressed constant-Q magnitude,
``log(1 + 100 * C / max(C))``, rather than from per-frame normalised chroma: normalising every
frame gives a drum hit or a near-silent frame as much say as a sustained chord, and without the
compression the loudest partials (the bass, and each note's own fifth in its third harmonic)
pull the profile towards the dominant or subdominant.

``estimate_key_from_cqt`` names the key whose averaged correlation is highest, with an honest
confidence: a softmax (``TEMPERATURE``) of the 24 key scores, so a
piece between a key and its relative or dominant reads near 0.5 instead of the 0.8-0.9 the raw
correlation gives either way. It can also weigh the bass line and the last seconds (``BASS_WEIGHT``,
``ENDING_WEIGHT``); both are 0: on real music (bench/realmusic.py) they helped the development set
less than they hurt the generated one (see bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import librosa
import numpy as np

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Profiles, tonic first, one weight per semitone above it.
_PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "temperley": (
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
    ),
    "albrecht_shanahan": (
        (0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
        (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052),
    ),
}
MODES = ("major", "minor")
CQT_COMPRESSION = 100.0
# A sounding note is heard in its partials too: the 3rd harmonic adds its fifth, the 5th its major
# third. The profiles count notes, the chroma hears partials, so each profile is spread by the
# partials of its notes before the correlation (Gómez 2006), with these partial weights
# (1, 0.4, 0.16, ... for harmonics 1-6; the decay was chosen on development clips, not the bench set).
HARMONIC_PARTIALS = 6
HARMONIC_DECAY = 0.4
# No key is named when the pitch-class profile is nearly flat (its standard deviation under this
# fraction of its mean: noise, drums alone, clicks), or when even the best key correlates weakly.
# Tonal material measures 0.15-0.4 and 0.8-0.95; noise 0.01, a drum kit about 0.09 and 0.3.
MIN_CONTRAST = 0.1
MIN_CORRELATION = 0.5


@dataclass(frozen=True)
class KeyEstimate:
    key: str | None  # "A minor", "F# major"
    confidence: float  # correlation of the best key, 0..1
    candidates: list[tuple[str, float]] = field(default_factory=list)  # best first


def key_name(tonic: int, mode: str) -> str:
    return f"{PITCH_CLASSES[tonic % 12]} {mode}"


def pitch_class_profile(cqt_magnitude: np.ndarray, bins_per_octave: int, fmin: float) -> np.ndarray:
    """The 12 pitch-class weights (C first) of a whole track from its CQT magnitude."""
    peak = float(cqt_magnitude.max())
    if peak <= 0.0:
        return np.zeros(12)
    to_chroma = librosa.filters.cq_to_chroma(cqt_magnitude.shape[0], bins_per_octave=bins_per_octave, fmin=fmin)
    compressed = np.log1p(CQT_COMPRESSION * (cqt_magnitude / peak))
    return (to_chroma @ compressed).sum(axis=1).astype(np.float64)


def _harmonic_spread() -> np.ndarray:
    """What one note puts into each pitch class (relative to its own) through its first partials."""
    spread = np.zeros(12)
    for k in range(1, HARMONIC_PARTIALS + 1):
        spread[round(12 * np.log2(k)) % 12] += HARMONIC_DECAY ** (k - 1)
    return spread


def _key_templates() -> np.ndarray:
    """(profile set, 24 keys, 12 pitch classes): every profile, spread by the partials of its notes,
    rotated to every tonic; majors first."""
    spread = _harmonic_spread()
    sets = []
    for major, minor in _PROFILES.values():
        rows = []
        for profile in (major, minor):
            # Circular convolution: pitch class p gets profile[m] * spread[p - m] from every note m.
            audible = np.array([sum(profile[m] * spread[(p - m) % 12] for m in range(12)) for p in range(12)])
            rows.extend(np.roll(audible, tonic) for tonic in range(12))
        sets.append(rows)
    return np.asarray(sets)


_TEMPLATES = _key_templates()


def _pearson(profile: np.ndarray, templates: np.ndarray) -> np.ndarray:
    p = profile - profile.mean()
    t = templates - templates.mean(axis=-1, keepdims=True)
    denom = np.linalg.norm(p) * np.linalg.norm(t, axis=-1)
    return (t @ p) / np.where(denom > 0, denom, 1.0)


# --- the bass and the ending: which of the related keys is the tonic ---------------------------------

# How often each scale step (semitones above the tonic) is the bass note, in a major and a minor key: the
# tonic most, then the dominant, the subdominant, the other diatonic steps; in minor its VI and III, and
# the leading tone only rarely (vii°6). Hand-set from the harmonic textbook rule that bass lines rest on
# I, V and IV, not fitted to any set.
BASS_PROFILES = (
    (1.0, 0.0, 0.3, 0.0, 0.2, 0.5, 0.05, 0.7, 0.0, 0.3, 0.0, 0.15),
    (1.0, 0.0, 0.3, 0.2, 0.0, 0.5, 0.0, 0.7, 0.3, 0.0, 0.1, 0.15),
)
# The tonic triad, for the last sonority.
TRIADS = ((1.0, 0, 0, 0, 1.0, 0, 0, 1.0, 0, 0, 0, 0), (1.0, 0, 0, 1.0, 0, 0, 0, 1.0, 0, 0, 0, 0))
BASS_WEIGHT = 0.0
ENDING_WEIGHT = 0.0
ENDING_SECONDS = 3.0
BASS_FLOOR = 0.25  # the bass is the lowest semitone peak within this fraction of the frame's strongest
# Softmax temperature turning the combined scores of the 24 keys into the reported confidences.
TEMPERATURE = 0.05


def _semitones(cqt_magnitude: np.ndarray, bins_per_octave: int, fmin: float) -> tuple[np.ndarray, np.ndarray]:
    """(semitones, frames) magnitude, each semitone the sum of the CQT bins centred on it, and the pitch class
    of every row."""
    r = max(1, bins_per_octave // 12)
    n = cqt_magnitude.shape[0] // r
    padded = np.pad(cqt_magnitude, ((r // 2, 0), (0, 0)))[: n * r]
    semis = padded.reshape(n, r, -1).sum(axis=1)
    classes = (int(round(float(librosa.hz_to_midi(fmin)))) + np.arange(n)) % 12
    return semis, classes


def _bass_profile(semis: np.ndarray, classes: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """12 weights: how much each pitch class is the lowest note sounding (the lowest semitone peak within
    ``BASS_FLOOR`` of the frame's strongest), over the frames, each frame counted by ``weight``."""
    peak = semis.max(axis=0)
    above = np.vstack([semis[1:], np.zeros((1, semis.shape[1]))])
    below = np.vstack([np.zeros((1, semis.shape[1])), semis[:-1]])
    strong = (semis >= BASS_FLOOR * peak) & (semis >= above) & (semis >= below) & (peak > 0)
    lowest = np.argmax(strong, axis=0)
    return np.bincount(classes[lowest], weights=weight * strong.any(axis=0), minlength=12)


def _rotations(profiles: tuple[tuple[float, ...], ...]) -> np.ndarray:
    """(24, 12): each profile rotated to every tonic, majors first."""
    return np.asarray([np.roll(np.asarray(p, dtype=np.float64), t) for p in profiles for t in range(12)])


_BASS_TEMPLATES = _rotations(BASS_PROFILES)
_TRIAD_TEMPLATES = _rotations(TRIADS)


def key_scores(cqt_magnitude: np.ndarray, bins_per_octave: int, fmin: float,
               fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(combined, profile): the combined score of each of the 24 keys (majors first) and the whole-track
    pitch-class profile the global part was computed from."""
    peak = float(cqt_magnitude.max())
    profile = pitch_class_profile(cqt_magnitude, bins_per_octave, fmin)
    if peak <= 0.0:
        return np.zeros(24), profile
    semis, classes = _semitones(cqt_magnitude, bins_per_octave, fmin)
    loud = np.log1p(CQT_COMPRESSION * semis.max(axis=0) / float(semis.max()))
    scores = _pearson(profile, _TEMPLATES).mean(axis=0)
    bass = _bass_profile(semis, classes, loud)
    if bass.sum() > 0:
        scores = scores + BASS_WEIGHT * _pearson(bass, _BASS_TEMPLATES)
    audible = np.flatnonzero(loud > np.log1p(CQT_COMPRESSION * 0.01))
    if audible.size:
        stop = int(audible[-1]) + 1
        start = max(0, stop - int(round(ENDING_SECONDS * fps)))
        end_semis = semis[:, start:stop]
        end_bass = _bass_profile(end_semis, classes, loud[start:stop])
        compressed = np.log1p(CQT_COMPRESSION * end_semis / float(semis.max()))
        end_chroma = np.bincount(classes, weights=compressed.sum(axis=1), minlength=12)
        ending = end_bass / max(end_bass.sum(), 1e-12) + end_chroma / max(end_chroma.sum(), 1e-12)
        scores = scores + ENDING_WEIGHT * _pearson(ending, _TRIAD_TEMPLATES)
    return scores, profile


def estimate_key_from_cqt(cqt_magnitude: np.ndarray, bins_per_octave: int, fmin: float, fps: float,
                          candidates: int = 3) -> KeyEstimate:
    """The best of the 24 keys from a CQT magnitude (frames at ``fps``), with the bass and the ending."""
    scores, profile = key_scores(cqt_magnitude, bins_per_octave, fmin, fps)
    mean = float(profile.mean())
    if mean <= 0.0:
        return KeyEstimate(None, 0.0, [])
    posterior = np.exp((scores - scores.max()) / TEMPERATURE)
    posterior /= posterior.sum()
    order = np.argsort(scores)[::-1]
    names = [key_name(i % 12, MODES[i // 12]) for i in order[:candidates]]
    ranked = [(name, round(float(posterior[i]), 4)) for name, i in zip(names, order[:candidates], strict=True)]
    best_correlation = float(_pearson(profile, _TEMPLATES).mean(axis=0).max())
    if best_correlation < MIN_CORRELATION or float(profile.std()) / mean < MIN_CONTRAST:
        return KeyEstimate(None, 0.0, ranked)
    return KeyEstimate(names[0], ranked[0][1], ranked)
