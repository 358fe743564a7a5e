"""Getting audio from a link: yt-dlp as a library, ffmpeg from the imageio-ffmpeg wheel.

yt-dlp handles every site it knows and, through its generic extractor, plain http(s) links to audio
files. It downloads the best audio, and its FFmpegExtractAudio post-processor converts to the requested
quality: ``lossless`` -> FLAC, ``high`` -> MP3 320 kbps (default), ``medium`` -> 192, ``low`` -> 128.

Faults are sorted for the job runner (core/progress.py): a 5xx/429 answer or a network failure is a
``TransientError`` (retried with backoff); a 4xx answer, a page without audio, or a file ffmpeg cannot
decode is ``BadInput`` (fails at once, with a sentence saying what to do). yt-dlp's own retries are off,
so the retry policy lives in one place.

The finished file is tagged (title, artist, album: core/tagging.py) and named
``<artist> - <title>.<ext>`` with a name every filesystem accepts (data/files.safe_filename).
Download progress changes at most every ``PROGRESS_INTERVAL_S``: each new figure is a database write
and an event, which a download that takes a fraction of a second does not need a dozen of.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mutagen

from core.audio_io import ffmpeg_exe, probe
from core.errors import InvalidAudio
from core.progress import BadInput, ProgressFn, TransientError
from core.tagging import UntaggableFile, write_tags
from data.files import safe_filename

log = logging.getLogger("stemforge.downloader")

# quality -> (codec/extension, bitrate in kbps for lossy codecs)
QUALITIES: dict[str, tuple[str, str | None]] = {
    "lossless": ("flac", None),
    "high": ("mp3", "320"),
    "medium": ("mp3", "192"),
    "low": ("mp3", "128"),
}
DEFAULT_QUALITY = "high"

# Shares of the job's 0-100 progress: fetching, then converting.
DOWNLOAD_SHARE = 85.0
# Least time between two download progress reports that change the figure.
PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class DownloadedAudio:
    path: Path
    title: str
    artist: str
    duration: float
    sample_rate: int
    channels: int
    format: str
    size: int
    album: str = ""


def title_from_url(url: str) -> str:
    """A placeholder title until the download knows better: the link's file name, without extension."""
    name = Path(unquote(urlparse(url).path)).stem.strip()
    return name or urlparse(url).netloc or "Untitled"


class _YdlLogger:
    """yt-dlp's messages into our log (it would print to stdout otherwise)."""

    def debug(self, msg: str) -> None:
        log.debug("%s", msg)

    def info(self, msg: str) -> None:
        log.debug("%s", msg)

    def warning(self, msg: str) -> None:
        log.info("%s", msg)

    def error(self, msg: str) -> None:
        log.info("%s", msg)


def _causes(exc: BaseException) -> list[BaseException]:
    """The chain of exceptions yt-dlp wrapped around the original one."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        exc_info = getattr(cur, "exc_info", None)
        todo += [getattr(cur, "cause", None), cur.__cause__, cur.__context__,
                 exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None]
    return seen


def classify(exc: BaseException, url: str) -> Exception:
    """Turn a yt-dlp failure into TransientError (worth retrying) or BadInput (tell the user)."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import PostProcessingError, UnsupportedError

    chain = _causes(exc)
    for cur in chain:
        if isinstance(cur, HTTPError):
            status = cur.status
            if status >= 500 or status in (408, 429):
                return TransientError(f"The source server is unavailable right now (HTTP {status})")
            return BadInput(f"The link answered HTTP {status} ({cur.reason or 'error'}); check that it is "
                            "correct and publicly reachable")
    for cur in chain:
        if isinstance(cur, UnsupportedError):
            return BadInput("No audio was found at this link; paste a link to a track or an audio file")
        if isinstance(cur, PostProcessingError):
            return BadInput("The file at this link is not audio that can be converted")
        if isinstance(cur, TransportError | ConnectionError | TimeoutError):
            return TransientError("Could not reach the source (network error)")
    text = str(exc)
    if "Unsupported URL" in text:
        return BadInput("No audio was found at this link; paste a link to a track or an audio file")
    log.warning("unclassified download failure for %s: %s", url, text)
    return BadInput("The audio could not be downloaded from this link")


class _DownloadProgress:
    """yt-dlp's download hook as job progress, throttled to one new figure per ``PROGRESS_INTERVAL_S``.

    Between reports the last figure is repeated: that costs the runner nothing but still lets it
    notice a cancel (it checks on every call, at most twice a second).
    """

    def __init__(self, progress: ProgressFn) -> None:
        self.progress = progress
        self.reported = 0.0
        self.at = 0.0

    def __call__(self, d: dict[str, Any]) -> None:
        if d.get("status") == "downloading":
            total = d.get("total_bytes") or d.get("total_bytes_estimate")
            done = d.get("downloaded_bytes") or 0
            if not total:
                return
            pct = DOWNLOAD_SHARE * min(1.0, done / total)
            now = time.monotonic()
            if int(pct) > int(self.reported) and now - self.at >= PROGRESS_INTERVAL_S:
                self.reported, self.at = pct, now
            self.progress(self.reported, "Downloading audio...")
        elif d.get("status") == "finished":
            self.progress(DOWNLOAD_SHARE, "Converting audio...")


def download_audio(url: str, dest_dir: Path, quality: str, progress: ProgressFn, *, work_dir: Path,
                   title: str = "", artist: str = "", album: str = "",
                   socket_timeout: float = 20.0) -> DownloadedAudio:
    """Download ``url`` into ``dest_dir`` as a tagged ``<artist> - <title>.<ext>`` at ``quality``.

    ``title``/``artist`` default to what the source says about itself. ``work_dir`` holds the partial
    files (the caller removes it if the job does not complete). Progress: 0-85 % while fetching, then
    converting, 100 % when the file is in place.
    """
    import yt_dlp

    codec, bitrate = QUALITIES.get(quality, QUALITIES[DEFAULT_QUALITY])
    work_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="dl-", dir=work_dir))
    on_download = _DownloadProgress(progress)

    def on_postprocess(d: dict[str, Any]) -> None:
        if d.get("status") == "started":
            progress(DOWNLOAD_SHARE + 2, "Converting audio...")

    pp: dict[str, Any] = {"key": "FFmpegExtractAudio", "preferredcodec": codec}
    if bitrate:
        pp["preferredquality"] = bitrate
    options: dict[str, Any] = {
        "format": "bestaudio/best",
        "outtmpl": str(staging / "source.%(ext)s"),
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _YdlLogger(),
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "socket_timeout": socket_timeout,
        "ffmpeg_location": ffmpeg_exe(),
        "postprocessors": [pp],
        "progress_hooks": [on_download],
        "postprocessor_hooks": [on_postprocess],
        "cachedir": False,
    }
    progress(0, "Looking up the link...")
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.DownloadError as exc:
        raise classify(exc, url) from None
    if info is None:
        raise BadInput("No audio was found at this link")
    if info.get("_type") == "playlist":
        raise BadInput("This link is a playlist; paste the link of one track")
    downloads = info.get("requested_downloads") or []
    produced = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
    if produced is None or not produced.exists():
        candidates = sorted(staging.glob(f"*.{codec}"))
        if not candidates:
            raise BadInput("The file at this link is not audio that can be converted")
        produced = candidates[0]
    try:
        facts = probe(produced)
    except InvalidAudio as exc:
        raise BadInput("The file at this link is not audio that can be converted") from exc

    title = title or (info.get("track") or info.get("title") or "").strip() or title_from_url(url)
    artist = artist or (info.get("artist") or info.get("creator") or "").strip()
    album = album or (info.get("album") or "").strip()
    try:
        write_tags(produced, title=title, artist=artist, album=album)
    except (UntaggableFile, mutagen.MutagenError) as exc:  # the audio itself is fine: keep it untagged
        log.warning("could not tag %s: %s", produced.name, exc)
    name = f"{artist} - {title}" if artist else title
    final = dest_dir / safe_filename(name, codec)
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(str(produced), final)
    shutil.rmtree(staging, ignore_errors=True)
    progress(100, "Download complete")
    return DownloadedAudio(final, title, artist, facts.duration, facts.sample_rate, facts.channels, codec,
                           final.stat().st_size, album)
