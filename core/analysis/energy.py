"""Energy: how intense a track feels, on 0..1, the same for a quiet and a loud copy of it.

Absolute level says little (the same song is mastered 10 dB apart on two releases), so energy is
built from two ratios that do not change with gain:

* ``density``: mean frame RMS over the 95th-percentile frame RMS. Sustained, compressed material
  (a wall of guitars, a pumping club track) sits near its peaks all the time and scores near 1; a
  sparse arrangement or a click track, mostly quiet between hits, scores low.
* ``activity``: how much is happening, from the mean loudness-weighted spectral flux (the onset
  envelope the tempo is measured on, which is itself gain-invariant), mapped onto 0..1 by
  ``1 - exp(-flux / ACTIVITY_SCALE)``. A held chord or a sine scores near 0; dense drums and
  changing harmony score high.

``energy = sqrt(density * activity)``, the geometric mean, so a track needs both, loud-and-steady
and busy, to score high: a sustained pad (dense, inactive) and a lone metronome (active, sparse)
both stay low. Silence is 0.
"""

from __future__ import annotations

import numpy as np

# Mean flux at which activity reaches 1 - 1/e (~0.63); a drum-and-harmony mix at 120 BPM sits near it.
ACTIVITY_SCALE = 0.03
_DENSITY_PERCENTILE = 95.0


def density(rms: np.ndarray) -> float:
    """Mean frame RMS relative to the loud frames (0..1)."""
    loud = float(np.percentile(rms, _DENSITY_PERCENTILE)) if rms.size else 0.0
    if loud <= 0.0:
        return 0.0
    return float(np.clip(np.mean(rms) / loud, 0.0, 1.0))


def activity(onset_env: np.ndarray) -> float:
    """Mean onset strength mapped onto 0..1."""
    if onset_env.size == 0:
        return 0.0
    return float(1.0 - np.exp(-max(float(np.mean(onset_env)), 0.0) / ACTIVITY_SCALE))


def energy(rms: np.ndarray, onset_env: np.ndarray) -> float:
    """The 0..1 energy score defined above."""
    return float(np.sqrt(density(rms) * activity(onset_env)))
