"""The verdict as a picture for report.html: people look before they read.

Left, each validation seed's mean test score of the baseline and of the recommendation, joined
by a line (the comparison is paired by seed: a line rising for every seed is what a real gain
looks like); right, the gain with the interval its verdict rests on, against 0. Inline SVG, so the report stays
one plain HTML file with no scripts and needs no plotting library.
"""

from __future__ import annotations

import html
import statistics
from typing import Dict, List, Optional

from .comparison import interval

WIDTH, HEIGHT, TOP, BOTTOM = 620, 230, 30, 190


def _scale(low: float, high: float, start: float, end: float):
    span = (high - low) or 1.0
    return lambda v: start + (v - low) / span * (end - start)


def verdict_svg(comparison: Dict, recommended: str, metric: str) -> Optional[str]:
    """The SVG, or None when no seed has scores for both configurations."""
    by_seed = comparison.get("scores_by_seed") or {}
    rec, base = by_seed.get("recommended", {}), by_seed.get("baseline", {})
    seeds = sorted(set(rec) & set(base), key=str)
    if not seeds:
        return None
    pairs = [(statistics.fmean(base[s]), statistics.fmean(rec[s])) for s in seeds]
    values = [v for pair in pairs for v in pair]
    pad = (max(values) - min(values)) * 0.1 or 0.01
    y = _scale(min(values) - pad, max(values) + pad, BOTTOM, TOP)
    x_base, x_rec = 90, 230
    parts: List[str] = [
        f"<text x='{x_base}' y='{BOTTOM + 22}' text-anchor='middle'>baseline</text>",
        f"<text x='{x_rec}' y='{BOTTOM + 22}' text-anchor='middle'>{html.escape(recommended)}</text>",
        f"<text x='20' y='16'>{html.escape(metric)} per seed (mean over test conversations)</text>",
        f"<text x='8' y='{y(max(values)) + 4:.1f}' font-size='10'>{max(values):.3f}</text>",
        f"<text x='8' y='{y(min(values)) + 4:.1f}' font-size='10'>{min(values):.3f}</text>",
    ]
    for seed, (b, r) in zip(seeds, pairs):
        colour = "#2a7" if r > b else "#c44" if r < b else "#888"
        parts.append(f"<line x1='{x_base}' y1='{y(b):.1f}' x2='{x_rec}' y2='{y(r):.1f}' stroke='{colour}' "
                     f"stroke-width='1.5'><title>seed {html.escape(str(seed))}: {b:.4f} -> {r:.4f}</title></line>")
        parts += [f"<circle cx='{x}' cy='{y(v):.1f}' r='3.5' fill='{colour}'/>" for x, v in ((x_base, b), (x_rec, r))]
    gain, ci = comparison.get("gain"), interval(comparison)
    if gain is not None:
        ends = [gain, 0.0] + (list(ci) if ci else [])
        pad = (max(ends) - min(ends)) * 0.15 or 0.01
        x = _scale(min(ends) - pad, max(ends) + pad, 340, WIDTH - 30)
        mid = (TOP + BOTTOM) / 2
        level = comparison.get("level_adjusted", 0.95)
        parts += [f"<text x='340' y='16'>gain, {level:.1%} interval ({html.escape(str(comparison.get('verdict')))})</text>",
                  f"<line x1='{x(0):.1f}' y1='{TOP}' x2='{x(0):.1f}' y2='{BOTTOM}' stroke='#999' stroke-dasharray='4'/>",
                  f"<text x='{x(0):.1f}' y='{BOTTOM + 22}' text-anchor='middle' font-size='11'>0</text>"]
        if ci:
            parts.append(f"<line x1='{x(ci[0]):.1f}' y1='{mid}' x2='{x(ci[1]):.1f}' y2='{mid}' stroke='#246' "
                         "stroke-width='3'/>")
            parts += [f"<text x='{x(v):.1f}' y='{mid + 20}' text-anchor='middle' font-size='10'>{v:+.4f}</text>"
                      for v in ci]
        parts.append(f"<circle cx='{x(gain):.1f}' cy='{mid}' r='5' fill='#246'><title>gain {gain:+.4f}</title></circle>")
        parts.append(f"<text x='{x(gain):.1f}' y='{mid - 12}' text-anchor='middle' font-size='11'>{gain:+.4f}</text>")
    return (f"<svg class='verdict' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
            f"font-family='sans-serif' font-size='12'>{''.join(parts)}</svg>")
