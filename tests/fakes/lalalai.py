"""A local lalal.ai: the API v1 endpoints StemForge uses, as the OpenAPI description defines them.

Served by uvicorn on 127.0.0.1 from a thread of the test process, so tests can look at and steer
its state (keys and minutes, tasks, injected faults) directly.

* Auth: ``X-License-Key`` must be a known key, otherwise 401 ``{"detail": "Unauthorized"}``.
* ``/api/v1/upload/``: raw body, file name from ``Content-Disposition`` (RFC 6266, ``filename*`` too);
  the audio is decoded (soundfile) for its duration. -> UploadResponse.
* ``/api/v1/split/multistem/`` and ``/split/stem_separator/``: MultistemSplitParameters /
  StemSeparatorSplitParameters; charges duration x stems against the key's minutes
  (``exceeded_duration`` when short). -> Task.
* ``/api/v1/check/``: each check moves a task on (``progress`` 0, 50, ... then ``success`` with one
  track per stem plus the ``back`` track, URLs served by this fake under ``/media/``). Unknown ids
  answer ``server_error``; cancelled ones ``cancelled``; ``error_next_task`` makes a task fail.
* ``/api/v1/cancel/``, ``/cancel/all/``: CancelResponse per task id. ``/delete/``: drops the source
  and its result files, cancelling its running tasks. ``/limits/minutes_left/``: LimitsResponse.
* ``fail_next(status, times)``: the next API requests answer that status (5xx, 429) first.

Result tracks are real audio in the requested ``encoder_format`` (wav, flac, mp3; the source's
format when none): the source scaled by a per-stem gain, so a test can tell them apart.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import anyio
import numpy as np
import soundfile as sf
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

MULTISTEM = Literal["vocals", "drum", "piano", "bass", "electric_guitar", "acoustic_guitar"]
SINGLE_STEM = Literal["vocals", "drum", "piano", "bass", "electric_guitar", "acoustic_guitar", "synthesizer",
                      "strings", "wind"]
ENCODER = Literal["mp3", "wav", "flac", "aac", "ogg"]
GAINS = {"vocals": 0.5, "drum": 0.25, "bass": 0.125, "piano": 0.0625, "electric_guitar": 0.03125,
         "acoustic_guitar": 0.015625}
_SF_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"),
               "ogg": ("OGG", "VORBIS")}


class MultistemPresets(BaseModel):
    stem_list: list[MULTISTEM] = Field(min_length=1, max_length=6)
    splitter: Literal["andromeda", "perseus", "orion", "phoenix", "lyra"] | None = None
    dereverb_enabled: bool = False
    encoder_format: ENCODER | None = None
    extraction_level: Literal["deep_extraction", "clear_cut"] = "deep_extraction"


class MultistemSplit(BaseModel):
    source_id: str
    presets: MultistemPresets
    idempotency_key: str | None = None


class StemSeparatorPresets(BaseModel):
    stem: SINGLE_STEM
    splitter: Literal["andromeda", "perseus", "orion", "phoenix", "lyra"] | None = None
    dereverb_enabled: bool = False
    encoder_format: ENCODER | None = None
    multivocal: Literal["lead_back"] | None = None
    extraction_level: Literal["deep_extraction", "clear_cut"] = "deep_extraction"


class StemSeparatorSplit(BaseModel):
    source_id: str
    presets: StemSeparatorPresets
    idempotency_key: str | None = None


class TaskIds(BaseModel):
    task_ids: list[str]


class DeleteParameters(BaseModel):
    source_id: str


@dataclass
class Source:
    id: str
    key: str
    name: str
    path: Path
    duration: float


@dataclass
class Task:
    id: str
    key: str
    source_id: str
    label: str  # multistem | stem_separator
    stems: list[str]
    encoder_format: str | None
    status: str = "progress"  # progress | success | error | cancelled
    progress: int = 0
    checks: int = 0
    tracks: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None


class FakeLalalai:
    def __init__(self, root: Path, keys: dict[str, float] | None = None, checks_until_done: int = 2) -> None:
        self.root = root
        self.keys: dict[str, float] = dict(keys or {})  # license key -> minutes left
        self.sources: dict[str, Source] = {}
        self.tasks: dict[str, Task] = {}
        self.checks_until_done = checks_until_done
        self.requests: list[tuple[str, str]] = []  # (path, key) of every API request
        self.uploads: list[dict[str, Any]] = []  # what upload saw: headers, size
        self.error_next_task: str | None = None
        self._faults: list[int] = []
        self._lock = threading.Lock()
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- test controls --------------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1) -> None:
        self._faults.extend([status] * times)

    def running(self, key: str | None = None) -> list[Task]:
        return [t for t in self.tasks.values() if t.status == "progress" and (key is None or t.key == key)]

    # --- serving --------------------------------------------------------------------------------------

    def start(self) -> FakeLalalai:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-lalalai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake lalal.ai did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def app(self) -> FastAPI:
        app = FastAPI()
        fake = self

        @app.middleware("http")
        async def auth_and_faults(request: Request, call_next: Any) -> Any:
            if not request.url.path.startswith("/api/v1/"):
                return await call_next(request)
            key = request.headers.get("x-license-key", "")
            fake.requests.append((request.url.path, key))
            if fake._faults:
                status = fake._faults.pop(0)
                return JSONResponse({"detail": "Service temporarily unavailable"}, status_code=status)
            if key not in fake.keys:
                return JSONResponse({"detail": "Unauthorized"}, status_code=401)
            request.state.key = key
            return await call_next(request)

        @app.post("/api/v1/upload/")
        async def upload(request: Request) -> Any:
            disposition = request.headers.get("content-disposition", "")
            name = _filename(disposition)
            if not name:
                return _error(400, "Content-Disposition header with a file name is required", "invalid_headers")
            source_id = str(uuid.uuid4())
            folder = fake.root / "sources" / source_id
            folder.mkdir(parents=True)
            path = folder / Path(name).name
            size = 0
            async with await anyio.open_file(path, "wb") as fh:
                async for block in request.stream():
                    await fh.write(block)
                    size += len(block)
            fake.uploads.append({"name": name, "size": size, "content_length": request.headers.get("content-length"),
                                 "transfer_encoding": request.headers.get("transfer-encoding")})
            try:
                info = sf.info(str(path))
            except (sf.LibsndfileError, RuntimeError):
                return _error(400, "The file is not a supported audio format", "unsupported_format")
            duration = info.frames / info.samplerate
            fake.sources[source_id] = Source(source_id, request.state.key, name, path, duration)
            return {"id": source_id, "name": name, "size": size, "duration": round(duration),
                    "expires": int(time.time()) + 3600}

        def start_task(key: str, source_id: str, label: str, stems: list[str], fmt: str | None) -> Any:
            source = fake.sources.get(source_id)
            if source is None or source.key != key:
                return _error(400, "The file has not been uploaded properly or has already been deleted. "
                                   "Please upload it again.", "source_not_found")
            minutes = source.duration / 60 * len(stems)
            with fake._lock:
                if minutes > fake.keys[key]:
                    return _error(400, "Not enough minutes left on the license", "exceeded_duration")
                fake.keys[key] -= minutes
            task = Task(str(uuid.uuid4()), key, source_id, label, stems, fmt)
            if fake.error_next_task:
                task.error, fake.error_next_task = {"detail": fake.error_next_task, "code": "inference_error"}, None
            fake.tasks[task.id] = task
            return {"task_id": task.id}

        @app.post("/api/v1/split/multistem/")
        async def split_multistem(body: MultistemSplit, request: Request) -> Any:
            return start_task(request.state.key, body.source_id, "multistem", list(body.presets.stem_list),
                              body.presets.encoder_format)

        @app.post("/api/v1/split/stem_separator/")
        async def split_stem(body: StemSeparatorSplit, request: Request) -> Any:
            return start_task(request.state.key, body.source_id, "stem_separator", [body.presets.stem],
                              body.presets.encoder_format)

        @app.post("/api/v1/check/")
        async def check(body: TaskIds, request: Request) -> Any:
            result: dict[str, Any] = {}
            for task_id in body.task_ids:
                task = fake.tasks.get(task_id)
                if task is None or task.key != request.state.key:
                    result[task_id] = {"status": "server_error", "error": "Failed to extract information about task"}
                    continue
                if task.status == "progress":
                    fake._advance(task, request)
                result[task_id] = fake._state(task)
            return {"result": result}

        @app.post("/api/v1/cancel/")
        async def cancel(body: TaskIds, request: Request) -> Any:
            return {"result": {task_id: fake._cancel(task_id, request.state.key) for task_id in body.task_ids}}

        @app.post("/api/v1/cancel/all/")
        async def cancel_all(request: Request) -> Any:
            key = request.state.key
            return {"result": {t.id: fake._cancel(t.id, key) for t in fake.running(key)}}

        @app.post("/api/v1/delete/")
        async def delete(body: DeleteParameters, request: Request) -> Any:
            source = fake.sources.get(body.source_id)
            if source is None or source.key != request.state.key:
                return _error(400, "Source not found", "source_not_found")
            for task in fake.tasks.values():
                if task.source_id == source.id and task.status == "progress":
                    task.status = "cancelled"
            del fake.sources[source.id]
            shutil.rmtree(source.path.parent, ignore_errors=True)
            shutil.rmtree(fake.root / "media" / source.id, ignore_errors=True)
            return {}

        @app.post("/api/v1/limits/minutes_left/")
        async def minutes_left(request: Request) -> Any:
            return {"minutes_left": round(fake.keys[request.state.key], 2)}

        @app.get("/media/{source_id}/{task_id}/{filename}")
        async def media(source_id: str, task_id: str, filename: str) -> Any:
            path = fake.root / "media" / source_id / task_id / filename
            if not path.is_file():
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            return FileResponse(path)

        return app

    # --- task life ------------------------------------------------------------------------------------

    def _advance(self, task: Task, request: Request) -> None:
        task.checks += 1
        if task.checks < self.checks_until_done:
            task.progress = min(99, task.checks * 100 // self.checks_until_done)
            return
        if task.error is not None:
            task.status = "error"
            return
        source = self.sources[task.source_id]
        data, sr = sf.read(str(source.path), dtype="float32", always_2d=True)
        fmt = task.encoder_format or source.path.suffix.lstrip(".").lower()
        container, subtype = _SF_FORMATS.get(fmt, _SF_FORMATS["wav"])
        folder = self.root / "media" / source.id / task.id
        folder.mkdir(parents=True, exist_ok=True)
        base = str(request.base_url).rstrip("/")
        rest = np.ones(1, dtype=np.float32)
        tracks = []
        for stem in task.stems:
            path = folder / f"{stem}.{fmt}"
            sf.write(str(path), data * GAINS.get(stem, 0.01), sr, format=container, subtype=subtype)
            rest = rest - GAINS.get(stem, 0.01)
            tracks.append({"type": "stem", "label": stem, "url": f"{base}/media/{source.id}/{task.id}/{path.name}"})
        back = "no_multistem" if task.label == "multistem" else f"no_{task.stems[0]}"
        path = folder / f"{back}.{fmt}"
        sf.write(str(path), data * rest, sr, format=container, subtype=subtype)
        tracks.append({"type": "back", "label": back, "url": f"{base}/media/{source.id}/{task.id}/{path.name}"})
        task.tracks, task.status, task.progress = tracks, "success", 100

    def _state(self, task: Task) -> dict[str, Any]:
        presets = {"task_type": "split", "label": task.label, "encoder_format": task.encoder_format}
        state: dict[str, Any] = {"source_id": task.source_id, "presets": presets, "status": task.status}
        if task.status == "progress":
            state["progress"] = task.progress
        elif task.status == "success":
            duration = self.sources[task.source_id].duration if task.source_id in self.sources else 0
            state["result"] = {"tracks": task.tracks, "duration": round(duration)}
        elif task.status == "error":
            state["error"] = {**(task.error or {}), "id": str(uuid.uuid4())}
        return state

    def _cancel(self, task_id: str, key: str) -> dict[str, Any]:
        task = self.tasks.get(task_id)
        if task is None or task.key != key:
            return {"status": "server_error", "error": "Failed to extract information about task"}
        if task.status != "progress":
            return {"status": "server_error", "error": "Task is not in progress state"}
        task.status = "cancelled"
        return {"status": "success"}


def _error(status: int, detail: str, code: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status)


def _filename(disposition: str) -> str:
    """The file name of an RFC 6266 Content-Disposition: ``filename*`` (UTF-8) wins over ``filename``."""
    star = re.search(r"filename\*\s*=\s*UTF-8''([^;]+)", disposition, re.IGNORECASE)
    if star:
        return unquote(star.group(1).strip())
    plain = re.search(r'filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;]+)', disposition, re.IGNORECASE)
    if plain:
        return (plain.group(1) if plain.group(1) is not None else plain.group(2)).strip()
    return ""
