"""The lalal.ai client and cloud engine against a local fake of the API v1 (tests/fakes/lalalai.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import Unauthorized
from core.progress import BadInput, JobCancelled, TransientError
from core.separation import lalalai as cloud
from core.separation.catalog import model_info
from core.settings import Settings
from tests.fakes.lalalai import GAINS, FakeLalalai
from tests.separation_fixtures import LALALAI_KEY

SR = 44100


def settings_for(fake: FakeLalalai, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", lalalai_api_url=fake.url, lalalai_poll_interval_s=0.01)


def song(path: Path, seconds: float = 3.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    data = np.stack([0.4 * np.sin(2 * np.pi * 220 * t), 0.4 * np.sin(2 * np.pi * 330 * t)], axis=1)
    sf.write(path, data.astype(np.float32), SR)
    return path


def percents(calls: list[tuple[float, str]]) -> list[float]:
    return [p for p, _ in calls]


def test_separation_uploads_splits_downloads_and_deletes(lalalai: FakeLalalai, tmp_path: Path) -> None:
    source = song(tmp_path / "Beyoncé – Halo.wav")
    calls: list[tuple[float, str]] = []
    tasks: list[str] = []
    stems = cloud.separate(source, tmp_path / "stems", "htdemucs", LALALAI_KEY,
                             lambda p, m="": calls.append((p, m)), settings=settings_for(lalalai, tmp_path),
                             on_task=tasks.append)

    assert [s.stem_type for s in stems] == ["drums", "bass", "other", "vocals"]
    original = sf.read(str(source), dtype="float32")[0]
    gains = {"drums": GAINS["drum"], "bass": GAINS["bass"], "vocals": GAINS["vocals"],
             "other": 1 - GAINS["drum"] - GAINS["bass"] - GAINS["vocals"]}
    for stem in stems:
        assert stem.path == tmp_path / "stems" / f"{stem.stem_type}.wav" and stem.format == "wav"
        assert stem.size == stem.path.stat().st_size
        data, sr = sf.read(str(stem.path), dtype="float32")
        assert sr == SR and data.shape == original.shape
        assert np.abs(data - original * gains[stem.stem_type]).max() < 2 / 32768
    assert sorted(p.name for p in (tmp_path / "stems").iterdir()) == sorted(f"{s.stem_type}.wav" for s in stems)

    # What the API saw: the file streamed with its length and exact name, the stems htdemucs implies.
    upload = lalalai.uploads[0]
    assert upload["name"] == "Beyoncé – Halo.wav"
    assert int(upload["content_length"]) == source.stat().st_size and upload["transfer_encoding"] is None
    task = lalalai.tasks[tasks[0]]
    assert task.label == "multistem" and task.stems == ["vocals", "drum", "bass"] and task.encoder_format == "wav"
    assert {key for _, key in lalalai.requests} == {LALALAI_KEY}
    assert [p.rsplit("/", 2)[-2] for p, _ in lalalai.requests] == ["upload", "multistem", "check", "check", "delete"]
    assert lalalai.sources == {}  # the source is deleted afterwards
    assert percents(calls)[0] == 0 and percents(calls)[-1] == 100
    assert percents(calls) == sorted(percents(calls))
    # 3 seconds, 3 stems: lalal.ai charged 0.15 minutes.
    assert lalalai.keys[LALALAI_KEY] == pytest.approx(100 - 0.15)
    assert cloud.charged_minutes(3.0, "htdemucs") == pytest.approx(0.15)


def test_six_stem_model_and_flac(lalalai: FakeLalalai, tmp_path: Path) -> None:
    stems = cloud.separate(song(tmp_path / "a.wav", 1.0), tmp_path / "stems", "htdemucs_6s", LALALAI_KEY,
                             settings=settings_for(lalalai, tmp_path), fmt="flac")
    assert sorted(s.stem_type for s in stems) == sorted(model_info("htdemucs_6s").stem_names)
    assert all(s.path.suffix == ".flac" and sf.info(str(s.path)).format == "FLAC" for s in stems)
    (task,) = lalalai.tasks.values()
    assert task.stems == ["vocals", "drum", "bass", "electric_guitar", "piano"] and task.encoder_format == "flac"


def test_bad_or_missing_key_says_where_to_set_it(lalalai: FakeLalalai, tmp_path: Path) -> None:
    settings = settings_for(lalalai, tmp_path)
    with pytest.raises(cloud.LalalaiKeyError) as err:
        cloud.separate(song(tmp_path / "a.wav", 1.0), tmp_path / "stems", "htdemucs", "not-a-key",
                         settings=settings)
    assert isinstance(err.value, Unauthorized) and isinstance(err.value, BadInput)
    assert err.value.code == "unauthorized" and err.value.status == 401
    assert "Settings page" in err.value.message
    assert lalalai.requests == [("/api/v1/upload/", "not-a-key")] and lalalai.sources == {}
    with pytest.raises(cloud.LalalaiKeyError, match="No lalal.ai license key is set"):
        cloud.quota("", settings=settings)
    with pytest.raises(cloud.LalalaiKeyError):
        cloud.quota("not-a-key", settings=settings)
    assert not (tmp_path / "stems").exists()


def test_quota_maps_minutes_left(lalalai: FakeLalalai, tmp_path: Path) -> None:
    settings = settings_for(lalalai, tmp_path)
    assert cloud.quota(LALALAI_KEY, settings=settings).as_dict() == {
        "quota_minutes": 100.0, "used_minutes": 0.0, "remaining_minutes": 100.0}
    lalalai.keys[LALALAI_KEY] = 75.0
    assert cloud.quota(LALALAI_KEY, used_minutes=45, settings=settings) == cloud.Quota(120.0, 45.0, 75.0)


def test_cancel_and_cancel_all(lalalai: FakeLalalai, tmp_path: Path) -> None:
    settings = settings_for(lalalai, tmp_path)
    with cloud.LalalaiClient(LALALAI_KEY, settings=settings) as client:
        source = client.upload(song(tmp_path / "a.wav", 1.0))
        first = client.split(source.id, ["vocals"])
        assert cloud.cancel(LALALAI_KEY, first, settings=settings) is True
        assert cloud.cancel(LALALAI_KEY, first, settings=settings) is False  # not running any more
        with pytest.raises(JobCancelled):
            client.wait(first)
        second, third = client.split(source.id, ["drum"]), client.split(source.id, ["bass"])
    assert sorted(cloud.cancel_all(LALALAI_KEY, settings=settings)) == sorted([second, third])
    assert lalalai.running() == [] and cloud.cancel_all(LALALAI_KEY, settings=settings) == []


def test_a_cancelled_job_cancels_its_task_and_deletes_the_source(lalalai: FakeLalalai, tmp_path: Path) -> None:
    lalalai.checks_until_done = 50

    def progress(percent: float, message: str = "") -> None:
        if message == "Separating on lalal.ai" and percent > 15:
            raise JobCancelled("user cancelled")

    with pytest.raises(JobCancelled):
        cloud.separate(song(tmp_path / "a.wav", 1.0), tmp_path / "stems", "htdemucs", LALALAI_KEY, progress,
                         settings=settings_for(lalalai, tmp_path))
    (task,) = lalalai.tasks.values()
    assert task.status == "cancelled" and lalalai.sources == {}
    assert not (tmp_path / "stems").exists()


def test_refusals_and_failures(lalalai: FakeLalalai, tmp_path: Path) -> None:
    settings = settings_for(lalalai, tmp_path)
    audio = song(tmp_path / "a.wav", 3.0)

    lalalai.fail_next(503)
    with pytest.raises(TransientError, match="503"):
        cloud.quota(LALALAI_KEY, settings=settings)
    lalalai.fail_next(429)
    with pytest.raises(TransientError, match="429"):
        cloud.separate(audio, tmp_path / "s", "htdemucs", LALALAI_KEY, settings=settings)

    lalalai.error_next_task = "Unable to detect voice/vocals in the uploaded files"
    with pytest.raises(BadInput, match="Unable to detect voice"):
        cloud.separate(audio, tmp_path / "s", "htdemucs", LALALAI_KEY, settings=settings)
    assert lalalai.sources == {}

    lalalai.keys[LALALAI_KEY] = 0.1  # 3 s x 3 stems needs 0.15 minutes
    with pytest.raises(BadInput, match="Not enough lalal.ai processing minutes"):
        cloud.separate(audio, tmp_path / "s", "htdemucs", LALALAI_KEY, settings=settings)

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio at all")
    with pytest.raises(BadInput, match="not a supported audio format"):
        cloud.separate(not_audio, tmp_path / "s", "htdemucs", LALALAI_KEY, settings=settings)

    nowhere = Settings(data_dir=tmp_path, lalalai_api_url="http://127.0.0.1:9", lalalai_poll_interval_s=0.01)
    with pytest.raises(TransientError, match="could not be reached"):
        cloud.quota(LALALAI_KEY, settings=nowhere)
    lalalai.keys[LALALAI_KEY] = 100.0
    with cloud.LalalaiClient(LALALAI_KEY, settings=settings) as client:
        task_id = client.split(client.upload(audio).id, ["vocals"])
        with pytest.raises(TransientError, match="did not finish"):
            client.wait(task_id, max_wait_s=0)
    assert lalalai.tasks[task_id].status == "cancelled"
    with pytest.raises(BadInput, match="Unknown model"):
        cloud.separate(audio, tmp_path / "s", "spleeter", LALALAI_KEY, settings=settings)
    assert not (tmp_path / "s").exists()
