"""A small SVG line-chart renderer for cost curves: axes, ticks, labels, one ``<path>`` per
curve, linear or log y axis. No plotting library: the output is a few kilobytes of plain
SVG 1.1 that any browser opens.

Long curves are decimated per pixel column (first, lowest, highest and last point of each
column), so a million steps draw exactly as they would in full at the chart's resolution.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from xml.sax import saxutils

import numpy as np
from numpy.typing import ArrayLike, NDArray

Scale = Literal["linear", "log"]

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 76, 24, 52, 56  # margins around the plot area
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
FONT = 'font-family="Helvetica, Arial, sans-serif"'
# What XML 1.0 cannot hold at all (C0 controls but tab and newlines, surrogates, U+FFFE/FFFF):
# a name stored before names were checked still makes a well-formed image.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    return saxutils.escape(_NOT_XML.sub("\ufffd", text))


def quoteattr(text: str) -> str:
    return saxutils.quoteattr(_NOT_XML.sub("\ufffd", text))


@dataclass(frozen=True)
class Curve:
    """One line: ``x`` and ``y`` of equal length, ``x`` increasing."""

    label: str
    x: ArrayLike
    y: ArrayLike


def nice_ticks(lo: float, hi: float, count: int = 6) -> tuple[float, float, list[float]]:
    """A range covering [lo, hi] whose ends are multiples of a 1, 2 or 5 x 10^k step, and
    its ticks (about ``count`` of them)."""
    if not hi > lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count - 1, 1)
    base = 10.0 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    ticks = [float(f"{n * step:.12g}") for n in range(first, last + 1)]
    return ticks[0], ticks[-1], ticks


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as the tick ``step`` needs (steps are 1, 2 or 5 x
    10^k); exponent notation for the very large and the very small."""
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or step < 1e-4:
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def decade_label(exponent: int) -> str:
    value = 10.0**exponent
    return f"{value:g}" if -4 <= exponent <= 5 else f"1e{exponent}"


def decimate(
    x: NDArray[np.float64], y: NDArray[np.float64], columns: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """At most four points per pixel column: its first, lowest, highest and last."""
    if len(x) <= 4 * columns:
        return x, y
    span = float(x[-1] - x[0]) or 1.0
    column = np.minimum(((x - x[0]) / span * columns).astype(np.int64), columns - 1)
    starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
    ends = np.r_[starts[1:], len(x)] - 1
    lows, highs = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    xs = np.stack([x[starts], x[starts], x[starts], x[ends]], axis=1).ravel()
    ys = np.stack([y[starts], lows, highs, y[ends]], axis=1).ravel()
    return xs, ys


class _Axis:
    """Maps data values to pixels along one axis."""

    def __init__(self, lo: float, hi: float, start_px: float, end_px: float) -> None:
        self.lo, self.hi, self.start_px, self.end_px = lo, hi, start_px, end_px

    def __call__(self, value: NDArray[np.float64]) -> NDArray[np.float64]:
        fraction = (value - self.lo) / (self.hi - self.lo)
        result: NDArray[np.float64] = self.start_px + fraction * (self.end_px - self.start_px)
        return result

    def one(self, value: float) -> float:
        return float(self(np.array([value]))[0])


def _text(x: float, y: float, content: str, **attributes: str) -> str:
    extra = "".join(f" {name.replace('_', '-')}={quoteattr(v)}" for name, v in attributes.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(content)}</text>'


def _frame(title: str, body: list[str], *, subtitle: str = "") -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label={quoteattr(title)} {FONT} '
        'font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        _text(WIDTH / 2, 24, title, text_anchor="middle", font_size="16", font_weight="bold"),
    ]
    if subtitle:
        lines.append(_text(WIDTH / 2, 40, subtitle, text_anchor="middle", fill="#555555"))
    lines.extend(body)
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def empty_chart(title: str, message: str) -> str:
    """A valid SVG with the title and a message in place of the plot."""
    return _frame(
        title,
        [_text(WIDTH / 2, HEIGHT / 2, message, text_anchor="middle", font_size="14", fill="#555")],
    )


def line_chart(
    curves: Sequence[Curve],
    *,
    title: str,
    x_label: str = "step",
    y_label: str = "cost",
    scale: Scale = "linear",
) -> str:
    """The curves on shared axes. On a log scale, values <= 0 (a cost of exactly 0) are drawn
    at the smallest positive value. Non-finite points are left out."""
    data: list[tuple[str, NDArray[np.float64], NDArray[np.float64]]] = []
    for curve in curves:
        x, y = np.asarray(curve.x, dtype=np.float64), np.asarray(curve.y, dtype=np.float64)
        keep = np.isfinite(x) & np.isfinite(y)
        if keep.any():
            data.append((curve.label, x[keep], y[keep]))
    if not data:
        return empty_chart(title, "No points to draw yet.")

    all_y = np.concatenate([y for _, _, y in data])
    if scale == "log":
        positive = all_y[all_y > 0]
        floor = float(positive.min()) if positive.size else 1.0
        data = [(label, x, np.log10(np.maximum(y, floor))) for label, x, y in data]
        all_y = np.concatenate([y for _, _, y in data])

    plot_left, plot_right = LEFT, WIDTH - RIGHT
    plot_top, plot_bottom = TOP, HEIGHT - BOTTOM
    all_x = np.concatenate([x for _, x, _ in data])
    x_min, x_max = float(all_x.min()), float(all_x.max())
    x_lo, x_hi, x_ticks = nice_ticks(x_min, x_max)
    if x_ticks[1] - x_ticks[0] < 1 and np.all(all_x == np.round(all_x)):
        # A few integer steps: a tick per step, and a step of margin on either side.
        x_ticks = [float(k) for k in range(int(x_min) - 1, int(x_max) + 2)]
        x_lo, x_hi = x_ticks[0], x_ticks[-1]
    if scale == "log":  # whole decades
        low_decade = math.floor(float(all_y.min()))
        decades = max(math.ceil(float(all_y.max())) - low_decade, 1)
        stride = math.ceil(decades / 8)
        high_decade = low_decade + stride * math.ceil(decades / stride)
        y_ticks = [float(k) for k in range(low_decade, high_decade + 1, stride)]
        y_lo, y_hi = y_ticks[0], y_ticks[-1]
    else:
        y_lo, y_hi, y_ticks = nice_ticks(float(all_y.min()), float(all_y.max()))
    to_x = _Axis(x_lo, x_hi, plot_left, plot_right)
    to_y = _Axis(y_lo, y_hi, plot_bottom, plot_top)

    body = [
        f'<rect x="{plot_left}" y="{plot_top}" width="{plot_right - plot_left}" '
        f'height="{plot_bottom - plot_top}" fill="none" stroke="#cccccc"/>'
    ]
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    for tick in x_ticks:
        px = to_x.one(tick)
        body.append(
            f'<line x1="{px:.1f}" y1="{plot_top}" x2="{px:.1f}" y2="{plot_bottom}" '
            'stroke="#eeeeee"/>'
        )
        body.append(
            f'<line x1="{px:.1f}" y1="{plot_bottom}" x2="{px:.1f}" y2="{plot_bottom + 5}" '
            'stroke="#333333"/>'
        )
        body.append(_text(px, plot_bottom + 18, tick_label(tick, x_step), text_anchor="middle"))
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    for tick in y_ticks:
        py = to_y.one(tick)
        label = decade_label(round(tick)) if scale == "log" else tick_label(tick, y_step)
        body.append(
            f'<line x1="{plot_left}" y1="{py:.1f}" x2="{plot_right}" y2="{py:.1f}" '
            'stroke="#eeeeee"/>'
        )
        body.append(
            f'<line x1="{plot_left - 5}" y1="{py:.1f}" x2="{plot_left}" y2="{py:.1f}" '
            'stroke="#333333"/>'
        )
        body.append(_text(plot_left - 8, py + 4, label, text_anchor="end"))
    body += [
        f'<line x1="{plot_left}" y1="{plot_bottom}" x2="{plot_right}" y2="{plot_bottom}" '
        'stroke="#333333"/>',
        f'<line x1="{plot_left}" y1="{plot_top}" x2="{plot_left}" y2="{plot_bottom}" '
        'stroke="#333333"/>',
        _text((plot_left + plot_right) / 2, HEIGHT - 14, x_label, text_anchor="middle"),
        _text(
            18,
            (plot_top + plot_bottom) / 2,
            y_label,
            text_anchor="middle",
            transform=f"rotate(-90 18 {(plot_top + plot_bottom) / 2:.1f})",
        ),
    ]
    for index, (label, x, y) in enumerate(data):
        xs, ys = decimate(x, y, plot_right - plot_left)
        xs_px, ys_px = to_x(xs), to_y(ys)
        d = "M" + " L".join(f"{a:.2f},{b:.2f}" for a, b in zip(xs_px, ys_px, strict=True))
        color = COLORS[index % len(COLORS)]
        body.append(
            f'<path class="curve" d="{d}" fill="none" stroke="{color}" stroke-width="1.5" '
            f'stroke-linejoin="round"><title>{escape(label)}</title></path>'
        )
        if len(xs) == 1:  # a lone point draws no line: mark it
            body.append(f'<circle cx="{xs_px[0]:.2f}" cy="{ys_px[0]:.2f}" r="3" fill="{color}"/>')
        if len(data) > 1:
            ly = plot_top + 16 + 16 * index
            body.append(
                f'<line x1="{plot_right - 150}" y1="{ly - 4}" x2="{plot_right - 130}" '
                f'y2="{ly - 4}" stroke="{color}" stroke-width="2"/>'
            )
            body.append(_text(plot_right - 124, ly, label))
    return _frame(title, body, subtitle="log scale" if scale == "log" else "")
