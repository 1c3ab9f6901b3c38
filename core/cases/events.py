"""Lifecycle events: what plugins hear after a change committed.

The case service queues a :class:`CaseEvent` per thing that happened while it builds a
change (opened, step entered, action done, closed) and hands them to the plugins' hooks
(``kefu_case_opened``, ``kefu_step_entered``, ``kefu_action_done``, ``kefu_case_closed``)
only **after the transaction committed**; a rolled-back change emits nothing. Every plugin
is called; one that raises is logged with its name and does not stop the others. Plugins a
company disables (``plugins: {name: {enabled: false}}``) hear nothing of that company.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from core.spec.extensions import Extensions, enabled_for

log = logging.getLogger("kefu.events")

HOOKS = {
    "opened": "kefu_case_opened",
    "step_entered": "kefu_step_entered",
    "action_done": "kefu_action_done",
    "closed": "kefu_case_closed",
}


@dataclass(frozen=True)
class CaseEvent:
    """One thing that happened to a case. ``kind``: opened, step_entered, action_done, closed."""

    kind: str
    company: str
    case_id: int
    number: str
    procedure: str
    step: str
    actor: str
    at: dt.datetime
    from_step: str | None = None
    action: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class EventQueue:
    """Events of the transaction in progress, per thread.

    Flushed to the plugins after commit, dropped on rollback.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def add(self, event: CaseEvent) -> None:
        """Queue an event of the change in progress."""
        q = getattr(self._local, "q", None)
        if q is None:
            q = self._local.q = []
        q.append(event)

    def take(self) -> list[CaseEvent]:
        """The queued events, emptying the queue (after commit)."""
        q = getattr(self._local, "q", None) or []
        self._local.q = []
        return q

    def drop(self) -> None:
        """Forget the queued events (the change rolled back)."""
        self._local.q = []


def listening(extensions: Extensions) -> bool:
    """Whether any plugin implements a lifecycle hook (else the service queues nothing)."""
    return any(extensions.hook_impls(name) for name in HOOKS.values())


def emit(events: list[CaseEvent], companies: dict[str, Any], extensions: Extensions) -> int:
    """Call every plugin's hook for each event; returns how many calls raised (they are logged)."""
    failures = 0
    for ev in events:
        name = HOOKS[ev.kind]
        company = companies.get(ev.company)
        for impl in extensions.hook_impls(name):
            if company is not None and not enabled_for(company, impl.plugin_name):
                continue
            try:
                impl.function(event=ev)
            except Exception:
                failures += 1
                log.exception(
                    "plugin '%s' failed in %s for case %s", impl.plugin_name, name, ev.number
                )
    return failures
