"""What can go wrong between StemForge and Spotify, each as an error the API can report.

``SpotifyError.transient`` tells a worker whether retrying later may help (rate limit, 5xx,
timeout) or not (unknown id, refused credentials), matching the ``core.progress`` contract.
"""

from __future__ import annotations

from core.errors import StemForgeError, Unauthorized
from core.progress import BadInput, TransientError


class InvalidSpotifyUrl(StemForgeError):
    code = "invalid_url"
    status = 400


class SpotifyNotConfigured(Unauthorized):
    """The server has no Spotify client id/secret, so it cannot ask Spotify anything."""

    def __init__(self) -> None:
        super().__init__(
            "Spotify API credentials are not configured on this server: set STEMFORGE_SPOTIFY_CLIENT_ID and "
            "STEMFORGE_SPOTIFY_CLIENT_SECRET (see the README, section Spotify)."
        )


class SpotifyError(StemForgeError):
    """Spotify answered with an error, too slowly, or not at all."""

    code = "spotify_error"

    def __init__(self, message: str, *, status: int = 502, transient: bool = False,
                 retry_after: int | None = None) -> None:
        super().__init__(message, details={"retry_after": retry_after} if retry_after is not None else None)
        self.status = status
        self.transient = transient
        self.retry_after = retry_after

    def as_job_error(self) -> BadInput | TransientError:
        """The same fault in the job contract: retry later (transient) or fail now with this message."""
        return TransientError(self.message) if self.transient else BadInput(self.message)
