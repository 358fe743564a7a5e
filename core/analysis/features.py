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
