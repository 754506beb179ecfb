"""The palette of static/app.css against WCAG 2.1 AA: text 4.5:1 on what it is written on,
and 3:1 for what must be seen without being read (input borders, the focus ring, chart bars).

The ratios, from the relative luminance of each sRGB colour, are the documented calculation:
``pytest tests/web/test_contrast.py -rA`` prints them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "server" / "web" / "static" / "app.css"

TEXT = [
    ("ink", "paper"), ("ink", "panel"), ("muted", "paper"), ("muted", "panel"),
    ("accent", "paper"), ("accent", "panel"), ("accent-ink", "accent"), ("accent-ink", "error-ink"),
    ("ok-ink", "ok-bg"), ("error-ink", "error-bg"), ("in-use-ink", "in-use-bg"), ("idle-ink", "idle-bg"),
    ("locked-ink", "locked-bg"), ("offline-ink", "offline-bg"), ("locked-out-ink", "locked-out-bg"),
    ("authorising-ink", "authorising-bg"),
]  # fmt: skip
"""(text, background): every pair the stylesheet writes text with."""

NON_TEXT = [
    ("line", "paper"), ("line", "panel"), ("focus", "paper"), ("focus", "panel"),
    *((f"chart-{n}", "paper") for n in range(1, 7)),
    ("in-use-ink", "paper"), ("idle-ink", "paper"), ("offline-ink", "paper"), ("locked-out-ink", "paper"),
]  # fmt: skip
"""(mark, background): borders, the focus ring (drawn outside the element, on the page), chart
bars, and the machine cards' coloured edges."""


def palette() -> dict[str, str]:
    css = CSS.read_text(encoding="utf-8")
    root = css[css.index(":root") : css.index("}", css.index(":root"))]
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", root))


def luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_calculation_matches_known_ratios() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("foreground", "background"), TEXT)
def test_text_meets_aa(foreground: str, background: str) -> None:
    colours = palette()
    ratio = contrast(colours[foreground], colours[background])
    print(f"{foreground} on {background}: {ratio:.2f}:1")
    assert ratio >= 4.5


@pytest.mark.parametrize(("mark", "background"), NON_TEXT)
def test_marks_meet_3_to_1(mark: str, background: str) -> None:
    colours = palette()
    ratio = contrast(colours[mark], colours[background])
    print(f"{mark} on {background}: {ratio:.2f}:1")
    assert ratio >= 3.0


def test_every_colour_of_the_palette_is_checked() -> None:
    checked = {name for pair in TEXT + NON_TEXT for name in pair}
    assert set(palette()) <= checked
