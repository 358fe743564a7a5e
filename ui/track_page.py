"""One track: listen, follow its jobs live, see its stems and analysis."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from core import stems, user_settings
from core.analysis import results as analysis_results
from core.errors import NotFound, StemForgeError
from core.separation import MODELS
from core.settings import get_settings
from data.db import session_scope
from data.files import public_url
from data.models import AnalysisResult, Stem, Track, User
from ui import context
from ui.jobs_view import jobs_view
from ui.session import csrf_token, owned_track
from ui.theme import frame, track_not_found
from workers.submit import submit_analysis, submit_processing


async def _results(user: User, track_id: uuid.UUID) -> tuple[list[Stem], AnalysisResult | None]:
    async with session_scope() as db:
        stem_rows = await stems.latest_stems(db, user.id, track_id)
        try:
            analysis = await analysis_results.latest(db, user.id, track_id=track_id)
        except NotFound:
            analysis = None
        return stem_rows, analysis


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _analysis_card(result: AnalysisResult | None) -> None:
    with ui.card().classes("w-full gap-2").mark("analysis"):
        ui.label("Analysis").classes("text-lg font-semibold")
        if result is None:
            ui.label("Not analysed yet.").classes("text-gray-600")
            return
        with ui.row().classes("gap-8"):
            for label, value in (
                ("Tempo", _fmt(result.tempo, " BPM")),
                ("Key", result.key or "–"),
                ("Energy", _fmt(result.energy, "", 2)),
                ("Brightness", _fmt(result.spectral_centroid, " Hz", 0)),
            ):
                with ui.column().classes("gap-0"):
                    ui.label(label).classes("text-xs uppercase text-gray-500")
                    ui.label(value).classes("text-xl font-semibold").mark(f"analysis-{label.lower()}")


def _stems_card(track: Track, stems: list[Stem]) -> None:
    with ui.card().classes("w-full gap-2").mark("stems"):
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Stems").classes("text-lg font-semibold")
            if stems:
                with ui.row().classes("items-center gap-4"):
                    ui.button("Open in editor", icon="graphic_eq",
                              on_click=lambda: ui.navigate.to(f"/daw/{track.id}")).props(
                        "color=primary unelevated dense").mark("open-editor")
                    ui.link("Download all (ZIP)", f"/export/stems/{track.id}").mark("zip-link")
        if not stems:
            ui.label("Not separated yet.").classes("text-gray-600")
            return
        for stem in stems:
            with ui.row().classes("w-full items-center gap-4").mark("stem-row"):
                ui.label(stem.stem_type.capitalize()).classes("w-24 font-medium")
                ui.audio(public_url(stem.path)).classes("grow")
                ui.link("Download", f"/export/stem/{stem.id}")


async def _start(action: str, start) -> None:  # noqa: ANN001  (a zero-argument coroutine function)
    try:
        async with session_scope() as db:
            await start(db)
    except StemForgeError as exc:
        ui.notify(exc.message, type="negative")
        return
    ui.notify(f"{action} queued", type="positive")


def _actions(user: User, track: Track, defaults: dict[str, Any]) -> None:
    ready = "" if track.audio_path else " disable"
    with ui.card().classes("w-full gap-2").mark("actions"):
        ui.label("Actions").classes("text-lg font-semibold")
        with ui.row().classes("items-center gap-3"):
            model = (
                ui.select(
                    {m.name: f"{m.name} ({m.stems} stems)" for m in MODELS},
                    value=defaults["default_model"],
                    label="Model",
                )
                .props("outlined dense")
                .classes("w-56")
            )
            engine = (
                ui.select(
                    {"local": "Local (Demucs)", "lalalai": "lalal.ai cloud"},
                    value=defaults["default_engine"],
                    label="Engine",
                )
                .props("outlined dense")
                .classes("w-48")
            )
            ui.button(
                "Separate",
                on_click=lambda: _start(
                    "Separation",
                    lambda db: submit_processing(
                        db,
                        context.events(),
                        user.id,
                        get_settings(),
                        track_id=track.id,
                        model=model.value,
                        engine=engine.value,
                    ),
                ),
            ).props("color=primary unelevated" + ready).mark("separate")
            ui.button(
                "Analyze",
                on_click=lambda: _start(
                    "Analysis", lambda db: submit_analysis(db, context.events(), user.id, track_id=track.id)
                ),
            ).props("outline" + ready).mark("analyze")


async def render_track(user: User, track: Track) -> None:
    with ui.row().classes("w-full items-start gap-6"):
        if track.album_art_url:
            ui.image(track.album_art_url).classes("w-40 h-40 rounded shadow")
        with ui.column().classes("gap-1"):
            ui.label(track.title or "Untitled").classes("text-3xl font-bold").mark("track-title")
            ui.label(track.artist or "Unknown artist").classes("text-xl text-gray-700")
            details = [track.album, f"{track.duration // 60}:{track.duration % 60:02d}" if track.duration else ""]
            ui.label(" · ".join(d for d in details if d)).classes("text-gray-600")
            if track.audio_path:
                ui.audio(public_url(track.audio_path)).classes("w-96").mark("track-audio")
            else:
                ui.label("The audio is not here yet.").classes("text-amber-800")

    @ui.refreshable
    async def results() -> None:
        stem_rows, analysis = await _results(user, track.id)
        _stems_card(track, stem_rows)
        _analysis_card(analysis)

    async with session_scope() as db:
        defaults = await user_settings.view(db, user, get_settings())
    _actions(user, track, defaults)
    with ui.card().classes("w-full"):
        ui.label("Jobs").classes("text-lg font-semibold")
        await jobs_view(user.id, track_id=track.id, limit=200, on_finished=lambda _e: results.refresh())
    await results()


@ui.page("/tracks/{track_id}")
async def track_page(request: Request, track_id: str):
    user, track = await owned_track(request, track_id)
    if user is None:
        return RedirectResponse(f"/users/log-in?next=/tracks/{track_id}", status_code=303)
    if track is None:
        track_not_found(user, csrf_token(request))
        return None
    with frame(track.title or "Track", user, csrf_token(request)):
        await render_track(user, track)
