"""A procedure drawn as an SVG swim-lane diagram, straight from its pack definition.

Roles are the lanes (in the pack's order); each step is a box in the lane of the first
role that acts there (steps where nobody acts, such as final ones, get a lane of their
own at the bottom), placed left to right in the order a case can reach them from
``start``; each action is an arrow to the step it leads to, labelled with the action
(a branching action draws one dashed arrow per branch, an action that stays draws a loop).
Pure SVG with presentation attributes only (no script, no style sheet), every text
escaped: the staff pages embed it and ``kefu diagram PACK`` writes the same bytes.
"""

from __future__ import annotations

from collections import deque
from xml.sax.saxutils import escape, quoteattr

from core.spec.definitions import ActionDef, Label, PackDef

COL_W, BOX_W, BOX_H = 190, 150, 46
LANE_H, LANE_LABEL_W, TOP = 110, 130, 40
NO_LANE = ""


def _text(label: Label | None, locale: str, fallback: str) -> str:
    return label.text(locale) if label is not None else fallback


def _actions(pack: PackDef, step_key: str) -> dict[str, ActionDef]:
    step = pack.steps[step_key]
    out = dict(step.actions)
    for name in step.use:  # shared actions of the pack (``actions:`` + ``use:``)
        if name in pack.actions:
            out.setdefault(name, pack.actions[name])
    return out


def _targets(action: ActionDef, here: str) -> list[tuple[str, bool]]:
    """(target step, conditional?) for each way the action can go."""
    if action.to is None:
        return [(here, False)]
    if isinstance(action.to, str):
        return [(action.to, False)]
    return [(b.to, b.when is not None) for b in action.to]


def step_order(pack: PackDef) -> list[str]:
    """Steps in the order a case reaches them from ``start`` (breadth first), then the rest."""
    seen: list[str] = []
    queue = deque([pack.start])
    while queue:
        key = queue.popleft()
        if key in seen or key not in pack.steps:
            continue
        seen.append(key)
        for action in _actions(pack, key).values():
            queue.extend(t for t, _ in _targets(action, key) if t not in seen)
    return seen + [k for k in pack.steps if k not in seen]


def procedure_svg(pack: PackDef, locale: str = "zh-CN") -> str:
    """The pack as an SVG document (UTF-8 text)."""
    order = step_order(pack)
    lanes = list(pack.roles)
    lane_of = {}
    for key in order:
        roles = [r for r in pack.steps[key].role if r in pack.roles]
        lane_of[key] = roles[0] if roles else NO_LANE
    if any(v == NO_LANE for v in lane_of.values()):
        lanes.append(NO_LANE)
    width = LANE_LABEL_W + COL_W * max(len(order), 1) + 40
    height = TOP + LANE_H * len(lanes) + 20
    pos = {
        key: (LANE_LABEL_W + 20 + COL_W * i, TOP + LANE_H * lanes.index(lane_of[key]) + 32)
        for i, key in enumerate(order)
    }
    title = _text(pack.title, locale, pack.procedure)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label={quoteattr(title)} '
        'font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#444"/></marker></defs>',
        f'<text x="10" y="24" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for i, lane in enumerate(lanes):
        y = TOP + LANE_H * i
        fill = "#f4f6f8" if i % 2 == 0 else "#ffffff"
        name = _text(pack.roles[lane].label, locale, lane) if lane else "—"
        out.append(
            f'<g class="lane" data-role={quoteattr(lane)}>'
            f'<rect x="0" y="{y}" width="{width}" height="{LANE_H}" fill="{fill}" '
            'stroke="#ccd"/>'
            f'<text x="10" y="{y + LANE_H // 2}" font-weight="bold">{escape(name)}</text></g>'
        )
    # the opening: an arrow into the start step
    if pack.start in pos:
        sx, sy = pos[pack.start]
        out.append(
            f'<circle cx="{sx - 22}" cy="{sy + BOX_H // 2}" r="6" fill="#444"/>'
            f'<line x1="{sx - 16}" y1="{sy + BOX_H // 2}" x2="{sx}" y2="{sy + BOX_H // 2}" '
            'stroke="#444" marker-end="url(#arrow)"/>'
        )
    for key in order:
        x, y = pos[key]
        for n, (name, action) in enumerate(_actions(pack, key).items()):
            label = _text(action.label, locale, name)
            for target, conditional in _targets(action, key):
                if target not in pos:
                    continue
                out.append(_edge(pos[key], pos[target], label, name, key, target, conditional, n))
    for key in order:
        x, y = pos[key]
        step = pack.steps[key]
        stroke = 'stroke="#333" stroke-width="3"' if step.final else 'stroke="#333"'
        label = _text(step.label, locale, key)
        out.append(
            f'<g class="step" data-step={quoteattr(key)}>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="#e8f0fe" '
            f"{stroke}/>"
            f'<text x="{x + BOX_W // 2}" y="{y + BOX_H // 2 + 4}" text-anchor="middle">'
            f"{escape(_clip(label))}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _clip(text: str, limit: int = 18) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edge(
    a: tuple[int, int],
    b: tuple[int, int],
    label: str,
    name: str,
    source: str,
    target: str,
    conditional: bool,
    n: int,
) -> str:
    (ax, ay), (bx, by) = a, b
    dash = ' stroke-dasharray="5,3"' if conditional else ""
    attrs = (
        f'class="action" data-action={quoteattr(name)} data-from={quoteattr(source)} '
        f"data-to={quoteattr(target)}"
    )
    if a == b:  # stays at the step: a loop above the box
        x0, y0 = ax + BOX_W // 2 - 20, ay
        path = f"M{x0},{y0} C{x0 - 10},{y0 - 34} {x0 + 50},{y0 - 34} {x0 + 40},{y0}"
        lx, ly = x0 + 20, y0 - 30 - 12 * n
    else:
        forward = bx > ax
        x1 = ax + BOX_W if forward else ax
        x2 = bx if forward else bx + BOX_W
        y1, y2 = ay + BOX_H // 2 + (n % 3) * 6 - 6, by + BOX_H // 2
        bend = 0 if forward else 40 + 14 * n
        if forward:
            mid = (x1 + x2) // 2
            path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
        else:  # backwards: under the boxes
            low = max(ay, by) + BOX_H + bend
            c1, c2 = ax + BOX_W // 2, bx + BOX_W // 2
            path = f"M{c1},{ay + BOX_H} C{c1},{low} {c2},{low} {c2},{by + BOX_H}"
        if forward:
            lx, ly = (x1 + x2) // 2, (y1 + y2) // 2 - 6
        else:
            lx, ly = (ax + bx + BOX_W) // 2, low - 4
    return (
        f'<g {attrs}><path d="{path}" fill="none" stroke="#444"{dash} '
        'marker-end="url(#arrow)"/>'
        f'<text x="{lx}" y="{ly}" text-anchor="middle" font-size="11" fill="#1a1a6e">'
        f"{escape(_clip(label, 16))}</text></g>"
    )
