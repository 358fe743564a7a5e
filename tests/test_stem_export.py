"""The stem ZIP is streamed with flat memory and an exact size, and download names are safe everywhere."""

from __future__ import annotations

import io
import tracemalloc
import uuid
import zipfile
from pathlib import Path

import pytest

from core.errors import NotFound
from core.stem_export import archive_filename, stem_filename, stems_archive
from data.files import FileStore
from data.models import Stem, Track

STEMS = ("drums", "bass", "other", "vocals")


def make_stems(root: Path, size: int) -> tuple[FileStore, Track, list[Stem]]:
    track = Track(user_id=uuid.uuid4(), title="Long / Mix: Part 1", artist="DJ Ärger")
    folder = root / "stems" / str(uuid.uuid4())
    folder.mkdir(parents=True)
    stems = []
    for name in STEMS:
        with open(folder / f"{name}.wav", "wb") as fh:
            fh.truncate(size)  # sparse: costs no disk, reads as zeros
        stems.append(Stem(user_id=track.user_id, track_id=track.id, stem_type=name, format="wav",
                          path=f"stems/{folder.name}/{name}.wav"))
    return FileStore(root), track, stems


def test_a_large_zip_streams_with_flat_memory_and_its_exact_size(tmp_path: Path) -> None:
    store, track, stems = make_stems(tmp_path, 64 * 1024 * 1024)
    archive = stems_archive(store, track, stems)
    tracemalloc.start()
    try:
        streamed, head, tail = 0, b"", b""
        for chunk in archive.chunks():
            if not head:
                head = chunk
            streamed += len(chunk)
            tail = (tail + chunk)[-65536:]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert streamed == archive.size > 4 * 64 * 1024 * 1024
    assert peak < 2 * 1024 * 1024, f"{peak / 1e6:.1f} MB held while streaming 256 MB"
    assert head.startswith(b"PK\x03\x04")
    # The central directory at the end lists every stem, stored, at full size.
    with zipfile.ZipFile(io.BytesIO(b"\0" * (archive.size - len(tail)) + tail)) as parsed:
        infos = parsed.infolist()
    assert [i.filename for i in infos] == [f"DJ Ärger - Long Mix Part 1 - {s}.wav" for s in STEMS]
    assert all(i.compress_type == zipfile.ZIP_STORED and i.file_size == 64 * 1024 * 1024 for i in infos)


def test_download_names_are_readable_and_safe(tmp_path: Path) -> None:
    store, track, stems = make_stems(tmp_path, 10)
    assert stem_filename(track, stems[3]) == "DJ Ärger - Long Mix Part 1 - vocals.wav"
    assert archive_filename(track) == "DJ Ärger - Long Mix Part 1 (stems).zip"
    untitled = Track(user_id=track.user_id, title="", artist="")
    assert archive_filename(untitled) == "track (stems).zip"
    assert stem_filename(Track(user_id=track.user_id, title="Solo"), stems[0]) == "Solo - drums.wav"


def test_no_stems_or_a_missing_file_is_not_found(tmp_path: Path) -> None:
    store, track, stems = make_stems(tmp_path, 10)
    with pytest.raises(NotFound):
        stems_archive(store, track, [])
    (store.root / stems[1].path).unlink()
    with pytest.raises(NotFound):  # a partial archive would pass for a complete one
        stems_archive(store, track, stems)
    stems[0].path = "../outside.wav"
    with pytest.raises(NotFound):
        stems_archive(store, track, stems[:1])
