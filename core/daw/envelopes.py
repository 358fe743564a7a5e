"""Gain envelopes of the manifest's operations, evaluated at sample times.

Each operation is a function of time ``e(t)`` (t in seconds from the start of the track, sample ``n`` at
``t = n / sample_rate``) that is 1 wherever the operation does not reach. A stem's envelope is the
product of its operations' envelopes: a product does not depend on order, so the browser's preview and
this mixdown cannot disagree because of the order of edits.

``R`` is a 5 ms linear ramp, the anti-click edge. With ``s``, ``e`` the span's start and end (seconds):

=============  ============================================================================================
``trim/mute``  0 inside ``[s, e]``; 1 -> 0 over ``[s-R, s]``, 0 -> 1 over ``[e, e+R]``:
               ``clip(max(s - t, t - e) / R, 0, 1)``
``crop``       1 inside, 0 outside, the ramps inside the edges: ``clip(min(t - s, e - t) / R, 0, 1)``
``gain``       ``level`` inside, ramps from/to 1 over ``R`` outside the edges: ``level + (1 - level) * trim(t)``
``fade_in``    0 before ``s``, ``c(u)`` across with ``u = (t - s) / (e - s)``, 1 after ``e``
``fade_out``   1 before ``s``, ``c(1 - u)`` across, 0 after ``e``
``split``      1 everywhere (a marker for the editor)
=============  ============================================================================================

Curves ``c(u)`` for ``u`` in ``[0, 1]`` (all give ``c(0) = 0`` and ``c(1) = 1``): ``linear`` ``u``;
``equal_power`` ``sin(u*pi/2)``; ``s_curve`` ``(1 - cos(pi*u))/2``; ``exponential`` ``(2^(10u) - 1)/1023``;
``logarithmic`` ``log10(1 + 9u)``. Source: the StemForge DAW contract (edit manifest v1, section 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.daw.manifest import CropOp, FadeInOp, FadeOutOp, GainOp, MuteOp, SplitOp, TrimOp

RAMP_S = 0.005

Curve = Callable[[np.ndarray], np.ndarray]

CURVES: dict[str, Curve] = {
    "linear": lambda u: u,
    "equal_power": lambda u: np.sin(u * (np.pi / 2)),
    "s_curve": lambda u: (1.0 - np.cos(np.pi * u)) / 2.0,
    "exponential": lambda u: (np.exp2(10.0 * u) - 1.0) / 1023.0,
    "logarithmic": lambda u: np.log10(1.0 + 9.0 * u),
}


@dataclass(frozen=True)
class Envelope:
    """``before`` for ``t < lo``, ``shape(t)`` for ``lo <= t <= hi``, ``after`` for ``t > hi`` (seconds).

    ``shape`` meets ``before`` and ``after`` at the edges, so where a sample falls exactly on an edge
    does not change its value beyond float rounding. ``peak`` is the largest value anywhere in ``[lo, hi]``.
    ``flat``: an optional ``(lo, hi, value)`` inside ``[lo, hi]`` where ``shape`` is that constant (a trim's
    silence, a crop's or a gain's inside); it is filled in, not computed, so a long edit costs nothing.
    """

    lo: float
    hi: float
    before: float
    after: float
    peak: float
    shape: Callable[[np.ndarray], np.ndarray]
    flat: tuple[float, float, float] | None = None

    def frames(self, sample_rate: int) -> tuple[int, int]:
        """The first and last frame (inclusive) evaluated with ``shape``."""
        return math.ceil(self.lo * sample_rate), math.floor(self.hi * sample_rate)

    def flat_frames(self, sample_rate: int) -> tuple[int, int, float] | None:
        """The first and last frame (inclusive) of ``flat``, and its value."""
        if self.flat is None:
            return None
        lo, hi, value = self.flat
        first, last = math.ceil(lo * sample_rate), math.floor(hi * sample_rate)
        return (first, last, value) if first <= last else None


def _trim_shape(s: float, e: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: np.clip(np.maximum(s - t, t - e) / RAMP_S, 0.0, 1.0)


def operation_envelope(op: TrimOp | MuteOp | CropOp | GainOp | FadeInOp | FadeOutOp | SplitOp) -> Envelope | None:
    """The envelope of one operation (None for ``split``, which does not change the sound)."""
    if isinstance(op, SplitOp):
        return None
    s, e = op.params.start_ms / 1000.0, op.params.end_ms / 1000.0
    if isinstance(op, TrimOp | MuteOp):
        return Envelope(s - RAMP_S, e + RAMP_S, 1.0, 1.0, 1.0, _trim_shape(s, e), (s, e, 0.0))
    if isinstance(op, CropOp):
        return Envelope(s, e, 0.0, 0.0, 1.0, lambda t: np.clip(np.minimum(t - s, e - t) / RAMP_S, 0.0, 1.0),
                        (s + RAMP_S, e - RAMP_S, 1.0))
    if isinstance(op, GainOp):
        level, trim = op.params.level, _trim_shape(s, e)
        return Envelope(s - RAMP_S, e + RAMP_S, 1.0, 1.0, max(1.0, level),
                        lambda t: level + (1.0 - level) * trim(t), (s, e, level))
    curve = CURVES[op.params.curve]
    width = e - s
    if isinstance(op, FadeInOp):
        return Envelope(s, e, 0.0, 1.0, 1.0, lambda t: curve(np.clip((t - s) / width, 0.0, 1.0)))
    assert isinstance(op, FadeOutOp)
    return Envelope(s, e, 1.0, 0.0, 1.0, lambda t: curve(1.0 - np.clip((t - s) / width, 0.0, 1.0)))


class StemEnvelope:
    """The product of a stem's operation envelopes, evaluated block by block.

    A frame's value depends only on its absolute index, never on how the timeline is cut into blocks, so a
    block-by-block render equals a whole-array render exactly.
    """

    def __init__(self, operations: Sequence[object], sample_rate: int) -> None:
        self.sample_rate = sample_rate
        envelopes = [operation_envelope(op) for op in operations]  # type: ignore[arg-type]
        self.envelopes = [(env, *env.frames(sample_rate), env.flat_frames(sample_rate))
                          for env in envelopes if env is not None]

    def _shape(self, env: Envelope, out: np.ndarray, first: int, a: int, b: int) -> None:
        """``out[a - first : b - first + 1] = shape`` over frames ``a..b`` (inclusive)."""
        if a <= b:
            out[a - first: b - first + 1] = env.shape(np.arange(a, b + 1, dtype=np.float64) / self.sample_rate)

    def _factor(self, env: Envelope, lo: int, hi: int, flat: tuple[int, int, float] | None, first: int,
                last: int) -> float | np.ndarray:
        if last < lo:
            return env.before
        if first > hi:
            return env.after
        if flat is not None and flat[0] <= first and last <= flat[1]:
            return flat[2]
        count = last - first + 1
        a, b = max(lo, first), min(hi, last)
        factor = np.empty(count)
        factor[: a - first] = env.before
        factor[b - first + 1:] = env.after
        if flat is None or flat[1] < a or flat[0] > b:
            self._shape(env, factor, first, a, b)
            return factor
        f0, f1 = max(flat[0], a), min(flat[1], b)
        self._shape(env, factor, first, a, f0 - 1)
        factor[f0 - first: f1 - first + 1] = flat[2]
        self._shape(env, factor, first, f1 + 1, b)
        return factor

    def block(self, first: int, count: int) -> float | np.ndarray:
        """Values for frames ``[first, first + count)``: a float where the whole block is constant, else an
        array of shape ``(count,)``, float64."""
        value: float | np.ndarray = 1.0
        last = first + count - 1
        for env, lo, hi, flat in self.envelopes:
            factor = self._factor(env, lo, hi, flat, first, last)
            if isinstance(factor, float) and factor == 1.0:
                continue
            value = value * factor
            if isinstance(value, float) and value == 0.0:
                return 0.0
        return value

    def max_over(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """An upper bound of the envelope over each frame interval ``[first[i], last[i]]`` (inclusive)."""
        bound = np.ones(first.shape, dtype=np.float64)
        for env, lo, hi, _flat in self.envelopes:
            bound *= np.where(last < lo, env.before, np.where(first > hi, env.after, env.peak))
        return bound
