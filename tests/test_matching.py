"""The matcher picks the recording a Spotify track names out of realistic search results."""

from __future__ import annotations

import pytest

from core.matching import Candidate, Target, core_title, fold, rank, score, versions_in


def c(title: str, channel: str, duration: float | None, key: str | None = None) -> Candidate:
    return Candidate(url=f"https://example.invalid/{key or title}", title=title, channel=channel, duration=duration,
                     source_id=key or title)


# (case, target, candidates, title of the one that must win)
CASES = [
    (
        "studio beats live, karaoke and a music video",
        Target("Blinding Lights", "The Weeknd", 200),
        [
            c("The Weeknd - Blinding Lights (Live at the Grammys)", "Recording Academy", 214),
            c("Blinding Lights (Karaoke Version)", "Sing King", 201),
            c("The Weeknd - Blinding Lights (Official Video)", "The Weeknd", 262),
            c("Blinding Lights", "The Weeknd - Topic", 200),
        ],
        "Blinding Lights",
    ),
    (
        "a live track on Spotify wants the live recording",
        Target("Hotel California - Live On MTV, 1994", "Eagles", 435, album="Hell Freezes Over"),
        [
            c("Eagles - Hotel California (Official Audio)", "Eagles", 391),
            c("Eagles - Hotel California (Live 1994) (Official Video)", "Eagles", 437),
            c("Hotel California - Eagles (cover)", "Acoustic Covers", 420),
        ],
        "Eagles - Hotel California (Live 1994) (Official Video)",
    ),
    (
        "the radio edit, not the extended mix or a one-hour loop",
        Target("Strobe - Radio Edit", "deadmau5", 214),
        [
            c("deadmau5 - Strobe (Extended Mix)", "deadmau5", 637),
            c("deadmau5 - Strobe 1 Hour", "Loop Lounge", 3600),
            c("deadmau5 - Strobe (Radio Edit)", "deadmau5", 215),
        ],
        "deadmau5 - Strobe (Radio Edit)",
    ),
    (
        "the ten-minute album version when Spotify's duration says so",
        Target("Strobe", "deadmau5", 637),
        [
            c("deadmau5 - Strobe (Radio Edit)", "deadmau5", 215),
            c("deadmau5 - Strobe", "deadmau5", 636),
            c("Strobe (Piano Cover)", "Keys Forever", 300),
        ],
        "deadmau5 - Strobe",
    ),
    (
        "near-duplicates: the remaster, not a cover or another song with the same word",
        Target("Yesterday - Remastered 2009", "The Beatles", 125),
        [
            c("Yesterday Once More", "Carpenters - Topic", 236),
            c("Yesterday - The Beatles (cover by Jamie)", "Jamie Sings", 127),
            c("The Beatles - Yesterday (Remastered 2009)", "The Beatles", 127),
            c("Yesterday (Remastered 2009)", "The Beatles - Topic", 125),
        ],
        "Yesterday (Remastered 2009)",
    ),
    (
        "sped up, slowed and nightcore edits lose to the original video",
        Target("Heat Waves", "Glass Animals", 239),
        [
            c("Glass Animals - Heat Waves (sped up)", "Sped Up Nation", 190),
            c("heat waves (slowed + reverb)", "slowed vibes", 281),
            c("Nightcore - Heat Waves", "Nightcore Central", 200),
            c("Glass Animals - Heat Waves (Official Video)", "Glass Animals", 243),
        ],
        "Glass Animals - Heat Waves (Official Video)",
    ),
    (
        "credits and accents do not hide the match",
        Target("Despacito (feat. Daddy Yankee)", "Luis Fonsi, Daddy Yankee", 229),
        [
            c("Luis Fonsi - Despacito ft. Daddy Yankee (Official Music Video)", "LuisFonsiVEVO", 282),
            c("DESPACITO (Cover en Español)", "Covers Latinos", 228),
            c("Luis Fonsi, Daddy Yankee - Despacito (Audio)", "Luis Fonsi", 229),
            c("Despacito - Instrumental", "Beats Lab", 229),
        ],
        "Luis Fonsi, Daddy Yankee - Despacito (Audio)",
    ),
    (
        "accented titles match their plain spelling",
        Target("Mañana Será Bonito", "KAROL G", 214),
        [
            c("KAROL G - MANANA SERA BONITO (Official Video)", "KAROL G", 216),
            c("Mañana Será Bonito (Letra/Lyrics) - Karaoke", "Karaoke Hits", 214),
        ],
        "KAROL G - MANANA SERA BONITO (Official Video)",
    ),
    (
        "a remix on Spotify wants that remix",
        Target("Don't Start Now - Kungs Remix", "Dua Lipa", 166),
        [
            c("Dua Lipa - Don't Start Now (Official Music Video)", "Dua Lipa", 183),
            c("Dua Lipa - Don't Start Now (Kungs Remix) [Official Audio]", "Dua Lipa", 166),
            c("Don't Start Now (Dua Lipa) - 10 Hours", "Ten Hours Of", 36000),
        ],
        "Dua Lipa - Don't Start Now (Kungs Remix) [Official Audio]",
    ),
    (
        "the vocal original beats an instrumental of the exact length",
        Target("Bohemian Rhapsody - Remastered 2011", "Queen", 354),
        [
            c("Queen - Bohemian Rhapsody (Instrumental)", "Backing Tracks Pro", 354),
            c("Queen – Bohemian Rhapsody (Official Video Remastered)", "Queen Official", 359),
            c("Bohemian Rhapsody - Guitar Lesson", "Guitar Tutor", 900),
        ],
        "Queen – Bohemian Rhapsody (Official Video Remastered)",
    ),
    (
        "a song whose title is part of another song's title",
        Target("Lights", "Ellie Goulding", 211),
        [
            c("The Weeknd - Blinding Lights (Official Audio)", "The Weeknd", 202),
            c("Ellie Goulding - Lights (Official Video)", "Ellie Goulding", 213),
        ],
        "Ellie Goulding - Lights (Official Video)",
    ),
    (
        "no durations known: title and artist decide",
        Target("Midnight City", "M83", None),
        [
            c("Midnight City (M83 cover) live", "Bar Band", None),
            c("M83 - Midnight City", "M83", None),
        ],
        "M83 - Midnight City",
    ),
]


@pytest.mark.parametrize(("target", "candidates", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_the_right_candidate_wins(target: Target, candidates: list[Candidate], expected: str) -> None:
    ranked = rank(target, candidates)
    assert ranked[0].candidate.title == expected, [(s.candidate.title, round(s.score, 3), s.reasons) for s in ranked]
    # The order of the search results does not change the choice.
    assert rank(target, list(reversed(candidates)))[0].candidate.title == expected


def test_scores_are_bounded_and_a_perfect_match_scores_high() -> None:
    target = Target("Blinding Lights", "The Weeknd", 200)
    perfect = score(target, c("Blinding Lights", "The Weeknd - Topic", 200))
    unrelated = score(target, c("Cooking pasta at home", "Chef Channel", 600))
    assert 0.9 <= perfect.score <= 1.0
    assert 0.0 <= unrelated.score < 0.3
    assert "topic channel" in perfect.reasons


def test_normalisation() -> None:
    assert fold("Beyoncé & JAY-Z") == "beyonce and jay z"
    assert core_title("Despacito (feat. Daddy Yankee) - Remix") == "despacito"
    assert core_title("Dancing With A Stranger (with Normani)") == "dancing with a stranger"
    assert versions_in("Song (Live at Wembley)") == {"live"}
    assert versions_in("Song [1 HOUR] sped up") == {"loop", "sped up"}
    assert versions_in("Liveforever") == set()  # words, not substrings
