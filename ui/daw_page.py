"""The DAW editor page, ``/daw/{track_id}``: the stems of a track as lanes to remix in the browser.

The page is a thin shell: it checks who is looking, gathers what the editor needs in one JSON object (the
track, its newest stems with their length and sample rate, the saved remix, the analysis' bars and
sections, the CSRF token) and mounts the editor's JS module (ui/daw/static/editor.js). Audio and waveforms
travel over the plain HTTP routes (PCM windows, peaks, export), never over NiceGUI's socket; every change
goes to the saved remix (``/api/daw/{track_id}``), so a reload or a second tab shows the same remix. When an
analysis of the track finishes anywhere (the track page's ÷2 / ×2, the library, the API), the page hands its
beats, bars and sections to the open editor (``setAnalysis``), which redraws its grid in place.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app as nicegui_app
from nicegui import ui

from core import stems
from core.analysis import record
from core.analysis import results as analysis_results
from core.audio_io import probe
from core.daw import remix
from core.daw.mixdown import stem_audio
from core.errors import NotFound, StemForgeError
from core.events import Event
from core.stem_export import stem_path
from data.db import session_scope
from data.files import UnsafePath
from data.models import Stem, Track, User
from ui import context
from ui.live import follow_user_events
from ui.palette import DEFAULT_STEM_COLOR, STEM_COLORS
from ui.session import csrf_token, owned_track
from ui.theme import frame, track_not_found

STATIC = Path(__file__).parent / "daw" / "static"
nicegui_app.add_static_files("/daw-static", STATIC)

# One colour per stem type, the same everywhere in the app.


def _stem_facts(rows: list[Stem]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        audio = stem_audio(stem_path(context.store(), row))
        colour = STEM_COLORS.get(row.stem_type, DEFAULT_STEM_COLOR)
        out.append({"id": str(row.id), "type": row.stem_type, "colour": colour,
                    "frames": audio.frames, "sampleRate": audio.sample_rate, "channels": audio.channels})
    return out


def _original_facts(track: Track) -> dict[str, Any] | None:
    """The track's own audio for A/B (its length and rate: the engine plays silence past its end)."""
    if not track.audio_path:
        return None
    try:
        path = context.store().resolve(track.audio_path)
        info = probe(path)
    except (UnsafePath, StemForgeError, OSError):
        return None
    return {"id": str(track.id), "frames": round(info.duration * info.sample_rate), "sampleRate": info.sample_rate,
            "channels": info.channels}


EDITOR_ANALYSIS = ("tempo", "key", "beats", "downbeats", "beats_per_bar", "sections")


async def editor_analysis(user: User, track_id: uuid.UUID) -> dict[str, Any] | None:
    """What the editor shows of the newest analysis of the track's own audio (``EDITOR_ANALYSIS``: tempo in
    BPM, key, beats and downbeats in seconds, beats per bar, sections), or None when it has none."""
    async with session_scope() as db:
        try:
            analysis = record.to_result(await analysis_results.latest(db, user.id, track_id=track_id))
        except NotFound:
            return None
    return {key: analysis.get(key) for key in EDITOR_ANALYSIS}


async def editor_config(user: User, track: Track, request: Request) -> dict[str, Any] | None:
    """Everything the editor starts from, or None when the track has no stems yet."""
    async with session_scope() as db:
        rows = await stems.latest_stems(db, user.id, track.id)
        if not rows:
            return None
        state = await remix.read_remix(db, user.id, track.id)
    analysis = await editor_analysis(user, track.id)
    stem_facts = await asyncio.to_thread(_stem_facts, rows)
    original = await asyncio.to_thread(_original_facts, track)
    by_id = {s["id"]: s for s in stem_facts}
    # The saved remix may name stems of an earlier separation: the editor shows what the manifest mixes.
    for entry in state.manifest.get("stems", []):
        if entry.get("stem_id") not in by_id:
            async with session_scope() as db:
                extra = await stems.get_stem(db, user.id, uuid.UUID(entry["stem_id"]))
            by_id[str(extra.id)] = (await asyncio.to_thread(_stem_facts, [extra]))[0]
    return {
        "track": {"id": str(track.id), "title": track.title, "artist": track.artist,
                  "hasAudio": original is not None, "original": original},
        "stems": [by_id[e["stem_id"]] for e in state.manifest["stems"] if e.get("stem_id") in by_id],
        "remix": {"manifest": state.manifest, "version": state.version, "canUndo": state.can_undo,
                  "canRedo": state.can_redo,
                  "history": [{"seq": h.seq, "label": h.label, "undone": h.undone} for h in state.history]},
        "analysis": analysis,
        "csrf": csrf_token(request),
    }


def _empty_state(track: Track) -> None:
    with ui.card().classes("w-full items-center gap-3 p-10").mark("daw-empty"):
        ui.icon("graphic_eq").classes("text-5xl text-gray-400")
        ui.label("This track has no stems yet").classes("text-xl font-semibold")
        ui.label("Separate it into stems first; the editor opens them as lanes.").classes("text-gray-500")
        ui.button("Separate on the track page", on_click=lambda: ui.navigate.to(f"/tracks/{track.id}")).props(
            "color=primary unelevated").mark("daw-separate")


@ui.page("/daw/{track_id}")
async def daw_page(request: Request, track_id: str):
    user, track = await owned_track(request, track_id)
    if user is None:
        return RedirectResponse(f"/users/log-in?next=/daw/{track_id}", status_code=303)
    if track is None:
        track_not_found(user, csrf_token(request))
        return None
    try:
        config = await editor_config(user, track, request)
    except StemForgeError as exc:
        with frame("Editor", user, csrf_token(request)):
            ui.label(exc.message).classes("text-xl")
        return None
    title = " – ".join(p for p in (track.artist, track.title) if p) or "Untitled"
    with frame(f"Editor · {title}", user, csrf_token(request), wide=config is not None):
        if config is None:
            _empty_state(track)
            return None
        ui.add_head_html('<link rel="stylesheet" href="/daw-static/editor.css">')
        ui.html('<div id="daw-root" class="daw-root"></div>').classes("w-full").mark("daw")
        ui.add_body_html(
            '<script type="module">'
            'import { mountEditor } from "/daw-static/editor.js";'
            f"window.stemforgeEditor = mountEditor('daw-root', {json.dumps(config)});"
            "</script>")

    async def on_event(event: Event) -> None:
        """An analysis of this track with a beat grid finished (here, on the track page or over the API): the
        editor takes its beats, bars and sections in place, edits and undo history kept. One asked for other
        features only (the key, say) leaves the grid alone."""
        payload = event.payload
        if (event.event != "job:completed" or payload.get("job_type") != "analysis"
                or payload.get("track_id") != str(track.id)
                or not {"beats", "downbeats"} & set(payload.get("result") or {})):
            return
        analysis = await editor_analysis(user, track.id)
        if analysis is not None:
            ui.run_javascript(f"window.dawEditor?.setAnalysis({json.dumps(analysis)})")

    follow_user_events(user.id, on_event)
    return None
