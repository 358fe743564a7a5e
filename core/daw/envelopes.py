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

# Each works in place on ``u`` (values in [0, 1]), so a long fade allocates nothing.
Curve = Callable[[np.ndarray], None]


def _equal_power(u: np.ndarray) -> None:
    u *= np.pi / 2
    np.sin(u, out=u)


def _s_curve(u: np.ndarray) -> None:
    u *= np.pi
    np.cos(u, out=u)
    np.subtract(1.0, u, out=u)
    u *= 0.5


def _exponential(u: np.ndarray) -> None:
    u *= 10.0
    np.exp2(u, out=u)
    u -= 1.0
    u /= 1023.0


def _logarithmic(u: np.ndarray) -> None:
    u *= 9.0
    u += 1.0
    np.log10(u, out=u)


CURVES: dict[str, Curve] = {
    "linear": lambda u: None,
    "equal_power": _equal_power,
    "s_curve": _s_curve,
    "exponential": _exponential,
    "logarithmic": _logarithmic,
}


@dataclass(frozen=True)
class Envelope:
    """``before`` for ``t < lo``, ``shape(t)`` for ``lo <= t <= hi``, ``after`` for ``t > hi`` (seconds).

    ``shape`` turns an array of times into the envelope's values in place. It meets ``before`` and
    ``after`` at the edges, so where a sample falls exactly on an edge does not change its value beyond
    float rounding. ``peak`` is the largest value anywhere in ``[lo, hi]``.
    ``flat``: an optional ``(lo, hi, value)`` inside ``[lo, hi]`` where ``shape`` is that constant (a trim's
    silence, a crop's or a gain's inside); it is filled in, not computed, so a long edit costs nothing.
    """

    lo: float
    hi: float
    before: float
    after: float
    peak: float
    shape: Callable[[np.ndarray], None]
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


def _distance_shape(s: float, e: float, inside: bool) -> Callable[[np.ndarray], None]:
    """The trim ramp ``clip(max(s - t, t - e) / R, 0, 1)`` (``inside=False``) or the crop ramp
    ``clip(min(t - s, e - t) / R, 0, 1)`` (``inside=True``), in place, written with ``c = (s + e) / 2`` and
    ``w = (e - s) / 2`` as ``(|t - c| - w) / R`` and ``(w - |t - c|) / R``."""
    centre, half = (s + e) / 2.0, (e - s) / 2.0

    def shape(t: np.ndarray) -> None:
        t -= centre
        np.abs(t, out=t)
        if inside:
            np.subtract(half, t, out=t)
        else:
            t -= half
        t /= RAMP_S
        np.clip(t, 0.0, 1.0, out=t)

    return shape


def _gain_shape(s: float, e: float, level: float) -> Callable[[np.ndarray], None]:
    trim = _distance_shape(s, e, inside=False)

    def shape(t: np.ndarray) -> None:
        trim(t)
        t *= 1.0 - level
        t += level

    return shape


def _fade_shape(s: float, e: float, curve: Curve, out: bool) -> Callable[[np.ndarray], None]:
    width = e - s

    def shape(t: np.ndarray) -> None:
        t -= s
        t /= width
        np.clip(t, 0.0, 1.0, out=t)
        if out:
            np.subtract(1.0, t, out=t)
        curve(t)

    return shape


def operation_envelope(op: TrimOp | MuteOp | CropOp | GainOp | FadeInOp | FadeOutOp | SplitOp) -> Envelope | None:
    """The envelope of one operation (None for ``split``, which does not change the sound)."""
    if isinstance(op, SplitOp):
        return None
    s, e = op.params.start_ms / 1000.0, op.params.end_ms / 1000.0
    if isinstance(op, TrimOp | MuteOp):
        return Envelope(s - RAMP_S, e + RAMP_S, 1.0, 1.0, 1.0, _distance_shape(s, e, inside=False), (s, e, 0.0))
    if isinstance(op, CropOp):
        return Envelope(s, e, 0.0, 0.0, 1.0, _distance_shape(s, e, inside=True), (s + RAMP_S, e - RAMP_S, 1.0))
    if isinstance(op, GainOp):
        level = op.params.level
        return Envelope(s - RAMP_S, e + RAMP_S, 1.0, 1.0, max(1.0, level), _gain_shape(s, e, level), (s, e, level))
    curve = CURVES[op.params.curve]
    if isinstance(op, FadeInOp):
        return Envelope(s, e, 0.0, 1.0, 1.0, _fade_shape(s, e, curve, out=False))
    assert isinstance(op, FadeOutOp)
    return Envelope(s, e, 1.0, 0.0, 1.0, _fade_shape(s, e, curve, out=True))


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
        self._ramp = np.empty(0)

    def _shape(self, env: Envelope, out: np.ndarray, first: int, a: int, b: int) -> None:
        """``out[a - first : b - first + 1] = shape`` over frames ``a..b`` (inclusive), computed in place."""
        if a > b:
            return
        t = out[a - first: b - first + 1]
        ramp = self._ramp
        if ramp.size < t.size:  # grows once; lanes sharing this object may race here, harmlessly
            ramp = self._ramp = np.arange(t.size, dtype=np.float64)
        np.add(ramp[: t.size], a, out=t)  # frame numbers, exact in float64
        t /= self.sample_rate
        env.shape(t)

    def _factor(self, env: Envelope, lo: int, hi: int, flat: tuple[int, int, float] | None, first: int,
                last: int, factor: np.ndarray) -> float | np.ndarray:
        """The envelope over frames ``first..last``: a float where it is constant, else ``factor`` filled in."""
        if last < lo:
            return env.before
        if first > hi:
            return env.after
        if flat is not None and flat[0] <= first and last <= flat[1]:
            return flat[2]
        a, b = max(lo, first), min(hi, last)
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

    def block(self, first: int, count: int, out: np.ndarray | None = None,
              scratch: np.ndarray | None = None) -> float | np.ndarray:
        """Values for frames ``[first, first + count)``: a float where the whole block is constant, else an
        array of shape ``(count,)``, float64 (a view of ``out`` when given; ``scratch`` is a second buffer of
        at least ``count`` values, so a block allocates nothing but the curves of fades)."""
        out = np.empty(count) if out is None else out[:count]
        scratch = np.empty(count) if scratch is None else scratch[:count]
        value: float | np.ndarray = 1.0
        last = first + count - 1
        for env, lo, hi, flat in self.envelopes:
            factor = self._factor(env, lo, hi, flat, first, last, scratch)
            if isinstance(factor, float):
                if factor == 1.0:
                    continue
                if isinstance(value, float):
                    value *= factor
                    if value == 0.0:
                        return 0.0
                else:
                    value *= factor
            elif isinstance(value, float):
                np.multiply(factor, value, out=out)  # value * factor, as the scalar product would be
                value = out
            else:
                value *= factor
        return value

    def max_over(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """An upper bound of the envelope over each frame interval ``[first[i], last[i]]`` (inclusive)."""
        bound = np.ones(first.shape, dtype=np.float64)
        for env, lo, hi, _flat in self.envelopes:
            bound *= np.where(last < lo, env.before, np.where(first > hi, env.after, env.peak))
        return bound
