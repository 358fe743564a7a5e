"""The tracks API: upload, list/search/paginate, edit, delete, and isolation between users."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.audio import write_audio
from tests.conftest import Server, error_of

pytestmark = pytest.mark.postgres


def upload(client: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as fh:
        return client.post("/api/tracks/upload", files={"file": (path.name, fh, "application/octet-stream")},
                           data=fields)


@pytest.mark.parametrize("name", ["Daft Punk - Around The World.wav", "tone.flac", "tone.mp3", "tone.m4a"])
def test_upload_real_audio(server: Server, user, tmp_path: Path, name: str) -> None:
    path = write_audio(tmp_path / name, seconds=3.0)
    r = upload(user.api, path)
    assert r.status_code == 201, r.text
    track = r.json()["data"]
    assert track["duration"] == 3
    assert track["audio_format"] == path.suffix[1:]
    assert track["file_size"] == path.stat().st_size
    if name.startswith("Daft Punk"):
        assert (track["artist"], track["title"]) == ("Daft Punk", "Around The World")
    stored = server.data_dir / "uploads" / track["audio_url"].removeprefix("/files/").replace("%20", " ")
    assert stored.read_bytes() == path.read_bytes()
    assert user.api.get(f"/api/tracks/{track['id']}").json()["data"] == track


def test_upload_with_explicit_metadata(user, tmp_path: Path) -> None:
    path = write_audio(tmp_path / "x.wav", seconds=1.0)
    r = upload(user.api, path, title="My Title", artist="Me/You", album="Demos")
    track = r.json()["data"]
    assert (track["title"], track["artist"], track["album"]) == ("My Title", "Me/You", "Demos")
    assert "/" not in track["audio_url"].rsplit("/", 1)[1].replace("%2F", "/")  # file name stays safe


def test_upload_refuses_non_audio(server: Server, user, tmp_path: Path) -> None:
    fake = tmp_path / "song.mp3"
    fake.write_bytes(b"this is not audio at all" * 100)
    r = upload(user.api, fake)
    assert error_of(r) == (422, "invalid_audio")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert error_of(upload(user.api, empty)) == (422, "invalid_audio")
    assert user.api.get("/api/tracks").json()["meta"]["total_count"] == 0
    leftovers = list((server.data_dir / "uploads").glob("upload-*"))
    assert leftovers == []


def test_upload_refuses_oversized_file(user, tmp_path: Path) -> None:
    big = write_audio(tmp_path / "big.wav", seconds=20.0)  # ~3.5 MB, over the 3 MB test limit
    assert error_of(upload(user.api, big)) == (413, "file_too_large")
    assert user.api.get("/api/tracks").json()["meta"]["total_count"] == 0


def test_upload_requires_a_file(user) -> None:
    r = user.api.post("/api/tracks/upload", data={"title": "x"})
    assert error_of(r) == (422, "validation_error")
    assert "file" in r.json()["details"]


def test_pagination_and_search(make_user, tmp_path: Path) -> None:
    user = make_user()
    src = write_audio(tmp_path / "t.wav", seconds=0.5)
    for i in range(7):
        assert upload(user.api, src, title=f"Song {i}", artist="Bonobo" if i % 2 else "Moderat").status_code == 201
    r = user.api.get("/api/tracks", params={"page": 1, "page_size": 3})
    body = r.json()
    assert body["meta"] == {"page": 1, "page_size": 3, "total_count": 7, "total_pages": 3}
    assert [t["title"] for t in body["data"]] == ["Song 6", "Song 5", "Song 4"]  # newest first
    last = user.api.get("/api/tracks", params={"page": 3, "page_size": 3}).json()
    assert [t["title"] for t in last["data"]] == ["Song 0"]
    beyond = user.api.get("/api/tracks", params={"page": 9, "page_size": 3}).json()
    assert beyond["data"] == [] and beyond["meta"]["total_count"] == 7
    found = user.api.get("/api/tracks", params={"q": "bONobo"}).json()
    assert found["meta"]["total_count"] == 3
    assert user.api.get("/api/tracks", params={"q": "%"}).json()["meta"]["total_count"] == 0
    assert user.api.get("/api/tracks", params={"q": "song 3"}).json()["data"][0]["title"] == "Song 3"
    r = user.api.get("/api/tracks", params={"page": 0})
    assert error_of(r) == (422, "validation_error") and "page" in r.json()["details"]
    r = user.api.get("/api/tracks", params={"page_size": "lots"})
    assert error_of(r) == (422, "validation_error") and "page_size" in r.json()["details"]


def test_patch_and_validation_envelope(user, tmp_path: Path) -> None:
    track = upload(user.api, write_audio(tmp_path / "a.wav", seconds=0.5)).json()["data"]
    url = f"/api/tracks/{track['id']}"
    r = user.api.patch(url, json={"title": "New", "artist": "Someone"})
    assert r.status_code == 200 and r.json()["data"]["title"] == "New"
    assert user.api.get(url).json()["data"]["artist"] == "Someone"

    r = user.api.patch(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert error_of(r) == (422, "validation_error") and "body" in r.json()["details"]
    r = user.api.patch(url, json={"title": 123})
    assert error_of(r) == (422, "validation_error") and "title" in r.json()["details"]
    r = user.api.patch(url, json=["title"])
    assert error_of(r) == (422, "validation_error")
    r = user.api.patch(url, json={"bpm": 120})
    assert error_of(r) == (422, "validation_error") and "bpm" in r.json()["details"]
    r = user.api.patch(url, content=b"title=x", headers={"Content-Type": "text/plain"})
    assert error_of(r) == (422, "validation_error")
    assert user.api.get(url).json()["data"]["title"] == "New"  # nothing was lost


def test_users_cannot_see_each_others_tracks(server: Server, make_user, tmp_path: Path) -> None:
    a, b = make_user(), make_user()
    track = upload(a.api, write_audio(tmp_path / "a.wav", seconds=0.5)).json()["data"]
    url = f"/api/tracks/{track['id']}"
    assert error_of(b.api.get(url)) == (404, "not_found")
    assert error_of(b.api.patch(url, json={"title": "mine now"})) == (404, "not_found")
    assert error_of(b.api.delete(url)) == (404, "not_found")
    assert b.api.get("/api/tracks").json()["meta"]["total_count"] == 0
    # The foreign id and an id that never existed answer the same.
    missing = b.api.get("/api/tracks/6f1c0d2e-0000-4000-8000-000000000000")
    assert missing.json() == b.api.get(url).json()
    assert error_of(b.api.get("/api/tracks/not-a-uuid")) == (404, "not_found")
    assert a.api.get(url).json()["data"]["title"] == track["title"]


def test_delete_removes_track_and_files(server: Server, user, tmp_path: Path) -> None:
    track = upload(user.api, write_audio(tmp_path / "a.wav", seconds=0.5)).json()["data"]
    folder = server.data_dir / "uploads" / "downloads" / track["id"]
    assert folder.is_dir()
    r = user.api.delete(f"/api/tracks/{track['id']}")
    assert r.status_code == 204 and r.content == b""
    assert not folder.exists()
    assert error_of(user.api.get(f"/api/tracks/{track['id']}")) == (404, "not_found")
    assert error_of(user.api.delete(f"/api/tracks/{track['id']}")) == (404, "not_found")


def test_unknown_api_path_is_json_404(user) -> None:
    assert error_of(user.api.get("/api/does-not-exist")) == (404, "not_found")


def test_openapi_describes_routes(server: Server) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    paths = spec["paths"]
    for path in ("/health", "/api/tracks", "/api/tracks/{track_id}", "/api/tracks/upload", "/users/log-in",
                 "/users/register", "/users/log-out", "/users/settings", "/users/tokens"):
        assert path in paths, path
    list_schema = paths["/api/tracks"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert list_schema["$ref"].endswith("/TrackPage")
    assert "TrackOut" in spec["components"]["schemas"]
    assert httpx.get(server.url + "/docs").status_code == 200
