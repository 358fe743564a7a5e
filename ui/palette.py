"""The app's data colours, in one place: one colour per stem type and one per section letter.

The editor (ui/daw/static/editor.css and editor.js) draws with the same values, so a drums stem is amber and
section A violet on the track page and in the editor alike. Every colour reads on the dark and the light theme.
"""

from __future__ import annotations

STEM_COLORS: dict[str, str] = {
    "vocals": "#f472b6",
    "drums": "#f59e0b",
    "bass": "#38bdf8",
    "other": "#a78bfa",
    "guitar": "#34d399",
    "piano": "#facc15",
}
DEFAULT_STEM_COLOR = "#94a3b8"

# Section letters A, B, C, ... in order (the editor's SECTION_COLOURS).
SECTION_COLORS: tuple[str, ...] = ("#7c3aed", "#0f766e", "#b45309", "#be123c", "#1d4ed8", "#4d7c0f", "#9d174d",
                                   "#0e7490")

# The track's own waveform and the charts' accents.
TRACK_COLOR = "#a78bfa"
ACCENT = "#f59e0b"
# Axis labels, grid lines and secondary text of the charts: mid greys that read on both themes.
CHART_TEXT = "#8b929c"
CHART_LINE = "rgba(139, 146, 156, 0.25)"


def stem_color(stem_type: str) -> str:
    """The colour of a stem type (grey for a type the palette does not know)."""
    return STEM_COLORS.get(stem_type, DEFAULT_STEM_COLOR)


def section_color(label: str) -> str:
    """The colour of a section letter: A is the first colour, B the second, ... (cycling)."""
    index = ord(label[:1].upper()) - ord("A") if label else 0
    return SECTION_COLORS[index % len(SECTION_COLORS)] if index >= 0 else SECTION_COLORS[0]
