"""The analysis' own DSP (core/analysis/{dsp,spectrum,pitch,constant_q,beat_tracking}.py) against the librosa and
scipy functions it replaces, on short tones, chords, noise, clicks and silence; then the whole analysis against the
same analysis run on librosa's functions; and that ``main.py analyze`` loads neither librosa nor scipy.

Where the arithmetic is the same the results must agree to float rounding (relative error 1e-5 or better, or
exactly); the beat tracker's beats and the tuning estimate must be identical.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.analysis import beat_tracking, constant_q, dsp, pitch, spectrum
from core.analysis import key as key_mod
from tests import synth
from tests.conftest import ROOT

librosa = pytest.importorskip("librosa")
scipy_fft = pytest.importorskip("scipy.fft")
scipy_ndimage = pytest.importorskip("scipy.ndimage")
scipy_signal = pytest.importorskip("scipy.signal")

SR = 22050
N_FFT = 2048
HOP = 512
C1 = 32.70319566257483


def _relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    assert ours.shape == reference.shape
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    return float(np.max(np.abs(ours - reference))) / scale if scale > 0 else float(np.max(np.abs(ours), initial=0.0))


def _tone(freq: float, seconds: float, partials: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * k * freq * t) / k for k in range(1, partials + 1)).astype(np.float32)


def _signals() -> dict[str, np.ndarray]:
    """A few seconds each at 22050 Hz, float32."""
    rng = np.random.default_rng(7)
    chord = sum(_tone(synth.midi_hz(n), 3.0, partials=5) for n in (57, 60, 64, 69)) / 4
    clicks = np.zeros(int(3.0 * SR), dtype=np.float32)
    clicks[:: int(0.5 * SR)] = 1.0
    clicks[1000::7919] = -0.5
    with_silence = np.concatenate([np.zeros(SR // 2), _tone(440.0 * 2 ** (0.23 / 12), 2.0, partials=3),
                                   np.zeros(SR // 2)]).astype(np.float32)
    song = synth.song(2, "major", 112.0, 6.0, style="four", seed=3).audio.mean(axis=1)
    return {
        "tone": 0.5 * _tone(220.0, 2.5),
        "chord": chord.astype(np.float32),
        "noise": (0.3 * rng.standard_normal(int(2.7 * SR))).astype(np.float32),
        "clicks": clicks,
        "detuned_with_silence": with_silence,
        "song": librosa.resample(song, orig_sr=synth.SR, target_sr=SR).astype(np.float32),
    }


SIGNALS = _signals()


@pytest.fixture(params=sorted(SIGNALS))
def signal(request: pytest.FixtureRequest) -> np.ndarray:
    return SIGNALS[request.param]


def _magnitude(y: np.ndarray) -> np.ndarray:
    """librosa's magnitude STFT of y zero-padded by n_fft / 2 (as service.py frames it)."""
    return np.abs(librosa.stft(np.pad(y, N_FFT // 2), n_fft=N_FFT, hop_length=HOP, center=False))


# --- dsp.py ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 512, 2048])
def test_periodic_hann_is_scipys(n: int) -> None:
    assert np.array_equal(dsp.periodic_hann(n), scipy_signal.get_window("hann", n, fftbins=True))


def test_frame_is_librosas() -> None:
    x = np.arange(5000, dtype=np.float64)
    for length, hop in ((512, 32), (2048, 512), (5000, 1), (7, 3)):
        assert np.array_equal(dsp.frame(x, length, hop), librosa.util.frame(x, frame_length=length, hop_length=hop))
    with pytest.raises(ValueError):
        dsp.frame(x[:10], 11, 1)


def test_next_fast_len_is_scipys() -> None:
    for n in [*range(1, 200), 1023, 1025, 4097, 12345, 65537, 100003]:
        assert dsp.next_fast_len(n) == scipy_fft.next_fast_len(n, real=True), n


def test_autocorrelation_and_peak_normalisation_are_librosas() -> None:
    x = np.random.default_rng(1).standard_normal((512, 30))
    x[:, 3] = 0.0  # an all-zero window stays zero
    ours = dsp.autocorrelate(x, axis=0)
    reference = librosa.autocorrelate(x, axis=0)
    assert _relative_error(ours, reference) < 1e-12
    assert _relative_error(dsp.normalize_peak(ours, axis=0),
                           librosa.util.normalize(reference, norm=np.inf, axis=0)) < 1e-12
    onsets = np.abs(x[:, 0])
    assert _relative_error(dsp.autocorrelate(onsets), librosa.autocorrelate(onsets)) < 1e-12


@pytest.mark.parametrize(("n", "sigma"), [(512, 4.0), (100, 1.5), (10, 4.0), (3, 4.0), (1, 2.0)])
def test_gaussian_filter_is_scipys(n: int, sigma: float) -> None:
    x = np.random.default_rng(n).standard_normal(n)
    assert _relative_error(dsp.gaussian_filter1d(x, sigma), scipy_ndimage.gaussian_filter1d(x, sigma)) < 1e-12


# --- spectrum.py -------------------------------------------------------------------------------------------------


def test_stft_magnitude_is_librosas(signal: np.ndarray) -> None:
    segment = np.pad(signal, N_FFT // 2)
    ours = spectrum.stft_magnitude(segment, N_FFT, HOP)
    reference = np.abs(librosa.stft(segment, n_fft=N_FFT, hop_length=HOP, center=False))
    assert ours.dtype == np.float32
    assert _relative_error(ours, reference) < 1e-6


@pytest.mark.parametrize(("sr", "n_fft", "n_mels", "fmin", "fmax"),
                         [(22050, 2048, 128, 0.0, None), (44100, 1024, 40, 30.0, 8000.0), (16000, 512, 64, 0.0, None)])
def test_mel_filterbank_is_librosas(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> None:
    ours = spectrum.mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    reference = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.dtype == np.float32
    assert _relative_error(ours, reference) < 1e-6


def test_mel_power_is_librosas(signal: np.ndarray) -> None:
    power = _magnitude(signal) ** 2
    ours = spectrum.filterbank_power(spectrum.mel_filterbank(SR, N_FFT), power)
    assert ours.dtype == np.float32
    assert _relative_error(ours, librosa.feature.melspectrogram(S=power, sr=SR, n_mels=128)) < 1e-6


def test_mel_scale_is_slaneys() -> None:
    f = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 11025.0])
    assert _relative_error(spectrum.hz_to_mel(f), librosa.hz_to_mel(f)) < 1e-12
    assert _relative_error(spectrum.mel_to_hz(spectrum.hz_to_mel(f)), f) < 1e-12


def test_frame_features_are_librosas(signal: np.ndarray) -> None:
    magnitude = _magnitude(signal)
    kw = {"S": magnitude, "sr": SR, "n_fft": N_FFT, "hop_length": HOP}
    reference_rms = librosa.feature.rms(S=magnitude, frame_length=N_FFT)[0]
    assert _relative_error(spectrum.rms(magnitude, N_FFT), reference_rms) < 1e-6
    centroid = librosa.feature.spectral_centroid(**kw)
    ours_centroid = spectrum.spectral_centroid(magnitude, SR, N_FFT)
    assert _relative_error(ours_centroid, centroid[0]) < 1e-9
    assert _relative_error(spectrum.spectral_bandwidth(magnitude, SR, N_FFT, ours_centroid),
                           librosa.feature.spectral_bandwidth(**kw, centroid=centroid)[0]) < 1e-9
    # The roll-off is a bin frequency: the same bin or a real mistake.
    assert np.array_equal(spectrum.spectral_rolloff(magnitude, SR, N_FFT), librosa.feature.spectral_rolloff(**kw)[0])
    assert _relative_error(spectrum.spectral_contrast(magnitude, SR, N_FFT),
                           librosa.feature.spectral_contrast(**kw)) < 1e-9


def test_silent_frames_give_what_librosa_gives() -> None:
    magnitude = np.zeros((1 + N_FFT // 2, 5), dtype=np.float32)
    magnitude[:, 2] = 1.0
    kw = {"S": magnitude, "sr": SR, "n_fft": N_FFT, "hop_length": HOP}
    assert np.array_equal(spectrum.spectral_centroid(magnitude, SR, N_FFT), librosa.feature.spectral_centroid(**kw)[0])
    assert np.array_equal(spectrum.spectral_rolloff(magnitude, SR, N_FFT), librosa.feature.spectral_rolloff(**kw)[0])
    assert np.array_equal(spectrum.rms(magnitude, N_FFT), librosa.feature.rms(S=magnitude)[0])


def test_decibels_and_mfcc_are_librosas(signal: np.ndarray) -> None:
    mel_power = librosa.feature.melspectrogram(S=_magnitude(signal) ** 2, sr=SR, n_mels=128)
    db = spectrum.power_to_db(mel_power)
    assert _relative_error(db, librosa.power_to_db(mel_power)) < 1e-6
    ours = spectrum.mfcc(db, 13)
    assert ours.dtype == mel_power.dtype
    assert _relative_error(ours, librosa.feature.mfcc(S=librosa.power_to_db(mel_power), n_mfcc=13)) < 1e-5
    assert np.allclose(spectrum.dct_ortho_matrix(128, 128) @ spectrum.dct_ortho_matrix(128, 128).T, np.eye(128))


def test_zero_crossing_rate_is_librosas(signal: np.ndarray) -> None:
    segment = np.pad(signal, N_FFT // 2, mode="edge")
    segment[100:140] = np.float32(1e-11) * np.sign(np.sin(np.arange(40)))  # under the threshold: counted as 0
    ours = spectrum.zero_crossing_rate(segment, N_FFT, HOP)
    reference = librosa.feature.zero_crossing_rate(segment, frame_length=N_FFT, hop_length=HOP, center=False)[0]
    assert np.array_equal(ours, reference)


# --- pitch.py ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("note", ["C1", "A4", "F#3", "Bb2", "C#-1", "E"])
def test_note_names_are_librosas(note: str) -> None:
    assert pitch.note_to_hz(note) == float(librosa.note_to_hz(note))
    assert pitch.hz_to_midi(pitch.note_to_hz(note)) == pytest.approx(librosa.note_to_midi(note), abs=1e-9)
    assert float(pitch.hz_to_midi(C1)) == float(librosa.hz_to_midi(C1))


def test_spectral_peaks_are_librosas_piptrack(signal: np.ndarray) -> None:
    magnitude = _magnitude(signal)
    pitches, levels = pitch.spectral_peaks(magnitude, SR, N_FFT)
    ref_pitches, ref_levels = librosa.piptrack(S=magnitude, sr=SR, n_fft=N_FFT)
    assert np.array_equal(pitches > 0, ref_pitches > 0)
    assert _relative_error(pitches, ref_pitches) < 1e-6
    assert _relative_error(levels, ref_levels) < 1e-6


@pytest.mark.parametrize("cents", [-40, -13, 0, 7, 23, 49])
def test_tuning_estimate_is_librosas(cents: int) -> None:
    detune = 2 ** (cents / 1200)
    chord = sum(_tone(synth.midi_hz(n) * detune, 2.0, partials=6) for n in (48, 55, 64, 67, 71))
    for y in (chord.astype(np.float32), SIGNALS["song"], SIGNALS["noise"], SIGNALS["clicks"]):
        magnitude = _magnitude(y)
        assert pitch.estimate_tuning(magnitude, SR, N_FFT) == librosa.estimate_tuning(S=magnitude, sr=SR, n_fft=N_FFT)


def test_tuning_without_peaks_is_zero() -> None:
    assert pitch.estimate_tuning(np.zeros((1 + N_FFT // 2, 4), dtype=np.float32), SR, N_FFT) == 0.0


# --- constant_q.py ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tuning", [0.0, -1.2, 0.9])
def test_cqt_magnitude_is_librosas(signal: np.ndarray, tuning: float) -> None:
    kw = {"sr": SR, "hop_length": HOP, "fmin": C1, "n_bins": 252, "bins_per_octave": 36, "tuning": tuning}
    ours = constant_q.cqt_magnitude(signal, **kw)
    reference = np.abs(librosa.cqt(signal, **kw))
    assert ours.dtype == np.float32
    assert _relative_error(ours, reference) < 1e-5


@pytest.mark.parametrize(("length", "n_bins", "bins_per_octave", "fmin"),
                         [(SR + 123, 252, 36, C1), (SR // 2, 84, 12, 65.4), (3 * SR + 1, 48, 24, 110.0)])
def test_cqt_of_other_shapes_is_librosas(length: int, n_bins: int, bins_per_octave: int, fmin: float) -> None:
    y = SIGNALS["song"][:length]
    kw = {"sr": SR, "hop_length": HOP, "fmin": fmin, "n_bins": n_bins, "bins_per_octave": bins_per_octave}
    assert _relative_error(constant_q.cqt_magnitude(y, **kw), np.abs(librosa.cqt(y, **kw))) < 1e-5


def test_cqt_with_an_early_downsample_is_librosas() -> None:
    """Two octaves of low filters: the whole signal is halved before the first octave."""
    y = SIGNALS["chord"]
    kw = {"sr": SR, "hop_length": HOP, "fmin": 55.0, "n_bins": 24, "bins_per_octave": 12}
    assert constant_q._early_downsample_count(SR / 2, 220.0, HOP, 2) > 0
    assert _relative_error(constant_q.cqt_magnitude(y, **kw), np.abs(librosa.cqt(y, **kw))) < 1e-5


def test_chroma_is_librosas(signal: np.ndarray) -> None:
    cqt = np.abs(librosa.cqt(signal, sr=SR, hop_length=HOP, fmin=C1, n_bins=252, bins_per_octave=36))
    for n_input in (252, 250, 36):
        assert np.array_equal(constant_q.cq_to_chroma(n_input, 36, fmin=C1),
                              librosa.filters.cq_to_chroma(n_input, bins_per_octave=36, fmin=C1))
    assert np.array_equal(constant_q.cq_to_chroma(84), librosa.filters.cq_to_chroma(84))
    ours = constant_q.chroma_from_cqt(cqt, 36, C1)
    reference = librosa.feature.chroma_cqt(C=cqt, sr=SR, hop_length=HOP, fmin=C1, bins_per_octave=36, n_octaves=7)
    assert _relative_error(ours, reference) < 1e-6


# --- beat_tracking.py ----------------------------------------------------------------------------------------------


def _compressed_mel(y: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(S=_magnitude(y) ** 2, sr=SR, n_mels=128)
    return np.log1p(1000.0 * (mel / max(float(mel.max()), 1e-30)))


def test_onset_strength_is_librosas(signal: np.ndarray) -> None:
    compressed = _compressed_mel(signal)
    ours = beat_tracking.onset_strength(compressed, hop_length=HOP, center=False)
    assert ours.dtype == compressed.dtype
    assert np.array_equal(ours, librosa.onset.onset_strength(S=compressed, sr=SR, hop_length=HOP, center=False))
    assert np.array_equal(beat_tracking.onset_strength(compressed, lag=2),
                          librosa.onset.onset_strength(S=compressed, sr=SR, lag=2))


@pytest.mark.parametrize("bpm", [50.0, 73.4, 112.0, 128.0, 175.0, 220.0])
def test_beats_are_librosas(bpm: float) -> None:
    for name in ("song", "clicks", "noise", "chord"):
        onsets = librosa.onset.onset_strength(S=_compressed_mel(SIGNALS[name]), sr=SR, center=False)
        ours = beat_tracking.beat_track(onsets, sr=SR, hop_length=HOP, bpm=bpm)
        _, reference = librosa.beat.beat_track(onset_envelope=onsets, sr=SR, hop_length=HOP, bpm=bpm, units="time",
                                               trim=False)
        assert np.array_equal(ours, reference), name


def test_beats_on_long_random_envelopes_are_librosas() -> None:
    rng = np.random.default_rng(5)
    for bpm in (61.0, 97.0, 143.5, 199.0):
        onsets = (rng.random(3000) ** 8).astype(np.float32)
        onsets[:50] = 0.0
        ours = beat_tracking.beat_frames(onsets, bpm, SR / HOP)
        _, reference = librosa.beat.beat_track(onset_envelope=onsets, sr=SR, hop_length=HOP, bpm=bpm, trim=False)
        assert np.array_equal(ours, reference)


def test_no_onsets_no_beats() -> None:
    assert beat_tracking.beat_track(np.zeros(500, dtype=np.float32), sr=SR, hop_length=HOP, bpm=120.0).size == 0


# --- the whole analysis ----------------------------------------------------------------------------------------------


def _librosa_dsp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the analysis at librosa and scipy for every function the DSP modules provide, as it was before them."""
    import scipy.ndimage
    import scipy.signal

    def stft_magnitude(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
        return np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=False))

    def bandwidth(magnitude: np.ndarray, sr: float, n_fft: int, centroid: np.ndarray) -> np.ndarray:
        return librosa.feature.spectral_bandwidth(S=magnitude, sr=sr, n_fft=n_fft, centroid=centroid[np.newaxis])[0]

    def cqt(y: np.ndarray, **kw: float) -> np.ndarray:
        return np.abs(librosa.cqt(y, **kw)).astype(np.float32)

    patches = {
        spectrum: {
            "stft_magnitude": stft_magnitude,
            "mel_filterbank": lambda sr, n_fft, n_mels: librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels),
            "filterbank_power": lambda weights, power: np.einsum("...ft,mf->...mt", power, weights, optimize=True),
            "rms": lambda s, frame_length: librosa.feature.rms(S=s, frame_length=frame_length)[0],
            "spectral_centroid": lambda s, sr, n_fft: librosa.feature.spectral_centroid(S=s, sr=sr, n_fft=n_fft)[0],
            "spectral_rolloff": lambda s, sr, n_fft: librosa.feature.spectral_rolloff(S=s, sr=sr, n_fft=n_fft)[0],
            "spectral_bandwidth": bandwidth,
            "spectral_contrast": lambda s, sr, n_fft: librosa.feature.spectral_contrast(S=s, sr=sr, n_fft=n_fft),
            "power_to_db": librosa.power_to_db,
            "mfcc": lambda db, n: librosa.feature.mfcc(S=db, n_mfcc=n),
            "zero_crossing_rate": lambda y, length, hop: librosa.feature.zero_crossing_rate(
                y, frame_length=length, hop_length=hop, center=False)[0],
        },
        pitch: {"estimate_tuning": lambda s, sr, n_fft, bins_per_octave: librosa.estimate_tuning(
            S=s, sr=sr, n_fft=n_fft, bins_per_octave=bins_per_octave)},
        constant_q: {
            "cqt_magnitude": cqt,
            "chroma_from_cqt": lambda c, bpo, fmin: librosa.feature.chroma_cqt(
                C=c, sr=SR, hop_length=HOP, fmin=fmin, bins_per_octave=bpo, n_octaves=c.shape[0] // bpo),
        },
        key_mod: {
            "cq_to_chroma": lambda n, bins_per_octave, fmin: librosa.filters.cq_to_chroma(
                n, bins_per_octave=bins_per_octave, fmin=fmin),
        },
        beat_tracking: {
            "onset_strength": lambda s, hop_length, center: librosa.onset.onset_strength(
                S=s, sr=SR, hop_length=hop_length, center=center),
            "beat_track": lambda onsets, sr, hop_length, bpm: librosa.beat.beat_track(
                onset_envelope=onsets, sr=sr, hop_length=hop_length, bpm=bpm, units="time", trim=False)[1],
        },
        dsp: {
            "gaussian_filter1d": scipy.ndimage.gaussian_filter1d,
            "frame": lambda x, length, hop: librosa.util.frame(x, frame_length=length, hop_length=hop),
            "periodic_hann": lambda n: scipy.signal.get_window("hann", n, fftbins=True),
            "autocorrelate": lambda x, axis: librosa.autocorrelate(x, axis=axis),
            "normalize_peak": lambda x, axis: librosa.util.normalize(x, norm=np.inf, axis=axis),
        },
    }
    for module, functions in patches.items():
        for name, function in functions.items():
            assert hasattr(module, name), f"{module.__name__}.{name}"
            monkeypatch.setattr(module, name, function)


SONGS = {
    "A minor, 124 BPM, 40 s (two CQT blocks)": (9, "minor", 124.0, 40.0, "rock", 0),
    "E-flat major, 96 BPM": (3, "major", 96.0, 14.0, "four", 1),
    "F-sharp minor, 150 BPM": (6, "minor", 150.0, 12.0, "sixteenths", 2),
}


@pytest.mark.parametrize("name", sorted(SONGS))
def test_analysis_is_the_same_as_on_librosa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from core.analysis import analyze

    tonic, mode, bpm, seconds, style, progression = SONGS[name]
    path = synth.song(tonic, mode, bpm, seconds, style=style, progression=progression, seed=tonic).write(
        tmp_path / "song.wav")
    ours = analyze(path, ["all"])
    with monkeypatch.context() as patched:
        _librosa_dsp(patched)
        reference = analyze(path, ["all"])
    assert ours["tempo"] == reference["tempo"] and ours["tempo"] is not None
    assert ours["key"] == reference["key"] == synth.key_name(tonic, mode)
    assert ours["key_confidence"] == pytest.approx(reference["key_confidence"], abs=1e-3)
    assert len(ours["beats"]) == len(reference["beats"])
    assert np.max(np.abs(np.subtract(ours["beats"], reference["beats"]))) <= HOP / SR + 1e-3  # within a frame
    assert ours["downbeats"] == reference["downbeats"] and ours["beats_per_bar"] == reference["beats_per_bar"]
    assert ours["sections"] == reference["sections"]
    for field in ("spectral_centroid", "spectral_rolloff", "spectral_bandwidth", "energy", "zero_crossing_rate"):
        assert ours[field] == pytest.approx(reference[field], rel=5e-3), field
    assert _relative_error(ours["spectral_contrast"], reference["spectral_contrast"]) < 5e-3
    for feature, decimals in (("mfcc", 2), ("chroma", 3), ("rms", 5), ("centroid", 1)):
        assert np.max(np.abs(np.subtract(ours["features"][feature], reference["features"][feature]))) <= \
            2 * 10.0**-decimals + 1e-9, feature


def test_analyze_command_loads_no_heavy_library(tmp_path: Path) -> None:
    """``main.py analyze`` imports neither librosa/numba nor scipy, nor the web and database stack."""
    path = synth.song(0, "major", 120.0, 6.0).write(tmp_path / "song.wav")
    done = subprocess.run([sys.executable, "-X", "importtime", "main.py", "analyze", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"key": "C major"' in done.stdout
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
              if line.startswith("import time:")}
    assert "numpy" in loaded and "core" in loaded
    heavy = {"librosa", "numba", "llvmlite", "scipy", "torch", "pydantic_settings", "sqlalchemy", "fastapi",
             "nicegui", "asyncio"}
    assert not loaded & heavy
