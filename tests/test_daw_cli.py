"""``python main.py mix``: a manifest rendered from stem files without the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from core.daw.manifest import parse_manifest
from core.daw.mixdown import Mixdown, stem_audio

ROOT = Path(__file__).resolve().parent.parent
SR = 22050


def run_mix(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"STEMFORGE_DATA_DIR": str(tmp / "var"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "main.py", "mix", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def test_mix_renders_stem_files_in_file_index_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    paths = []
    for name, channels in (("drums", 2), ("vocals", 1)):
        path = tmp_path / f"{name}.flac"
        sf.write(path, rng.uniform(-0.6, 0.6, (SR * 2, channels)), SR, subtype="PCM_24")
        paths.append(path)
    doc = {"version": 1, "master": {"gain": 1.5}, "stems": [
        {"file_index": 1, "pan": -0.3, "operations": [
            {"id": "a", "type": "fade_in", "params": {"start_ms": 0, "end_ms": 800, "curve": "exponential"}}]},
        {"file_index": 0, "volume": 0.9, "operations": [
            {"id": "b", "type": "mute", "params": {"start_ms": 1000, "end_ms": 1500}}]}]}
    (tmp_path / "remix.json").write_text(json.dumps(doc))
    out = tmp_path / "out.wav"
    done = run_mix(tmp_path, *map(str, paths), "--manifest", str(tmp_path / "remix.json"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    mixdown = Mixdown(parse_manifest(doc), [stem_audio(paths[1]), stem_audio(paths[0])])
    assert out.read_bytes() == b"".join(mixdown.wav_chunks())
    assert f"{mixdown.clipped} clipped samples" in done.stdout and mixdown.clipped > 0
    assert "100%" in done.stderr  # the progress bar


def test_mix_refuses_a_bad_manifest_with_the_field_path(tmp_path: Path) -> None:
    stem = tmp_path / "a.wav"
    sf.write(stem, np.zeros((SR, 2)), SR)
    doc = {"version": 1, "stems": [{"file_index": 3, "operations": [
        {"id": "x", "type": "time_stretch", "params": {"ratio": 2}}]}]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    done = run_mix(tmp_path, str(stem), "--manifest", str(tmp_path / "m.json"), "-o", str(tmp_path / "o.wav"))
    assert done.returncode == 1 and "stems[0].operations[0].type" in done.stderr
    doc["stems"][0]["operations"] = []
    (tmp_path / "m.json").write_text(json.dumps(doc))
    done = run_mix(tmp_path, str(stem), "--manifest", str(tmp_path / "m.json"), "-o", str(tmp_path / "o.wav"))
    assert done.returncode == 1 and "stems[0].file_index" in done.stderr
    assert not (tmp_path / "o.wav").exists()
