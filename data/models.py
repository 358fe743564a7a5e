"""The tables. UUID keys, UTC timestamps, and a ``user_id`` on everything a user owns
so every query can be scoped to its owner in one condition."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, **kw)


def _opt_ts(**kw: Any) -> Any:
    return Field(default=None, sa_type=UTCDateTime, **kw)


def _json(default: Any = None) -> Any:
    if default is None:
        return Field(default=None, sa_type=sa.JSON)
    return Field(default_factory=default, sa_type=sa.JSON)


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Any:
    return Field(
        default=None if nullable else ...,
        foreign_key=target,
        ondelete="CASCADE",
        index=index,
        nullable=nullable,
    )


class User(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    password_hash: str | None = Field(default=None, max_length=255)
    display_name: str = Field(default="", max_length=120)
    # Bumped on password change or "log out everywhere": cookies carry the epoch they were issued in.
    session_epoch: int = 0
    created_at: datetime = _ts()


class ApiToken(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = _fk("user.id")
    name: str = Field(default="", max_length=100)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    # First characters of the token, so people can tell their tokens apart in a list.
    prefix: str = Field(max_length=16)
    created_at: datetime = _ts()
    last_used_at: datetime | None = _opt_ts()
    revoked_at: datetime | None = _opt_ts()


class UserSettings(SQLModel, table=True):
    user_id: uuid.UUID = Field(primary_key=True, foreign_key="user.id", ondelete="CASCADE")
    default_engine: str = Field(default="local", max_length=20)
    default_model: str = Field(default="htdemucs", max_length=40)
    default_quality: str = Field(default="high", max_length=20)
    lalalai_key_encrypted: str | None = None
    updated_at: datetime = _ts()


class SpotifyAccount(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE", unique=True, index=True)
    spotify_user_id: str = Field(max_length=128, unique=True, index=True)
    display_name: str = Field(default="", max_length=200)
    access_token_encrypted: str = ""
    refresh_token_encrypted: str = ""
    expires_at: datetime | None = _opt_ts()
    # The scopes Spotify granted, space separated (as its token endpoint reports them).
    scope: str = Field(default="", max_length=500)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class OAuthState(SQLModel, table=True):
    """A pending "Sign in with Spotify": one row per redirect to Spotify, deleted when its callback uses it.

    ``state_hash`` is the SHA-256 of the ``state`` sent to Spotify (the state itself is never stored), and
    ``browser_hash`` the SHA-256 of the starting browser's session CSRF token, so the callback is accepted
    only once, only before ``expires_at`` and only in the browser that started it (RFC 6749 section 10.12).
    ``user_id`` is set when a signed-in user links an account (intent ``link``), None for sign-in.
    """

    __tablename__ = "oauth_state"

    state_hash: str = Field(primary_key=True, max_length=64)
    browser_hash: str = Field(max_length=64)
    intent: str = Field(max_length=20)  # sign_in | link
    user_id: uuid.UUID | None = _fk("user.id", nullable=True)
    code_verifier_encrypted: str = ""
    next_path: str = Field(default="/", max_length=500)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    created_at: datetime = _ts()


class Track(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("user_id", "spotify_id", name="uq_track_user_spotify"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = _fk("user.id")
    spotify_id: str | None = Field(default=None, max_length=64)
    title: str = Field(default="", max_length=500)
    artist: str = Field(default="", max_length=500)
    album: str = Field(default="", max_length=500)
    album_art_url: str | None = Field(default=None, max_length=1000)
    duration: int | None = None  # seconds
    spotify_url: str | None = Field(default=None, max_length=1000)
    source_url: str | None = Field(default=None, max_length=2000)
    source_score: float | None = None
    # Relative to the uploads dir; set once the audio is on disk.
    audio_path: str | None = Field(default=None, max_length=1000)
    audio_format: str | None = Field(default=None, max_length=20)
    file_size: int | None = Field(default=None, sa_type=sa.BigInteger)
    sample_rate: int | None = None
    channels: int | None = None
    created_at: datetime = _ts(index=True)
    updated_at: datetime = _ts()
    # The library's summary, kept here so it sorts and filters by index with no per-row query
    # (core/tracks.list_tracks). Written where analyses and stems are stored: the newest measured value
    # of each from the track's own analyses (stem_id null; core/analysis/results.save), and whether a
    # separation stored stems (core/stems.replace_job_stems). Migration 0005 backfilled older rows.
    tempo: float | None = Field(default=None, index=True)  # BPM
    musical_key: str | None = Field(default=None, max_length=20, index=True)  # "A minor", as key.py names keys
    key_confidence: float | None = None
    energy: float | None = Field(default=None, index=True)
    analysed_at: datetime | None = _opt_ts(index=True)  # the newest analysis of the track itself
    has_stems: bool = Field(default=False, index=True, sa_column_kwargs={"server_default": sa.false()})


class Job(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = _fk("user.id")
    track_id: uuid.UUID | None = _fk("track.id", nullable=True)
    kind: str = Field(max_length=20, index=True)  # download | processing | analysis
    status: str = Field(default="queued", max_length=20, index=True)
    progress: int = 0
    message: str = Field(default="", max_length=500)
    error: str | None = None
    params: dict[str, Any] = _json(dict)
    result: dict[str, Any] | None = _json()
    attempts: int = 0
    worker_id: str | None = Field(default=None, max_length=100)
    heartbeat_at: datetime | None = _opt_ts()
    created_at: datetime = _ts(index=True)
    started_at: datetime | None = _opt_ts()
    finished_at: datetime | None = _opt_ts()
    updated_at: datetime = _ts()


class Stem(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = _fk("user.id")
    track_id: uuid.UUID = _fk("track.id")
    job_id: uuid.UUID | None = _fk("job.id", nullable=True)
    stem_type: str = Field(max_length=40)
    path: str = Field(max_length=1000)
    format: str = Field(default="wav", max_length=10)
    size: int | None = Field(default=None, sa_type=sa.BigInteger)
    engine: str = Field(default="local", max_length=20)
    model: str = Field(default="", max_length=40)
    # A preview separates only [preview_start, preview_end) of the track (seconds); both None for full stems.
    preview_start: float | None = None
    preview_end: float | None = None
    created_at: datetime = _ts()

    @property
    def is_preview(self) -> bool:
        return self.preview_start is not None


class AnalysisResult(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = _fk("user.id")
    track_id: uuid.UUID = _fk("track.id")
    stem_id: uuid.UUID | None = _fk("stem.id", nullable=True)
    job_id: uuid.UUID | None = _fk("job.id", nullable=True)
    tempo: float | None = Field(default=None, index=True)
    key: str | None = Field(default=None, max_length=20, index=True)
    key_confidence: float | None = None
    energy: float | None = Field(default=None, index=True)
    spectral_centroid: float | None = None
    spectral_rolloff: float | None = None
    spectral_bandwidth: float | None = None
    zero_crossing_rate: float | None = None
    data: dict[str, Any] = _json(dict)
    created_at: datetime = _ts()


class Remix(SQLModel, table=True):
    """A user's saved remix of a track: the current edit manifest (core/daw/manifest.py) and its version,
    which every change, undo and redo bumps (clients send it back to detect a concurrent change)."""

    __table_args__ = (sa.UniqueConstraint("user_id", "track_id", name="uq_remix_user_track"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = _fk("user.id")
    track_id: uuid.UUID = _fk("track.id")
    manifest: dict[str, Any] = _json(dict)
    version: int = 0
    updated_at: datetime = _ts()


class EditOperation(SQLModel, table=True):
    """One step of a remix's history: ``op`` holds ``label`` and the JSON Patches (RFC 6902) ``forward``
    (redo) and ``inverse`` (undo) between the manifests before and after. ``seq`` orders a track's steps;
    undone steps are the redo branch until a new change drops them."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = _fk("user.id")
    track_id: uuid.UUID = _fk("track.id")
    seq: int
    op: dict[str, Any] = _json(dict)
    undone: bool = False
    created_at: datetime = _ts()


class JobEvent(SQLModel, table=True):
    """The durable, ordered job-event log when no Redis is configured; ``seq`` is the order."""

    # AUTOINCREMENT on SQLite: a seq is never reused after the newest rows are deleted (with a track), so a
    # follower reading "seq > last seen" cannot miss new events.
    __table_args__ = {"sqlite_autoincrement": True}

    seq: int | None = Field(default=None, primary_key=True)
    job_id: uuid.UUID = _fk("job.id")
    user_id: uuid.UUID = _fk("user.id", index=False)
    event: str = Field(max_length=40)
    payload: dict[str, Any] = _json(dict)
    created_at: datetime = _ts()
