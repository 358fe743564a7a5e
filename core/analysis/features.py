"""The feature groups a caller can ask for, and which result fields each one fills.

This module is light on purpose (no numpy, no librosa): the API validates a request with
``parse_features`` before it enqueues a job, and the web process should not pay for importing
the signal-processing stack to do that.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import InvalidInput

ALL = "all"
# In the order they are computed and reported.
FEATURES: tuple[str, ...] = ("tempo", "key", "energy", "spectral", "mfcc", "chroma", "structure")
ALLOWED: tuple[str, ...] = (*FEATURES, ALL)

# Top-level result fields each group fills (mfcc and chroma live under result["features"]).
FIELDS: dict[str, tuple[str, ...]] = {
    "tempo": ("tempo", "tempo_confidence", "beats"),
    "key": ("key", "key_confidence", "key_candidates"),
    "energy": ("energy", "zero_crossing_rate"),
    "spectral": ("spectral_centroid", "spectral_rolloff", "spectral_bandwidth", "spectral_contrast"),
    "mfcc": (),
    "chroma": (),
    "structure": ("downbeats", "beats_per_bar", "sections", "loops"),
}


# The tempo search's range (core/analysis/tempo.py).
TEMPO_SEARCH_BPM: tuple[float, float] = (50.0, 220.0)
# Where a caller's range may lie: wider than the search, since a beat found at 60 BPM may be counted at 30.
TEMPO_RANGE_BPM: tuple[float, float] = (30.0, 300.0)


def check_tempo_range(low: float, high: float) -> tuple[float, float]:
    """A caller's tempo range (BPM), or ``InvalidInput`` naming ``tempo_range``.

    The range must lie within ``TEMPO_RANGE_BPM`` and span at least an octave (``high >= 2 * low``), so that
    every beat found has a half or a double inside it (what ``tempo.fold_into`` moves it to)."""
    lo, hi = TEMPO_RANGE_BPM
    message = ""
    if not (lo <= low <= hi and lo <= high <= hi):
        message = f"A tempo range must lie within {lo:g}-{hi:g} BPM: {low:g}-{high:g} BPM does not"
    elif high <= low:
        message = f"A tempo range's min must be below its max: {low:g}-{high:g} BPM is not"
    elif high < 2 * low:
        message = (f"A tempo range must span at least an octave (max >= 2 x min), so every tempo has a half or a "
                   f"double in it: {low:g}-{high:g} BPM does not")
    if message:
        raise InvalidInput(message, details={"tempo_range": message})
    return float(low), float(high)


def octave_around(bpm: float) -> tuple[float, float] | None:
    """An octave-wide tempo range (min, max BPM) that holds ``bpm`` inside it, within ``TEMPO_RANGE_BPM``: centred
    on it (``bpm / sqrt 2`` to ``bpm * sqrt 2``) where that fits, else moved to the limit. A beat found at any
    octave of ``bpm`` folds onto it (``tempo.fold_into``): the "half time" and "double time" of a tempo found.
    None when ``bpm`` is not strictly between 30 and 300 BPM."""
    lo, hi = TEMPO_RANGE_BPM
    low = round(min(max(bpm / 2**0.5, lo), hi / 2), 2)
    high = 2 * low  # doubling is exact: the range passes check_tempo_range
    return (low, high) if low < bpm < high else None


def parse_features(requested: str | Iterable[str] | None) -> tuple[str, ...]:
    """Normalise a request's ``features`` into the groups to compute, in canonical order.

    ``None``, an empty list and anything containing ``"all"`` mean every group. A comma-separated
    string (or list items holding several, ``"tempo,key"``) is accepted too, for query strings and
    the command line. Unknown names
    raise ``InvalidInput`` (reported as 422) naming them and listing the allowed ones.
    """
    if requested is None:
        return FEATURES
    if isinstance(requested, str):
        requested = [requested]
    names: list[str] = []
    unknown: list[str] = []
    for item in requested:
        if not isinstance(item, str):
            unknown.append(repr(item))
            continue
        for part in item.split(","):
            name = part.strip().lower()
            if name in ALLOWED:
                names.append(name)
            elif name:
                unknown.append(part.strip())
    if unknown:
        allowed = ", ".join(ALLOWED)
        message = f"Unknown analysis feature(s): {', '.join(unknown)}. Allowed: {allowed}"
        raise InvalidInput(message, details={"features": message})
    if not names or ALL in names:
        return FEATURES
    return tuple(f for f in FEATURES if f in names)
