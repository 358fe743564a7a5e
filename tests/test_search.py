"""Finding a Spotify track's audio: the Invidious backend against the local Invidious fake, the
yt-dlp backend's reading of search entries, and find_source choosing (or refusing) a candidate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yt_dlp

from core import audio_io
from core.progress import BadInput, TransientError
from core.search import (
    InvidiousSearch,
    NoMatch,
    YtDlpSearch,
    backend_from_settings,
    candidate_from_ytdlp,
    find_source,
    search_query,
)
from core.settings import Settings
from tests.fakes.invidious import FakeInvidious


@pytest.fixture(scope="module")
def catalog(invidious_fake: FakeInvidious) -> dict[str, str]:
    """Search results as YouTube lists them for a few songs (ids by label)."""
    fake = invidious_fake
    fake.add_channel("Lumen Drift")
    return {
        "live": fake.add_video("Lumen Drift - Paper Moons (Live in Lisbon)", "Lumen Drift", 251, views=90_000),
        "karaoke": fake.add_video("Paper Moons (Karaoke Version) - Lumen Drift", "Sing Along Hits", 214),
        "video": fake.add_video("Lumen Drift - Paper Moons (Official Video)", "LumenDriftVEVO", 262, views=2_000_000),
        "topic": fake.add_video("Paper Moons", "Lumen Drift - Topic", 213, views=400_000),
        "stream": fake.add_video("Lumen Drift radio - Paper Moons 24/7", "Lofi Stream", 0, live=True),
        "cover1": fake.add_video("Glass Harbor (cover)", "Bedroom Covers", 200),
        "cover2": fake.add_video("Glass Harbor - Orla Finch | Karaoke", "Sing Along Hits", 201),
    }


def settings_for(fake: FakeInvidious, **kw: str) -> Settings:
    return Settings(**{**fake.settings(), **kw})


def test_invidious_results_become_downloadable_candidates(invidious_fake: FakeInvidious, catalog) -> None:
    backend = backend_from_settings(settings_for(invidious_fake))
    assert isinstance(backend, InvidiousSearch)
    found = backend.search("Lumen Drift - Paper Moons", 10)
    ids = [c.source_id for c in found]
    assert catalog["stream"] not in ids  # live streams are not tracks
    assert set(ids) >= {catalog["live"], catalog["karaoke"], catalog["video"], catalog["topic"]}
    topic = next(c for c in found if c.source_id == catalog["topic"])
    assert (topic.title, topic.channel, topic.duration) == ("Paper Moons", "Lumen Drift - Topic", 213.0)
    assert topic.url == f"{invidious_fake.url}/latest_version?id={catalog['topic']}&itag=140&local=true"
    assert len(backend.search("Lumen Drift - Paper Moons", 2)) == 2


def test_default_source_url_is_the_youtube_watch_page(invidious_fake: FakeInvidious, catalog) -> None:
    backend = InvidiousSearch(invidious_fake.url)
    assert backend.search("Paper Moons Topic", 1)[0].url == f"https://www.youtube.com/watch?v={catalog['topic']}"


def test_find_source_picks_the_studio_audio_and_yt_dlp_downloads_it(invidious_fake: FakeInvidious, catalog,
                                                                    tmp_path: Path) -> None:
    match = find_source("Paper Moons", "Lumen Drift", 213, settings=settings_for(invidious_fake))
    assert match.url.endswith(f"id={catalog['topic']}&itag=140&local=true")
    assert match.score >= 0.9
    assert match.candidates[0].candidate.url == match.url
    assert [s.score for s in match.candidates] == sorted((s.score for s in match.candidates), reverse=True)

    # The chosen URL is a source yt-dlp (the real one) downloads as it is.
    opts = {"quiet": True, "no_warnings": True, "outtmpl": str(tmp_path / "%(id)s.%(ext)s"), "noprogress": True}
    with yt_dlp.YoutubeDL(opts) as ydl:
        info = ydl.extract_info(match.url, download=True)
        path = Path(ydl.prepare_filename(info))
    assert path.exists() and path.stat().st_size == len(invidious_fake.audio)
    assert audio_io.probe(path).duration == pytest.approx(3.0, abs=0.2)


def test_find_source_refuses_covers_and_karaoke(invidious_fake: FakeInvidious, catalog) -> None:
    with pytest.raises(NoMatch) as caught:
        find_source("Glass Harbor", "Orla Finch", 200, settings=settings_for(invidious_fake))
    assert "give a source URL" in str(caught.value)
    assert {s.candidate.source_id for s in caught.value.candidates} == {catalog["cover1"], catalog["cover2"]}
    with pytest.raises(NoMatch):
        find_source("Nothing Like This Exists", "Nobody", 180, settings=settings_for(invidious_fake))


def test_search_service_failures(invidious_fake: FakeInvidious, catalog) -> None:
    backend = InvidiousSearch(invidious_fake.url)
    invidious_fake.fail_search(503)
    with pytest.raises(TransientError, match="HTTP 503"):
        backend.search("Paper Moons", 5)
    invidious_fake.fail_search(403)
    with pytest.raises(BadInput, match="STEMFORGE_INVIDIOUS_URL"):
        backend.search("Paper Moons", 5)
    assert backend.search("Paper Moons", 5)  # back to normal
    with pytest.raises(TransientError, match="Could not search"):
        InvidiousSearch("http://127.0.0.1:9", timeout_s=2).search("Paper Moons", 5)


def test_backend_choice() -> None:
    default = backend_from_settings(Settings(search_backend="ytdlp", ytdlp_search="ytsearch"))
    assert isinstance(default, YtDlpSearch) and default.prefix == "ytsearch"
    soundcloud = backend_from_settings(Settings(search_backend="ytdlp", ytdlp_search="scsearch"))
    assert isinstance(soundcloud, YtDlpSearch) and soundcloud.prefix == "scsearch"
    with pytest.raises(BadInput, match="STEMFORGE_INVIDIOUS_URL"):
        backend_from_settings(Settings(search_backend="invidious", invidious_url=""))


def test_ytdlp_search_entries() -> None:
    """The flat entries yt-dlp's YouTube search yields (shape of yt_dlp/extractor/youtube/_tab.py)."""
    entry = {"_type": "url", "ie_key": "Youtube", "id": "abcdefghijk",
             "url": "https://www.youtube.com/watch?v=abcdefghijk", "title": "Artist - Song (Official Audio)",
             "duration": 201.0, "channel": "Artist", "channel_id": "UC123", "uploader": "Artist",
             "view_count": 12345, "live_status": None}
    found = candidate_from_ytdlp(entry)
    assert found is not None
    assert (found.url, found.title, found.channel, found.duration, found.views) == (
        "https://www.youtube.com/watch?v=abcdefghijk", "Artist - Song (Official Audio)", "Artist", 201.0, 12345)
    assert candidate_from_ytdlp({**entry, "live_status": "is_live"}) is None
    assert candidate_from_ytdlp({**entry, "_type": "playlist"}) is None
    assert candidate_from_ytdlp({**entry, "url": "abcdefghijk"}) is None
    assert candidate_from_ytdlp({**entry, "channel": None, "duration": None}).channel == "Artist"


def test_search_query() -> None:
    assert search_query("Despacito (feat. Daddy Yankee)", "Luis Fonsi, Daddy Yankee") == "Luis Fonsi - Despacito"
    assert search_query("Yesterday - Remastered 2009", "The Beatles") == "The Beatles - Yesterday"
    live = search_query("Hotel California - Live On MTV, 1994", "Eagles")
    assert live == "Eagles - Hotel California - Live On MTV, 1994"  # the version asked for stays in
    assert search_query("Untitled", "") == "Untitled"
