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

A plugin module may define ``settings_model`` (a pydantic model): a company's
``plugins: {<name>: {settings: {...}}}`` is validated against it at load time (K601), and
``core.runtime.plugins.company_settings(company, name)`` returns the validated object.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("kefu")
hookimpl = pluggy.HookimplMarker("kefu")

# -- start-up (called once, before any request) --------------------------------------------


@hookspec
def kefu_effect_types() -> list[Any] | None:
    """Return effect types usable under ``then:`` in rule files.

    Each is a ``core.spec.effects.EffectType(name, args, apply, check, doc)``: ``args`` a
    pydantic model of the effect's argument (checked at load time, errors with
    file:line:col); ``check(args, pack)`` — or ``check(args, pack, extensions)`` to see
    what the plugins registered (a ``core.spec.extensions.Extensions``) — optional
    cross-checks against the pack, returning ``core.spec.effects.Problem`` items;
    ``apply(change, args, rule_id)`` changes the ``core.spec.effects.Change`` being built
    (fields, assignees, step, journal notes, outbox) and must not write to the database
    itself (``change.context["conn"]`` is there to read; ``change.context["extensions"]``
    is the plugin registry, e.g. its ``strategies``).

    Called once at start-up, before packs are loaded. Return a list (``None``: none).
    Results of all plugins are combined, none wins; a name that is built in or already
    registered is a start-up error naming both plugins. ``apply`` runs inside the action's
    transaction: raising there rolls the whole action back.
    """


@hookspec
def kefu_field_types() -> list[Any] | None:
    """Return field types usable as ``type:`` of a pack's fields.

    Each is an object (``core.spec.fields.FieldKind``) with ``name``; ``fact_kind`` (how
    conditions see the value: ``number``, ``integer``, ``text``, ``boolean``, ``date``);
    optional ``options_model`` (pydantic model of the field's ``options:``, checked at load
    time); ``coerce(fdef, value)`` returning the stored JSON value or raising
    ``core.spec.fields.FieldValueError`` (a form error naming the field); ``fact(fdef, stored)``
    the scalar rules compare (``None``: no value); ``json_schema(fdef)``.

    Called once at start-up, before packs are loaded. Return a list (``None``: none).
    Results are combined; a built-in name or one registered twice is a start-up error
    naming both plugins. ``coerce`` runs while a form is validated, before the action's
    transaction.
    """


@hookspec
def kefu_dispatch_strategies() -> list[Any] | None:
    """Return dispatch strategies a ``dispatch`` effect may name in ``strategies:``.

    Each has ``name`` and ``choose(candidates, request)``: ``candidates`` are
    ``core.cases.dispatch.Candidate`` (username, skills, region, location, open_cases) holding the
    role; ``request`` a ``core.cases.dispatch.DispatchRequest`` (company, case number, fields, the
    effect's arguments, ``counter(scope)`` for turn-taking). Return a
    ``core.cases.dispatch.Choice(username, reason)`` — the reason is journaled — or ``None`` to pass
    to the next strategy of the ladder (after the last: the role's queue).

    Called once at start-up. Return a list (``None``: none). Results are combined; a
    duplicate name is a start-up error naming both plugins. ``choose`` runs inside the
    action's transaction.
    """


@hookspec
def kefu_pack_dirs() -> list[Any] | None:
    """Return directories of procedure packs the plugin ships (each holding ``procedure.yaml``).

    Return a list of ``pathlib.Path`` (``None``: none), e.g. the ``rules/`` folder inside
    your package: ``[Path(__file__).parent / "rules" / "warranty-desk"]``. The packs are
    loaded and checked like those of the ``rules/`` directory (``kefu validate`` reports
    their problems with their file paths); a company enables them under ``procedures:``.
    A pack of the same key in ``rules/`` wins, so a company can adapt a shipped pack.

    Called once at start-up, when the catalog is loaded. Results of all plugins are
    combined.
    """


@hookspec
def kefu_case_number_schemes() -> list[Any] | None:
    """Return case-number schemes a company selects with ``number_scheme:``.

    Each has ``name`` and ``next_number(request)`` returning the new case's number; the
    ``core.cases.numbering.NumberRequest`` carries the transaction (``conn``), the company, the
    procedure, its ``numbering`` format and the opening instant. Use
    ``core.storage.counters.bump(conn, company_id, scope)`` for sequences.

    Called once at start-up. Return a list (``None``: none). Results are combined; a
    duplicate name is a start-up error naming both plugins. ``next_number`` runs inside
    the transaction that opens the case, so a rolled-back opening leaves no gap.
    """


@hookspec
def kefu_reports() -> list[Any] | None:
    """Return reports, run by ``kefu report NAME`` and ``GET /api/v1/reports/{name}``.

    Each has ``name``, ``title`` and ``run(request)`` returning a
    ``core.cases.reports.ReportResult(columns, rows, notes)``; the
    ``core.cases.reports.ReportRequest`` carries a read-only connection, the company and the
    caller's parameters (strings).

    Called once at start-up. Return a list (``None``: none). Results are combined; a
    duplicate name is a start-up error naming both plugins. ``run`` runs per request in a
    read-only transaction of one company.
    """


@hookspec
def kefu_cli_commands(cli: Any) -> None:
    """Add commands to the ``kefu`` command line.

    ``cli`` is the root ``click.Group``; call ``cli.add_command(...)``. Called once when
    the ``kefu`` command starts, before arguments are parsed. Return value ignored.
    """


@hookspec
def kefu_api_routes() -> list[Any] | None:
    """Return Litestar route handlers, controllers or routers to mount in the API (pages too).

    They are mounted as given (use paths under ``/api/v1/<your plugin>/``), appear in the
    OpenAPI document, and sit behind the same authentication as the built-in routes
    (``exclude_from_auth=True`` opts out). Depend on ``svc`` for the case service; document
    the problem answers with ``responses=api.problems.errors(404, ...)`` (401 is always there).

    Called once when the web application is built. Return a list (``None``: none).
    Results are combined; Litestar refuses two handlers on one path and method at start-up.
    Handlers run per request like the built-in routes.
    """


@hookspec
def kefu_notification_channels() -> list[Any] | None:
    """Return notification channels that deliver outbox messages.

    Each has ``name`` and ``deliver(message, settings)``: ``message`` a
    ``core.runtime.outbox.OutboxMessage`` (recipient, template, payload, ``idempotency_key``),
    ``settings`` the company's ``channels: {name: {...}}`` entry. Return when delivered;
    raise ``core.runtime.outbox.DeliveryError`` to retry later (``permanent=True``: give up).

    Called once at start-up; the workers (``kefu worker``, the one embedded in ``kefu serve``)
    use the result. Return a list (or ``None``). Results of all plugins are combined; two
    channels with the same ``name`` are a start-up error naming both plugins. A channel's
    ``deliver`` is then called after commit, outside any transaction, once per pending
    message (again after a failure, with the same ``idempotency_key``).
    """


@hookspec
def kefu_attachment_stores() -> list[Any] | None:
    """Return attachment stores a company may choose with ``attachments: {store: NAME}``.

    Each has ``name`` and ``open(company, settings)``: ``company`` the company's key,
    ``settings`` its ``attachments: {settings: {...}}``; it returns the company's store, an
    object with ``save(digest, path)`` (keep the content of the local file ``path`` under
    its SHA-256 hex ``digest``; it may move the file away; saving a digest already kept
    changes nothing), ``open(digest)`` (a binary file object to read; raise
    ``FileNotFoundError`` when it is gone) and ``delete(digest)`` (no error when gone) —
    ``core.storage.blobs.BlobStore``. kefu hashes, sniffs and checks every upload before
    ``save`` and keeps who uploaded what in its database; a store only keeps bytes.

    Called once at start-up. Return a list (``None``: none). Results are combined; the
    built-in ``folder`` or a name registered twice is a start-up error naming both plugins.
    ``open`` is called once per company, when its first upload or download comes; ``save``
    runs before the upload's row is written, ``delete`` when the worker removes an upload
    that no case claimed, both outside any action transaction.
    """


# -- after commit (outside any action transaction) -----------------------------------------


@hookspec
def kefu_case_opened(event: Any) -> None:
    """React to a case that was opened.

    ``event`` is a ``core.cases.events.CaseEvent``: ``company``, ``case_id``, ``number``,
    ``procedure``, ``step``, ``actor``, ``at``, ``fields`` (and ``from_step``/``action``,
    ``None`` here).

    Called after the opening committed, in the process that opened it; never for an
    opening that was refused or rolled back. Every implementation is called (none wins);
    return values are ignored; an exception is logged with the plugin's name and undoes
    nothing. Plugins a company disables are not called for its cases.
    """


@hookspec
def kefu_step_entered(event: Any) -> None:
    """React to a case entering a step: ``event.step``, coming from ``event.from_step``.

    Also called for the first step of a new case (``from_step`` ``None``) and for moves made
    by the worker (SLA escalations, timers; ``actor`` ``system``). Called after commit,
    like :func:`kefu_case_opened`. Return value ignored.
    """


@hookspec
def kefu_action_done(event: Any) -> None:
    """React to an action done on a case: ``event.action`` by ``event.actor``.

    ``event.fields`` are the case's fields after the action, ``event.step`` where it is now
    and ``event.from_step`` where the action started. Called after commit, like
    :func:`kefu_case_opened`. Return value ignored.
    """


@hookspec
def kefu_case_closed(event: Any) -> None:
    """React to a case reaching a final step (``event.step``), by an action or the worker.

    Called after commit, after :func:`kefu_step_entered` for the same step, like
    :func:`kefu_case_opened`. Return value ignored.
    """


# -- audit trail ----------------------------------------------------------------------------


@hookspec
def kefu_audit_checkpoint(checkpoint: dict[str, Any]) -> None:
    """Keep a copy of a signed journal checkpoint somewhere the database's users cannot
    reach (a notary, a WORM bucket, another host).

    ``checkpoint`` has ``company`` (key), ``seq`` and ``hash`` (the journal head), ``at``
    (ISO 8601, UTC), ``key_id`` and ``mac`` (HMAC-SHA-256 of the rest under that key of
    the audit keyring). kefu has already appended it to its checkpoint file
    (``KEFU_AUDIT_CHECKPOINTS``), which ``kefu audit verify`` reads; a copy kept elsewhere
    can be checked against it with ``kefu audit verify --checkpoints FILE``.

    Called after the checkpoint is written, outside any transaction: by the worker every
    ``--checkpoint-minutes`` for each company whose journal grew, and by
    ``kefu audit checkpoint``. Every implementation is called; return values are ignored;
    an exception is logged and stops nothing.
    """
