"""Stems as downloads: readable file names, and a ZIP of a track's stems streamed as it is built.

The ZIP is made by zipstream-ng while it is sent: entries are stored (no compression: WAV barely
compresses and FLAC/MP3 are compressed already), so the archive's exact size is known before the
first byte and a client sees a real ``Content-Length``. Only one read buffer of one stem is in
memory at a time, and nothing is copied to a temporary file, however long the track.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from zipstream import ZIP_STORED, ZipStream

from core.errors import NotFound, StemForgeError
from data.files import FileStore, UnsafePath, safe_filename
from data.models import Stem, Track


def track_label(track: Track) -> str:
    """ "Artist - Title", or whichever of the two is known."""
    if track.artist and track.title:
        return f"{track.artist} - {track.title}"
    return track.title or track.artist or "track"


def stem_filename(track: Track, stem: Stem) -> str:
    """ "Artist - Title - vocals.wav", safe on every OS; a preview's stem says which part it holds:
    "Artist - Title - vocals (preview 1m02s-1m22s).wav"."""
    name = f"{track_label(track)} - {stem.stem_type}"
    if stem.is_preview:
        name += f" (preview {_clock(stem.preview_start or 0.0)}-{_clock(stem.preview_end or 0.0)})"
    return safe_filename(name, stem.format, max_len=180)


def _clock(seconds: float) -> str:
    """1m02s: a time in a file name (no colon, which Windows refuses)."""
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"


def archive_filename(track: Track) -> str:
    """ "Artist - Title (stems).zip"."""
    return safe_filename(f"{track_label(track)} (stems)", "zip", max_len=180)


def stem_path(store: FileStore, stem: Stem) -> Path:
    """The stem's file on disk, or ``NotFound`` when it is gone (or its stored path is unsafe)."""
    try:
        path = store.resolve(stem.path)
    except UnsafePath:
        raise NotFound("stem file") from None
    if not path.is_file():
        raise NotFound("stem file")
    return path


class NoStems(NotFound):
    """404 with a sentence that says what to do, rather than "stems not found"."""

    def __init__(self, message: str) -> None:
        StemForgeError.__init__(self, message)


@dataclass(frozen=True)
class Archive:
    """A ZIP about to be streamed: iterate ``chunks()`` once; ``size`` is its exact length in bytes."""

    filename: str
    size: int
    _zip: ZipStream

    def chunks(self) -> Iterator[bytes]:
        yield from self._zip


def stems_archive(store: FileStore, track: Track, stems: Sequence[Stem]) -> Archive:
    """The ZIP of ``stems`` (named like single downloads), ready to stream; ``NotFound`` if there are none
    or a file is missing (a partial archive would pass for a complete one)."""
    if not stems:
        raise NoStems("This track has no stems yet: separate it first (POST /api/processing/separate)")
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    for stem in stems:
        archive.add_path(str(stem_path(store, stem)), stem_filename(track, stem))
    return Archive(archive_filename(track), len(archive), archive)
