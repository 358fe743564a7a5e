"""Spotify metadata: link parsing, the catalogue client, and storing tracks in a user's library."""

from core.spotify.client import SpotifyCatalog, get_catalog
from core.spotify.errors import InvalidSpotifyUrl, SpotifyError, SpotifyNotConfigured
from core.spotify.library import Imported, import_url, save_tracks, track_for_download
from core.spotify.metadata import SpotifyCollection, SpotifyTrack, pick_image
from core.spotify.urls import SpotifyRef, parse_spotify_url

__all__ = [
    "Imported",
    "InvalidSpotifyUrl",
    "SpotifyCatalog",
    "SpotifyCollection",
    "SpotifyError",
    "SpotifyNotConfigured",
    "SpotifyRef",
    "SpotifyTrack",
    "get_catalog",
    "import_url",
    "parse_spotify_url",
    "pick_image",
    "save_tracks",
    "track_for_download",
]
