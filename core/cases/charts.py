"""Charts of reports as SVG (pygal), self-contained: no script, nothing fetched.

A report may answer with a :class:`Chart` (bars per label, one series per category,
stacked or side by side); :func:`svg` draws it. The SVG goes into the API
(``GET /api/v1/reports/{name}/chart``), into a report's PDF and into records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: fonts for Chinese labels (fonts-noto-cjk), then whatever the viewer has
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S | re.I)
FONT = "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', sans-serif"


@dataclass
class Chart:
    """A bar chart: ``labels`` along the x axis, one bar (or stack part) per series."""

    title: str
    labels: list[str]
    series: dict[str, list[float]] = field(default_factory=dict)
    stacked: bool = True
    y_title: str = ""


def svg(chart: Chart, width: int = 800, height: int = 420) -> str:
    """The chart as an SVG document (text)."""
    # pygal takes a while to import, and only reports that draw a chart need it
    import pygal
    from pygal.style import Style

    style = Style(
        font_family=FONT,
        background="white",
        plot_background="white",
        title_font_size=16,
        label_font_size=11,
        legend_font_size=11,
    )
    cls = pygal.StackedBar if chart.stacked else pygal.Bar
    graph = cls(
        width=width,
        height=height,
        style=style,
        title=chart.title,
        y_title=chart.y_title or None,
        x_label_rotation=0 if len(chart.labels) <= 8 else 30,
        legend_at_bottom=True,
        print_values=False,
        js=[],  # pygal links its tooltip script from the web by default: none here
        disable_xml_declaration=True,
        show_y_guides=True,
    )
    graph.x_labels = chart.labels
    for name, values in chart.series.items():
        graph.add(name, values)
    # pygal writes its configuration into an inline script even without its tooltip
    # script: a chart here is a picture and runs nothing
    return _SCRIPT.sub("", str(graph.render(is_unicode=True)))
