"""Musical keys on the Camelot wheel: key name <-> Camelot code, and the harmonic-mixing neighbours.

The Camelot wheel (Mark Davis, Mixed In Key; https://mixedinkey.com/camelot-wheel/) lays the 24 keys
on a clock face: the number (1-12) walks the circle of fifths, one step per fifth, and the letter says
the mode, ``A`` minor and ``B`` major, so a minor key and its relative major share a number (8A is
A minor, 8B C major). Two tracks mix without a clash when their codes are equal, one number apart with
the same letter (a fifth up or down: 8A with 7A or 9A), or the same number with the other letter
(the relative major or minor: 8A with 8B). The wheel wraps: 12A is next to 1A.

    1A  G# minor   1B  B major         7A  D minor    7B  F major
    2A  D# minor   2B  F# major        8A  A minor    8B  C major
    3A  A# minor   3B  C# major        9A  E minor    9B  G major
    4A  F minor    4B  G# major       10A  B minor   10B  D major
    5A  C minor    5B  D# major       11A  F# minor  11B  A major
    6A  G minor    6B  A# major       12A  C# minor  12B  E major

Key names are those ``core.analysis.key`` writes: a sharp tonic (``PITCH_CLASSES``) and ``major`` or
``minor`` ("A minor", "F# major"). ``parse_key`` also reads flats, ``m``/``min``/``maj`` and Camelot
codes, as people type them.
"""

from __future__ import annotations

import re

from core.errors import InvalidInput

# As core.analysis.key.PITCH_CLASSES (that module imports numpy and the DSP; this one stays light).
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _code_of(tonic: int, mode: str) -> str:
    # The major key on pitch class p sits at number (7p + 8) mod 12 (C major: 8B; one fifth up, G: 9B);
    # a minor key shares the number of its relative major, three semitones up.
    major_tonic = tonic if mode == "major" else (tonic + 3) % 12
    number = (7 * major_tonic + 8) % 12 or 12
    return f"{number}{'B' if mode == 'major' else 'A'}"


KEY_TO_CAMELOT: dict[str, str] = {
    f"{PITCH_CLASSES[tonic]} {mode}": _code_of(tonic, mode) for mode in ("minor", "major") for tonic in range(12)
}
CAMELOT_TO_KEY: dict[str, str] = {code: name for name, code in KEY_TO_CAMELOT.items()}
# Wheel order, 1A 1B 2A 2B ... 12A 12B: the order of the library's key sort.
CAMELOT_ORDER: tuple[str, ...] = tuple(f"{n}{letter}" for n in range(1, 13) for letter in "AB")
CAMELOT_RANK: dict[str, int] = {code: i for i, code in enumerate(CAMELOT_ORDER)}
KEY_NAMES_IN_WHEEL_ORDER: tuple[str, ...] = tuple(CAMELOT_TO_KEY[code] for code in CAMELOT_ORDER)

_CAMELOT_RE = re.compile(r"^0?(1[0-2]|[1-9])\s*([AaBb])$")
_KEY_RE = re.compile(r"^([A-Ga-g])\s*([#♯b♭]?)\s*(.*)$")
_MODES = {"": "major", "maj": "major", "major": "major", "dur": "major", "m": "minor", "min": "minor",
          "minor": "minor", "moll": "minor"}


def camelot_code(key_name: str | None) -> str | None:
    """The Camelot code of a key name ("A minor" -> "8A"), or None for no key or one not on the wheel.

    Reads what ``parse_key`` reads, so "Am", "Bb major" and a code itself ("8a") work too."""
    if not key_name:
        return None
    try:
        parsed = parse_key(key_name)
    except InvalidInput:
        return None
    return parsed if parsed in CAMELOT_TO_KEY else KEY_TO_CAMELOT.get(parsed)


def key_of_code(code: str) -> str:
    """The key name of a Camelot code ("8A" -> "A minor"); KeyError for anything else."""
    return CAMELOT_TO_KEY[code.upper()]


def compatible_codes(code: str) -> list[str]:
    """The codes that mix harmonically with ``code`` on the Camelot wheel: itself, one step down and one
    up with the same letter (the wheel wraps 12 -> 1), and the same number with the other letter
    (the relative minor/major). ``compatible_codes("8A") == ["8A", "7A", "9A", "8B"]``.

    Raises ``InvalidInput`` for something that is not a Camelot code."""
    match = _CAMELOT_RE.match(code.strip()) if isinstance(code, str) else None
    if match is None:
        raise InvalidInput(f"Not a Camelot code: {code!r} (expected 1A-12B)")
    number, letter = int(match.group(1)), match.group(2).upper()
    down, up = (number - 2) % 12 + 1, number % 12 + 1
    other = "B" if letter == "A" else "A"
    return [f"{number}{letter}", f"{down}{letter}", f"{up}{letter}", f"{number}{other}"]


def parse_key(text: str) -> str:
    """A key as a person types it, made canonical: a Camelot code ("8a", "08A" -> "8A") or a key name
    as ``core.analysis.key`` writes it ("a minor", "Am", "A min" -> "A minor"; "Gb major", "F♯" ->
    "F# major"; a tonic alone is major).

    Raises ``InvalidInput`` (422 ``validation_error``) for anything else."""
    raw = (text or "").strip() if isinstance(text, str) else ""
    if not raw or len(raw) > 40:
        raise InvalidInput(f"Not a key: {text!r} (expected e.g. 'A minor', 'F# major' or a Camelot code like '8A')")
    camelot = _CAMELOT_RE.match(raw)
    if camelot:
        return f"{int(camelot.group(1))}{camelot.group(2).upper()}"
    match = _KEY_RE.match(raw)
    if match:
        letter, accidental, rest = match.group(1).upper(), match.group(2), match.group(3).strip().lower()
        mode = _MODES.get(rest.rstrip("."))
        if mode is not None:
            shift = {"b": -1, "♭": -1, "#": 1, "♯": 1}.get(accidental, 0)
            note = PITCH_CLASSES[(PITCH_CLASSES.index(letter) + shift) % 12]
            return f"{note} {mode}"
    raise InvalidInput(f"Not a key: {text!r} (expected e.g. 'A minor', 'F# major' or a Camelot code like '8A')")


def key_names_for(text: str, *, compatible: bool = False) -> list[str]:
    """The key names (as stored) that ``text`` (a key name or Camelot code) selects: the key itself, or
    with ``compatible`` the key and its Camelot neighbours (``compatible_codes``). ``InvalidInput``
    for a key that is not one."""
    parsed = parse_key(text)
    code = parsed if parsed in CAMELOT_TO_KEY else KEY_TO_CAMELOT.get(parsed)
    if code is None:
        raise InvalidInput(f"Not a key: {text!r}")
    codes = compatible_codes(code) if compatible else [code]
    return [CAMELOT_TO_KEY[c] for c in codes]
