"""The cloud engine: a client of the lalal.ai API v1, and the separation a job runs with it.

The API (its OpenAPI description is the contract): every request carries the user's license key
in ``X-License-Key``. A separation is

1. ``POST /api/v1/upload/`` with the file as the raw body (name in ``Content-Disposition``) -> source id;
2. ``POST /api/v1/split/multistem/`` with the stems the chosen model implies -> task id;
3. ``POST /api/v1/check/`` until the task is ``success`` (``progress`` 0-100 meanwhile; at most 20 checks
   a minute), which lists one download URL per track;
4. download the tracks, then ``POST /api/v1/delete/`` the source so nothing stays on their servers.

``cancel`` / ``cancel/all`` stop running tasks; ``limits/minutes_left`` tells the processing minutes
left on the key. Faults map onto the job contract: a refused key is ``LalalaiKeyError`` (an
``Unauthorized`` for routes and a ``BadInput`` for jobs), 5xx / 429 / timeouts are ``TransientError``,
other refusals (too long, unsupported file, failed split) are ``BadInput``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from core.errors import Unauthorized
from core.progress import BadInput, JobCancelled, ProgressFn, TransientError, no_progress, scaled
from core.separation.catalog import DEFAULT_MODEL, model_info
from core.separation.stems import StemFile, check_format
from core.settings import Settings, get_settings

log = logging.getLogger("stemforge.lalalai")

API = "/api/v1"
KEY_HELP = "Set your lalal.ai license key on the Settings page (lalal.ai section)."

# What each catalogue model means on lalal.ai: the multistem list to ask for. The rest of the mix
# comes back as the "no_multistem" track, which is our "other". Their guitar stems are split into
# electric and acoustic; demucs' 6-stem "guitar" is mostly electric, and each extra stem costs minutes.
_FOUR = ["vocals", "drum", "bass"]
STEM_LISTS: dict[str, list[str]] = {
    "htdemucs": _FOUR,
    "htdemucs_ft": _FOUR,
    "mdx_extra": _FOUR,
    "htdemucs_6s": ["vocals", "drum", "bass", "electric_guitar", "piano"],
}
# lalal.ai track label -> our stem name.
LABELS = {"vocals": "vocals", "drum": "drums", "bass": "bass", "electric_guitar": "guitar", "piano": "piano",
          "no_multistem": "other"}
# Refusals tied to the plan of the key (LicenseErrorCodes in the OpenAPI description).
_LICENSE_MESSAGES = {
    "exceeded_duration": "Not enough lalal.ai processing minutes left on your license for this track",
    "max_duration": "The track is longer than your lalal.ai plan allows",
    "exceeded_size": "The file is larger than your lalal.ai plan allows",
    "batch_not_avaliable": "Your lalal.ai plan does not include batch processing",
}
_UPLOAD_BLOCK = 1 << 20


class LalalaiKeyError(Unauthorized, BadInput):
    """No license key, or lalal.ai refused it: the user has to fix the key, retrying will not help."""


@dataclass(frozen=True)
class Quota:
    """The REST contract's quota. lalal.ai reports only the minutes left; ``used`` is what StemForge's
    own jobs consumed on this key (the caller counts them), and the quota is both together."""

    quota_minutes: float
    used_minutes: float
    remaining_minutes: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Upload:
    id: str
    name: str
    size: int
    duration: float


def _content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback name plus the exact UTF-8 name."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "audio"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _error_text(response: httpx.Response) -> tuple[str, str]:
    """(detail, code) from ApiV1ErrorResponse {detail, code} or CommonErrorResponse {detail}."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase, ""
    if not isinstance(body, dict):
        return str(body)[:200], ""
    detail = body.get("detail", body)
    if isinstance(detail, list):  # validation errors: [{"loc": [...], "msg": "..."}]
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail), str(body.get("code") or "")


class LalalaiClient:
    def __init__(self, license_key: str, base_url: str | None = None, *, timeout: float = 60.0,
                 poll_interval: float | None = None, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        if not license_key:
            raise LalalaiKeyError("No lalal.ai license key is set. " + KEY_HELP)
        self.poll_interval = settings.lalalai_poll_interval_s if poll_interval is None else poll_interval
        self._timeout = httpx.Timeout(timeout, connect=15.0)
        self._http = httpx.Client(base_url=(base_url or settings.lalalai_api_url).rstrip("/"),
                                  headers={"X-License-Key": license_key}, timeout=self._timeout)

    def __enter__(self) -> LalalaiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -------------------------------------------------------------------------------------

    def _post(self, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.post(API + path, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"lalal.ai did not answer in time ({path})") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"lalal.ai could not be reached: {exc}") from exc
        return self._parse(response)

    @staticmethod
    def _parse(response: httpx.Response) -> Any:
        status = response.status_code
        if status in (401, 403):
            raise LalalaiKeyError("lalal.ai refused the license key. " + KEY_HELP)
        if status == 429 or status >= 500:
            detail, _ = _error_text(response)
            raise TransientError(f"lalal.ai is unavailable right now (HTTP {status}: {detail})")
        if status >= 400:
            detail, code = _error_text(response)
            if code in _LICENSE_MESSAGES:
                raise BadInput(f"{_LICENSE_MESSAGES[code]} ({detail})")
            if "license" in code or "license" in detail.lower():
                raise LalalaiKeyError(f"lalal.ai refused the license key ({detail}). {KEY_HELP}")
            raise BadInput(f"lalal.ai refused the request: {detail}")
        try:
            return response.json()
        except ValueError as exc:
            raise TransientError(f"lalal.ai sent an unreadable answer (HTTP {status})") from exc

    # --- the API --------------------------------------------------------------------------------------

    def upload(self, path: Path, progress: ProgressFn = no_progress) -> Upload:
        """Stream the file up (constant memory); ``progress`` goes 0-100 with the bytes sent."""
        path = Path(path)
        size = path.stat().st_size

        def body() -> Iterator[bytes]:
            sent = 0
            with open(path, "rb") as fh:
                while block := fh.read(_UPLOAD_BLOCK):
                    yield block
                    sent += len(block)
                    progress(100.0 * sent / max(size, 1), "Uploading to lalal.ai")

        headers = {"Content-Disposition": _content_disposition(path.name),
                   "Content-Type": "application/octet-stream", "Content-Length": str(size)}
        data = self._post("/upload/", content=body(), headers=headers)
        return Upload(str(data["id"]), str(data.get("name", path.name)), int(data.get("size", size)),
                      float(data.get("duration", 0)))

    def split(self, source_id: str, stem_list: list[str], encoder_format: str | None = None) -> str:
        """Start a multistem split; returns the task id."""
        presets: dict[str, Any] = {"stem_list": stem_list}
        if encoder_format:
            presets["encoder_format"] = encoder_format
        data = self._post("/split/multistem/", json={"source_id": source_id, "presets": presets})
        return str(data["task_id"])

    def check(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        return dict(self._post("/check/", json={"task_ids": task_ids})["result"])

    def wait(self, task_id: str, progress: ProgressFn = no_progress, *,
             max_wait_s: float = 4 * 3600.0) -> list[dict[str, Any]]:
        """Check until the task ends; returns its tracks. If ``progress`` raises JobCancelled, the task
        is cancelled on lalal.ai too before the exception goes on."""
        deadline = time.monotonic() + max_wait_s
        while True:
            state = self.check([task_id]).get(task_id) or {}
            status = state.get("status")
            if status == "success":
                return list(state["result"]["tracks"])
            if status == "error":
                error = state.get("error") or {}
                detail = error.get("detail", error) if isinstance(error, dict) else error
                raise BadInput(f"lalal.ai could not split this track: {detail}")
            if status == "cancelled":
                raise JobCancelled("The lalal.ai task was cancelled")
            if status == "server_error":
                raise TransientError(f"lalal.ai could not process the task: {state.get('error', '')}")
            if status != "progress":
                raise TransientError(f"lalal.ai answered an unknown task status {status!r}")
            try:
                progress(float(state.get("progress", 0)), "Separating on lalal.ai")
            except JobCancelled:
                self._cancel_quietly(task_id)
                raise
            if time.monotonic() > deadline:
                self._cancel_quietly(task_id)
                raise TransientError(f"lalal.ai did not finish the task within {max_wait_s / 3600:g} hours")
            time.sleep(self.poll_interval)

    def download(self, url: str, dest: Path) -> int:
        """Fetch one result track into ``dest`` (streamed). The URL points at their CDN: no key is sent."""
        part = dest.with_name(f".{dest.name}.part")
        try:
            with httpx.stream("GET", url, timeout=self._timeout, follow_redirects=True) as response:
                if response.status_code >= 400:
                    raise TransientError(f"lalal.ai's result track could not be downloaded (HTTP "
                                         f"{response.status_code})")
                with open(part, "wb") as fh:
                    for block in response.iter_bytes(_UPLOAD_BLOCK):
                        fh.write(block)
            os.replace(part, dest)
        except httpx.HTTPError as exc:
            raise TransientError(f"lalal.ai's result track could not be downloaded: {exc}") from exc
        finally:
            part.unlink(missing_ok=True)
        return dest.stat().st_size

    def delete(self, source_id: str) -> None:
        self._post("/delete/", json={"source_id": source_id})

    def cancel(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Per task id: {"status": "success"} or {"status": "server_error", "error": "..."}."""
        return dict(self._post("/cancel/", json={"task_ids": task_ids})["result"])

    def cancel_all(self) -> dict[str, dict[str, Any]]:
        return dict(self._post("/cancel/all/")["result"])

    def minutes_left(self) -> float:
        return float(self._post("/limits/minutes_left/")["minutes_left"])

    def _cancel_quietly(self, task_id: str) -> None:
        try:
            self.cancel([task_id])
        except Exception as exc:  # the job is cancelled either way; lalal.ai only finishes for nothing
            log.warning("could not cancel lalal.ai task %s: %s", task_id, exc)


# --- what routes and jobs call -------------------------------------------------------------------------


def charged_minutes(duration_s: float, model: str) -> float:
    """What lalal.ai charges for separating ``duration_s`` seconds with ``model``: the track's minutes
    once per requested stem. A job records it so the quota can show ``used_minutes``."""
    return duration_s / 60.0 * len(STEM_LISTS[model_info(model).name])


def separate(audio: Path, out_dir: Path, model: str = DEFAULT_MODEL, license_key: str = "",
             progress: ProgressFn = no_progress, *, settings: Settings | None = None, fmt: str | None = None,
             on_task: Callable[[str], None] | None = None) -> list[StemFile]:
    """Separate ``audio`` on lalal.ai into ``out_dir/<stem>.<fmt>``, with the stems ``model`` implies.

    ``on_task(task_id)`` runs as soon as the task exists, so a job can record it (the cancel routes
    find the job by it). The uploaded source is deleted from lalal.ai whatever happens.
    """
    settings = settings or get_settings()
    info = model_info(model)
    fmt = check_format(fmt or settings.stem_format)
    stem_list = STEM_LISTS[info.name]
    audio, out_dir = Path(audio), Path(out_dir)
    if not audio.is_file():
        raise BadInput("The track's audio file is missing")
    with LalalaiClient(license_key, settings=settings) as client:
        progress(0.0, "Uploading to lalal.ai")
        source = client.upload(audio, scaled(progress, 0.0, 15.0))
        try:
            task_id = client.split(source.id, stem_list, fmt)
            if on_task is not None:
                on_task(task_id)
            progress(15.0, "Separating on lalal.ai")
            tracks = client.wait(task_id, scaled(progress, 15.0, 90.0))
            by_stem = {LABELS[t["label"]]: t["url"] for t in tracks if t.get("label") in LABELS}
            wanted = list(info.stem_names)
            missing = [stem for stem in wanted if stem not in by_stem]
            if missing:
                raise BadInput(f"lalal.ai returned no {', '.join(missing)} track")
            out_dir.mkdir(parents=True, exist_ok=True)
            result = []
            for i, stem in enumerate(wanted):
                progress(90.0 + 10.0 * i / len(wanted), "Downloading stems")
                dest = out_dir / f"{stem}.{fmt}"
                result.append(StemFile(stem, dest, client.download(by_stem[stem], dest), fmt))
        finally:
            try:
                client.delete(source.id)
            except Exception as exc:  # the files expire on their side anyway
                log.warning("could not delete lalal.ai source %s: %s", source.id, exc)
    progress(100.0, "Done")
    return result


def quota(license_key: str, used_minutes: float = 0.0, *, settings: Settings | None = None) -> Quota:
    """``GET /api/lalalai/quota``: lalal.ai's minutes left, with what StemForge used on the key."""
    with LalalaiClient(license_key, settings=settings) as client:
        remaining = client.minutes_left()
    used = max(0.0, float(used_minutes))
    return Quota(quota_minutes=used + remaining, used_minutes=used, remaining_minutes=remaining)


def cancel(license_key: str, task_id: str, *, settings: Settings | None = None) -> bool:
    """Cancel one task; False when lalal.ai says it is not running (finished, unknown, cancelled)."""
    with LalalaiClient(license_key, settings=settings) as client:
        answer = client.cancel([task_id]).get(task_id) or {}
    return answer.get("status") == "success"


def cancel_all(license_key: str, *, settings: Settings | None = None) -> list[str]:
    """Cancel every running task of the key; returns the ids lalal.ai cancelled."""
    with LalalaiClient(license_key, settings=settings) as client:
        answer = client.cancel_all()
    return [task_id for task_id, result in answer.items() if (result or {}).get("status") == "success"]
