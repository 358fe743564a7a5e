"""The file store: every audio file lives under ``<data dir>/uploads``.

The database keeps paths relative to that root. Anything that turns a request
value into a path goes through :meth:`FileStore.resolve`, which refuses to leave
the root (``..``, absolute paths, symlinks pointing outside).
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
import uuid
from pathlib import Path, PurePosixPath
from urllib.parse import quote

_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*\x7f]+')
_SPACES = re.compile(r"\s+")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def public_url(relative: str) -> str:
    """The ``/files/...`` URL under which the app serves a stored file."""
    return "/files/" + quote(relative)


class UnsafePath(ValueError):
    """A requested path would escape the uploads dir."""


def safe_filename(stem: str, ext: str, max_len: int = 150) -> str:
    """A name that is valid on Linux, macOS and Windows and still readable ("Artist - Title.mp3")."""
    name = unicodedata.normalize("NFC", stem)
    name = _UNSAFE.sub(" ", name)
    name = _SPACES.sub(" ", name).strip(" .")
    if name.upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    encoded = name.encode()[:max_len]
    name = encoded.decode(errors="ignore").strip(" .") or "audio"
    ext = re.sub(r"[^A-Za-z0-9]", "", ext).lower()[:8]
    return f"{name}.{ext}" if ext else name


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def resolve(self, relative: str) -> Path:
        """The absolute path for a stored relative path, or UnsafePath if it leaves the root."""
        if not relative or "\x00" in relative:
            raise UnsafePath(relative)
        pure = PurePosixPath(relative.replace("\\", "/"))
        if pure.is_absolute() or any(part in ("..", "") for part in pure.parts):
            raise UnsafePath(relative)
        candidate = (self.root / Path(*pure.parts)).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise UnsafePath(relative)
        return candidate

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def track_dir(self, track_id: uuid.UUID) -> Path:
        return self.root / "downloads" / str(track_id)

    def job_dir(self, job_id: uuid.UUID) -> Path:
        return self.root / "stems" / str(job_id)

    def remove_tree(self, path: Path) -> None:
        path = path.resolve()
        if self.root in path.parents and path.exists():
            shutil.rmtree(path, ignore_errors=True)

    def remove_file(self, relative: str | None) -> None:
        if not relative:
            return
        try:
            path = self.resolve(relative)
        except UnsafePath:
            return
        if path.is_file():
            path.unlink(missing_ok=True)

    @staticmethod
    def replace_atomically(tmp: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
