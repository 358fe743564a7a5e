"""Audio analysis: tempo and beats, key, energy, spectral shape, MFCC and chroma, in one pass.

    from core.analysis import analyze
    result = analyze(path, ["tempo", "key"], progress)     # features default to all

``analyze`` decodes once, computes the STFT once and derives every requested feature from it
(see service.py); tempo.py, key.py and energy.py hold the methods and say why they are built the
way they are. The result is a JSON-ready dict:

* always: ``features_analyzed``, ``duration`` (s), ``sample_rate`` (of the analysis), ``notes``
  (sentences for a person: silence, too short for a tempo, no tonal centre, ...);
* tempo: ``tempo`` (BPM or None), ``tempo_confidence`` (0..1), ``beats`` (seconds); with a caller's
  ``tempo_range`` (min, max BPM, at least an octave) the beat is counted at the level inside it (half or
  double the one found, and a note says so), and the result echoes ``tempo_range``;
* key: ``key`` ("A minor", "F# major" or None), ``key_confidence`` (0..1: the best key's share of a
  probability spread over the 24 keys, low where keys compete), ``key_candidates`` (the three best
  keys with their probability);
* energy: ``energy`` (0..1, independent of gain), ``zero_crossing_rate`` (mean, per sample),
  ``features.rms`` (the RMS level over time, at ``frame_rate``);
* spectral: ``spectral_centroid``, ``spectral_rolloff``, ``spectral_bandwidth`` (mean, Hz) and
  ``spectral_contrast`` (mean dB per octave band: 0-200, 200-400, 400-800, 800-1600, 1600-3200,
  3200-6400 Hz and 6400 Hz-Nyquist), ``features.centroid`` (the centroid over time, Hz, at ``frame_rate``);
* mfcc / chroma: ``features.mfcc`` (13 x frames), ``features.chroma`` (12 x frames, C first),
  averaged down to ``frame_rate`` (at most 2) frames a second;
* structure: ``beats_per_bar``, ``downbeats`` (s), ``sections`` and ``loops`` (structure.py).

Faults follow core/progress.py: ``BadInput`` for a file that cannot be decoded or is too short,
``core.errors.InvalidInput`` (422) for unknown feature names or a tempo range that is not an octave
within 30-300 BPM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.analysis.features import ALL, ALLOWED, FEATURES, check_tempo_range, parse_features
from core.progress import ProgressFn, no_progress

__all__ = ["ALL", "ALLOWED", "FEATURES", "analyze", "check_tempo_range", "parse_features"]


def analyze(path: str | Path, features: Any = None, progress: ProgressFn = no_progress,
            tempo_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """See core.analysis.service.analyze. Imported on call: numpy and the DSP modules take a moment to import,
    which the web process (which only validates feature names) should not pay."""
    from core.analysis.service import analyze as run

    return run(path, features, progress, tempo_range)
