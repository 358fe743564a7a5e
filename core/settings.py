"""One Settings object for the whole product.

Everything is read from ``STEMFORGE_*`` environment variables (and an optional
``.env``), with defaults that make ``python main.py`` work on a bare machine.
Secrets that nobody configured are generated once and kept in the data dir, so
sessions and encrypted columns survive restarts.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEMFORGE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = 8080
    # Public base URL, used for OAuth redirects and links in e-mails; derived from host/port when empty.
    base_url: str = ""

    database_url: str = ""
    redis_url: str = ""

    secret_key: str = ""
    encryption_key: str = ""
    session_max_age_days: int = 30
    # Cookies marked Secure only reach HTTPS sites; turn on behind TLS.
    cookie_secure: bool = False

    rate_limit_api: str = "60/minute"
    rate_limit_heavy: str = "10/minute"
    rate_limit_login: str = "10/minute"
    # The editor's traffic: waveform peaks, PCM windows (four stems, a window each every few seconds while it
    # plays) and saved-remix changes (one per gesture).
    rate_limit_media: str = "1200/minute"

    max_upload_mb: int = 500
    password_min_length: int = 10

    spotify_client_id: str = ""
    spotify_client_secret: str = ""
    spotify_api_url: str = "https://api.spotify.com/v1/"
    spotify_accounts_url: str = "https://accounts.spotify.com"
    # Seconds to wait for one Spotify answer, and the most seconds one fetch may spend waiting out
    # rate limits (Retry-After) and 5xx retries before it reports the error instead.
    spotify_timeout_s: float = 10.0
    spotify_max_retry_wait_s: float = 30.0
    # Sign-in with Spotify (Authorization Code with PKCE). The redirect URL registered in the Spotify app's
    # dashboard; empty = <public URL>/auth/spotify/callback. An authorization request expires after
    # `spotify_oauth_state_ttl_s` seconds (the person has that long to click "Agree").
    spotify_redirect_url: str = ""
    spotify_oauth_state_ttl_s: int = 600
    # Share links of the mobile app (https://spotify.link/...): the hosts whose redirects are followed (at most
    # `spotify_share_link_max_redirects`, all within `spotify_share_link_timeout_s`) to the open.spotify.com link.
    spotify_share_link_hosts: list[str] = Field(default_factory=lambda: ["spotify.link", "spotify.app.link"])
    spotify_share_link_max_redirects: int = 5
    spotify_share_link_timeout_s: float = 5.0

    # Where a Spotify track's audio is looked for: "ytdlp" (yt-dlp's own search, `ytdlp_search` picks the
    # site: ytsearch = YouTube, scsearch = SoundCloud) or "invidious" (the search API of an Invidious
    # instance at `invidious_url`).
    search_backend: Literal["ytdlp", "invidious"] = "ytdlp"
    search_results: int = 5
    ytdlp_search: str = "ytsearch"
    invidious_url: str = ""
    # How an Invidious result becomes a URL yt-dlp downloads: {id} is the video id, {instance} the
    # instance URL. "{instance}/latest_version?id={id}&itag=140&local=true" streams through the instance.
    invidious_source_url: str = "https://www.youtube.com/watch?v={id}"
    # Candidates scoring below this (0..1) are not used; the user can give a source URL instead.
    match_min_score: float = 0.5

    lalalai_api_url: str = "https://www.lalal.ai"
    # Seconds between two status checks of a lalal.ai task (their /check/ allows 20 requests a minute).
    lalalai_poll_interval_s: float = 5.0

    # Separation (core/separation/). A folder of demucs checkpoints (`<sig>.th` + `<name>.yaml`) for
    # machines without internet; empty = demucs' own download on first use.
    demucs_repo: str = ""
    # "" picks CUDA when torch sees a GPU, else the CPU with all its cores; or force "cpu" / "cuda".
    separation_device: str = ""
    # CPU threads for separation; 0 = every core this process may use.
    separation_threads: int = 0
    # How many loaded models a worker process keeps warm.
    separation_model_cache: int = 2
    # On the CPU, run Hybrid Transformer Demucs through OpenVINO (bf16 where the CPU has it; checked against
    # float32 demucs first, core/separation/fast_cpu.py); false = plain demucs everywhere.
    separation_fast_cpu: bool = True
    # File format of the stems: wav (16-bit PCM), flac or mp3.
    stem_format: Literal["wav", "flac", "mp3"] = "wav"

    # Jobs (core/jobs.py, workers/). Key prefix for everything kept in Redis (queues, event stream), so
    # several installations (or test runs) can share one Redis server.
    redis_prefix: str = "stemforge"
    # Worker threads per job kind in each worker process, e.g. '{"download": 4, "processing": 1}'.
    queue_concurrency: dict[str, int] = Field(default_factory=lambda: {"download": 2, "processing": 1,
                                                                       "analysis": 1})
    # `serve` supervises one embedded worker process; turn off when workers run on their own.
    embedded_worker: bool = True
    job_max_attempts: int = 3
    # A transient fault waits base, 2*base, 4*base ... seconds before the next attempt.
    job_retry_base_s: float = 2.0
    # Workers stamp their running jobs this often; a job unstamped for `stale_after` has lost its worker.
    worker_heartbeat_s: float = 5.0
    worker_stale_after_s: float = 30.0
    worker_recovery_interval_s: float = 10.0
    # How often the web process looks for new events in the SQL event log (Redis pushes instead).
    event_poll_interval_s: float = 0.02
    # A /socket client that sends nothing (not even a heartbeat) for this long is disconnected.
    socket_heartbeat_timeout_s: float = 60.0
    # Network timeout of one download request (seconds).
    download_socket_timeout_s: float = 20.0
    # Longest pause of an idle worker thread between two looks at its SQLite queue (an empty look is one
    # cheap read); it bounds how long a new job waits to start. Redis queues block instead of polling.
    queue_poll_max_s: float = 0.1

    log_level: str = Field(default="info")

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the URLs people copy from their hosting panel.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+asyncpg://" + url[len(prefix) :]
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'stemforge.db').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.effective_database_url.startswith("postgresql")

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def spotify_callback_url(self) -> str:
        """Where Spotify sends the browser back after sign-in; must be registered in the Spotify app."""
        return self.spotify_redirect_url or self.public_url + "/auth/spotify/callback"

    @cached_property
    def session_secret(self) -> str:
        return self.secret_key or self._persisted_secret("secret_key")

    @cached_property
    def fernet_key(self) -> str:
        if self.encryption_key:
            return self.encryption_key
        from cryptography.fernet import Fernet

        return self._persisted_secret("encryption_key", lambda: Fernet.generate_key().decode())

    def _persisted_secret(self, name: str, make=lambda: secrets.token_urlsafe(48)) -> str:
        """Read a generated secret from the data dir, creating it (mode 0600) on first use."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / f".{name}"
        if path.exists():
            return path.read_text().strip()
        value = make()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race; use its value
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value

    def ensure_dirs(self) -> None:
        self.uploads_dir.mkdir(parents=True, exist_ok=True)


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def set_settings(settings: Settings) -> None:
    global _settings
    _settings = settings
