"""Hook specifications: the contract between kefu and its plugins.

Every hook is prefixed ``kefu_`` and grouped by the phase in which it is called, in that
order: **start-up** (once, before any request or case), **after commit** (outside any
action transaction; a failure there is logged and never undoes the action). Implement one
with ``@core.hookimpl`` in a module listed under the ``kefu`` entry-point group of your
package's pyproject.toml; built-in plugins use the very same group. Unknown ``kefu_``
hooks are an error at start-up (``check_pending``).

Registries (effect types, field types, dispatch strategies, channels, number schemes,
reports) combine the results of every plugin; a name registered twice is a start-up error
naming both plugins. None of them is first-result-wins.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("kefu")
hookimpl = pluggy.HookimplMarker("kefu")

# -- start-up (called once, before any request) --------------------------------------------


@hookspec
def kefu_effect_types() -> Any:
    """Return effect types (``core.effects.EffectType``) usable under ``then:`` in rule files.

    Called once at start-up, before packs are loaded. Return a list (or ``None`` for none).
    Results of all plugins are combined; a name already taken is a start-up error naming
    both plugins. ``apply`` later runs inside the action transaction.
    """


@hookspec
def kefu_field_types() -> Any:
    """Return field types (``core.fields.FieldKind``) usable as ``type:`` of a pack's fields.

    Called once at start-up, before packs are loaded. Return a list (or ``None``). Results
    of all plugins are combined; a name already taken (built-in or plugin) is a start-up
    error naming both. The coercer later runs inside the action transaction.
    """


@hookspec
def kefu_dispatch_strategies() -> Any:
    """Return dispatch strategies (``core.dispatch.Strategy``) for the ``dispatch`` effect.

    Called once at start-up. Return a list (or ``None``). Results of all plugins are
    combined; a duplicate name is a start-up error naming both plugins. A strategy's
    ``choose`` later runs inside the action transaction: it receives the eligible
    candidates and returns its choice (or ``None`` to pass to the next strategy of the
    fallback ladder) with a reason that is journaled.
    """


@hookspec
def kefu_case_number_schemes() -> Any:
    """Return case-number schemes (``core.numbering.NumberScheme``) a company may select.

    Called once at start-up. Return a list (or ``None``). Results are combined; a duplicate
    name is a start-up error. ``next_number`` runs inside the transaction that opens the
    case, so a rolled-back opening leaves no gap.
    """


@hookspec
def kefu_reports() -> Any:
    """Return reports (``core.reports.Report``) listed by ``kefu report`` and the API.

    Called once at start-up. Return a list (or ``None``). Results are combined; a
    duplicate name is a start-up error. A report runs in a read-only transaction.
    """


@hookspec
def kefu_cli_commands(cli: Any) -> None:
    """Add commands to the ``kefu`` command line.

    ``cli`` is the root ``click.Group``; call ``cli.add_command(...)``. Called once when
    the ``kefu`` command starts, before arguments are parsed. Return value ignored.
    """


@hookspec
def kefu_api_routes() -> Any:
    """Return Litestar route handlers or routers to mount in the API (pages too).

    Called once when the web application is built. Return a list (or ``None``). Results
    of all plugins are combined; Litestar rejects two handlers on one path and method at
    start-up. Handlers run per request like the built-in routes.
    """


@hookspec
def kefu_notification_channels() -> Any:
    """Return notification channels (``core.outbox.Channel`` objects) that deliver outbox rows.

    Called once when a worker (``kefu worker`` or the one embedded in ``kefu serve``) starts.
    Return a list (or ``None``). Results of all plugins are combined; two channels with the
    same ``name`` are a start-up error naming both plugins. A channel's ``deliver`` is then
    called after commit, outside any transaction, once per pending message (again after a
    failure, with the same ``idempotency_key``).
    """


# -- after commit (outside any action transaction) -----------------------------------------


@hookspec
def kefu_case_opened(event: Any) -> None:
    """A case was opened (``event`` is a ``core.events.CaseEvent``).

    Called after the opening committed, in the process that opened it. Every
    implementation is called; return values are ignored; an exception is logged with the
    plugin's name and does not undo the opening or stop other plugins.
    """


@hookspec
def kefu_step_entered(event: Any) -> None:
    """A case entered a step (``event.step``; ``event.from_step`` is where it came from).

    Called after commit, like :func:`kefu_case_opened`.
    """


@hookspec
def kefu_action_done(event: Any) -> None:
    """An action was done on a case (``event.action``, ``event.actor``, ``event.fields``).

    Called after commit, like :func:`kefu_case_opened`.
    """


@hookspec
def kefu_case_closed(event: Any) -> None:
    """A case reached a final step.

    Called after commit, like :func:`kefu_case_opened`.
    """
