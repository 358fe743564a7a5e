"""Downloading a Spotify track, offline: the real server with its embedded worker, real spotipy against
the Spotify fake, the Invidious fake's search API, real yt-dlp + ffmpeg downloading from loopback, and
the tagged file played back from /files/... with Range requests.

Also: the source override, the bad input cases (malformed links, albums and playlists, unknown ids,
sources that 404 or do not decode, nothing convincing found), Spotify being briefly unavailable, and
the tagging module on every format the downloader produces.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

import tests.jobs as tests_jobs
from core.tagging import read_tags, write_tags
from tests.audio import stored_files, write_audio
from tests.conftest import Server, User, error_of, register
from tests.fakes.audio_server import AudioServer
from tests.fakes.invidious import FakeInvidious
from tests.fakes.spotify import FakeSpotify
from tests.phoenix import PhxClient

pytestmark = pytest.mark.postgres





def post_download(user: User, **body: Any) -> dict[str, Any]:
    r = user.api.post("/api/download/track", json=body)
    assert r.status_code == 202, r.text
    data = r.json()["data"]
    assert set(data) == {"job_id", "track_id", "status"} and data["status"] == "queued"
    return data


def names(path: Path) -> dict[str, str]:
    """Title, artist and album as a player reads them from the file's tags."""
    return {k: v for k, v in read_tags(path).items() if k in ("title", "artist", "album")}


def word() -> str:
    """A made-up word, so each test's songs are only found by its own searches (the Invidious fake is
    shared with test_search.py, whose searches must not find these videos either)."""
    return "".join(secrets.choice("bcdfghklmnprstvz") + secrets.choice("aeiou") for _ in range(3)).capitalize()


@pytest.fixture
def song(spotify_fake: FakeSpotify, invidious_fake: FakeInvidious) -> dict[str, str]:
    """A Spotify track on an album, and search results with its studio audio among a live take and a karaoke."""
    title, artist, album = f"{word()} Static", f"Noor {word()}", f"{word()} Bloom"
    album_id = spotify_fake.add_album(album, artist)
    track_id = spotify_fake.add_track(title, artist, album_id=album_id, seconds=200)
    live = invidious_fake.add_video(f"{artist} - {title} (Live at the Forum)", artist, 262, views=50_000)
    karaoke = invidious_fake.add_video(f"{title} (Karaoke Version)", "Sing Along Hits", 201)
    topic = invidious_fake.add_video(title, f"{artist} - Topic", 200, views=10_000)
    return {"title": title, "artist": artist, "album": album, "id": track_id,
            "url": f"https://open.spotify.com/intl-de/track/{track_id}?si=abc123", "topic": topic, "live": live,
            "karaoke": karaoke}


def test_spotify_track_downloads_tagged_and_plays_with_range(server: Server, user: User, song: dict[str, str],
                                                            invidious_fake: FakeInvidious) -> None:
    queued = post_download(user, url=song["url"])
    job_id, track_id = queued["job_id"], queued["track_id"]
    # The metadata is in the library at once, before the job runs.
    track = user.api.get(f"/api/tracks/{track_id}").json()["data"]
    assert (track["spotify_id"], track["title"], track["artist"], track["album"]) == (
        song["id"], song["title"], song["artist"], song["album"])

    with PhxClient(server.url, user.token) as client:
        _, reply = client.join(f"jobs:{job_id}", {"since": 0})
        assert reply[4]["status"] == "ok"
        frames = client.events()
    events = [(f[3], f[4]) for f in frames]
    assert events[-1][0] == "job:completed", events
    progress = [p for e, p in events if e == "job:progress"]
    statuses = [p["status"] for p in progress]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert set(statuses) == {"queued", "downloading", "completed"}
    assert statuses == sorted(statuses, key=["queued", "downloading", "completed"].index)
    figures = [p["progress"] for p in progress]
    assert figures == sorted(figures) and len(set(figures)) > 3, figures  # monotonically rising
    assert any("Searching for" in p["message"] for p in progress)

    # The chosen source is the studio audio, stored on the track with its score.
    track = user.api.get(f"/api/tracks/{track_id}").json()["data"]
    assert f"id={song['topic']}&" in track["source_url"] and track["source_url"].startswith(invidious_fake.url)
    assert 0.9 <= track["source_score"] <= 1
    assert track["audio_format"] == "mp3" and track["duration"] == 3  # the fake's stream is 3 s long

    status = user.api.get(f"/api/download/job/{job_id}").json()["data"]
    name = f"{song['artist']} - {song['title']}.mp3"
    assert status["status"] == "completed" and status["progress"] == 100 and status["error"] is None
    assert unquote(status["output_path"]) == f"/files/downloads/{track_id}/{name}"
    path = server.data_dir / "uploads" / "downloads" / track_id / name
    assert status["file_size"] == path.stat().st_size == track["file_size"]
    assert stored_files(path.parent) == [name]  # no partial files left behind
    assert names(path) == {"title": song["title"], "artist": song["artist"], "album": song["album"]}
    assert events[-1][1]["result"]["source_score"] == track["source_score"]

    # It plays from /files/... with seeking, for the owner only.
    audio = user.api.get(status["output_path"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    assert audio.content == path.read_bytes()
    part = user.api.get(status["output_path"], headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.headers["accept-ranges"] == "bytes"
    assert part.headers["content-range"] == f"bytes 1000-1999/{status['file_size']}"
    assert part.content == audio.content[1000:2000]
    assert user.browser.get(status["output_path"], headers={"Range": "bytes=0-9"}).status_code == 206
    stranger = register(server.url)
    assert error_of(stranger.api.get(status["output_path"])) == (404, "not_found")
    assert error_of(stranger.api.get(f"/api/download/job/{job_id}")) == (404, "not_found")

    # Fetching the same Spotify track again, either way, creates no second track.
    again = user.api.post("/api/spotify/fetch", json={"url": f"spotify:track:{song['id']}"}).json()["data"]
    assert again["track"]["id"] == track_id
    assert user.api.get("/api/tracks", params={"q": song["title"]}).json()["meta"]["total_count"] == 1


def test_source_override_skips_the_search(server: Server, user: User, song: dict[str, str],
                                          invidious_fake: FakeInvidious, audio_server: AudioServer) -> None:
    first = post_download(user, url=song["url"])
    assert wait_job(user, first["job_id"])["status"] == "completed"
    track_id = first["track_id"]
    searches = invidious_fake.count("/api/v1/search")

    # The user prefers another recording: same track, their source, lossless this time.
    source = f"{audio_server.url}/audio/{secrets.token_hex(4)}/studio-take.wav"
    second = post_download(user, url=f"spotify:track:{song['id']}", source_url=source, quality="lossless")
    assert second["track_id"] == track_id
    job = wait_job(user, second["job_id"])
    assert job["status"] == "completed", job
    assert invidious_fake.count("/api/v1/search") == searches  # no search
    assert audio_server.fetched(source.removeprefix(audio_server.url)) >= 1
    track = user.api.get(f"/api/tracks/{track_id}").json()["data"]
    assert track["source_url"] == source and track["source_score"] is None
    assert track["audio_format"] == "flac" and track["duration"] == 2  # the audio server's tone
    folder = server.data_dir / "uploads" / "downloads" / track_id
    name = f"{song['artist']} - {song['title']}.flac"
    assert stored_files(folder) == [name]  # the earlier MP3 was replaced
    assert names(folder / name) == {"title": song["title"], "artist": song["artist"], "album": song["album"]}
    assert job["result"]["source_url"] == source


def test_no_convincing_match_fails_and_asks_for_a_source(user: User, spotify_fake: FakeSpotify,
                                                         invidious_fake: FakeInvidious) -> None:
    title, artist = f"{word()} Meadow", f"Ilse {word()}"
    track_id = spotify_fake.add_track(title, artist, seconds=200)
    invidious_fake.add_video(f"{title} (cover)", "Bedroom Covers", 200)
    invidious_fake.add_video(f"{title} - {artist} | Karaoke", "Sing Along Hits", 201)
    queued = post_download(user, url=f"https://open.spotify.com/track/{track_id}")
    job = wait_job(user, queued["job_id"])
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert "give a source URL" in job["error"] and "Traceback" not in job["error"]
    track = user.api.get(f"/api/tracks/{queued['track_id']}").json()["data"]
    assert track["title"] == title and track["audio_url"] is None and track["source_url"] is None


@pytest.mark.parametrize(("path", "words"), [("/missing/{}/a.wav", "HTTP 404"), ("/garbage/{}/a.wav", "not audio"),
                                             ("/page/{}/a.html", "No audio was found")])
def test_source_that_cannot_be_used_fails_the_job(user: User, song: dict[str, str], audio_server: AudioServer,
                                                  path: str, words: str) -> None:
    source = audio_server.url + path.format(secrets.token_hex(4))
    queued = post_download(user, url=song["url"], source_url=source)
    job = wait_job(user, queued["job_id"])
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert words in job["error"] and "Traceback" not in job["error"]
    assert user.api.get(f"/api/download/job/{queued['job_id']}").json()["data"]["error"] == job["error"]
    track = user.api.get(f"/api/tracks/{queued['track_id']}").json()["data"]
    assert track["audio_url"] is None and track["source_url"] == source


def test_bad_spotify_input_is_refused_before_any_job(user: User, spotify_fake: FakeSpotify) -> None:
    album_id = spotify_fake.add_album("Whole Album", "Someone", tracks=2)
    playlist_id = spotify_fake.add_playlist("Mix", spotify_fake.albums[album_id].track_ids)
    unknown = spotify_fake.new_id()
    song_id = spotify_fake.add_track("Fine Song", "Someone")
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"url": "https://open.spotify.com/track/tooShort"}, 400, "invalid_url", "Not a Spotify"),
        ({"url": f"https://open.spotify.com/artist/{song_id}"}, 400, "invalid_url", "Not a Spotify"),
        ({"url": "spotify:track:nope"}, 400, "invalid_url", "Not a Spotify"),
        ({"url": f"https://open.spotify.com/album/{album_id}"}, 422, "validation_error", "/api/spotify/fetch"),
        ({"url": f"spotify:playlist:{playlist_id}"}, 422, "validation_error", "one by one"),
        ({"url": f"https://open.spotify.com/track/{unknown}"}, 404, "spotify_error", "not found"),
        ({"url": f"spotify:track:{song_id}", "source_url": "ftp://example.com/a.mp3"}, 422, "validation_error",
         "http(s)"),
        ({"url": f"spotify:track:{song_id}", "source_url": f"https://open.spotify.com/track/{song_id}"}, 422,
         "validation_error", "not Spotify"),
    ]
    for body, status, code, words in cases:
        r = user.api.post("/api/download/track", json=body)
        assert error_of(r) == (status, code), (body, r.text)
        assert words in r.json()["error"], r.json()
    assert user.api.get("/api/jobs").json()["meta"]["total_count"] == 0
    assert user.api.get("/api/tracks").json()["meta"]["total_count"] == 0


def test_spotify_briefly_unavailable_the_job_fetches_the_metadata(user: User, spotify_fake: FakeSpotify,
                                                                 invidious_fake: FakeInvidious) -> None:
    title, artist = f"{word()} Lights", f"Mara {word()}"
    spotify_id = spotify_fake.add_track(title, artist, seconds=200)
    invidious_fake.add_video(title, f"{artist} - Topic", 200)
    # Rate limited far longer than the server waits: the request, then the job's first attempt, give up.
    spotify_fake.inject(f"/v1/tracks/{spotify_id}", 429, retry_after=60, times=2)
    queued = post_download(user, url=f"spotify:track:{spotify_id}")
    job = wait_job(user, queued["job_id"])
    assert job["status"] == "completed" and job["attempts"] == 2, job  # retried with backoff
    assert spotify_fake.count(f"/v1/tracks/{spotify_id}") == 3
    track = user.api.get(f"/api/tracks/{queued['track_id']}").json()["data"]
    assert (track["title"], track["artist"], track["spotify_id"]) == (title, artist, spotify_id)
    assert track["audio_format"] == "mp3" and track["source_score"] >= 0.9
    assert user.api.get("/api/tracks", params={"q": title}).json()["meta"]["total_count"] == 1


def test_spotify_links_need_credentials(jobs_server: Server) -> None:
    """A server without a Spotify app refuses Spotify downloads at once (and still takes other links)."""
    owner = register(jobs_server.url)
    r = owner.api.post("/api/download/track", json={"url": "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC"})
    assert error_of(r) == (401, "unauthorized") and "STEMFORGE_SPOTIFY_CLIENT_ID" in r.json()["error"]
    assert owner.api.get("/api/jobs").json()["meta"]["total_count"] == 0


@pytest.mark.parametrize("ext", ["mp3", "flac", "m4a", "ogg"])
def test_tags_on_every_format(tmp_path: Path, ext: str) -> None:
    path = write_audio(tmp_path / f"song.{ext}", seconds=0.5)
    write_tags(path, title="Déjà Vu / Part 2", artist="Ana, Bo", album="")
    assert names(path) == {"title": "Déjà Vu / Part 2", "artist": "Ana, Bo"}
    write_tags(path, title="New", artist="", album="Album")  # empty values leave what is there
    assert names(path) == {"title": "New", "artist": "Ana, Bo", "album": "Album"}


def wait_job(user: User, job_id: str, timeout: float = 40.0) -> dict[str, Any]:
    return tests_jobs.wait_job(user.api, f"/api/jobs/{job_id}", timeout=timeout)
