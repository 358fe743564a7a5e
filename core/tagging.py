"""Title, artist and album tags in downloaded audio files, through mutagen.

A downloaded file otherwise carries whatever the source put in it (a video title such as
"Artist - Song (Official Video)", an uploader's name as artist, or nothing), so music players and
DAWs would list it wrongly. mutagen's "easy" interfaces give one dict-like view over ID3 (MP3),
Vorbis comments (FLAC, OGG, Opus) and MP4 atoms (M4A), so one function covers every format the
downloader produces.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mutagen

log = logging.getLogger("stemforge.tagging")


class UntaggableFile(Exception):
    """mutagen does not recognise the file's format, so no tags can be written."""


def write_tags(path: Path, *, title: str = "", artist: str = "", album: str = "") -> None:
    """Set title, artist and album; an empty value leaves that tag as the file has it."""
    audio = mutagen.File(path, easy=True)
    if audio is None:
        raise UntaggableFile(f"no tag format known for {path.name}")
    if audio.tags is None:
        audio.add_tags()
    for key, value in (("title", title), ("artist", artist), ("album", album)):
        if value.strip():
            audio[key] = value.strip()
    audio.save()


def read_tags(path: Path) -> dict[str, str]:
    """The first value of each easy tag (title, artist, album, ...), for tests and diagnostics."""
    audio = mutagen.File(path, easy=True)
    if audio is None or audio.tags is None:
        return {}
    return {key: values[0] for key, values in audio.tags.items() if values}
