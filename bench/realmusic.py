"""Real compositions played by real instrument samples, with key and tempo taken from the score.

    .venv/bin/python bench/realmusic.py [--rebuild]      # builds (or lists) the cached set

Two sets, built the same way from music21's corpus of public-domain scores and rendered with
FluidSynth and the General MIDI sound font Debian ships (``fluid-soundfont-gm``):

* **dev**: the development set, every tonal score of the corpus that is not by J. S. Bach (string
  quartet movements by Haydn, Mozart and Beethoven; songs and piano pieces by Schubert, Robert and
  Clara Schumann, Chopin, Joplin, Beach, ...; Monteverdi madrigals; Corelli, Handel, Weber, Verdi), and
  a few folk tunes (the Essen and O'Neill collections: a melody alone).
* **final**: J. S. Bach's four-part chorales, kept out of all development and evaluated once at the
  end, with the same rule.

The truth comes from the score, never from a key-finding program:

* key: the key signature names two candidate tonics, its major and its relative minor. The tonic is
  the bass (lowest sounding note) of the piece's last sonority; a piece whose final bass is neither
  candidate (modal pieces, minor pieces written with a Dorian signature, chorales ending on the
  dominant) is dropped, and so is one whose signature at the end is not the opening's or that ends by a
  da capo or dal segno (its last written bar is not where it ends). The mode follows: the major tonic
  reads major, the relative minor's minor (whatever third the final chord has: a minor piece may end on
  a Picardy third).
* whole pieces: a piece that lasts at most ``MAX_WHOLE_SECONDS`` at its tempo is rendered whole, so the truth
  is exactly the rule above (the piece's own last bass note). Only a longer one is cut, at the end of the
  first bar between ``MIN_SECONDS`` and ``MAX_SECONDS`` whose last sonority has that same tonic in the bass
  and does not hold the other mode's third; a piece with no such bar is dropped. (Until version 3 every piece
  over 60 s was cut that way. A cut is a weaker truth: in a sonata exposition a root-position tonic chord 40 s
  in is often IV of the dominant, where the music then is, so the "excerpt's key" was the piece's key but
  not what the excerpt plays; bench/README.md.)
* tempo: one MIDI tempo per piece (the score's own tempo marks are ignored), drawn with a fixed seed
  from 60-160 quarter notes a minute; the truth is that quarter-note rate. Where the time signature
  notates another beat (the half note in 2/2 and 3/2, the eighth in 3/8, the dotted quarter in 6/8, 9/8
  and 12/8), bench/analysis.py also accepts that beat's rate and reports the strict quarter-note figure
  beside it.

* bars (version 4): the start of every bar in seconds, from the score's own bar lines (a pickup, a first bar
  shorter than the time signature's bar, is not one), for the downbeat figure on real music.

Every part gets its own channel and a General MIDI program from an ensemble drawn per piece (piano,
string quartet, organ, nylon guitar, woodwind quartet, brass, choir), so the set is not one timbre;
velocities come from the score (80 when it has none) with a small seeded jitter. The renderings are
cached in ``~/.cache/stemforge-bench/realmusic/`` (``STEMFORGE_REALMUSIC_DIR`` overrides) with
``manifest.json`` holding the truth and the reason for every dropped piece; the corpus lists are
sorted and every random draw is seeded, so a rebuild gives the same set.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(os.environ.get("STEMFORGE_REALMUSIC_DIR", Path.home() / ".cache" / "stemforge-bench" / "realmusic"))
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SR = 44100
MIN_SECONDS = 30.0
MAX_SECONDS = 60.0
MAX_WHOLE_SECONDS = 600.0  # 10 minutes: every movement of the corpus but a few
MIN_BPM, MAX_BPM = 60.0, 160.0
TICKS = 480  # MIDI ticks per quarter note
VERSION = 4  # bump when the selection, the truth rule or the rendering changes (4: bar starts)
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# The development set's art music: every tonal-era score of the corpus outside Bach (``.krn`` duplicates
# of an ``.mxl``, the lead sheets' chord symbols, demos, exercises and the atonal Schoenberg and Webern
# are left out), and Monteverdi's madrigals (many are modal and fall to the truth rule).
DEV_COMPOSERS = ("beach", "beethoven", "chopin", "corelli", "cpebach", "handel", "haydn", "johnson_j_r", "joplin",
                 "liliuokalani", "monteverdi", "mozart", "schubert", "schumann_clara", "schumann_robert", "verdi",
                 "weber")
# Folk melodies: (collection file, tunes taken: every n-th of the file, at most this many).
FOLK = (("essenFolksong/erk5.abc", 4), ("essenFolksong/kinder0.abc", 4), ("oneills1850/0051-0100.abc", 4))
FINAL_CHORALES = 80  # chorales drawn (seeded) from the sorted list before the truth rule

# Ensembles: General MIDI programs for the parts, top part first (the last one is the bass).
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "piano": (0,),
    "strings": (40, 40, 41, 42),  # violin, violin, viola, cello
    "organ": (19,),  # church organ
    "guitar": (24,),  # nylon guitar
    "winds": (73, 68, 71, 70),  # flute, oboe, clarinet, bassoon
    "brass": (56, 60, 57, 58),  # trumpet, horn, trombone, tuba
    "choir": (52,),  # choir aahs
}
MELODY_PROGRAMS = (0, 73, 40, 24, 68, 71)  # piano, flute, violin, guitar, oboe, clarinet


@dataclass(frozen=True)
class Piece:
    id: str
    set: str  # "dev" or "final"
    source: str  # corpus path (and tune number for a collection)
    file: str  # WAV name under the cache folder
    key: str  # the truth: "A minor"
    bpm: float  # quarter notes a minute, as written in the MIDI tempo event
    time_signature: str
    compound: bool  # 6/8, 9/8, 12/8: the dotted quarter is the notated beat
    ensemble: str
    seconds: float  # length of the rendered excerpt (before the release tail)
    whole: bool  # the whole piece, or an excerpt cut at a cadence home
    downbeats: list[float]  # seconds: the start of every bar of the rendered excerpt (bar_starts)


# --- reading a score --------------------------------------------------------------------------------


def _notes(score: Any) -> list[tuple[float, float, int, int, int]]:
    """(onset, duration in quarter notes, MIDI pitch, velocity, part index) of every sounding note."""
    out = []
    for index, part in enumerate(score.parts):
        flat = part.flatten().stripTies()
        for n in flat.notes:
            length = float(n.quarterLength)
            if length <= 0 or n.duration.isGrace:
                continue
            velocity = n.volume.velocity if n.volume.velocity is not None else 80
            for p in n.pitches:
                out.append((float(n.offset), length, int(p.midi), int(velocity), index))
    out.sort()
    return out


def _sonority_at(notes: list[tuple[float, float, int, int, int]], time: float) -> list[int]:
    """MIDI pitches sounding at quarter-note time ``time`` (onset <= time < end)."""
    return [p for onset, length, p, _, _ in notes if onset <= time + 1e-6 < onset + length]


def _last_sonority(notes: list[tuple[float, float, int, int, int]], end: float) -> list[int]:
    """The sonority at the last onset before ``end``."""
    last = max((onset for onset, *_ in notes if onset < end - 1e-6), default=None)
    return [] if last is None else _sonority_at(notes, last)


def _mode_of(sonority: list[int], tonic: int, signature_major: int, strict: bool = True) -> str | None:
    """The mode the signature and a final bass on ``tonic`` name, or None when the bass is neither candidate
    or (``strict``, for a cut inside the piece) the sonority holds the other mode's third. A piece's own final
    chord may hold it: a minor piece ending on a major tonic chord (a Picardy third) is still in minor."""
    if not sonority or min(sonority) % 12 != tonic:
        return None
    classes = {p % 12 for p in sonority}
    if tonic == signature_major:
        return None if strict and (tonic + 3) % 12 in classes else "major"
    if tonic == (signature_major + 9) % 12:
        return None if strict and (tonic + 4) % 12 in classes else "minor"
    return None


def bar_starts(measures: list[tuple[float, float, float]], bpm: float, end: float) -> list[float]:
    """Seconds at which the bars start, from ``(offset, length, full length)`` of each measure in quarter notes
    (the full length is the time signature's bar), at ``bpm`` quarter notes a minute, for the bars that start
    before ``end`` (quarter notes). A first measure shorter than its time signature's bar is a pickup (an
    anacrusis): the music starts there, but the first downbeat is the next bar line."""
    starts = []
    for index, (offset, length, full) in enumerate(measures):
        if index == 0 and length < full - 1e-6:
            continue
        if offset < end - 1e-6:
            starts.append(round(offset * 60.0 / bpm, 4))
    return starts


def _measures(score: Any) -> list[tuple[float, float, float]]:
    """(offset, length, time signature's bar length) in quarter notes of every measure of the top part."""
    return [(float(m.offset), float(m.duration.quarterLength), float(m.barDuration.quarterLength))
            for m in score.parts[0].getElementsByClass("Measure")]


def _ends_elsewhere(score: Any) -> bool:
    """Whether the score returns by a da capo or dal segno (its last written bar is then not its end)."""
    from music21 import expressions, repeat

    if score.recurse().getElementsByClass(repeat.RepeatExpressionCommand):
        return True
    texts = (t.content for t in score.recurse().getElementsByClass(expressions.TextExpression))
    return any(t and ("D.C." in t or "D.S." in t or "da capo" in t.lower() or "dal segno" in t.lower()) for t in texts)


def truth(score: Any, bpm: float) -> tuple[dict[str, Any] | None, str]:
    """The key, excerpt end (quarter notes) and meter of a score, or None and why it is dropped."""
    from music21 import key as m21key
    from music21 import meter

    signatures = score.parts[-1].recurse().getElementsByClass(m21key.KeySignature)
    if not signatures:
        return None, "no key signature"
    if signatures[-1].sharps != signatures[0].sharps:
        return None, "the key signature at the end differs from the opening's"
    if _ends_elsewhere(score):
        return None, "a da capo or dal segno: the piece does not end at its last bar"
    major = (7 * signatures[0].sharps) % 12
    notes = _notes(score)
    if not notes:
        return None, "no notes"
    end = max(onset + length for onset, length, *_ in notes)
    final = _last_sonority(notes, end)
    tonic = min(final) % 12
    mode = _mode_of(final, tonic, major, strict=False)
    if mode is None:
        return None, "final bass is neither the signature's major nor its relative minor tonic"
    meters = score.recurse().getElementsByClass(meter.TimeSignature)
    ts = meters[0].ratioString if meters else "4/4"
    seconds_per_quarter = 60.0 / bpm
    cut = end
    if end * seconds_per_quarter > MAX_WHOLE_SECONDS:
        bars = [float(m.offset) + float(m.quarterLength)
                for m in score.parts[0].getElementsByClass("Measure")]
        cut = None
        for bar_end in bars:
            if not MIN_SECONDS <= bar_end * seconds_per_quarter <= MAX_SECONDS:
                continue
            if _mode_of(_last_sonority(notes, bar_end), tonic, major) == mode:
                cut = bar_end
                break
        if cut is None:
            return None, f"no cadence home (tonic in the bass) at a bar end within {MIN_SECONDS:g}-{MAX_SECONDS:g} s"
    return {"key": f"{PITCH_CLASSES[tonic]} {mode}", "end": cut, "whole": cut == end, "notes": notes,
            "downbeats": bar_starts(_measures(score), bpm, cut),
            "time_signature": ts, "compound": ts in ("6/8", "9/8", "12/8", "6/4")}, ""


# --- MIDI and rendering -----------------------------------------------------------------------------


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, notes: list[tuple[float, float, int, int, int]], end: float, bpm: float,
               programs: list[int], rng: np.random.Generator) -> None:
    """A format-0 MIDI file: one tempo event (``bpm`` quarters a minute), a channel and program per part."""
    events: list[tuple[int, int, bytes]] = []  # (tick, order, bytes): note-offs before note-ons at a tick
    channels = [c for c in range(16) if c != 9]
    for part, program in enumerate(programs):
        events.append((0, 0, bytes([0xC0 | channels[part % 15], program])))
    for onset, length, pitch, velocity, part in notes:
        if onset >= end - 1e-6:
            continue
        stop = min(onset + length, end)
        channel = channels[part % 15]
        vel = int(np.clip(velocity + rng.integers(-8, 9), 30, 120))
        events.append((round(onset * TICKS), 2, bytes([0x90 | channel, pitch, vel])))
        events.append((max(round(stop * TICKS) - 1, round(onset * TICKS) + 1), 1, bytes([0x80 | channel, pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    tempo = round(60_000_000 / bpm)  # microseconds per quarter note
    track = bytearray(b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big"))
    now = 0
    for tick, _, data in events:
        track += _varlen(tick - now) + data
        now = tick
    track += b"\x00\xff\x2f\x00"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS) + b"MTrk" + struct.pack(">I", len(track))
                     + bytes(track))


def render(midi: Path, wav: Path, seconds: float) -> None:
    """FluidSynth to a 44.1 kHz 16-bit WAV, trimmed to the excerpt plus a 1.5 s release."""
    import soundfile as sf

    raw = wav.with_suffix(".raw.wav")
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SR), "-T", "wav", "-O", "s16", "-F", str(raw),
                    str(SOUNDFONT), str(midi)], check=True, capture_output=True)
    audio, sr = sf.read(raw, dtype="float32")
    audio = audio[: int((seconds + 1.5) * sr)]
    sf.write(wav, audio, sr, subtype="PCM_16")
    raw.unlink()


# --- the sets ---------------------------------------------------------------------------------------


def _sources() -> list[tuple[str, str]]:
    """(set, source) for every candidate, dev first, in a fixed order."""
    from music21 import corpus

    paths = sorted(str(p).split("/corpus/", 1)[1] for p in corpus.getPaths())
    out: list[tuple[str, str]] = []
    for p in paths:
        top = p.split("/")[0]
        # .rntxt files are people's harmonic analyses (with keys named), not scores: left out
        if top in DEV_COMPOSERS and not p.endswith((".krn", ".rntxt")) or p == "chopin/mazurka06-2.krn":
            out.append(("dev", p))
    for path, count in FOLK:
        for i in range(count):
            out.append(("dev", f"{path}#{i}"))
    chorales = [p for p in paths if p.startswith("bach/bwv") and p.endswith((".mxl", ".xml"))]
    rng = np.random.default_rng(1685)
    for p in sorted(rng.choice(chorales, size=min(FINAL_CHORALES, len(chorales)), replace=False)):
        out.append(("final", str(p)))
    return out


def _load(source: str, cache: dict[str, Any]) -> Any:
    from music21 import corpus

    if "#" not in source:
        return corpus.parse(source)
    path, index = source.split("#")
    if path not in cache:
        cache[path] = corpus.parse(path)
    opus = cache[path]
    scores = list(opus.scores)
    step = max(1, len(scores) // 8)
    return scores[int(index) * step]


def _make(job: tuple[int, str, str]) -> dict[str, Any]:
    """Read, label and render one candidate: {"piece": {...}} or {"dropped": {...}} (run in a worker)."""
    n, which, source = job
    rng = np.random.default_rng(zlib.crc32(source.encode()))
    bpm = round(float(rng.uniform(MIN_BPM, MAX_BPM)), 1)
    try:
        score = _load(source, _OPUS_CACHE)
        if any(getattr(i, "transposition", None) is not None for i in score.recurse().getElementsByClass("Instrument")):
            score = score.toSoundingPitch()
        if not score.parts:
            raise ValueError("no parts")
        found, why = truth(score, bpm)
    except Exception as exc:  # noqa: BLE001 - a score music21 cannot read is dropped with its reason
        found, why = None, f"unreadable: {type(exc).__name__}"
    if found is None:
        return {"dropped": {"set": which, "source": source, "reason": why}}
    parts = len(score.parts)
    if parts == 1:
        ensemble = "melody"
        programs = [int(rng.choice(MELODY_PROGRAMS))]
    else:
        ensemble = str(rng.choice(sorted(ENSEMBLES)))
        chosen = ENSEMBLES[ensemble]
        # the upper parts take the ensemble's programs in order, the lowest part its bass instrument
        programs = [chosen[min(i, max(len(chosen) - 2, 0))] for i in range(parts)]
        programs[-1] = chosen[-1]
    ident = f"{which}-{n:03d}"
    seconds = found["end"] * 60.0 / bpm
    midi = CACHE / f"{ident}.mid"
    write_midi(midi, found["notes"], found["end"], bpm, programs, rng)
    render(midi, CACHE / f"{ident}.wav", seconds)
    piece = Piece(ident, which, source, f"{ident}.wav", found["key"], bpm, found["time_signature"],
                  found["compound"], ensemble, round(seconds, 2), found["whole"], found["downbeats"])
    return {"piece": asdict(piece)}


_OPUS_CACHE: dict[str, Any] = {}


def build(rebuild: bool = False, log: Any = print, workers: int = 2) -> dict[str, Any]:
    """Build (or load) the cached set; returns the manifest: {"pieces": [...], "dropped": [...]}."""
    manifest_path = CACHE / "manifest.json"
    if manifest_path.exists() and not rebuild:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == VERSION and all((CACHE / p["file"]).exists() for p in manifest["pieces"]):
            return manifest
    if not SOUNDFONT.exists() or shutil.which("fluidsynth") is None:
        raise SystemExit("FluidSynth or its sound font is missing: run bench/scripts/realmusic_deps.sh")
    CACHE.mkdir(parents=True, exist_ok=True)
    log(f"Building the real-music set in {CACHE} (once; a few minutes) ...")
    jobs = [(n, which, source) for n, (which, source) in enumerate(_sources())]
    pieces: list[dict[str, Any]] = []
    dropped: list[dict[str, str]] = []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for (_, _, source), out in zip(jobs, pool.imap(_make, jobs), strict=True):
            if "piece" in out:
                p = out["piece"]
                pieces.append(p)
                log(f"  {p['id']} {source}: {p['key']}, {p['bpm']} BPM, {p['time_signature']}, {p['ensemble']}, "
                    f"{p['seconds']:.0f} s{'' if p['whole'] else ' (excerpt)'}")
            else:
                dropped.append(out["dropped"])
                log(f"  drop {source}: {out['dropped']['reason']}")
    manifest = {"version": VERSION, "pieces": pieces, "dropped": dropped}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    manifest = build(args.rebuild)
    for which in ("dev", "final"):
        kept = [p for p in manifest["pieces"] if p["set"] == which]
        gone = [d for d in manifest["dropped"] if d["set"] == which]
        print(f"{which}: {len(kept)} pieces, {len(gone)} dropped; "
              f"{sum(p['key'].endswith('minor') for p in kept)} minor, {sum(not p['whole'] for p in kept)} excerpts")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
