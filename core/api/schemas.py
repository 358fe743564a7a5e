"""Request and response models of the REST API: what /docs shows is what clients get."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.daw.manifest import Manifest
from core.processing import PREVIEW_MAX_SECONDS, PREVIEW_MIN_SECONDS, PREVIEW_SECONDS
from core.separation.catalog import DEFAULT_ENGINE, DEFAULT_MODEL, ENGINES, MODEL_NAMES

T = TypeVar("T")

CAMELOT_PATTERN = r"^(1[0-2]|[1-9])[AB]$"
# What POST /api/download/track takes (workers/submit.py): an http(s) URL with a host, any case, around spaces ...
HTTP_URL_PATTERN = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]"
# ... or, for ``url``, a Spotify link: a spotify: URI, or a spotify.com / spotify.link address without a scheme.
DOWNLOAD_URL_PATTERN = (r"^\s*(?:[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]|[Ss][Pp][Oo][Tt][Ii][Ff][Yy]:"
                        r"|(?:[A-Za-z0-9-]+\.)*spotify\.(?:com|link)/)")


class Envelope(BaseModel, Generic[T]):
    data: T


class ErrorOut(BaseModel):
    error: str = Field(description="What went wrong, in words a person can act on")
    code: str = Field(description="Stable snake_case code for programs")
    details: dict[str, Any] | None = Field(default=None, description="Per-field messages (validation errors)")
    retry_after: int | None = Field(default=None, description="Seconds until a rate limit frees up")


# The 400 every route that reads a request body can answer (core/api/errors.py): a JSON body that is not
# UTF-8 text, or a multipart form that cannot be parsed. Valid text that is not valid JSON answers 422.
BAD_BODY: dict[int | str, dict[str, Any]] = {400: {
    "model": ErrorOut,
    "description": "bad_request: the body could not be read (not UTF-8 text, or a malformed multipart form)",
}}


class PageMeta(BaseModel):
    page: int
    page_size: int
    total_count: int
    total_pages: int


class TrackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    spotify_id: str | None = None
    title: str
    artist: str
    album: str
    album_art_url: str | None = None
    duration: int | None = Field(default=None, description="Length in seconds")
    spotify_url: str | None = None
    source_url: str | None = Field(default=None, description="Where the audio was downloaded from")
    source_score: float | None = Field(default=None, description="0-1: how well the searched source matched the "
                                       "Spotify track; null when the user chose the source")
    audio_url: str | None = Field(default=None, description="/files/... URL of the audio, once it is ready")
    audio_format: str | None = None
    file_size: int | None = None
    created_at: datetime
    updated_at: datetime
    # The library's summary (beside the spec's fields): the newest measured values of the track's own
    # analyses (its stems' analyses aside), whether it has stems.
    tempo: float | None = Field(default=None, description="Tempo in BPM; null until analysed (or none found)")
    key: str | None = Field(default=None, description='Musical key, e.g. "A minor", "F# major"; null until analysed '
                            "(or no tonal centre found)", examples=["A minor"])
    camelot: str | None = Field(default=None, pattern=CAMELOT_PATTERN, examples=["8A"],
                                description="The key's Camelot wheel code (1A-12B; A minor, B major)")
    key_confidence: float | None = Field(default=None, description="0-1: how sure the key estimate is")
    energy: float | None = Field(default=None, description="0-1, independent of gain")
    has_stems: bool = Field(default=False, description="True once a separation stored its stems")
    analysed: bool = Field(default=False, description="True once the track itself has been analysed")


TRACK_STATUSES_DOC = (
    "pending: no audio yet; active: a job is queued or running; ready: audio, not separated; separated: has "
    "stems; analysed: has an analysis; failed: its newest job failed"
)


class TrackActivity(BaseModel):
    """The track's newest job: what it is doing, or how it ended."""

    job_id: uuid.UUID
    # As JobKind and JobStatus (the jobs section, further down).
    kind: Literal["download", "processing", "analysis"]
    status: Literal["queued", "downloading", "processing", "completed", "failed", "cancelled"]
    progress: int = Field(ge=0, le=100)
    message: str
    error: str | None = None


class TrackListItem(TrackOut):
    activity: TrackActivity | None = Field(default=None, description="The track's newest job (GET /api/jobs/{id} "
                                           "has all of it); null when it never had one")


class TrackPage(BaseModel):
    data: list[TrackListItem]
    meta: PageMeta


class TrackPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    artist: str | None = Field(default=None, max_length=500)
    album: str | None = Field(default=None, max_length=500)


class HealthOut(BaseModel):
    status: Literal["ok"]


class Credentials(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    created_at: datetime


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str


class TokenCreate(BaseModel):
    name: str = Field(default="", max_length=100)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None


class TokenCreated(TokenOut):
    token: str = Field(description="The bearer token. Shown only this once; store it now.")


class SettingsOut(BaseModel):
    email: str
    display_name: str
    default_engine: str
    default_model: str
    default_quality: str
    spotify_configured: bool
    spotify_account: str | None = Field(default=None, description="Display name of the linked Spotify account")
    has_password: bool = Field(default=True, description="False for an account made with Spotify that has no "
                                                         "password yet (setting one needs no current_password)")
    lalalai_key: str | None = Field(default=None, description="Masked; the full key is never returned")


class SettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=120)
    default_engine: Literal["local", "lalalai"] | None = None
    default_model: Literal["htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"] | None = None
    default_quality: Literal["lossless", "high", "medium", "low"] | None = None
    current_password: str | None = Field(default=None, max_length=1024)
    new_password: str | None = Field(default=None, max_length=1024)
    lalalai_key: str | None = Field(default=None, max_length=200, description="Your lalal.ai license key; "
                                    "write-only (answers show it masked), an empty string removes it")


# --- jobs (core/jobs.py) ---------------------------------------------------------------------------

JobKind = Literal["download", "processing", "analysis"]
JobStatus = Literal["queued", "downloading", "processing", "completed", "failed", "cancelled"]
# What ``GET /api/jobs?status=`` takes: one status, or ``active`` (queued or running) or ``running``
# (downloading or processing).
JobStatusFilter = Literal["queued", "downloading", "processing", "completed", "failed", "cancelled", "active",
                          "running"]
Quality = Literal["lossless", "high", "medium", "low"]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: JobKind
    status: JobStatus
    progress: int = Field(description="0-100; never goes down within one attempt")
    message: str = Field(description="What the job is doing, in words")
    error: str | None = Field(default=None, description="Why it failed, in words a person can act on")
    track_id: uuid.UUID | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime


class JobPage(BaseModel):
    data: list[JobOut]
    meta: PageMeta


class DownloadRequest(BaseModel):
    # The patterns are documentation: workers/submit.py checks the same and answers in words (422).
    url: str = Field(min_length=1, max_length=2000, json_schema_extra={"pattern": DOWNLOAD_URL_PATTERN},
                     description="A Spotify track link (or spotify:track: URI), or any http(s) link yt-dlp "
                                 "understands, e.g. an audio file or a video page")
    quality: Quality = Field(default="high", description="lossless: FLAC; high: MP3 320 kbps; medium: 192; low: 128")
    source_url: str | None = Field(
        default=None, max_length=2000, json_schema_extra={"pattern": HTTP_URL_PATTERN, "format": "uri"},
        description="Spotify links only: download the audio from this link instead of searching for it "
                    "(when the search picked the wrong version, or found nothing)")


class JobQueued(BaseModel):
    job_id: uuid.UUID
    track_id: uuid.UUID | None = None
    status: Literal["queued"] = "queued"


class DownloadJobOut(BaseModel):
    id: uuid.UUID
    status: JobStatus
    progress: int
    output_path: str | None = Field(default=None, description="/files/... URL once completed")
    file_size: int | None = None
    error: str | None = None


# --- analysis (core/analysis/) ---------------------------------------------------------------------

AnalysisFeature = Annotated[str, Field(max_length=40)]


class TempoRange(BaseModel):
    min: float = Field(description="BPM, at least 30")
    max: float = Field(description="BPM, at most 300 and at least twice min")


class AnalyzeRequest(BaseModel):
    track_id: uuid.UUID | None = Field(default=None, description="The track to analyse (its audio)")
    stem_id: uuid.UUID | None = Field(default=None, description="Or one of its stems, instead of track_id")
    features: list[AnalysisFeature] = Field(
        default_factory=lambda: ["all"], max_length=20,
        description='Any of "tempo", "key", "energy", "spectral", "mfcc", "chroma", "structure", or "all" '
                    '(the default)',
    )
    tempo_range: TempoRange | None = Field(
        default=None, description="Count the beat inside this range, at least an octave wide (70-140, 88-175): a "
        "beat found at twice or half the tempo you hear is halved or doubled into it, and the beats and bars "
        "follow. Without it the analysis picks the level itself",
    )


ANALYSIS_RESULT_DOC = (
    "The analysis, once completed: tempo (BPM), tempo_confidence, beats (s), key (\"A minor\"), "
    "key_confidence, key_candidates, energy (0-1), zero_crossing_rate, spectral_centroid / _rolloff / "
    "_bandwidth (Hz), spectral_contrast (dB per band), features.mfcc (13 x frames) and features.chroma "
    "(12 x frames) at frame_rate frames a second; features_analyzed, duration, sample_rate and notes "
    "always, tempo_range ([min, max] BPM) when one was asked. Only the requested features' fields are present."
)


class AnalysisJobOut(BaseModel):
    id: uuid.UUID
    status: JobStatus
    progress: int
    result: dict[str, Any] | None = Field(default=None, description=ANALYSIS_RESULT_DOC)
    error: str | None = Field(default=None, description="Why it failed, in words a person can act on")


class AnalysisOut(BaseModel):
    id: uuid.UUID
    track_id: uuid.UUID
    stem_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    created_at: datetime
    result: dict[str, Any] = Field(description=ANALYSIS_RESULT_DOC)


class AnalysisExport(BaseModel):
    track_id: uuid.UUID
    title: str
    artist: str
    analysis: dict[str, Any] = Field(description=ANALYSIS_RESULT_DOC)


# --- processing: stem separation (core/processing.py, core/stems.py) -------------------------------

# The catalogue (core/separation/catalog.py) is the one list; Literal[tuple] spells Literal["a", "b", ...].
ModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]
EngineName = Literal[ENGINES]  # type: ignore[valid-type]


class PreviewWindow(BaseModel):
    start: float | None = Field(default=None, description="Seconds into the track; default: its loudest, most "
                                "energetic part (from its analysis when there is one)")
    duration: float = Field(default=PREVIEW_SECONDS, description=f"Seconds, {PREVIEW_MIN_SECONDS:g}-"
                            f"{PREVIEW_MAX_SECONDS:g}")


class SeparateRequest(BaseModel):
    track_id: uuid.UUID = Field(description="The track to separate; its audio must be downloaded or uploaded")
    model: ModelName = Field(default=DEFAULT_MODEL, description="One of GET /api/processing/models")
    engine: EngineName = Field(default=DEFAULT_ENGINE, description='"local" (Demucs on this server) or "lalalai" '
                               "(the lalal.ai cloud API with your license key from the settings)")
    preview: PreviewWindow | None = Field(default=None, description="Separate only this part of the track, to hear "
                                          "quickly what the stems will be like. Its stems are marked as a preview "
                                          "and kept apart from the full stems (the editor and the ZIP never use "
                                          "them)")


class ProcessingQueued(BaseModel):
    job_id: uuid.UUID
    track_id: uuid.UUID
    model: str
    status: Literal["queued"] = "queued"


class PreviewSpan(BaseModel):
    start: float = Field(description="Seconds into the track")
    end: float = Field(description="Seconds into the track")


class StemOut(BaseModel):
    id: uuid.UUID
    track_id: uuid.UUID
    job_id: uuid.UUID | None = None
    stem_type: str = Field(description="vocals, drums, bass, other (and guitar, piano with htdemucs_6s)")
    format: str = Field(description="wav, flac or mp3")
    size: int | None = Field(default=None, description="Bytes")
    engine: str = Field(description="local or lalalai")
    model: str
    url: str = Field(description="/files/... URL for playing (Range requests work)")
    download_url: str = Field(description="/export/stem/{id}: the file as a download")
    preview: PreviewSpan | None = Field(default=None, description="Set for the stems of a preview: the part of the "
                                        "track they cover")
    created_at: datetime


class ProcessingJobOut(BaseModel):
    id: uuid.UUID
    status: JobStatus
    progress: int
    model: str
    stems: list[StemOut] = Field(default_factory=list, description="The stems, once the job has completed")
    preview: PreviewSpan | None = Field(default=None, description="Set for a preview job once it has completed: "
                                        "the part of the track it separated")
    error: str | None = Field(default=None, description="Why it failed, in words a person can act on")


class ModelOut(BaseModel):
    name: str
    description: str
    stems: int = Field(description="How many stems the model produces")
    available: bool = Field(description="Whether the model's weights are on this server (else the first local job "
                                        "downloads them, or fails offline saying how to get them)")


class ModelList(BaseModel):
    models: list[ModelOut]


# --- lalal.ai management (core/lalalai_account.py) ------------------------------------------------------


class LalalaiQuotaOut(BaseModel):
    quota_minutes: float = Field(description="used_minutes + remaining_minutes")
    used_minutes: float = Field(description="Minutes StemForge's jobs used on your current key")
    remaining_minutes: float = Field(description="lalal.ai's minutes_left for your key")


class LalalaiCancelRequest(BaseModel):
    task_id: str = Field(min_length=1, max_length=200, description="The lalal.ai task id (a processing job's "
                                                                   "params.lalalai_task_id)")


class LalalaiCancelOut(BaseModel):
    cancelled_tasks: list[str] = Field(description="lalal.ai task ids stopped: cancelled on lalal.ai now, or the "
                                       "task of a job that was ended (its worker cancels it there)")
    cancelled_jobs: list[uuid.UUID] = Field(description="StemForge jobs now ended 'cancelled'")


# --- DAW: saved remixes -------------------------------------------------------------------------------------


class RemixStepOut(BaseModel):
    seq: int = Field(description="Order of the step in the remix's history")
    label: str = Field(description="What the client called the change (e.g. 'Volume vocals')")
    undone: bool = Field(description="True for steps that were undone (the redo branch)")
    created_at: datetime


class RemixOut(BaseModel):
    track_id: uuid.UUID
    version: int = Field(description="Bumped by every change, undo and redo; 0 for a track never edited")
    manifest: Manifest = Field(description="The current edit manifest (version 1)")
    can_undo: bool
    can_redo: bool
    history: list[RemixStepOut] = Field(description="The newest steps, oldest first")
    updated_at: datetime | None = None


class RemixChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest: dict[str, Any] | None = Field(default=None, description="The whole new manifest (version 1) ...")
    patch: list[dict[str, Any]] | None = Field(
        default=None, description="... or a JSON Patch (RFC 6902) to apply to the current manifest")
    base_version: int | None = Field(default=None, description="The version the change was made on; a remix changed "
                                     "since answers 409 version_conflict")
    label: str = Field(default="", max_length=200, description="A name for the step in the history")


class RemixStepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_version: int | None = Field(default=None, description="As for a change: refuse if the remix moved on")
