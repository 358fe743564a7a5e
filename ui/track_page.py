"""One track: listen, see its waveform with the beat grid and sections, its analysis as charts, its stems
(small waveforms, players, downloads, analysis on demand), and follow its jobs live.

A thin page: the data comes from core/ (stems, analysis results, job submission); the pictures from
ui/waveform.py (peaks over HTTP, drawn on a canvas) and ui/track_charts.py (ECharts options). When a job of
the track finishes, the part it changed is drawn again without a reload: a download the header and the
waveform, a separation the stems, an analysis the analysis (or the summary of the stem it measured).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from core import stems, user_settings
from core.analysis import record
from core.analysis import results as analysis_results
from core.analysis.features import TEMPO_RANGE_BPM, octave_around
from core.errors import NotFound, StemForgeError
from core.events import Event
from core.processing import PREVIEW_MIN_SECONDS, PREVIEW_SECONDS
from core.separation import MODELS
from core.settings import get_settings
from data.db import session_scope
from data.files import public_url
from data.models import Job, Stem, Track, User
from ui import context
from ui.guard import guarded
from ui.jobs_view import jobs_view
from ui.live import follow_user_events
from ui.palette import section_color, stem_color
from ui.session import csrf_token, owned_track
from ui.theme import MUTED as THEME_MUTED
from ui.theme import frame, mmss, track_not_found
from ui.track_charts import chroma_options, energy_options, mfcc_options, tempo_options
from ui.waveform import stem_waveform, track_waveform
from workers.submit import submit_analysis, submit_processing

MUTED = "text-grey-6"
Starter = Callable[[Any], Awaitable[Any]]  # (db session) -> the submitted job


async def _latest(user: User, *, track_id: uuid.UUID | None = None,
                  stem_id: uuid.UUID | None = None) -> dict[str, Any] | None:
    """The newest analysis of the track's own audio or of one stem, as the result dict; None if none."""
    async with session_scope() as db:
        try:
            row = await analysis_results.latest(db, user.id, track_id=track_id, stem_id=stem_id)
        except NotFound:
            return None
        return record.to_result(row)


async def _stem_analyses(user: User, rows: list[Stem]) -> dict[uuid.UUID, dict[str, Any]]:
    found = {row.id: await _latest(user, stem_id=row.id) for row in rows}
    return {stem_id: result for stem_id, result in found.items() if result is not None}


async def _stems(user: User, track_id: uuid.UUID) -> list[Stem]:
    async with session_scope() as db:
        return await stems.latest_stems(db, user.id, track_id)


async def _reload_track(user: User, track: Track) -> Track:
    async with session_scope() as db:
        fresh = await db.get(Track, track.id)
    return fresh if fresh is not None and fresh.user_id == user.id else track


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _percent(value: Any) -> str:
    return f"{float(value):.0%}" if value is not None else ""


async def _start(action: str, start: Starter) -> Job | None:
    """Submit a job; the notification carries the server's message when it is refused (then None)."""
    try:
        async with session_scope() as db:
            job = await start(db)
    except StemForgeError as exc:
        ui.notify(exc.message, type="negative", multi_line=True)
        return None
    ui.notify(f"{action} queued", type="positive")
    return job


async def _analysed_stem(job_id: uuid.UUID) -> uuid.UUID | None:
    """The stem an analysis job measured (None for the track's own audio)."""
    async with session_scope() as db:
        job = await db.get(Job, job_id)
    value = (job.params or {}).get("stem_id") if job is not None else None
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


# --- header -----------------------------------------------------------------------------------------------


def _header(track: Track) -> str | None:
    """Title, artist, album and the track's player; returns the player's element id (None without audio)."""
    audio_id = None
    with ui.row().classes("w-full items-start gap-6 no-wrap max-sm:flex-wrap"):
        if track.album_art_url:
            ui.image(track.album_art_url).classes("w-36 h-36 rounded shadow shrink-0")
        with ui.column().classes("gap-1 grow min-w-0"):
            ui.label(track.title or "Untitled").classes("text-3xl font-bold break-words").mark("track-title")
            ui.label(track.artist or "Unknown artist").classes("text-xl opacity-80")
            details = [track.album, mmss(track.duration) if track.duration else ""]
            ui.label(" · ".join(d for d in details if d)).classes(MUTED)
            if track.audio_path:
                audio = ui.audio(public_url(track.audio_path)).classes("w-full max-w-xl").mark("track-audio")
                audio_id = f"c{audio.id}"
            else:
                ui.label("The audio is not here yet.").classes("text-warning")
    return audio_id


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
                on_click=guarded(lambda: _start(
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
                )),
            ).props("color=primary unelevated" + ready).mark("separate")
            # A short track previews all of itself (the API's least preview is PREVIEW_MIN_SECONDS).
            seconds = min(PREVIEW_SECONDS, float(track.duration)) if track.duration else PREVIEW_SECONDS
            too_short = seconds < PREVIEW_MIN_SECONDS
            ui.button(
                f"Preview {seconds:g} s",
                icon="bolt",
                on_click=guarded(lambda: _start(
                    "Preview",
                    lambda db: submit_processing(
                        db, context.events(), user.id, get_settings(), track_id=track.id, model=model.value,
                        engine=engine.value, preview=(None, seconds),
                    ),
                )),
            ).props("outline" + (" disable" if too_short else ready)).mark("preview").tooltip(
                "Too short to preview: separate the whole track" if too_short else
                f"Separate only {seconds:g} s of the loudest part: hear what the stems will be like in seconds "
                "(the full stems are not touched)")
            ui.button("Analyse", on_click=guarded(lambda: _analyse_track(user, track))).props("outline" + ready).mark(
                "analyze").tooltip("Tempo, key, energy, timbre, bars and sections (a ÷2 / ×2 choice is kept)")


async def _analyse_track(user: User, track: Track) -> None:
    """Analyse the track again, keeping the level its newest analysis counted the beat at (÷2 / ×2)."""

    async def submit(db: Any) -> Job:
        tempo_range = await analysis_results.latest_tempo_range(db, user.id, track.id)
        return await submit_analysis(db, context.events(), user.id, track_id=track.id, tempo_range=tempo_range)

    await _start("Analysis", submit)


# --- waveform and analysis ----------------------------------------------------------------------------------


def _waveform_card(track: Track, audio_id: str | None, analysis: dict[str, Any] | None) -> None:
    with ui.card().classes("w-full gap-2").mark("waveform"):
        with ui.row().classes("w-full items-center justify-between gap-2"):
            ui.label("Waveform").classes("text-lg font-semibold")
            sections = (analysis or {}).get("sections") or []
            if sections:
                with ui.row().classes("items-center gap-1"):
                    for label in dict.fromkeys(str(s.get("label", "")) for s in sections):
                        ui.label(label).classes("text-xs font-bold text-white rounded px-2 py-0.5").style(
                            f"background:{section_color(label)}")
        if not track.audio_path:
            ui.label("The waveform appears once the audio is here.").classes(MUTED)
            return
        track_waveform(str(track.id), track.duration, audio_id=audio_id, analysis=analysis).props(
            'data-testid="track-waveform"')
        if analysis is None:
            caption = "Analyse the track to draw its beat grid and sections on the waveform."
        elif (analysis.get("downbeats") or analysis.get("beats")) and sections:
            caption = "Bars (strong lines), beats (faint) and sections: the same letter is the same music."
        elif analysis.get("beats"):
            caption = "Beats from the analysis (no bars or sections found)."
        else:
            caption = "No steady beat found: no grid to draw."
        ui.label(caption + (" Click to seek." if audio_id else "")).classes(f"text-xs {MUTED}")


def _stat(label: str, value: str, sub: str = "") -> None:
    with ui.column().classes("gap-0 min-w-[7rem]"):
        ui.label(label).classes(f"text-xs uppercase {MUTED}")
        ui.label(value).classes("text-xl font-semibold").mark(f"analysis-{label.lower()}").props(
            f'data-testid="analysis-{label.lower()}"')
        if sub:
            ui.label(sub).classes(f"text-xs {MUTED}")


def _chart(options: dict[str, Any] | None, name: str, missing: str, wide: bool = False) -> None:
    span = " md:col-span-2" if wide else ""
    if options is None:
        with ui.element("div").classes(f"w-full h-24 flex items-center justify-center rounded border "
                                       f"border-dashed border-grey-7{span}"):
            ui.label(missing).classes(f"text-sm {MUTED} px-4 text-center")
        return
    ui.echart(options).classes(f"w-full h-72{span}").props(f'data-testid="chart-{name}"')


def charts(result: dict[str, Any], *, compact: bool = False) -> None:
    """The analysis' four charts in a grid: two columns from tablet width up."""
    with ui.element("div").classes("w-full grid grid-cols-1 md:grid-cols-2 gap-4"):
        _chart(chroma_options(result), "chroma", "No chroma in this analysis: analyse again for the key profile.")
        _chart(tempo_options(result), "tempo", "No steady beat found: there is no tempo to draw.")
        _chart(energy_options(result), "energy",
               "This analysis has no energy curve over time: analyse again to draw it.", wide=not compact)
        _chart(mfcc_options(result), "mfcc", "No MFCC in this analysis: analyse again for the timbre.",
               wide=not compact)


def _tempo_level_buttons(user: User, track: Track, tempo: float) -> None:
    """Half time and double time: analyse again with the beat counted at half or twice ``tempo`` (the range is
    the octave around it, so a beat found at either level lands there)."""
    with ui.row().classes("gap-1 pt-1"):
        for factor, label, name, mark in ((0.5, "÷2", "Half time", "tempo-half"),
                                           (2.0, "×2", "Double time", "tempo-double")):
            target = tempo * factor
            tempo_range = octave_around(target)
            lo, hi = TEMPO_RANGE_BPM
            tip = (f"{name}: analyse again counting the beat at {target:.1f} BPM (beats and bars follow)"
                   if tempo_range else
                   f"{name} ({target:.0f} BPM) is {'below' if target <= lo else 'above'} the "
                   f"{lo:g}-{hi:g} BPM a beat is counted in")

            async def reanalyse(tempo_range: tuple[float, float] | None = tempo_range, name: str = name) -> None:
                await _start(f"{name} analysis", lambda db: submit_analysis(
                    db, context.events(), user.id, track_id=track.id, tempo_range=tempo_range))

            with ui.button(label, on_click=guarded(reanalyse)).props(
                    "outline dense no-caps color=primary padding='0 10px'" + ("" if tempo_range else " disable")
                    + f' data-testid="{mark}"').mark(mark):
                # beside the buttons: above it would hide the tempo, below the note saying what the last run did
                ui.tooltip(tip).props('anchor="center right" self="center left"')


def _analysis_card(user: User, track: Track, result: dict[str, Any] | None) -> None:
    with ui.card().classes("w-full gap-3").mark("analysis"):
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Analysis").classes("text-lg font-semibold")
            if result is not None:
                ui.link("Download JSON", f"/export/analysis/{track.id}").classes("text-sm").mark("analysis-json")
        if result is None:
            with ui.column().classes("w-full items-center gap-2 py-6").mark("analysis-empty"):
                ui.icon("insights").classes("text-5xl text-grey-6")
                ui.label("Not analysed yet.").classes("text-lg font-medium")
                ui.label("Analyse the track to see its tempo, key, energy, timbre, beat grid and sections.").classes(
                    f"{MUTED} text-center")
                ui.button("Analyse", icon="insights", on_click=guarded(lambda: _analyse_track(user, track))).props(
                    "color=primary unelevated" + ("" if track.audio_path else " disable")).props(
                    'data-testid="analyse-track"')
            return
        with ui.row().classes("gap-x-10 gap-y-3"):
            tempo_sub = f"confidence {_percent(result.get('tempo_confidence'))}" if result.get("tempo") else ""
            with ui.column().classes("gap-0"):
                _stat("Tempo", _fmt(result.get("tempo"), " BPM"), tempo_sub)
                if result.get("tempo") and track.audio_path:
                    _tempo_level_buttons(user, track, float(result["tempo"]))
            key_sub = f"confidence {_percent(result.get('key_confidence'))}" if result.get("key") else ""
            _stat("Key", result.get("key") or "–", key_sub)
            _stat("Energy", _fmt(result.get("energy"), "", 2), "0 calm · 1 intense" if "energy" in result else "")
            _stat("Brightness", _fmt(result.get("spectral_centroid"), " Hz", 0),
                  "spectral centroid" if result.get("spectral_centroid") is not None else "")
        for note in result.get("notes") or []:
            ui.label(note).classes(f"text-sm {MUTED}")
        charts(result)


# --- stems ----------------------------------------------------------------------------------------------------


def _stem_summary(result: dict[str, Any] | None) -> str:
    if result is None:
        return ""
    parts = []
    if result.get("tempo"):
        parts.append(f"♩ {float(result['tempo']):.1f}")
    if result.get("key"):
        parts.append(f"key {result['key']}")
    if result.get("energy") is not None:
        parts.append(f"energy {float(result['energy']):.2f}")
    return " · ".join(parts) or "analysed"


class _StemPanel:
    """The analysis part of one stem's row (summary, Analyse button, charts), redrawn on its own when an
    analysis finishes, so the stem players keep playing."""

    def __init__(self, user: User, stem: Stem, result: dict[str, Any] | None, head: ui.element,
                 body: ui.element) -> None:
        self.user, self.stem, self.result, self.head, self.body = user, stem, result, head, body
        self.pending: uuid.UUID | None = None  # the analysis job this panel started and waits for
        self.draw()

    def draw(self) -> None:
        self.head.clear()
        self.body.clear()
        with self.head:
            summary = _stem_summary(self.result)
            if summary:
                ui.label(summary).classes(f"text-sm {MUTED} max-sm:hidden").mark("stem-summary")
            ui.link("Download", f"/export/stem/{self.stem.id}")
            self.button = ui.button("Analyse" if self.result is None else "Re-analyse", icon="insights",
                                    on_click=self.analyse).props(
                "dense flat no-caps color=primary").props(
                f'data-testid="stem-analyse" data-stem="{self.stem.stem_type}"').mark("stem-analyse")
        if self.result is not None:
            with self.body, ui.expansion(f"{self.stem.stem_type.capitalize()} analysis charts",
                                         icon="insights").classes("w-full text-sm") as panel:
                drawn = {"done": False}

                def open_charts(e: Any) -> None:
                    if e.value and not drawn["done"]:
                        drawn["done"] = True
                        with panel:
                            charts(self.result or {}, compact=True)
                panel.on_value_change(open_charts)

    async def analyse(self) -> None:
        stem = self.stem
        job = await _start(f"Analysis of the {stem.stem_type} stem",
                           lambda db: submit_analysis(db, context.events(), self.user.id, stem_id=stem.id))
        if job is not None:
            self.pending = job.id
            self.button.props("loading")

    async def refresh(self) -> None:
        self.pending = None
        self.result = await _latest(self.user, stem_id=self.stem.id)
        self.draw()


def _stems_card(user: User, track: Track, rows: list[Stem], analyses: dict[uuid.UUID, dict[str, Any]],
                panels: list[_StemPanel]) -> None:
    with ui.card().classes("w-full gap-2").mark("stems"):
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Stems").classes("text-lg font-semibold")
            if rows:
                with ui.row().classes("items-center gap-4"):
                    ui.link("Download all (ZIP)", f"/export/stems/{track.id}").mark("zip-link")
                    ui.button("Open in editor", icon="graphic_eq",
                              on_click=lambda: ui.navigate.to(f"/daw/{track.id}")).props(
                        "color=primary unelevated dense").mark("open-editor")
        if not rows:
            with ui.column().classes("w-full items-center gap-1 py-4").mark("stems-empty"):
                ui.icon("call_split").classes("text-4xl text-grey-6")
                ui.label("Not separated yet.").classes("font-medium")
                ui.label("Pick a model above and split the track into vocals, drums, bass and more.").classes(
                    f"text-sm {MUTED} text-center")
            return
        for i, stem in enumerate(rows):
            if i:
                ui.separator()
            color = stem_color(stem.stem_type)
            with ui.column().classes("w-full gap-1").mark("stem-row"):
                with ui.row().classes("w-full items-center gap-2 no-wrap"):
                    ui.element("span").classes("inline-block w-3 h-3 rounded-sm shrink-0").style(
                        f"background:{color}")
                    ui.label(stem.stem_type.capitalize()).classes("w-24 font-medium")
                    head = ui.row().classes("items-center gap-3 grow justify-end no-wrap")
                with ui.row().classes("w-full items-center gap-3"):
                    waveform = ui.element("div").classes("flex-1 min-w-[16rem]")
                    player = ui.audio(public_url(stem.path)).classes("w-80 max-w-full")
                with waveform:
                    stem_waveform(str(stem.id), track.duration, color=color, audio_id=f"c{player.id}").props(
                        f'data-testid="stem-waveform" data-stem="{stem.stem_type}"')
                body = ui.column().classes("w-full gap-2")
                panels.append(_StemPanel(user, stem, analyses.get(stem.id), head, body))


def _preview_card(track: Track, rows: list[Stem]) -> None:
    """The newest preview's stems, each with a player (nothing without a preview)."""
    if not rows:
        return
    first = rows[0]
    with ui.card().classes("w-full gap-2").mark("preview-card"):
        with ui.row().classes("w-full items-center gap-2"):
            ui.icon("bolt").classes("text-xl text-amber-7")
            ui.label("Preview").classes("text-lg font-semibold")
            ui.label(f"{mmss(first.preview_start or 0)}–{mmss(first.preview_end or 0)} of the track · {first.model}"
                     f" · {first.engine}").classes(THEME_MUTED).mark("preview-span")
        ui.label("Only this part was separated; the full stems (Separate) are what the editor and the ZIP "
                 "use.").classes(f"text-sm {THEME_MUTED}")
        with ui.element("div").classes("w-full grid gap-4 grid-cols-1 sm:grid-cols-2 lg:grid-cols-4"):
            for stem in rows:
                with ui.column().classes("gap-1 min-w-0").mark("preview-stem"):
                    with ui.row().classes("items-center gap-2"):
                        ui.element("span").classes("inline-block w-3 h-3 rounded-sm").style(
                            f"background:{stem_color(stem.stem_type)}")
                        ui.label(stem.stem_type.capitalize()).classes("font-medium")
                        ui.link("Download", f"/export/stem/{stem.id}").classes("text-sm")
                    ui.audio(public_url(stem.path)).classes("w-full")


async def _preview_stems(user: User, track_id: uuid.UUID) -> list[Stem]:
    async with session_scope() as db:
        return await stems.latest_preview(db, user.id, track_id)


async def _is_preview_job(job_id: uuid.UUID) -> bool:
    async with session_scope() as db:
        job = await db.get(Job, job_id)
    return bool(job is not None and (job.params or {}).get("preview"))


# --- the page -------------------------------------------------------------------------------------------------


async def render_track(user: User, track: Track) -> None:
    state: dict[str, Any] = {"track": track, "audio_id": None}
    panels: list[_StemPanel] = []

    async with session_scope() as db:
        defaults = await user_settings.view(db, user, get_settings())

    @ui.refreshable
    def header() -> None:
        state["audio_id"] = _header(state["track"])
        _actions(user, state["track"], defaults)

    @ui.refreshable
    async def analysis_section() -> None:
        result = await _latest(user, track_id=track.id)
        _waveform_card(state["track"], state["audio_id"], result)
        _analysis_card(user, state["track"], result)

    @ui.refreshable
    async def preview_section() -> None:
        _preview_card(state["track"], await _preview_stems(user, track.id))

    @ui.refreshable
    async def stems_section() -> None:
        rows = await _stems(user, track.id)
        analyses = await _stem_analyses(user, rows)
        panels.clear()
        _stems_card(user, state["track"], rows, analyses, panels)

    async def on_finished(event: Event) -> None:
        kind = event.payload.get("job_type")
        failed = event.event == "job:failed"
        if failed:
            ui.notify(event.payload.get("error") or "The job failed", type="negative", multi_line=True)
        if kind == "download":
            state["track"] = await _reload_track(user, track)
            header.refresh()
            analysis_section.refresh()
        elif kind == "processing":
            if not failed and await _is_preview_job(event.job_id):
                preview_section.refresh()
                ui.notify("Preview ready: listen to it in the Preview card", type="positive")
            elif not failed:
                stems_section.refresh()
                ui.notify("Separation finished: the stems are below", type="positive")
        elif kind == "analysis":
            stem_id = await _analysed_stem(event.job_id)
            if stem_id is None and not failed:
                analysis_section.refresh()
            for panel in panels:
                if (stem_id is not None and panel.stem.id == stem_id) or panel.pending == event.job_id:
                    await panel.refresh()

    async def on_event(event: Event) -> None:
        """A cancelled stem analysis (jobs_view reports only the completed and failed ones) frees its button."""
        if event.event == "job:progress" and event.payload.get("status") == "cancelled":
            for panel in panels:
                if panel.pending == event.job_id:
                    await panel.refresh()

    header()
    with ui.card().classes("w-full"):
        ui.label("Jobs").classes("text-lg font-semibold")
        await jobs_view(user.id, track_id=track.id, limit=200, on_finished=on_finished)
    await preview_section()
    await analysis_section()
    await stems_section()
    follow_user_events(user.id, on_event)


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
