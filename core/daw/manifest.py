"""The edit manifest, version 1: the one document the browser editor and the server mixdown both render.

Times are milliseconds on the track's timeline. The meaning of every field (envelopes, audibility, the
stereo-panner law) lives in :mod:`core.daw.envelopes` and :mod:`core.daw.mixdown`; this module holds the
shape and the bounds, and turns pydantic's errors into ``details`` keyed by the field's path in the
document (``stems[2].operations[5].params.end_ms``), so a client can point at the exact value.

Two steps of validation:

1. :func:`parse_manifest`: the document alone (types, bounds, unknown fields, version, operation types).
2. :func:`check_timeline`: the document against the audio it mixes (times beyond the track, the range).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInput

VERSION = 1
MAX_OPERATIONS_PER_STEM = 500
MAX_STEMS = 32
# Times may overshoot the track's end by this much (rounding of frames to milliseconds in a client).
END_TOLERANCE_MS = 1.0

CURVES = ("linear", "equal_power", "s_curve", "exponential", "logarithmic")
SPAN_TYPES = ("crop", "trim", "mute", "fade_in", "fade_out", "gain")
OPERATION_TYPES = (*SPAN_TYPES, "split")
# Known to the origin project, refused in version 1.
UNSUPPORTED_TYPES = ("pitch_shift", "time_stretch")

Milliseconds = Annotated[float, Field(ge=0, description="Milliseconds from the start of the track")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SpanParams(_Strict):
    start_ms: Milliseconds
    end_ms: Milliseconds

    @model_validator(mode="after")
    def _ordered(self) -> SpanParams:
        if self.end_ms <= self.start_ms:
            raise ValueError("end_ms must be greater than start_ms")
        return self


class FadeParams(SpanParams):
    curve: Literal["linear", "equal_power", "s_curve", "exponential", "logarithmic"] = "linear"


class GainParams(SpanParams):
    level: float = Field(ge=0, le=4, description="Linear gain inside the span")


class SplitParams(_Strict):
    position_ms: Milliseconds


class _Op(_Strict):
    id: str = Field(min_length=1, max_length=100, description="The editor's id of the operation")


class TrimOp(_Op):
    type: Literal["trim"]
    params: SpanParams


class MuteOp(_Op):
    type: Literal["mute"]
    params: SpanParams


class CropOp(_Op):
    type: Literal["crop"]
    params: SpanParams


class GainOp(_Op):
    type: Literal["gain"]
    params: GainParams


class FadeInOp(_Op):
    type: Literal["fade_in"]
    params: FadeParams


class FadeOutOp(_Op):
    type: Literal["fade_out"]
    params: FadeParams


class SplitOp(_Op):
    type: Literal["split"]
    params: SplitParams


Operation = Annotated[
    TrimOp | MuteOp | CropOp | GainOp | FadeInOp | FadeOutOp | SplitOp,
    Field(discriminator="type"),
]
SpanOperation = TrimOp | MuteOp | CropOp | GainOp | FadeInOp | FadeOutOp


class TimeRange(_Strict):
    start_ms: Milliseconds = 0.0
    end_ms: Milliseconds | None = Field(default=None, description="null: the end of the track")

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end_ms is not None and self.end_ms <= self.start_ms:
            raise ValueError("end_ms must be greater than start_ms")
        return self


class Master(_Strict):
    gain: float = Field(default=1.0, ge=0, le=4, description="Linear gain on the sum")


class StemMix(_Strict):
    stem_id: uuid.UUID | None = Field(default=None, description="One of the track's stored stems")
    file_index: int | None = Field(default=None, ge=0, lt=MAX_STEMS,
                                   description="0-based index of an uploaded stems[] file (export only)")
    volume: float = Field(default=1.0, ge=0, le=2, description="Linear gain: 1 unchanged, 2 is +6 dB")
    pan: float = Field(default=0.0, ge=-1, le=1, description="Stereo position, Web Audio StereoPannerNode")
    muted: bool = False
    solo: bool = False
    operations: list[Operation] = Field(default_factory=list, max_length=MAX_OPERATIONS_PER_STEM)

    @model_validator(mode="after")
    def _one_source(self) -> StemMix:
        if (self.stem_id is None) == (self.file_index is None):
            raise ValueError("give exactly one of stem_id and file_index")
        return self

    @property
    def key(self) -> str:
        """What the stem refers to: ``"id:<uuid>"`` or ``"file:<n>"``."""
        return f"id:{self.stem_id}" if self.stem_id is not None else f"file:{self.file_index}"


class Manifest(_Strict):
    version: int = Field(description="Format version; only 1 is accepted")
    track_id: uuid.UUID | None = None
    range: TimeRange = Field(default_factory=TimeRange)
    master: Master = Field(default_factory=Master)
    stems: list[StemMix] = Field(min_length=1, max_length=MAX_STEMS)

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != VERSION:
            raise ValueError(f"manifest version {value} is not supported; this server reads version {VERSION}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Manifest:
        seen: dict[str, int] = {}
        for index, stem in enumerate(self.stems):
            if stem.key in seen:
                raise ManifestInvalid({f"stems[{index}]": f"the same stem as stems[{seen[stem.key]}]"})
            seen[stem.key] = index
        return self

    def dump(self) -> dict[str, Any]:
        """JSON-ready dict (UUIDs as strings, defaults filled in)."""
        return self.model_dump(mode="json")


class ManifestInvalid(InvalidInput):
    """422 ``validation_error`` whose ``details`` map field paths of the manifest to messages."""

    def __init__(self, details: Mapping[str, str], prefix: str = "") -> None:
        keyed = {f"{prefix}{path}" if prefix else path: msg for path, msg in details.items()}
        first = next(iter(keyed.items()), ("manifest", "invalid"))
        super().__init__(f"Invalid edit manifest: {first[0]}: {first[1]}", details=keyed)


def field_path(loc: Iterable[Any]) -> str:
    """pydantic's error location as a path in the document: ``stems[2].operations[5].params.end_ms``.

    The tag pydantic adds after an operation's index (its ``type``) is left out.
    """
    path = ""
    previous: list[Any] = []
    for part in loc:
        if len(previous) >= 2 and previous[-2] == "operations" and isinstance(previous[-1], int) \
                and isinstance(part, str) and part in (*OPERATION_TYPES, *UNSUPPORTED_TYPES):
            previous.append(part)
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
        previous.append(part)
    return path or "manifest"


def _message(error: Mapping[str, Any]) -> tuple[str, str]:
    path = field_path(error.get("loc", ()))
    kind = error.get("type", "")
    msg = str(error.get("msg", "invalid value"))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path = f"{path}.type"
        tag = str((error.get("ctx") or {}).get("tag", ""))
        msg = (f"{tag} is not supported in manifest version 1" if tag in UNSUPPORTED_TYPES
               else f"type must be one of {', '.join(OPERATION_TYPES)}")
    elif kind == "extra_forbidden":
        msg = "unknown field"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
        if msg.startswith("end_ms must") and path.endswith(("params", "range")):
            path = f"{path}.end_ms"
    return path, msg


def parse_manifest(raw: str | bytes | Mapping[str, Any]) -> Manifest:
    """The manifest in ``raw`` (JSON text or a decoded object), or :class:`ManifestInvalid`.

    Errors: invalid JSON (``details.manifest``), unknown fields, values out of bounds, another version,
    ``pitch_shift``/``time_stretch``, an unknown operation type, a stem named twice; each keyed by its path.
    """
    try:
        data = orjson.loads(raw) if isinstance(raw, str | bytes) else dict(raw)
    except orjson.JSONDecodeError as exc:
        raise ManifestInvalid({"manifest": f"Invalid JSON: {exc}"}) from None
    if not isinstance(data, dict):
        raise ManifestInvalid({"manifest": "Expected a JSON object"})
    try:
        return Manifest.model_validate(data)
    except ManifestInvalid:
        raise
    except ValidationError as exc:
        details: dict[str, str] = {}
        for error in exc.errors():
            path, msg = _message(error)
            details.setdefault(path, msg)
        raise ManifestInvalid(details) from None


def operation_times(stem: StemMix) -> Iterable[tuple[str, float]]:
    """``(path within the stem, milliseconds)`` of every time an operation names."""
    for index, op in enumerate(stem.operations):
        if isinstance(op, SplitOp):
            yield f"operations[{index}].params.position_ms", op.params.position_ms
        else:
            yield f"operations[{index}].params.start_ms", op.params.start_ms
            yield f"operations[{index}].params.end_ms", op.params.end_ms


def check_timeline(manifest: Manifest, duration_ms: float) -> None:
    """Refuse times beyond the track (``duration_ms`` long, up to END_TOLERANCE_MS over) and a range
    that starts at or after its end. Raises :class:`ManifestInvalid` naming every offending field."""
    limit = duration_ms + END_TOLERANCE_MS
    details: dict[str, str] = {}
    end = f"beyond the end of the track ({duration_ms:.0f} ms)"
    if manifest.range.start_ms >= duration_ms:
        details["range.start_ms"] = f"at or {end}"
    if manifest.range.end_ms is not None and manifest.range.end_ms > limit:
        details["range.end_ms"] = end
    for index, stem in enumerate(manifest.stems):
        for path, value in operation_times(stem):
            if value > limit:
                details[f"stems[{index}].{path}"] = end
    if details:
        raise ManifestInvalid(details)


def range_frames(manifest: Manifest, sample_rate: int, total_frames: int) -> tuple[int, int]:
    """The rendered range as frames ``[first, end)``: ``round(ms * sample_rate / 1000)``, the end clamped to
    the track (``end_ms: null`` is the track's end)."""
    first = min(total_frames, round(manifest.range.start_ms * sample_rate / 1000))
    if manifest.range.end_ms is None:
        return first, total_frames
    return first, max(first, min(total_frames, round(manifest.range.end_ms * sample_rate / 1000)))


def default_manifest(track_id: uuid.UUID | None, stem_ids: Iterable[uuid.UUID]) -> Manifest:
    """Every stem at unity gain, centred, no edits: what the editor opens with."""
    return Manifest(version=VERSION, track_id=track_id, stems=[StemMix(stem_id=s) for s in stem_ids])
