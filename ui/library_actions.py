"""Actions on one or many tracks of the library: separate (with a model and engine picker that says which
models are ready here), analyse, and delete (after a confirmation that says what goes with the tracks).

Each starts the same jobs as the REST routes (workers/submit.py) and reports per track what was refused.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from nicegui import ui
from sqlalchemy import func
from sqlmodel import col, select

from core import tracks, user_settings
from core.analysis import results as analysis_results
from core.errors import StemForgeError
from core.separation import MODELS, weights
from core.settings import get_settings
from data.db import session_scope
from data.models import AnalysisResult, Remix, Stem, Track, User
from ui import context
from ui.guard import guarded
from ui.theme import MUTED
from workers.submit import submit_analysis, submit_processing

ENGINES = {"local": "Local (Demucs, this server)", "lalalai": "lalal.ai cloud (your key)"}


def _ids(track_ids: list[str]) -> list[uuid.UUID]:
    return [uuid.UUID(t) for t in track_ids]


def _report(done: int, what: str, refused: list[str]) -> None:
    if done:
        ui.notify(f"{what} {done} track{'s' if done != 1 else ''}", type="positive")
    for message in refused[:3]:
        ui.notify(message, type="warning", multi_line=True)
    if len(refused) > 3:
        ui.notify(f"… and {len(refused) - 3} more refused", type="warning")


async def analyse(user: User, track_ids: list[str]) -> None:
    """Start an analysis (all features) of each track; refusals (no audio yet) are reported by title."""
    done, refused = 0, []
    async with session_scope() as db:
        for track_id in _ids(track_ids):
            try:
                # a half- or double-time choice made on the track page sticks
                await submit_analysis(db, context.events(), user.id, track_id=track_id,
                                      tempo_range=await analysis_results.latest_tempo_range(db, user.id, track_id))
                done += 1
            except StemForgeError as exc:
                track = await db.get(Track, track_id)
                refused.append(f"{track.title if track else 'A track'}: {exc.message}")
    _report(done, "Analysing", refused)


def _model_labels() -> dict[str, str]:
    settings = get_settings()
    present = weights.presence(Path(settings.demucs_repo).expanduser() if settings.demucs_repo else None)
    return {m.name: f"{m.name} · {m.stems} stems · " + ("ready" if present.get(m.name) else "downloads on first use")
            for m in MODELS}


async def separate_dialog(user: User, track_ids: list[str], titles: list[str]) -> None:
    """Pick model and engine (the user's defaults first), then queue a separation per track."""
    async with session_scope() as db:
        defaults = await user_settings.view(db, user, get_settings())
    labels = await asyncio.to_thread(_model_labels)
    with ui.dialog() as dialog, ui.card().classes("w-[32rem] max-w-full gap-3").props(
            "data-testid=separate-dialog"):
        what = titles[0] if len(titles) == 1 else f"{len(track_ids)} tracks"
        ui.label(f"Separate {what}").classes("text-lg font-semibold")
        model = ui.select(labels, value=defaults["default_model"], label="Model").props("outlined dense").classes(
            "w-full").mark("model")
        engines = dict(ENGINES)
        if not defaults.get("lalalai_key"):
            engines["lalalai"] = "lalal.ai cloud (add your key in Settings first)"
        engine = ui.select(engines, value=defaults["default_engine"], label="Engine").props(
            "outlined dense").classes("w-full").mark("engine")
        ui.label("htdemucs_6s adds guitar and piano; htdemucs_ft is slower and a little cleaner.").classes(
            f"text-xs {MUTED}")

        async def go() -> None:
            if engine.value == "lalalai" and not defaults.get("lalalai_key"):
                ui.notify("Add your lalal.ai license key in Settings first, or pick the local engine.",
                          type="warning")
                return
            dialog.close()
            done, refused = 0, []
            async with session_scope() as db:
                for track_id in _ids(track_ids):
                    try:
                        await submit_processing(db, context.events(), user.id, get_settings(), track_id=track_id,
                                                model=model.value, engine=engine.value)
                        done += 1
                    except StemForgeError as exc:
                        track = await db.get(Track, track_id)
                        refused.append(f"{track.title if track else 'A track'}: {exc.message}")
            _report(done, "Separating", refused)

        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Separate", on_click=guarded(go)).props("color=primary unelevated").mark("confirm-separate")
    dialog.open()


async def _what_goes(user: User, ids: list[uuid.UUID]) -> tuple[int, int, int]:
    """Stems, analyses and saved remixes that deleting these tracks removes."""
    async with session_scope() as db:
        counts = []
        for table in (Stem, AnalysisResult, Remix):
            query = select(func.count()).select_from(table).where(
                col(table.user_id) == user.id, col(table.track_id).in_(ids))
            counts.append(int((await db.exec(query)).one()))
    return counts[0], counts[1], counts[2]


async def delete_dialog(user: User, track_ids: list[str], titles: list[str],
                        on_deleted: Callable[[], Awaitable[None]]) -> None:
    """Ask, saying what goes with the tracks, then delete them (their running jobs are cancelled)."""
    ids = _ids(track_ids)
    stems, analyses, remixes = await _what_goes(user, ids)
    with ui.dialog() as dialog, ui.card().classes("w-[32rem] max-w-full gap-3").props("data-testid=delete-dialog"):
        what = f"“{titles[0]}”" if len(titles) == 1 else f"{len(ids)} tracks"
        ui.label(f"Delete {what}?").classes("text-lg font-semibold")
        parts = ["the track with its audio file" if len(ids) == 1 else f"{len(ids)} tracks with their audio files"]
        if stems:
            parts.append(f"{stems} stem file{'s' if stems != 1 else ''}")
        if analyses:
            parts.append(f"{analyses} analys{'es' if analyses != 1 else 'is'}")
        if remixes:
            parts.append(f"{remixes} saved remix{'es' if remixes != 1 else ''} with their undo history")
        ui.label("This removes " + ", ".join(parts) + ". Queued and running jobs of these tracks are cancelled. "
                 "It cannot be undone.").classes("text-sm").mark("delete-summary")
        if len(titles) > 1:
            ui.label(", ".join(titles[:8]) + (" …" if len(titles) > 8 else "")).classes(f"text-xs {MUTED}")

        async def go() -> None:
            dialog.close()
            try:
                async with session_scope() as db:
                    gone = await tracks.delete_tracks(db, context.store(), user.id, ids, events=context.events())
            except StemForgeError as exc:
                ui.notify(exc.message, type="negative")
                return
            ui.notify(f"Deleted {gone} track{'s' if gone != 1 else ''}", type="positive")
            await on_deleted()

        with ui.row().classes("w-full justify-end"):
            ui.button("Keep them" if len(ids) > 1 else "Keep it", on_click=dialog.close).props("flat")
            ui.button("Delete", on_click=guarded(go)).props("color=negative unelevated").mark("confirm-delete")
    dialog.open()
