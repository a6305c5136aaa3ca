"""Server-rendered SVG charts: no script, nothing to download, readable without JavaScript
(the dashboard must work offline, under a CSP that allows no script at all).

Each line has its own colour (Okabe–Ito: distinct on white and for the common colour-vision
deficiencies) and, past seven lines, its own dash pattern too. Each week is a band the height
of the chart with an SVG `<title>`, which browsers show on hover: the week and every line's
value then (several lines often share a point, which would hide all but one of their own
titles). The legend is the page's (`swatch` draws its key), so that long Chinese titles wrap
as text does.

Every text placed in the SVG is escaped here (it is inserted into the page as markup)."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 44, 16, 16, 30


@dataclass(frozen=True)
class Series:
    name: str  # an id (a check's), for the page and the tests
    values: list[float | None]  # percent, None where no device was enrolled
    label: str = ""  # what a person reads (the check's title); the name without one


def colour(n: int) -> str:
    return PALETTE[n % len(PALETTE)]


def dash(n: int) -> str:
    return DASHES[(n // len(PALETTE)) % len(DASHES)]


def _stroke(n: int) -> str:
    pattern = dash(n)
    extra = f' stroke-dasharray="{pattern}"' if pattern else ""
    return f'stroke="{colour(n)}" stroke-width="2.5"{extra}'


def swatch(n: int) -> str:
    """The legend's key for line `n`: a short stroke of its colour and dash, with its dot."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" class="swatch" width="30" height="12"'
        f' viewBox="0 0 30 12" aria-hidden="true"><line x1="1" y1="6" x2="29" y2="6"'
        f' {_stroke(n)}/><circle cx="15" cy="6" r="3.5" fill="{colour(n)}"/></svg>'
    )


def trend_svg(
    labels: list[str], series: list[Series], title: str = "", week: str = "{label}",
    colon: str = ": ",
) -> str:
    """A line chart of percentages (0–100) over `labels`, one line per series; `week` words
    a label in the hover texts ("截至 {label}"), `colon` comes between a line's title and its
    value there (Chinese takes its full-width "：" after a Chinese title)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels) - 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / 100)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' role="img" aria-label={quoteattr(title or "trend")}>',
        f"<title>{escape(title)}</title>" if title else "",
    ]
    for tick in (0, 25, 50, 75, 100):
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"'
            ' stroke="#ddd" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11"'
            f' fill="#555">{tick}%</text>'
        )
    for i, label in enumerate(labels):
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="11"'
            f' fill="#555">{escape(label)}</text>'
        )
    for n, line in enumerate(series):
        points = [(x(i), y(v)) for i, v in enumerate(line.values) if v is not None]
        parts.append(f"<g data-series={quoteattr(line.name)}>")
        if len(points) > 1:
            coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{coords}" fill="none" {_stroke(n)}/>')
        for px, py in points:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour(n)}"/>')
        parts.append("</g>")
    for i, label in enumerate(labels):
        lines = [week.format(label=label)] + [
            f"{line.label or line.name}{colon}"
            + ("—" if i >= len(line.values) or line.values[i] is None
               else f"{line.values[i]:.1f}%")
            for line in series
        ]  # fmt: skip
        parts.append(
            f'<rect class="week" data-week="{i}" x="{max(LEFT, x(i) - step / 2):.1f}" y="{TOP}"'
            f' width="{min(x(i) + step / 2, LEFT + plot_w) - max(LEFT, x(i) - step / 2):.1f}"'
            f' height="{plot_h}" fill="transparent"><title>{escape(chr(10).join(lines))}'
            "</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)
