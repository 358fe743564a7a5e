"""The DAW routes through the real server: export (cookie + CSRF, stored and uploaded stems, every refusal,
the streamed WAV and its clipped count), the saved remix with undo/redo across sessions and clients, and the
peaks and PCM windows of stems and tracks.

The stems are real: one upload separated by the tiny demucs model in the embedded worker. Every WAV the
server sends is compared with the same manifest rendered here, in process, from the same stem files.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from core.daw.manifest import parse_manifest
from core.daw.mixdown import Mixdown, stem_audio
from tests.conftest import Server, User, error_of, register, upload_audio
from tests.jobs import wait_job
from tests.test_processing_api import clip_bytes, stored_path

pytestmark = pytest.mark.postgres

SR = 44100


@pytest.fixture(scope="module")
def remixable(server: Server) -> dict[str, Any]:
    """A user with a track separated into four stems (tiny htdemucs)."""
    user = register(server.url)
    track = upload_audio(user, clip_bytes(seconds=2.5))
    r = user.api.post("/api/processing/separate", json={"track_id": track["id"]})
    assert r.status_code == 202, r.text
    job = wait_job(user.api, f"/api/processing/job/{r.json()['data']['job_id']}", timeout=120)
    assert job["status"] == "completed", job
    stems = {s["stem_type"]: s for s in job["stems"]}
    return {"user": user, "track": track, "stems": stems,
            "paths": {name: stored_path(server, s["url"]) for name, s in stems.items()}}


def export(user: User, data: dict[str, Any], files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
           csrf: str | None = "header", client: httpx.Client | None = None) -> httpx.Response:
    form = {k: v if isinstance(v, str | list) else json.dumps(v) for k, v in data.items()}
    headers = {"X-CSRF-Token": user.csrf} if csrf == "header" else {}
    if csrf == "field":
        form["csrf_token"] = user.csrf
    return (client or user.browser).post("/api/daw/export", data=form, files=files or None, headers=headers)


def local_render(doc: dict[str, Any], paths: list[Path]) -> tuple[bytes, int]:
    mixdown = Mixdown(parse_manifest(doc), [stem_audio(p) for p in paths])
    wav = b"".join(mixdown.wav_chunks())
    return wav, mixdown.clipped


def remix_doc(remixable: dict[str, Any], **top: Any) -> dict[str, Any]:
    stems = remixable["stems"]
    return {"version": 1, "track_id": remixable["track"]["id"], **top, "stems": [
        {"stem_id": stems["vocals"]["id"], "volume": 0.8, "pan": -0.25, "operations": [
            {"id": "op-1", "type": "fade_in", "params": {"start_ms": 0, "end_ms": 500, "curve": "s_curve"}},
            {"id": "op-2", "type": "trim", "params": {"start_ms": 1000, "end_ms": 1300}}]},
        {"stem_id": stems["drums"]["id"], "volume": 1.5, "pan": 0.7, "operations": [
            {"id": "op-3", "type": "gain", "params": {"start_ms": 200, "end_ms": 900, "level": 0.5}},
            {"id": "op-4", "type": "fade_out", "params": {"start_ms": 2000, "end_ms": 2500,
                                                          "curve": "equal_power"}}]},
        {"stem_id": stems["bass"]["id"], "muted": True},
        {"stem_id": stems["other"]["id"], "solo": False},
    ]}


# --- export --------------------------------------------------------------------------------------------------


def test_export_streams_the_wav_that_the_manifest_renders(remixable: dict[str, Any]) -> None:
    user, paths, doc = remixable["user"], remixable["paths"], remix_doc(remixable)
    r = export(user, {"track_id": remixable["track"]["id"], "manifest": doc})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["content-disposition"] == 'attachment; filename="The Synths - Night Drive (remix).wav"'
    assert int(r.headers["content-length"]) == len(r.content)
    assert struct.unpack("<I", r.content[4:8])[0] == len(r.content) - 8
    assert struct.unpack("<I", r.content[40:44])[0] == len(r.content) - 44
    want, clipped = local_render(doc, [paths[n] for n in ("vocals", "drums", "bass", "other")])
    assert r.content == want
    assert r.headers["x-clipped-samples"] == str(clipped) == "0"
    info = sf.info(io.BytesIO(r.content))
    assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "PCM_24")
    assert abs(info.frames - 2.5 * SR) <= 1


def test_export_accepts_the_csrf_form_field_stem_ids_in_stems_and_a_range(remixable: dict[str, Any]) -> None:
    user, stems, paths = remixable["user"], remixable["stems"], remixable["paths"]
    doc = {"version": 1, "stems": [{"stem_id": stems["vocals"]["id"], "volume": 2.0}],
           "range": {"start_ms": 0, "end_ms": None}}
    data = {"track_id": remixable["track"]["id"], "manifest": doc,
            "stems[]": [stems["vocals"]["id"], stems["bass"]["id"]], "range": {"start_ms": 500, "end_ms": 1500}}
    r = export(user, data, csrf="field")
    assert r.status_code == 200, r.text
    # bass is listed in stems[] without a manifest entry: mixed at unity gain
    full = {**doc, "stems": [*doc["stems"], {"stem_id": stems["bass"]["id"]}],
            "range": {"start_ms": 500, "end_ms": 1500}}
    want, clipped = local_render(full, [paths["vocals"], paths["bass"]])
    assert r.content == want and r.headers["x-clipped-samples"] == str(clipped)
    assert sf.info(io.BytesIO(r.content)).frames == SR


def test_a_mix_driven_hard_reports_its_clipped_samples_in_the_header(remixable: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    user, track_id = remixable["user"], remixable["track"]["id"]
    rng = np.random.default_rng(7)
    loud = [rng.uniform(-0.45, 0.45, (SR, 2)).astype(np.float32) for _ in range(2)]
    # loud only inside the gain span: the rest of the mix is quiet and is not rendered twice
    doc = {"version": 1, "stems": [{"file_index": i, "volume": 0.6, "operations": [
        {"id": "g", "type": "gain", "params": {"start_ms": 300, "end_ms": 420, "level": 4}}]} for i in range(2)]}
    files = [("stems[]", (f"l{i}.wav", wav_bytes(x), "audio/wav")) for i, x in enumerate(loud)]
    r = export(user, {"track_id": track_id, "manifest": doc}, files)
    assert r.status_code == 200, r.text
    for i, x in enumerate(loud):
        (tmp_path / f"l{i}.wav").write_bytes(wav_bytes(x))
    want, clipped = local_render(doc, [tmp_path / "l0.wav", tmp_path / "l1.wav"])
    assert clipped > 1000 and r.headers["x-clipped-samples"] == str(clipped)
    assert r.content == want


def test_export_needs_the_session_and_its_csrf_token(server: Server, remixable: dict[str, Any],
                                                     make_user: Any) -> None:
    user, stems = remixable["user"], remixable["stems"]
    data = {"track_id": remixable["track"]["id"],
            "manifest": {"version": 1, "stems": [{"stem_id": stems["vocals"]["id"]}]}}
    assert error_of(export(user, data, csrf=None)) == (403, "csrf_failed")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {user.token}"}) as bearer_only:
        refused = export(user, data, csrf=None, client=bearer_only)
        assert error_of(refused) == (401, "unauthorized") and "browser route" in refused.json()["error"]
    as_json = user.browser.post("/api/daw/export", json=data, headers={"X-CSRF-Token": user.csrf})
    assert error_of(as_json) == (422, "validation_error") and "multipart" in as_json.json()["error"]
    assert "x-ratelimit-remaining" in export(user, data).headers
    stranger = make_user()
    assert error_of(export(stranger, data)) == (404, "not_found")


def refusal(user: User, data: dict[str, Any], files: Any = None) -> dict[str, str]:
    r = export(user, data, files)
    assert error_of(r) == (422, "validation_error"), r.text
    return r.json()["details"]


def test_every_refusal_names_its_field(remixable: dict[str, Any]) -> None:
    user, stems, track_id = remixable["user"], remixable["stems"], remixable["track"]["id"]
    vocals = stems["vocals"]["id"]

    def manifest(**stem: Any) -> dict[str, Any]:
        return {"track_id": track_id, "manifest": {"version": 1, "stems": [{"stem_id": vocals},
                                                                           {"stem_id": stems["bass"]["id"], **stem}]}}

    op = {"id": "x", "type": "trim", "params": {"start_ms": 100, "end_ms": 99_000}}
    assert set(refusal(user, manifest(operations=[op]))) == {"stems[1].operations[0].params.end_ms"}
    assert set(refusal(user, manifest(volume=2.5, colour="red"))) == {"stems[1].volume", "stems[1].colour"}
    pitch = {"id": "p", "type": "pitch_shift", "params": {"semitones": 2}}
    assert "not supported" in refusal(user, manifest(operations=[op, pitch]))["stems[1].operations[1].type"]
    assert set(refusal(user, {"track_id": track_id, "manifest": {"version": 1, "stems": [
        {"stem_id": str(uuid.uuid4())}]}})) == {"stems[0].stem_id"}
    assert set(refusal(user, {"track_id": track_id, "manifest": {"version": 2, "stems": [
        {"stem_id": vocals}]}})) == {"version"}
    assert set(refusal(user, {"track_id": track_id, "manifest": "{not json"})) == {"manifest"}
    assert set(refusal(user, {"manifest": {"version": 1, "stems": [{"stem_id": vocals}]}})) == {"track_id"}
    assert set(refusal(user, {"track_id": track_id, "manifest": {"version": 1, "stems": [{"file_index": 0}]}})) \
        == {"stems[0].file_index"}
    assert set(refusal(user, {"track_id": track_id, "manifest": {"version": 1, "stems": [{"stem_id": vocals}]},
                              "range": {"start_ms": 9000}})) == {"range.start_ms"}
    assert set(refusal(user, {"track_id": track_id, "manifest": {"version": 1, "stems": [{"stem_id": vocals}]},
                              "stems[]": "not-an-id"})) == {"stems[]"}


def wav_bytes(data: np.ndarray, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_uploaded_stems_are_mixed_by_file_index(remixable: dict[str, Any], tmp_path: Path) -> None:
    user, track_id = remixable["user"], remixable["track"]["id"]
    rng = np.random.default_rng(3)
    a = rng.uniform(-0.4, 0.4, (SR, 2)).astype(np.float32)
    b = rng.uniform(-0.4, 0.4, (SR, 1)).astype(np.float32)
    doc = {"version": 1, "stems": [{"file_index": 1, "pan": 0.4, "operations": [
        {"id": "f", "type": "fade_out", "params": {"start_ms": 200, "end_ms": 900, "curve": "logarithmic"}}]},
        {"file_index": 0, "volume": 0.5}]}
    files = [("stems[]", ("a.wav", wav_bytes(a), "audio/wav")), ("stems[]", ("b.wav", wav_bytes(b), "audio/wav"))]
    r = export(user, {"track_id": track_id, "manifest": doc}, files)
    assert r.status_code == 200, r.text
    (tmp_path / "a.wav").write_bytes(wav_bytes(a))
    (tmp_path / "b.wav").write_bytes(wav_bytes(b))
    want, _ = local_render(doc, [tmp_path / "b.wav", tmp_path / "a.wav"])
    assert r.content == want


def test_uploaded_stems_that_do_not_fit_together_are_refused(remixable: dict[str, Any]) -> None:
    user, track_id = remixable["user"], remixable["track"]["id"]
    doc = {"track_id": track_id, "manifest": {"version": 1, "stems": [{"file_index": 0}, {"file_index": 1}]}}
    one_second = np.zeros((SR, 2), dtype=np.float32)

    def parts(*blobs: bytes) -> list[Any]:
        return [("stems[]", (f"s{i}.wav", blob, "audio/wav")) for i, blob in enumerate(blobs)]

    rates = refusal(user, doc, parts(wav_bytes(one_second), wav_bytes(one_second, sr=48000)))
    assert "sample rates" in rates["stems[]"]
    lengths = refusal(user, doc, parts(wav_bytes(one_second), wav_bytes(one_second[:1000])))
    assert "lengths" in lengths["stems[]"]
    garbage = refusal(user, doc, parts(wav_bytes(one_second), b"this is not audio at all" * 100))
    assert "not audio" in garbage["stems[]"]
    many = refusal(user, doc, parts(*[wav_bytes(one_second[:100])] * 33))
    assert "at most" in many["stems[]"]
    big = refusal(user, doc, parts(wav_bytes(np.zeros((SR * 10, 2), dtype=np.float32))))  # 3 MB limit here
    assert "larger than" in big["stems[]"]
    # an upload mixed with the track's stored stems must fit them
    with_stored = {"track_id": track_id, "manifest": {"version": 1, "stems": [
        {"stem_id": remixable["stems"]["vocals"]["id"]}, {"file_index": 0}]}}
    short = refusal(user, with_stored, parts(wav_bytes(one_second)))
    assert "frames" in short["stems[]"]


# --- saved remix ------------------------------------------------------------------------------------------------


def test_a_saved_remix_changes_undoes_and_redoes_for_every_client(server: Server, make_user: Any) -> None:
    user = make_user()
    track = upload_audio(user, clip_bytes(seconds=1.0))
    r = user.api.get(f"/api/daw/{track['id']}")
    assert error_of(r) == (409, "no_stems")
    job = user.api.post("/api/processing/separate", json={"track_id": track["id"]}).json()["data"]
    assert wait_job(user.api, f"/api/processing/job/{job['job_id']}", timeout=120)["status"] == "completed"

    opened = user.api.get(f"/api/daw/{track['id']}")
    assert opened.status_code == 200, opened.text
    state = opened.json()["data"]
    assert state["version"] == 0 and not state["can_undo"] and not state["can_redo"]
    assert len(state["manifest"]["stems"]) == 4
    assert all(s["volume"] == 1 and s["pan"] == 0 for s in state["manifest"]["stems"])
    original = state["manifest"]

    louder = json.loads(json.dumps(original))
    louder["stems"][0]["volume"] = 1.5
    r = user.browser.post(f"/api/daw/{track['id']}/changes", json={"manifest": louder, "label": "Volume",
                                                                   "base_version": 0},
                          headers={"X-CSRF-Token": user.csrf})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 1 and r.json()["data"]["manifest"]["stems"][0]["volume"] == 1.5
    # another client (API token) changes it by a JSON Patch
    r = user.api.post(f"/api/daw/{track['id']}/changes", json={"patch": [
        {"op": "replace", "path": "/stems/1/pan", "value": -0.5}], "label": "Pan", "base_version": 1})
    assert r.status_code == 200 and r.json()["data"]["version"] == 2
    # the first client, still at version 1, is told that it moved on
    stale = user.browser.post(f"/api/daw/{track['id']}/changes", json={"manifest": original, "base_version": 1},
                              headers={"X-CSRF-Token": user.csrf})
    assert error_of(stale) == (409, "version_conflict")

    undone = user.api.post(f"/api/daw/{track['id']}/undo").json()["data"]
    assert undone["manifest"] == louder and undone["can_redo"] and undone["version"] == 3
    undone = user.api.post(f"/api/daw/{track['id']}/undo").json()["data"]
    assert undone["manifest"] == original and not undone["can_undo"]
    assert error_of(user.api.post(f"/api/daw/{track['id']}/undo")) == (409, "nothing_to_undo")
    redone = user.api.post(f"/api/daw/{track['id']}/redo").json()["data"]
    assert redone["manifest"] == louder and redone["can_redo"]

    # a new change drops the redo branch
    muted = json.loads(json.dumps(louder))
    muted["stems"][2]["muted"] = True
    r = user.api.post(f"/api/daw/{track['id']}/changes", json={"manifest": muted, "label": "Mute"})
    assert r.status_code == 200 and not r.json()["data"]["can_redo"]
    assert [s["label"] for s in r.json()["data"]["history"]] == ["Volume", "Mute"]
    assert error_of(user.api.post(f"/api/daw/{track['id']}/redo")) == (409, "nothing_to_redo")

    # a new session (log in again) sees the same state; ETag answers 304 while nothing changed
    again = httpx.Client(base_url=server.url)
    login = again.post("/users/log-in", json={"email": user.email, "password": user.password})
    assert login.status_code == 200, login.text
    seen = again.get(f"/api/daw/{track['id']}")
    assert seen.json()["data"]["manifest"] == muted and seen.json()["data"]["version"] == 6
    assert again.get(f"/api/daw/{track['id']}", headers={"If-None-Match": seen.headers["etag"]}).status_code == 304
    # a cookie change without the CSRF token is refused
    assert error_of(again.post(f"/api/daw/{track['id']}/undo")) == (403, "csrf_failed")
    again.close()

    # invalid changes name the field and change nothing
    bad = json.loads(json.dumps(muted))
    bad["stems"][0]["operations"] = [{"id": "t", "type": "trim", "params": {"start_ms": 10, "end_ms": 60_000}}]
    r = user.api.post(f"/api/daw/{track['id']}/changes", json={"manifest": bad})
    assert error_of(r) == (422, "validation_error")
    assert set(r.json()["details"]) == {"stems[0].operations[0].params.end_ms"}
    r = user.api.post(f"/api/daw/{track['id']}/changes", json={"patch": [{"op": "remove", "path": "/nope/1"}]})
    assert error_of(r) == (422, "validation_error") and "patch" in r.json()["details"]
    r = user.api.post(f"/api/daw/{track['id']}/changes", json={"label": "nothing"})
    assert error_of(r) == (422, "validation_error") and "manifest or a patch" in r.json()["error"]
    assert user.api.get(f"/api/daw/{track['id']}").json()["data"]["version"] == 6

    stranger = make_user()
    for method, path in (("GET", ""), ("POST", "/undo"), ("POST", "/redo")):
        assert error_of(stranger.api.request(method, f"/api/daw/{track['id']}{path}")) == (404, "not_found")
    r = stranger.api.post(f"/api/daw/{track['id']}/changes", json={"manifest": muted})
    assert error_of(r) == (404, "not_found")


# --- peaks and PCM ----------------------------------------------------------------------------------------------


def test_stem_peaks_are_cached_by_the_separation_and_equal_the_samples(server: Server,
                                                                      remixable: dict[str, Any]) -> None:
    user, stems, paths = remixable["user"], remixable["stems"], remixable["paths"]
    cache = paths["vocals"].parent / ".peaks"
    assert len(list(cache.glob("vocals.wav.*.npz"))) == 1  # drawn by the job, before anyone asked
    samples, sr = sf.read(paths["vocals"], dtype="int16", always_2d=True)
    for spp, bits in ((256, 16), (1024, 8), (8192, 16)):
        r = user.browser.get(f"/api/stems/{stems['vocals']['id']}/peaks",
                             params={"samples_per_pixel": spp, "bits": bits})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert set(doc) == {"version", "channels", "sample_rate", "samples_per_pixel", "bits", "length", "data"}
        assert (doc["version"], doc["channels"], doc["sample_rate"], doc["bits"]) == (2, 2, sr, bits)
        pixels = -(-len(samples) // spp)
        assert doc["length"] == pixels and len(doc["data"]) == pixels * 2 * 2
        data = np.array(doc["data"]).reshape(pixels, 2, 2)
        for p in (0, pixels // 2, pixels - 1):
            chunk = samples[p * spp:(p + 1) * spp]
            want = np.stack([chunk.min(axis=0), chunk.max(axis=0)], axis=-1)
            assert (data[p] == (want if bits == 16 else want // 256)).all()
        again = user.api.get(f"/api/stems/{stems['vocals']['id']}/peaks",
                             params={"samples_per_pixel": spp, "bits": bits},
                             headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
    r = user.api.get(f"/api/stems/{stems['vocals']['id']}/peaks", params={"samples_per_pixel": 300})
    assert error_of(r) == (422, "validation_error") and "samples_per_pixel" in r.json()["details"]


def test_track_peaks_are_computed_for_an_upload(remixable: dict[str, Any]) -> None:
    user, track = remixable["user"], remixable["track"]
    r = user.api.get(f"/api/tracks/{track['id']}/peaks", params={"samples_per_pixel": 4096})
    assert r.status_code == 200, r.text
    assert r.json()["length"] == -(-int(2.5 * SR) // 4096) and r.json()["bits"] == 8


def test_pcm_windows_are_the_stems_samples(remixable: dict[str, Any]) -> None:
    user, stems, paths = remixable["user"], remixable["stems"], remixable["paths"]
    samples, _ = sf.read(paths["drums"], dtype="int16", always_2d=True)
    r = user.api.get(f"/api/stems/{stems['drums']['id']}/pcm", params={"start": 1000, "frames": 4096,
                                                                       "format": "s16"})
    assert r.status_code == 200, r.text
    assert r.headers["x-sample-format"] == "s16le" and r.headers["x-channels"] == "2"
    assert r.headers["x-sample-rate"] == str(SR) and r.headers["x-total-frames"] == str(len(samples))
    assert r.content == samples[1000:5096].astype("<i2").tobytes()
    tail = user.api.get(f"/api/stems/{stems['drums']['id']}/pcm", params={"start": len(samples) - 10})
    assert tail.headers["x-frames"] == "10" and len(tail.content) == 10 * 2 * 4
    assert np.allclose(np.frombuffer(tail.content, "<f4").reshape(-1, 2), samples[-10:] / 32768)
    assert "max-age" in tail.headers["cache-control"] and tail.headers["etag"]
    beyond = user.api.get(f"/api/stems/{stems['drums']['id']}/pcm", params={"start": len(samples)})
    assert error_of(beyond) == (422, "validation_error")
    track_window = user.api.get(f"/api/tracks/{remixable['track']['id']}/pcm", params={"frames": 100})
    assert track_window.status_code == 200 and len(track_window.content) == 100 * 2 * 4


def test_peaks_and_pcm_of_someone_else_are_not_found(remixable: dict[str, Any], make_user: Any) -> None:
    stranger = make_user()
    stem_id, track_id = remixable["stems"]["bass"]["id"], remixable["track"]["id"]
    for path in (f"/api/stems/{stem_id}/peaks", f"/api/stems/{stem_id}/pcm", f"/api/tracks/{track_id}/peaks",
                 f"/api/tracks/{track_id}/pcm", "/api/stems/not-an-id/peaks"):
        assert error_of(stranger.api.get(path)) == (404, "not_found"), path
    with httpx.Client(base_url=remixable["user"].api.base_url) as anonymous:
        assert error_of(anonymous.get(f"/api/stems/{stem_id}/peaks")) == (401, "unauthorized")


def test_the_mix_command_renders_a_stored_track_by_its_id(server: Server, remixable: dict[str, Any],
                                                         tmp_path: Path) -> None:
    doc = remix_doc(remixable)
    (tmp_path / "remix.json").write_text(json.dumps(doc))
    out = tmp_path / "remix.wav"
    done = server.cli("mix", remixable["track"]["id"], "--manifest", str(tmp_path / "remix.json"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    want, _ = local_render(doc, [remixable["paths"][n] for n in ("vocals", "drums", "bass", "other")])
    assert out.read_bytes() == want
    other = server.cli("mix", str(uuid.uuid4()), "--manifest", str(tmp_path / "remix.json"), "-o", str(out))
    assert other.returncode == 1 and "the manifest is for track" in other.stderr
    (tmp_path / "remix.json").write_text(json.dumps({**doc, "track_id": None}))
    unknown = server.cli("mix", str(uuid.uuid4()), "--manifest", str(tmp_path / "remix.json"), "-o", str(out))
    assert unknown.returncode == 1 and "track not found in the database of" in unknown.stderr
