"""``POST /api/daw/export`` without the HTTP: check a request, bind its manifest to audio, stream the WAV.

Form fields (the DAW contract): ``track_id``; ``manifest`` (JSON); ``stems[]`` parts, each either a stored
stem's id (a plain value) or stem audio (a file, named in the manifest by ``file_index``, 0-based in upload
order); optionally ``range`` (JSON ``{"start_ms", "end_ms"}``), which replaces the manifest's range, e.g. to
export a loop without changing the saved remix. Every stem in ``stems[]`` is mixed: one the manifest does not
describe plays at unity gain, centred.

Refusals: someone else's (or no) track ``NotFound``; anything wrong in the request ``InvalidInput`` /
``ManifestInvalid`` (422 ``validation_error``) with ``details`` naming the field: ``track_id``, ``manifest``,
``range``, ``stems[]`` (a part: too many, too large, not audio, not of this track, another sample rate or
length) or a path in the manifest (``stems[2].operations[5].params.end_ms``).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from core.audio_io import ffmpeg_exe, probe
from core.daw.clipping import count_clipped_ahead
from core.daw.manifest import Manifest, ManifestInvalid, StemMix, TimeRange, check_timeline, field_path, parse_manifest
from core.daw.mixdown import Mixdown, StemAudio, stem_audio
from core.daw.peaks import BasePeaks, cached_peaks, compute_peaks
from core.daw.sources import audio_of, referenced_stems, track_stems
from core.daw.wav import MAX_DATA_BYTES, data_bytes
from core.errors import InvalidAudio, InvalidInput
from core.progress import ProgressFn
from core.tracks import get_track
from data.files import FileStore, safe_filename
from data.models import Stem, Track

log = logging.getLogger("stemforge.daw")

MAX_UPLOADED_STEMS = 32
STEMS_FIELD = "stems[]"


@dataclass(frozen=True)
class UploadedStem:
    """One ``stems[]`` file part: its name and an open binary file positioned at the start."""

    filename: str
    file: BinaryIO


@dataclass
class Export:
    """A checked export, ready to stream: ``chunks()`` yields the WAV (header first), ``size`` its bytes."""

    mixdown: Mixdown
    filename: str
    clipped: int
    workdir: Path | None = None
    _cleaned: bool = field(default=False, repr=False)

    @property
    def size(self) -> int:
        return self.mixdown.wav_size()

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from self.mixdown.wav_chunks()
            if self.mixdown.clipped != self.clipped:  # the header said otherwise: worth knowing
                log.warning("export counted %d clipped samples ahead, %d while rendering", self.clipped,
                            self.mixdown.clipped)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self.workdir is not None and not self._cleaned:
            self._cleaned = True
            shutil.rmtree(self.workdir, ignore_errors=True)


def export_filename(track: Track) -> str:
    """``<Artist> - <Title> (remix).wav``, safe on every file system."""
    title = track.title or "track"
    return safe_filename(f"{track.artist} - {title} (remix)" if track.artist else f"{title} (remix)", "wav")


def _invalid(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(f"Invalid export: {field_name}: {message}", details={field_name: message})


def parse_range(raw: str) -> TimeRange:
    try:
        return TimeRange.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise _invalid("range", f"Invalid JSON: {exc}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ManifestInvalid({field_path(("range", *error["loc"])): error["msg"].removeprefix("Value error, ")}) \
            from None


def _store_upload(upload: UploadedStem, index: int, workdir: Path, max_bytes: int) -> StemAudio:
    """Copy one uploaded stem into ``workdir`` and read its facts; files libsndfile cannot read (M4A, ...)
    are decoded to float WAV by ffmpeg first. InvalidInput naming the part when it is too large or not audio."""
    target = workdir / f"stem-{index}"
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                raise _invalid(STEMS_FIELD, f"file {index} ({upload.filename}) is larger than "
                                            f"{max_bytes // (1024 * 1024)} MB")
            out.write(chunk)
    try:
        return stem_audio(target)
    except InvalidAudio:
        pass
    try:
        probe(target)
        decoded = workdir / f"stem-{index}.wav"
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(target), "-map", "0:a:0",
                        "-c:a", "pcm_f32le", str(decoded)], check=True, capture_output=True, timeout=600)
        return stem_audio(decoded)
    except (InvalidAudio, subprocess.SubprocessError) as exc:
        reason = exc.message if isinstance(exc, InvalidAudio) else "it does not decode"
        raise _invalid(STEMS_FIELD, f"file {index} ({upload.filename}) is not audio StemForge can mix: "
                                    f"{reason}") from None


def _check_uploads(audios: list[StemAudio]) -> None:
    if len({a.sample_rate for a in audios}) > 1:
        rates = ", ".join(f"file {i}: {a.sample_rate} Hz" for i, a in enumerate(audios))
        raise _invalid(STEMS_FIELD, f"the uploaded stems have different sample rates ({rates})")
    if len({a.frames for a in audios}) > 1:
        lengths = ", ".join(f"file {i}: {a.frames} frames" for i, a in enumerate(audios))
        raise _invalid(STEMS_FIELD, f"the uploaded stems have different lengths ({lengths})")


def _stem_ids(values: list[str], stems: dict[uuid.UUID, Stem]) -> list[uuid.UUID]:
    ids = []
    for value in values:
        try:
            stem_id = uuid.UUID(value.strip())
        except ValueError:
            raise _invalid(STEMS_FIELD, f"{value[:60]!r} is neither a file nor a stem id") from None
        if stem_id not in stems:
            raise _invalid(STEMS_FIELD, f"{stem_id} is not a stem of this track")
        ids.append(stem_id)
    return ids


def _with_listed_stems(manifest: Manifest, ids: list[uuid.UUID], files: int) -> Manifest:
    """The manifest plus, at unity gain, every ``stems[]`` part it does not describe."""
    described = {entry.key for entry in manifest.stems}
    extra = [StemMix(stem_id=i) for i in ids if f"id:{i}" not in described]
    extra += [StemMix(file_index=n) for n in range(files) if f"file:{n}" not in described]
    if not extra:
        return manifest
    if len(manifest.stems) + len(extra) > MAX_UPLOADED_STEMS:
        raise _invalid(STEMS_FIELD, f"at most {MAX_UPLOADED_STEMS} stems can be mixed")
    return manifest.model_copy(update={"stems": [*manifest.stems, *extra]})


def _bind(manifest: Manifest, rows: list[Stem | int], stored: dict[uuid.UUID, StemAudio],
          uploaded: list[StemAudio]) -> list[StemAudio]:
    """The audio of each manifest stem. Uploaded stems mixed with stored ones must fit them: the same sample
    rate and length (InvalidInput on ``stems[]`` otherwise)."""
    audios: list[StemAudio] = []
    for index, row in enumerate(rows):
        if isinstance(row, Stem):
            audios.append(stored[row.id])
        elif row >= len(uploaded):
            raise ManifestInvalid({f"stems[{index}].file_index": f"there are {len(uploaded)} uploaded stems[] files"})
        else:
            audios.append(uploaded[row])
    stored_audio = [a for a in audios if a not in uploaded]
    if stored_audio and uploaded:
        rate, frames = stored_audio[0].sample_rate, max(a.frames for a in stored_audio)
        for index, audio in enumerate(uploaded):
            if audio.sample_rate != rate:
                raise _invalid(STEMS_FIELD, f"file {index} is at {audio.sample_rate} Hz, the track's stems at "
                                            f"{rate} Hz")
            if audio.frames != frames:
                raise _invalid(STEMS_FIELD, f"file {index} has {audio.frames} frames, the track's stems {frames}")
    return audios


async def prepare_export(session: AsyncSession, store: FileStore, user_id: uuid.UUID, *, track_id: uuid.UUID,
                         manifest_json: str, range_json: str | None, stem_values: list[str],
                         uploads: list[UploadedStem], max_upload_bytes: int) -> Export:
    """Check everything and bind the manifest to audio, so nothing can fail after the first byte is sent
    except the disk itself. The clipped-sample count is computed here (see core/daw/clipping.py)."""
    track = await get_track(session, user_id, track_id)
    manifest = parse_manifest(manifest_json)
    if manifest.track_id is not None and manifest.track_id != track.id:
        raise ManifestInvalid({"track_id": "the manifest names another track than the form's track_id"})
    if range_json:
        manifest = manifest.model_copy(update={"range": parse_range(range_json)})
    if len(uploads) > MAX_UPLOADED_STEMS:
        raise _invalid(STEMS_FIELD, f"at most {MAX_UPLOADED_STEMS} files")
    stems = await track_stems(session, user_id, track.id)
    ids = _stem_ids(stem_values, stems)
    manifest = _with_listed_stems(manifest, ids, len(uploads))
    rows = referenced_stems(manifest, stems, allow_files=True)
    stored_rows = list({r.id: r for r in rows if isinstance(r, Stem)}.values())
    stored = dict(zip((r.id for r in stored_rows), await audio_of(store, stored_rows), strict=True))
    workdir = Path(tempfile.mkdtemp(prefix="export-", dir=store.root)) if uploads else None
    try:
        uploaded = await asyncio.to_thread(
            lambda: [_store_upload(u, i, workdir, max_upload_bytes) for i, u in enumerate(uploads)])  # type: ignore[arg-type]
        _check_uploads(uploaded)
        audios = _bind(manifest, rows, stored, uploaded)
        mixdown = Mixdown(manifest, audios)
        check_timeline(manifest, mixdown.duration_ms)
        if data_bytes(mixdown.frames) > MAX_DATA_BYTES:
            raise _invalid("range", "longer than a WAV file can hold (4 GiB); export a shorter range")
        uploaded_paths = {a.path for a in uploaded}

        def peaks_of(path: Path) -> BasePeaks:
            return compute_peaks(path) if path in uploaded_paths else cached_peaks(path)

        clipped = await asyncio.to_thread(count_clipped_ahead, mixdown, peaks_of)
    except BaseException:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    return Export(mixdown, export_filename(track), clipped, workdir)


def bind_files(manifest: Manifest, files: list[Path]) -> list[StemAudio]:
    """The audio of a manifest whose stems are files given in ``file_index`` order (the ``mix`` command).
    ManifestInvalid for a ``stem_id`` entry or an index past the files; InvalidAudio for a file it cannot read."""
    details: dict[str, str] = {}
    for index, entry in enumerate(manifest.stems):
        if entry.file_index is None:
            details[f"stems[{index}].stem_id"] = "give the stems as files and name them by file_index, or mix a " \
                                                 "track by its id"
        elif entry.file_index >= len(files):
            details[f"stems[{index}].file_index"] = f"only {len(files)} stem files were given"
    if details:
        raise ManifestInvalid(details)
    audios = [stem_audio(path) for path in files]
    return [audios[int(entry.file_index or 0)] for entry in manifest.stems]


def write_mix(mixdown: Mixdown, out: Path, progress: ProgressFn | None = None) -> int:
    """Render ``mixdown`` into the WAV file ``out`` (written beside it, then renamed: a failed render leaves no
    half file). Returns the number of clipped samples."""
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("wb") as fh:
            for chunk in mixdown.wav_chunks(progress):
                fh.write(chunk)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return mixdown.clipped
