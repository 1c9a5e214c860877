"""Small SVG charts for docs/benchmarks.md: lines (distributions, steps) and grouped bars.
Plain text out; no plotting library needed."""
from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

COLORS = {"ours": "#1f6feb", "app_queue": "#d1242f",
          "ours: asterisk": "#8cb4f5", "ours: server": "#1f6feb", "app_queue: asterisk": "#d1242f"}
PALETTE = ("#1f6feb", "#d1242f", "#2da44e", "#bf8700", "#8250df", "#57606a", "#e16f24",
           "#1b7c83", "#bc4c00", "#6e7781", "#cf222e", "#0550ae")
W, H = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    out, t = [], start
    while t <= hi + step * 1e-9:
        if t >= lo - step * 1e-9:
            out.append(round(t, 10))
        t += step
    return out


def _log_ticks(lo: float, hi: float) -> list[float]:
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


class _Axes:
    def __init__(self, xs: Sequence[float], ys: Sequence[float], log_x: bool, log_y: bool,
                 x_min: float | None = None, y_min: float | None = None,
                 y_max: float | None = None) -> None:
        self.log_x, self.log_y = log_x, log_y
        pos = [x for x in xs if x > 0] if log_x else list(xs)
        self.x0 = x_min if x_min is not None else (min(pos) if pos else 0.0)
        self.x1 = max(pos) if pos else 1.0
        ypos = [y for y in ys if y > 0] if log_y else list(ys)
        self.y0 = y_min if y_min is not None else min(0.0, min(ypos) if ypos else 0.0)
        self.y1 = y_max if y_max is not None else (max(ypos) if ypos else 1.0)
        if log_x:
            self.x0 = 10 ** math.floor(math.log10(max(self.x0, 1e-9)))
            self.x1 = 10 ** math.ceil(math.log10(max(self.x1, self.x0 * 10)))
        elif self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        if log_y:
            self.y0 = 10 ** math.floor(math.log10(max(self.y0 if self.y0 > 0 else min(ypos or [1]), 1e-9)))
            self.y1 = 10 ** math.ceil(math.log10(max(self.y1, self.y0 * 10)))
        elif self.y1 <= self.y0:
            self.y1 = self.y0 + 1.0
        else:
            self.y1 += (self.y1 - self.y0) * 0.05

    def px(self, x: float) -> float:
        if self.log_x:
            x = max(x, self.x0)
            f = (math.log10(x) - math.log10(self.x0)) / (math.log10(self.x1) - math.log10(self.x0))
        else:
            f = (x - self.x0) / (self.x1 - self.x0)
        return LEFT + f * (W - LEFT - RIGHT)

    def py(self, y: float) -> float:
        if self.log_y:
            y = max(y, self.y0)
            f = (math.log10(y) - math.log10(self.y0)) / (math.log10(self.y1) - math.log10(self.y0))
        else:
            f = (y - self.y0) / (self.y1 - self.y0)
        return H - BOTTOM - f * (H - TOP - BOTTOM)

    def frame(self, title: str, x_label: str, y_label: str) -> list[str]:
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
               f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
               f'<rect width="{W}" height="{H}" fill="white"/>',
               f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14" '
               f'font-weight="bold">{escape(title)}</text>']
        xt = _log_ticks(self.x0, self.x1) if self.log_x else _nice_ticks(self.x0, self.x1)
        yt = _log_ticks(self.y0, self.y1) if self.log_y else _nice_ticks(self.y0, self.y1)
        for t in xt:
            x = self.px(t)
            out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}" '
                       f'stroke="#eee"/>')
            out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
                       f'{_fmt(t)}</text>')
        for t in yt:
            y = self.py(t)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" '
                       f'stroke="#eee"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" '
                   f'height="{H - TOP - BOTTOM}" fill="none" stroke="#888"/>')
        out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 12}" text-anchor="middle">'
                   f'{escape(x_label)}</text>')
        out.append(f'<text x="16" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 16 {(TOP + H - BOTTOM) / 2})">{escape(y_label)}</text>')
        return out


def _legend(names: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for i, (name, color) in enumerate(names):
        y = TOP + 14 + i * 16
        out.append(f'<line x1="{LEFT + 10}" y1="{y - 4}" x2="{LEFT + 30}" y2="{y - 4}" '
                   f'stroke="{color}" stroke-width="3"/>')
        out.append(f'<text x="{LEFT + 36}" y="{y}">{escape(name)}</text>')
    return out


def color_of(name: str, i: int) -> str:
    return COLORS.get(name, PALETTE[i % len(PALETTE)])


def lines(title: str, series: dict[str, Sequence[tuple[float, float]]], x_label: str,
          y_label: str, *, log_x: bool = False, log_y: bool = False, step: bool = False,
          markers: bool = False, y_min: float | None = None, y_max: float | None = None,
          hlines: Sequence[tuple[float, str]] = ()) -> str:
    """One line per series; ``step``: drawn as a staircase (distribution functions);
    ``hlines``: horizontal reference lines (value, label), e.g. a target."""
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts] + [v for v, _ in hlines]
    ax = _Axes(xs or [0, 1], ys or [0, 1], log_x, log_y, y_min=y_min, y_max=y_max)
    out = ax.frame(title, x_label, y_label)
    for value, label in hlines:
        y = ax.py(value)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" '
                   f'stroke="#555" stroke-dasharray="5,4"/>')
        out.append(f'<text x="{W - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" fill="#555">'
                   f'{escape(label)}</text>')
    legend = []
    for i, (name, pts) in enumerate(series.items()):
        color = color_of(name, i)
        legend.append((name, color))
        if not pts:
            continue
        coords = []
        prev_y = None
        for x, y in pts:
            if step and prev_y is not None:
                coords.append(f"{ax.px(x):.1f},{ax.py(prev_y):.1f}")
            coords.append(f"{ax.px(x):.1f},{ax.py(y):.1f}")
            prev_y = y
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                   f'points="{" ".join(coords)}"/>')
        if markers:
            for x, y in pts:
                out.append(f'<circle cx="{ax.px(x):.1f}" cy="{ax.py(y):.1f}" r="3.5" '
                           f'fill="{color}"/>')
    out += _legend(legend)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def bars(title: str, groups: Sequence[str], series: dict[str, Sequence[float | None]],
         x_label: str, y_label: str) -> str:
    """Grouped bars: one group per label in ``groups``, one bar per series (None: no bar)."""
    vals = [v for vs in series.values() for v in vs if v is not None]
    ax = _Axes([0, 1], vals or [0, 1], False, False, y_min=0.0)
    out = ax.frame(title, x_label, y_label)
    # the x axis of a bar chart is the groups: blank the numeric x tick labels
    out = [line for line in out if not (line.startswith("<text") and f'y="{H - BOTTOM + 16}"' in line)]
    n_groups, n_series = max(1, len(groups)), max(1, len(series))
    width = (W - LEFT - RIGHT) / n_groups
    bar_w = width * 0.7 / n_series
    legend = []
    for j, (name, vs) in enumerate(series.items()):
        color = color_of(name, j)
        legend.append((name, color))
        for i, v in enumerate(vs):
            if v is None:
                continue
            x = LEFT + i * width + width * 0.15 + j * bar_w
            y = ax.py(v)
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                       f'height="{ax.py(0) - y:.1f}" fill="{color}"/>')
    for i, g in enumerate(groups):
        out.append(f'<text x="{LEFT + (i + 0.5) * width:.1f}" y="{H - BOTTOM + 16}" '
                   f'text-anchor="middle">{escape(str(g))}</text>')
    out += _legend(legend)
    out.append("</svg>")
    return "\n".join(out) + "\n"
