"""Charts drawn on the server as inline SVG: no script, no library, printable.

Each chart is an ``<svg role="img">`` named by its ``<title>`` and described by its
``<desc>``; the page puts the same figures in a table beside it for whoever does not see
it. Series are told apart by the ``series-N`` classes of ``static/app.css`` (colours that
keep 3:1 against the page) and by the legend's order, which is the stacking order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from server.web.i18n import Translator

SERIES = 6


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]


def _ticks(top: float) -> list[float]:
    """Four or five round steps from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 4
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(int(top / step) + 2)]


def stacked_bars(
    t: Translator, *, title: str, description: str, categories: Sequence[str], series: Sequence[Series],
    unit: str, ident: str, width: int = 720, height: int = 300,
) -> Markup:  # fmt: skip
    """Vertical bars, one per category, each stacking its series' values."""
    left, right, top, bottom = 48, 12, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    ticks = _ticks(max(totals, default=0))
    scale = plot_h / ticks[-1]
    slot = plot_w / max(len(categories), 1)
    bar = max(slot * 0.7, 1)
    parts = [
        f'<svg class="chart" id="{ident}" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title><desc id="{ident}-desc">{escape(description)}</desc>',
    ]
    for tick in ticks:
        y = top + plot_h - tick * scale
        parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(t.number(tick, 1 if tick % 1 else 0))}</text>'
        )
    parts.append(f'<text x="4" y="{top + 10}">{escape(unit)}</text>')
    every = max(1, len(categories) // 13 + 1)
    for i, category in enumerate(categories):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for n, one in enumerate(series):
            value = one.values[i]
            if value <= 0:
                continue
            h = value * scale
            y -= h
            label = f"{one.label}, {category}: {t.number(value, 1)} {unit}"
            parts.append(
                f'<rect class="series-{n % SERIES + 1}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                f"<title>{escape(label)}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle">{escape(category)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


def horizontal_bars(
    t: Translator, *, title: str, description: str, labels: Sequence[str], values: Sequence[float],
    unit: str, ident: str, width: int = 720,
) -> Markup:  # fmt: skip
    """One bar per label, longest first as given; the value written at its end."""
    row, left, right = 28, 170, 90
    height = max(len(labels), 1) * row + 8
    top = max(values, default=0) or 1
    plot_w = width - left - right
    parts = [
        f'<svg class="chart" id="{ident}" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title><desc id="{ident}-desc">{escape(description)}</desc>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 4 + i * row
        w = value / top * plot_w
        parts.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{escape(label[:24])}</text>')
        parts.append(
            f'<rect class="series-{i % SERIES + 1}" x="{left}" y="{y + 4}" width="{max(w, 1):.1f}" height="{row - 10}"/>'
        )
        parts.append(
            f'<text x="{left + w + 6:.1f}" y="{y + 17}">{escape(t.number(value, 1))} {escape(unit)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped
