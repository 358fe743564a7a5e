"""The analysis as pictures: ECharts options (``ui.echart``) built from an analysis result.

Each ``*_options`` function is pure: an analysis result dict (as ``core.analysis.analyze`` returned it) in,
the chart's options out, or None when the result lacks what the chart needs. Long frame arrays are averaged
down to at most ``MAX_POINTS`` points (the MFCC heatmap to ``MAX_HEATMAP_COLUMNS`` columns), so a long
track's analysis, which may be a few hundred KB, sends the page a few tens of KB.

The charts' greys and accents come from ui/palette.py and read on the dark and the light theme alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ui.palette import ACCENT, CHART_LINE, CHART_TEXT, TRACK_COLOR, section_color
from ui.theme import mmss

MAX_POINTS = 1000
MAX_HEATMAP_COLUMNS = 240
FLOOR_DB = -60.0  # quieter than this is drawn at the floor (silence would stretch the axis to -100 dB)
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
IN_KEY = "#8b5cf6"
OUT_OF_KEY = "rgba(139, 146, 156, 0.45)"
CENTROID_COLOR = "#2dd4bf"
# ECharts' label formatters run in the browser: seconds as m:ss.
MMSS_JS = "(v) => Math.floor(v / 60) + ':' + String(Math.floor(v % 60)).padStart(2, '0')"


def block_means(values: Sequence[float] | np.ndarray, max_points: int) -> tuple[np.ndarray, int]:
    """``values`` (n,) or (rows, n) averaged over consecutive blocks of columns so at most ``max_points``
    remain; returns them and the block length (1 when nothing was averaged)."""
    arr = np.asarray(values, dtype=np.float64)
    n = arr.shape[-1]
    factor = max(1, math.ceil(n / max_points)) if n else 1
    if factor == 1:
        return arr, 1
    starts = np.arange(0, n, factor)
    sums = np.add.reduceat(arr, starts, axis=-1)
    counts = np.diff(np.append(starts, n))
    return sums / counts, factor


def _base(title: str, subtext: str = "") -> dict[str, Any]:
    return {
        "backgroundColor": "transparent",
        "animation": False,
        "textStyle": {"color": CHART_TEXT},
        "title": {"text": title, "subtext": subtext, "left": 8, "top": 4,
                  "textStyle": {"color": IN_KEY, "fontSize": 15, "fontWeight": 600},
                  "subtextStyle": {"color": CHART_TEXT, "fontSize": 12}},
        "tooltip": {"trigger": "axis", "confine": True},
    }


def _axis(**extra: Any) -> dict[str, Any]:
    return {"axisLine": {"lineStyle": {"color": CHART_TEXT}}, "axisLabel": {"color": CHART_TEXT},
            "splitLine": {"lineStyle": {"color": CHART_LINE}}, "nameTextStyle": {"color": CHART_TEXT}, **extra}


def _time_axis(duration: float) -> dict[str, Any]:
    return _axis(type="value", min=0, max=round(duration, 2) if duration else None,
                 axisLabel={"color": CHART_TEXT, ":formatter": MMSS_JS},
                 axisPointer={"label": {":formatter": "(p) => (" + MMSS_JS + ")(p.value)"}})


def _percent(value: float) -> str:
    return f"{value:.0%}" if value >= 0.1 or value == 0 else f"{value:.1%}"


def _frame_rate(result: dict[str, Any]) -> float:
    return float(result.get("frame_rate") or 0) or 2.0


def chroma_profile(result: dict[str, Any]) -> list[float] | None:
    """The mean of each pitch class over the track, the loudest 1 (None without chroma)."""
    chroma = (result.get("features") or {}).get("chroma")
    if not chroma or len(chroma) != 12 or not chroma[0]:
        return None
    means = np.asarray(chroma, dtype=np.float64).mean(axis=1)
    top = float(means.max())
    return [round(float(v / top), 3) if top > 0 else 0.0 for v in means]


def parse_key(key: str | None) -> tuple[int, str] | None:
    """ "A minor" -> (9, "minor"); None for no key or a name this page does not know."""
    if not key:
        return None
    tonic, _, mode = key.partition(" ")
    if tonic not in PITCH_CLASSES or mode not in SCALES:
        return None
    return PITCH_CLASSES.index(tonic), mode


def chroma_options(result: dict[str, Any]) -> dict[str, Any] | None:
    """Twelve bars, C to B: the tonic of the detected key in the accent colour, the other notes of its scale
    in violet, the rest grey; the key and its confidence in the title, the runners-up under it."""
    profile = chroma_profile(result)
    if profile is None:
        return None
    parsed = parse_key(result.get("key"))
    scale = {(parsed[0] + step) % 12 for step in SCALES[parsed[1]]} if parsed else set()
    bars = []
    for pc, value in enumerate(profile):
        color = ACCENT if parsed and pc == parsed[0] else IN_KEY if pc in scale else OUT_OF_KEY
        bars.append({"value": value, "itemStyle": {"color": color, "borderRadius": [3, 3, 0, 0]}})
    if parsed:
        title = str(result["key"])
        confidence = result.get("key_confidence")
        parts = [f"confidence {_percent(float(confidence))}"] if confidence is not None else []
    else:
        title, parts = "No clear key", []
    others = [c for c in result.get("key_candidates") or [] if c.get("key") != result.get("key")]
    if others:
        parts.append("then " + ", ".join(f"{c['key']} {_percent(float(c.get('score') or 0))}" for c in others[:2]))
    options = _base(title, " · ".join(parts))
    options.update({
        "grid": {"left": 40, "right": 12, "top": 64, "bottom": 28},
        "xAxis": _axis(type="category", data=list(PITCH_CLASSES), splitLine={"show": False}),
        "yAxis": _axis(type="value", min=0, max=1, splitNumber=2, name="", axisLabel={"show": False}),
        "series": [{"type": "bar", "name": "Share", "data": bars, "barWidth": "62%"}],
    })
    options["tooltip"] = {"trigger": "axis", "confine": True, "axisPointer": {"type": "shadow"}}
    return options


def energy_options(result: dict[str, Any]) -> dict[str, Any] | None:
    """The RMS level (dBFS, left axis) and the spectral centroid (Hz, right axis) over time, with the
    sections as labelled bands. None when the result has neither curve (analysed before they were kept)."""
    features = result.get("features") or {}
    rms, centroid = features.get("rms"), features.get("centroid")
    if not rms and not centroid:
        return None
    rate = _frame_rate(result)
    duration = float(result.get("duration") or 0)
    series: list[dict[str, Any]] = []
    if rms:
        levels, factor = block_means(rms, MAX_POINTS)
        db = 20 * np.log10(np.maximum(levels, 10 ** (FLOOR_DB / 20)))
        times = (np.arange(len(db)) * factor + (factor - 1) / 2) / rate
        series.append({
            "type": "line", "name": "Level (dBFS)", "yAxisIndex": 0, "showSymbol": False, "smooth": False,
            "lineStyle": {"color": TRACK_COLOR, "width": 1.5}, "itemStyle": {"color": TRACK_COLOR},
            "areaStyle": {"color": TRACK_COLOR, "opacity": 0.18},
            "data": [[round(float(t), 2), round(float(v), 1)] for t, v in zip(times, db, strict=True)],
            "markArea": {"silent": True, "data": [
                [{"xAxis": s["start"], "name": str(s.get("label", "")),
                  "itemStyle": {"color": section_color(str(s.get("label", ""))), "opacity": 0.14},
                  "label": {"color": CHART_TEXT, "position": "insideTop", "fontWeight": 600}},
                 {"xAxis": s["end"]}]
                for s in result.get("sections") or [] if "start" in s and "end" in s]},
        })
    if centroid:
        hz, factor = block_means(centroid, MAX_POINTS)
        times = (np.arange(len(hz)) * factor + (factor - 1) / 2) / rate
        series.append({
            "type": "line", "name": "Brightness (centroid, Hz)", "yAxisIndex": 1, "showSymbol": False,
            "lineStyle": {"color": CENTROID_COLOR, "width": 1.2}, "itemStyle": {"color": CENTROID_COLOR},
            "data": [[round(float(t), 2), round(float(v))] for t, v in zip(times, hz, strict=True)],
        })
    energy = result.get("energy")
    subtext = f"energy {float(energy):.2f} of 1" if energy is not None else ""
    if result.get("spectral_centroid") is not None:
        subtext += (" · " if subtext else "") + f"mean centroid {float(result['spectral_centroid']):.0f} Hz"
    options = _base("Energy and brightness", subtext)
    options.update({
        "legend": {"bottom": 0, "textStyle": {"color": CHART_TEXT}},
        "grid": {"left": 52, "right": 60, "top": 64, "bottom": 56},
        "xAxis": _time_axis(duration),
        "yAxis": [_axis(type="value", name="dBFS", scale=True, splitNumber=3),
                  _axis(type="value", name="Hz", scale=True, splitNumber=3, splitLine={"show": False})],
        "series": series,
    })
    return options


def mfcc_options(result: dict[str, Any]) -> dict[str, Any] | None:
    """The MFCC over time as a heatmap: coefficient (0 at the bottom) by time, each coefficient standardised
    over the track (so the timbre changes show, not the coefficients' very different scales)."""
    mfcc = (result.get("features") or {}).get("mfcc")
    if not mfcc or not mfcc[0]:
        return None
    arr = np.asarray(mfcc, dtype=np.float64)
    std = arr.std(axis=1, keepdims=True)
    z = np.where(std > 1e-9, (arr - arr.mean(axis=1, keepdims=True)) / np.where(std > 1e-9, std, 1), 0.0)
    cols, factor = block_means(z, MAX_HEATMAP_COLUMNS)
    rate = _frame_rate(result)
    labels = [mmss(i * factor / rate) for i in range(cols.shape[1])]
    data = [[x, y, round(float(cols[y, x]), 2)] for y in range(cols.shape[0]) for x in range(cols.shape[1])]
    options = _base("Timbre (MFCC)", f"{arr.shape[0]} coefficients, each standardised over the track")
    options.update({
        "tooltip": {"position": "top", "confine": True},
        "grid": {"left": 40, "right": 16, "top": 64, "bottom": 30},
        "xAxis": _axis(type="category", data=labels, splitLine={"show": False}, axisTick={"show": False}),
        "yAxis": _axis(type="category", data=[str(i) for i in range(arr.shape[0])], splitLine={"show": False},
                       name=""),
        "visualMap": {"min": -2.5, "max": 2.5, "show": False, "dimension": 2,
                      "inRange": {"color": ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]}},
        "series": [{"type": "heatmap", "name": "MFCC", "data": data, "progressive": 0}],
    })
    return options


def tempo_options(result: dict[str, Any]) -> dict[str, Any] | None:
    """The tempo between consecutive beats over time, against the detected tempo (a dashed line): steady
    music is a flat line. The title holds the tempo, its confidence, the beat count and the metre."""
    tempo, beats = result.get("tempo"), result.get("beats") or []
    if tempo is None or len(beats) < 3:
        return None
    times = np.asarray(beats, dtype=np.float64)
    gaps = np.diff(times)
    keep = gaps > 1e-3
    local = 60.0 / gaps[keep]
    mids = ((times[:-1] + times[1:]) / 2)[keep]
    local_m, _ = block_means(local, MAX_POINTS)
    mids_m, _ = block_means(mids, MAX_POINTS)
    parts = []
    if result.get("tempo_confidence") is not None:
        parts.append(f"confidence {_percent(float(result['tempo_confidence']))}")
    parts.append(f"{len(beats)} beats")
    if result.get("beats_per_bar"):
        bars = len(result.get("downbeats") or [])
        parts.append(f"{result['beats_per_bar']}/4" + (f", {bars} bars" if bars else ""))
    options = _base(f"{float(tempo):.1f} BPM", " · ".join(parts))
    options.update({
        "grid": {"left": 48, "right": 16, "top": 64, "bottom": 30},
        "xAxis": _time_axis(float(result.get("duration") or 0)),
        # At least +-8 % around the tempo, so a steady beat's jitter of a few BPM looks as small as it is.
        "yAxis": _axis(type="value", name="BPM", splitNumber=4,
                       min=5 * math.floor(min(float(local_m.min()), float(tempo) * 0.92) / 5),
                       max=5 * math.ceil(max(float(local_m.max()), float(tempo) * 1.08) / 5)),
        "series": [{
            "type": "line", "name": "Beat to beat", "showSymbol": len(local_m) <= 64, "symbolSize": 4,
            "lineStyle": {"color": ACCENT, "width": 1.5}, "itemStyle": {"color": ACCENT},
            "data": [[round(float(t), 2), round(float(v), 1)] for t, v in zip(mids_m, local_m, strict=True)],
            "markLine": {"silent": True, "symbol": "none", "data": [{"yAxis": round(float(tempo), 2)}],
                         "lineStyle": {"color": IN_KEY, "type": "dashed"},
                         "label": {"color": CHART_TEXT, "position": "insideEndTop"}},
        }],
    })
    return options
