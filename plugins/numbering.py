"""Built-in plugin ``numbering``: the ``pattern`` case-number scheme.

A company writes a format per procedure, e.g. ``KS-{yyyy}{mm}-{seq:04}``:

``{procedure}`` the procedure key in capitals · ``{yyyy}`` ``{yy}`` ``{mm}`` ``{dd}`` the opening
date in the company's time zone · ``{seq}`` / ``{seq:04}`` a sequence, zero-padded to the width.

The sequence restarts whenever the text around it changes: ``{yyyy}{mm}`` numbers per month,
``{yyyy}`` per year, no date part never. It is a counter row bumped in the opening's
transaction (``core.storage.counters``): no gaps, no duplicates under concurrency.
"""

from __future__ import annotations

import re
import zoneinfo

from core import hookimpl
from core.cases.numbering import NumberRequest
from core.storage import counters

SEQ = re.compile(r"\{seq(?::0?(\d+))?\}")


def render(fmt: str, procedure: str, local_parts: dict[str, str], seq: int | None) -> str:
    parts = {"procedure": procedure.upper(), **local_parts}
    out = fmt if seq is None else SEQ.sub(lambda m: f"{seq:0{int(m.group(1) or 0)}d}", fmt)
    for k, v in parts.items():
        out = out.replace("{" + k + "}", v)
    return out


class PatternScheme:
    """The ``pattern`` scheme: the company's ``numbering:`` text with date and counter."""

    name = "pattern"

    def next_number(self, request: NumberRequest) -> str:
        local = request.now.astimezone(zoneinfo.ZoneInfo(request.company.timezone))
        parts = {
            "yyyy": f"{local.year:04d}",
            "yy": f"{local.year % 100:02d}",
            "mm": f"{local.month:02d}",
            "dd": f"{local.day:02d}",
        }
        scope = render(SEQ.sub("#", request.format), request.procedure, parts, None)
        seq = counters.bump(request.conn, request.company_id, scope)
        return render(request.format, request.procedure, parts, seq)


@hookimpl
def kefu_case_number_schemes() -> list[PatternScheme]:
    return [PatternScheme()]
