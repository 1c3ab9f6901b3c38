"""Hook specifications: the contract between kefu and its plugins.

Every hook is prefixed ``kefu_`` and grouped by the phase in which it is called, in that
order. Implement one with ``@core.hookimpl`` in a module listed under the ``kefu``
entry-point group of your package's pyproject.toml; built-in plugins use the very same
group. Unknown ``kefu_`` hooks are an error at start-up (``check_pending``).
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
    both plugins.
    """


@hookspec
def kefu_cli_commands(cli: Any) -> None:
    """Add commands to the ``kefu`` command line.

    ``cli`` is the root ``click.Group``; call ``cli.add_command(...)``. Called once when
    the ``kefu`` command starts, before arguments are parsed. Return value ignored.
    """


# -- after commit (called by the worker, outside any action transaction) -------------------


@hookspec
def kefu_notification_channels() -> Any:
    """Return notification channels (``core.outbox.Channel`` objects) that deliver outbox rows.

    Called once when a worker (``kefu worker`` or the one embedded in ``kefu serve``) starts.
    Return a list (or ``None``). Results of all plugins are combined; two channels with the
    same ``name`` are a start-up error naming both plugins. A channel's ``deliver`` is then
    called after commit, outside any transaction, once per pending message (again after a
    failure, with the same ``idempotency_key``).
    """
