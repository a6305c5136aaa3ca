"""Server-rendered SVG charts: no script, nothing to download, readable without JavaScript.

Every text placed in the SVG is escaped here (it is inserted into the page as markup)."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

# Distinct on white and for the common colour-vision deficiencies (Okabe–Ito palette).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 150, 16, 30


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float | None]  # percent, None where no device was enrolled


def trend_svg(labels: list[str], series: list[Series], title: str = "") -> str:
    """A line chart of percentages (0–100) over `labels`, one line per series, with a legend."""
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
        colour = PALETTE[n % len(PALETTE)]
        points = [(x(i), y(v)) for i, v in enumerate(line.values) if v is not None]
        parts.append(f"<g data-series={quoteattr(line.name)}>")
        if len(points) > 1:
            coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"'
                "/>"
            )
        for (px, py), value in zip(points, [v for v in line.values if v is not None],
                                   strict=True):  # fmt: skip
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(line.name)}: {value:.1f}%</title></circle>"
            )
        parts.append("</g>")
        legend_y = TOP + 14 + n * 18
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 12}" y="{legend_y - 9}" width="12" height="4"'
            f' fill="{colour}"/>'
            f'<text x="{WIDTH - RIGHT + 30}" y="{legend_y - 4}" font-size="12"'
            f' fill="#222">{escape(line.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
