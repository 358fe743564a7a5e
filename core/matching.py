"""Choosing which search result is the recording a Spotify track names.

A search for "artist - title" returns the studio recording next to live versions, karaoke
tracks, covers, remixes, sped-up edits and ten-hour loops. Each candidate gets a score in 0..1:

- duration close to Spotify's (the strongest single signal: versions differ in length),
- title similarity, after normalising case, accents, "feat." credits and bracketed extras,
- the artist named in the title or as the channel,
- a small bonus for official uploads (YouTube's auto-generated "Artist - Topic" channels carry
  the studio audio; "VEVO" and the artist's own channel),
- penalties for unwanted versions (live, karaoke, cover, ...) unless the Spotify title or album
  asks for that version itself ("Song - Live at Wembley").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

# Weights of the positive signals; they add up to 0.9, bonuses may take a perfect match to 1.
W_DURATION = 0.35
W_TITLE = 0.30
W_ARTIST = 0.25
# Durations within this many seconds count as equal; at DURATION_ZERO_S apart the signal is gone, and
# past DURATION_OTHER_S (or half the length) it is another recording: a penalty on top.
DURATION_EXACT_S = 2.0
DURATION_ZERO_S = 30.0
DURATION_OTHER_S = 90.0
DURATION_OTHER_PENALTY = 0.25
# Words uploaders add around a title; ignored when comparing titles unless the title itself has them.
NOISE_WORDS = frozenset({
    "official", "audio", "video", "music", "lyrics", "lyric", "letra", "hd", "hq", "4k", "mv", "remastered",
    "remaster", "version", "visualizer", "visualiser", "full", "album", "explicit", "clean", "topic", "vevo",
    "new", "original",
})


@dataclass(frozen=True)
class Version:
    """A kind of recording people rarely want unless they asked for it."""

    name: str
    pattern: re.Pattern[str]
    penalty: float


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")(?![a-z0-9])")


# Matched against normalised text (lower case, no accents, punctuation as spaces).
VERSIONS: tuple[Version, ...] = (
    Version("karaoke", _words("karaoke", "sing ?along", "backing track", "minus one"), 0.5),
    Version("cover", _words("cover", "covered by", "tribute"), 0.45),
    Version("instrumental", _words("instrumental", "acapella", "a cappella", "no vocals", "vocals only"), 0.5),
    Version("sped up", _words("sped up", "speed up", "nightcore", "slowed", "reverb", "8d audio", "8d",
                              "bass boosted", "daycore"), 0.45),
    Version("loop", _words(r"\d+ hours?", "one hour", "ten hours", r"\d+ hrs?", "loop(?:ed)?"), 0.45),
    Version("live", _words("live", "in concert", "unplugged"), 0.35),
    Version("remix", _words("remix", "rmx", "bootleg", "rework", "flip", "vip mix", "mashup", "medley"), 0.35),
    Version("lesson", _words("tutorial", "lesson", "how to play", "reaction", "reacts?", "review", "chords",
                             "guitar tab", "drum cam", "piano tutorial", "synthesia"), 0.45),
    Version("parody", _words("parody", "meme", "but every", "earrape"), 0.45),
    Version("acoustic", _words("acoustic"), 0.25),
    Version("demo", _words("demo"), 0.2),
    Version("extended", _words("extended", "extended mix", "club mix", "full version"), 0.15),
)

# Credits: "(feat. X)", "[with X]", or a bare "ft. X" up to the next bracket or dash.
_FEAT = re.compile(r"[\(\[]\s*(?:feat|ft|featuring|with)\b\.?[^\)\]]*[\)\]]|\s(?:feat|ft|featuring)\b\.?\s[^\(\[\-]*",
                   re.IGNORECASE)
_BRACKETS = re.compile(r"[\(\[\{][^\)\]\}]*[\)\]\}]")
# Spotify appends edition notes after " - ": "Song - Remastered 2011", "Song - Radio Edit".
_SPOTIFY_SUFFIX = re.compile(r"\s+-\s+.*$")
_NON_WORD = re.compile(r"[^\w]+")
_OFFICIAL = _words("official audio", "official video", "official music video", "official lyric video",
                   "audio", "official")


def fold(text: str) -> str:
    """Lower case, accents removed, '&' spelled out, punctuation as single spaces.

    Accents fold by Unicode decomposition, so scripts without Latin letters stay comparable.
    """
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    plain = plain.replace("&", " and ").replace("'", "").replace("’", "")
    return _NON_WORD.sub(" ", plain).replace("_", " ").strip()


def strip_credits(title: str) -> str:
    """ "Song (feat. X)" -> "Song"; search engines match the credits poorly."""
    return re.sub(r"\s+", " ", _FEAT.sub(" ", title or "")).strip()


def core_title(title: str) -> str:
    """A title without credits and edition notes: "Song (feat. X) - Remastered" -> "song"."""
    text = _FEAT.sub(" ", title or "")
    text = _BRACKETS.sub(" ", text)
    text = _SPOTIFY_SUFFIX.sub("", text)
    return fold(text) or fold(title)


def split_artists(artist: str) -> list[str]:
    parts = re.split(r",|&|\bfeat\.?|\bft\.?|\bx\b|\band\b", artist or "", flags=re.IGNORECASE)
    return [fold(p) for p in parts if fold(p)]


def versions_in(text: str) -> set[str]:
    folded = fold(text)
    return {v.name for v in VERSIONS if v.pattern.search(folded)}


@dataclass(frozen=True)
class Candidate:
    """One search result: a URL yt-dlp can download and what the search said about it."""

    url: str
    title: str
    channel: str = ""
    duration: float | None = None  # seconds
    source_id: str = ""
    views: int | None = None


@dataclass(frozen=True)
class Target:
    """The Spotify track looked for."""

    title: str
    artist: str
    duration: float | None = None
    album: str = ""


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    score: float
    reasons: tuple[str, ...] = field(default=())


def duration_score(target: float | None, found: float | None) -> float:
    if not target or not found:
        return 0.5  # unknown: neither helps nor hurts much
    diff = abs(target - found)
    if diff <= DURATION_EXACT_S:
        return 1.0
    return max(0.0, 1.0 - (diff - DURATION_EXACT_S) / (DURATION_ZERO_S - DURATION_EXACT_S))


def title_similarity(wanted: str, found: str, artists: Sequence[str]) -> float:
    """How well an upload's title matches the wanted (already core) title, 0..1.

    Half of it is whether every wanted word is there (token set), half how little else is left once
    the artist names, credits, bracketed extras and uploader noise are taken out: "Blinding Lights"
    holds every word of "Lights", but what is left is not "lights".
    """
    if not wanted:
        return 0.5
    plain = fold(_BRACKETS.sub(" ", _FEAT.sub(" ", found))) or fold(found)
    covered = fuzz.token_set_ratio(wanted, plain) / 100.0
    missing = set(wanted.split()) - set(fold(found).split())
    covered *= 1.0 - 0.5 * len(missing) / len(wanted.split())
    rest = f" {plain} "
    for name in artists:
        if name and name not in wanted:
            rest = rest.replace(f" {name} ", " ")
    keep = set(wanted.split())
    rest = " ".join(w for w in rest.split() if w in keep or w not in NOISE_WORDS)
    exact = fuzz.ratio(wanted, rest) / 100.0
    return 0.5 * covered + 0.5 * exact


def score(target: Target, cand: Candidate) -> Scored:
    reasons: list[str] = []
    dur = duration_score(target.duration, cand.duration)
    if target.duration and cand.duration:
        reasons.append(f"duration {cand.duration - target.duration:+.0f} s")

    artists = split_artists(target.artist)
    title = title_similarity(core_title(target.title), cand.title, artists)
    reasons.append(f"title {title:.2f}")

    haystack = fold(f"{cand.title} {cand.channel}")
    artist = max((fuzz.partial_ratio(a, haystack) / 100.0 for a in artists), default=0.5)
    # Uploads of the song name its artist; one that does not is most likely another song or a cover.
    artist = artist if artist >= 0.8 else 0.0
    reasons.append(f"artist {artist:.2f}")

    total = W_DURATION * dur + W_TITLE * title + W_ARTIST * artist
    if target.duration and cand.duration:
        diff = abs(target.duration - cand.duration)
        if diff > DURATION_OTHER_S or diff > 0.5 * target.duration:
            total -= DURATION_OTHER_PENALTY
            reasons.append("another length")

    channel = fold(cand.channel)
    if cand.channel.endswith(" - Topic"):
        total += 0.1
        reasons.append("topic channel")
    elif "vevo" in channel or (artists and channel.replace(" official", "") in artists):
        total += 0.06
        reasons.append("artist channel")
    if _OFFICIAL.search(fold(cand.title)):
        total += 0.03
        reasons.append("official")

    asked = versions_in(f"{target.title} {target.album}")
    for version in VERSIONS:
        if version.name in asked:
            continue
        if version.pattern.search(fold(cand.title)):
            total -= version.penalty
            reasons.append(f"{version.name} version")
    # A version the Spotify title asks for ("Live", "Remix") should be there.
    for name in asked - versions_in(cand.title):
        if name in ("live", "remix", "acoustic", "instrumental", "extended"):
            total -= 0.3
            reasons.append(f"not the {name} version")
    return Scored(cand, max(0.0, min(1.0, total)), tuple(reasons))


def rank(target: Target, candidates: Iterable[Candidate]) -> list[Scored]:
    """Candidates best first; ties keep the search engine's order (its relevance)."""
    scored = [score(target, c) for c in candidates]
    return sorted(scored, key=lambda s: -s.score)


def best(target: Target, candidates: Sequence[Candidate]) -> Scored | None:
    ranked = rank(target, candidates)
    return ranked[0] if ranked else None
