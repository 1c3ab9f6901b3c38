"""The ``kefu`` command line.

    kefu validate [PATH…]     check packs and company configs (exit 0 clean, 2 on errors)
    kefu test [PATH…]         run the scenarios of packs
    kefu init [--demo]        create/migrate the database, load config/ and rules/
                              (--demo: the config's people as users, once)
    kefu worker [--once]      fire due timers and schedules, deliver the outbox
    kefu deadlines NUMBER     explain a case's deadlines
    kefu diagram PACK         draw a procedure as an SVG swim-lane diagram
    kefu audit verify         check every company's journal hash chain
    kefu records render NUMBER RECORD   a case's record as PDF or HTML
    kefu records verify CODE  check a printed record's verification code
    kefu retention [--dry-run]  clear the personal data of closed cases past retain:
    kefu copy-data URL        copy the database whole into an empty one (SQLite → PostgreSQL)
    kefu plugins              list the plugins, their versions and hooks

Plugins add commands through the ``kefu_cli_commands`` hook (``kefu serve`` comes from
the API plugin that way, so the core never imports the web layer).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
import zoneinfo
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.exc import ArgumentError, OperationalError

from core.cases import charts, exports
from core.cases.deadlines import explain_lines
from core.cases.journal import Keyring, forget_keyring, keys_path, verify_all
from core.cases.records import render_html, render_pdf
from core.cases.records import verify as verify_record
from core.cases.reports import run_report
from core.cases.retention import due as retention_due
from core.cases.retention import run as retention_run
from core.errors import KefuError, NotFound
from core.runtime.bootstrap import build_service, create_config_people, freeze_startup_heap
from core.runtime.plugins import PluginError, installed
from core.runtime.transfer import Copied, CopyRefused, copy_database, shown_url
from core.runtime.worker import Worker
from core.spec.catalog import load_catalog, pack_dirs, rules_dir_default
from core.spec.diagnostics import Diagnostics
from core.spec.diagram import procedure_svg
from core.spec.loading import effect_registry, load_company, load_pack
from core.storage import loads
from core.storage import schema as t
from core.storage.db import Database
from core.testing.scenarios import run_paths


def _echo_diags(diags: Diagnostics) -> None:
    for d in diags:
        click.echo(d.format(), err=d.severity == "error")


@click.group()
@click.version_option(package_name="kefu")
def cli() -> None:
    """kefu (客服) — a rules-driven case engine for customer-service procedures."""


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="folder of procedure packs (default: rules/)",
)
@click.option(
    "--config",
    "config_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="folder of company configs (default: config/)",
)
def validate(paths: tuple[Path, ...], rules_dir: Path | None, config_dir: Path | None) -> None:
    """Check procedure packs and company configs; print every problem as file:line:col."""

    diags = Diagnostics()
    effects = effect_registry(installed())
    if not paths:
        cat = load_catalog(rules_dir, config_dir, extensions=installed())
        diags.extend(cat.diagnostics)

        shipped = len(installed().pack_dirs())
        checked = (
            f"{len(pack_dirs(rules_dir or rules_dir_default())) + shipped} pack(s)"
            + (f" ({shipped} from plugins)" if shipped else "")
            + f", {len(cat.companies)} company config(s)"
        )
    else:
        packs = load_catalog(rules_dir, Path("/nonexistent"), extensions=installed()).packs
        count = 0
        for p in paths:
            if p.is_dir() and (p / "procedure.yaml").exists():
                targets = [p]
            elif p.is_dir():
                targets = [d for d in pack_dirs(p)] + sorted(p.glob("*.yaml"))
            else:
                targets = [p]
            for target in targets:
                count += 1
                if target.is_dir() or target.name == "procedure.yaml":
                    _, d = load_pack(target, effects, extensions=installed())
                else:
                    _, d = load_company(target, packs, effects, extensions=installed())
                diags.extend(d)
        checked = f"{count} file(s)"
    _echo_diags(diags)
    n_err, n_warn = len(diags.errors), len(diags.warnings)
    click.echo(f"checked {checked}: {n_err} error(s), {n_warn} warning(s)")
    sys.exit(2 if n_err else 0)


@cli.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--engine", type=click.Choice(["durable", "reference"]), default=None)
@click.option(
    "--database", "db_url", default=None, help="database URL (default: a throwaway SQLite file)"
)
def test_cmd(paths: tuple[Path, ...], engine: str | None, db_url: str | None) -> None:
    """Run the scenarios of the given packs (default: every pack in rules/ and the plugins')."""

    _pm()
    sys.exit(
        run_paths(
            list(paths) or [rules_dir_default(), *installed().pack_dirs()],
            db_url=db_url,
            evaluator_kind=engine,
        )
    )


@cli.command()
@click.option(
    "--demo",
    is_flag=True,
    help="create the people of config/ as users; print the passwords of the users created",
)
@click.option(
    "--database",
    "db_url",
    default=None,
    help="database URL (default: KEFU_DATABASE_URL or var/kefu.db)",
)
def init(demo: bool, db_url: str | None) -> None:
    """Create or migrate the database and load config/ and rules/ into it.

    With --demo the people of config/ become users. A user is created once, with a
    random password printed then; later runs keep every password (`kefu user password
    NAME` sets a new one), so logins keep working from one `make run` to the next.
    """

    cat = load_catalog(extensions=installed())
    if cat.diagnostics.errors:
        _echo_diags(cat.diagnostics)
        raise click.ClickException("fix the problems above first (kefu validate)")
    db = Database(db_url)
    svc = build_service(db, cat)
    click.echo(f"database ready: {db.engine.url.render_as_string(hide_password=True)}")
    for key, rt in svc.companies.items():
        procs = ", ".join(f"{k} v{p.version}" for k, p in rt.procedures.items())
        click.echo(f"company {key}: {procs or 'no procedures'}")
    if demo:
        people = create_config_people(svc, passwords=True)
        new = [p for p in people.values() if p.password]
        kept = [p.username for p in people.values() if not p.password]
        if new:
            click.echo("demo logins (user / password / companies), shown only now:")
            for p in new:
                click.echo(f"  {p.username:<10} {p.password}   {', '.join(p.companies)}")
        if kept:
            click.echo(
                f"demo users already exist, passwords unchanged: {', '.join(kept)} "
                "(forgot one? `kefu user password NAME` sets a new one)"
            )
    svc.close()


@cli.command()
@click.option(
    "--once", is_flag=True, help="one round (fire what is due, deliver what is due), then exit"
)
@click.option(
    "--batch",
    default=100,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="timers / messages claimed at a time",
)
@click.option(
    "--poll",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="seconds to sleep when nothing is due",
)
@click.option(
    "--lease",
    default=300,
    show_default=True,
    type=click.IntRange(5, 86_400),
    help="seconds a claimed timer or message stays this worker's before others may take it",
)
@click.option(
    "--database",
    "db_url",
    default=None,
    help="database URL (default: KEFU_DATABASE_URL or var/kefu.db)",
)
@click.option(
    "--checkpoint-minutes",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 24 * 60),
    help="write a signed checkpoint of each company's journal this often, when it grew",
)
def worker(
    once: bool,
    batch: int,
    poll: float,
    lease: int,
    db_url: str | None,
    checkpoint_minutes: float,
) -> None:
    """Fire due timers and schedules, deliver the outbox (stop with Ctrl-C or SIGTERM).

    Run one per machine or several against PostgreSQL: they share the work through leases.
    Exit 0 when stopped, 2 when the rule files have errors, 3 when a plugin is broken.
    """

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cat = load_catalog(extensions=installed())
    if cat.diagnostics.errors:
        _echo_diags(cat.diagnostics)
        click.echo("kefu worker: fix the problems above first (kefu validate)", err=True)
        sys.exit(2)
    channels = installed().channels  # checked at start-up (main): a broken plugin exited with 3
    svc = build_service(Database(db_url), cat)
    w = Worker(
        svc,
        channels,
        batch=batch,
        poll=poll,
        lease=dt.timedelta(seconds=lease),
        checkpoint_every=checkpoint_minutes * 60,
    )
    freeze_startup_heap()
    click.echo(f"kefu worker {w.owner}: channels {', '.join(sorted(channels)) or 'none'}", err=True)
    try:
        if once:
            fired, report = w.run_once()
            click.echo(
                f"fired {fired} timer(s); messages sent {report.sent}, retried {report.retried}, "
                f"failed {report.failed}"
            )
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: w.stop())
        w.run()
    finally:
        svc.close()


@cli.command()
@click.argument("number")
@click.option(
    "--company",
    default=None,
    help="the company key (needed when several have a case with this number)",
)
@click.option(
    "--database",
    "db_url",
    default=None,
    help="database URL (default: KEFU_DATABASE_URL or var/kefu.db)",
)
def deadlines(number: str, company: str | None, db_url: str | None) -> None:
    """Explain the deadlines of case NUMBER: start, target, due, pauses, days skipped."""

    cat = load_catalog(extensions=installed())
    svc = build_service(Database(db_url), cat, migrate=False)
    try:
        case_id, key = _case_by_number(svc, "deadlines", number, company)
        tz = zoneinfo.ZoneInfo(svc.company(key).definition.timezone)
        found = svc.deadlines(key, case_id)
        if not found:
            click.echo(f"case {number}: its procedure has no deadlines")
        for d in found:
            click.echo("\n".join(explain_lines(d, tz)))
    finally:
        svc.close()


def _case_by_number(svc: Any, command: str, number: str, company: str | None) -> tuple[int, str]:
    """(case id, company key) of case NUMBER; exits with a message when it is not one case."""
    # one index seek per company (company, number is unique), never a scan of all
    if company and company not in svc.companies:
        click.echo(f"kefu {command}: no company {company}", err=True)
        sys.exit(1)
    companies = [svc.company(company)] if company else list(svc.companies.values())
    rows = [
        (cid, rt.key)
        for rt in companies
        if (cid := svc.case_id_by_number(rt.key, number)) is not None
    ]
    if not rows:
        click.echo(
            f"kefu {command}: no case {number}" + (f" in company {company}" if company else ""),
            err=True,
        )
        sys.exit(1)
    if len(rows) > 1:
        click.echo(
            f"kefu {command}: {len(rows)} companies have a case {number}: say --company "
            + " or ".join(key for _, key in rows),
            err=True,
        )
        sys.exit(1)
    return rows[0]


def _one_company(svc: Any, company: str | None) -> str:
    if company is None:
        if len(svc.companies) != 1:
            raise click.UsageError(f"give --company (one of {', '.join(sorted(svc.companies))})")
        return str(next(iter(svc.companies)))
    if company not in svc.companies:
        raise click.UsageError(f"no company {company}")
    return company


@cli.group()
def records() -> None:
    """Printed records: render them, check their verification codes."""


@records.command("render")
@click.argument("number")
@click.argument("record")
@click.option("--format", "fmt", type=click.Choice(["pdf", "html"]), default="pdf")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None)
@click.option("--company", default=None)
@click.option("--database", "db_url", default=None)
def records_render(
    number: str,
    record: str,
    fmt: str,
    output: Path | None,
    company: str | None,
    db_url: str | None,
) -> None:
    """Render RECORD of case NUMBER as PDF or HTML (default file: NUMBER-RECORD.pdf)."""
    svc = build_service(Database(db_url), load_catalog(extensions=installed()), migrate=False)
    try:
        case_id, key = _case_by_number(svc, "records render", number, company)
        try:
            doc, html = render_html(svc, key, case_id, record)
        except KefuError as exc:
            click.echo(f"kefu records render: {exc}", err=True)
            sys.exit(1)
        target = output or Path(f"{number}-{record}.{fmt}")
        if fmt == "pdf":
            target.write_bytes(render_pdf(html))
        else:
            target.write_text(html, encoding="utf-8")
        click.echo(f"{target}  ({doc.title}, verification code {doc.code})")
    finally:
        svc.close()


@records.command("verify")
@click.argument("code")
@click.option("--company", default=None, help="the company key (default: the only one)")
@click.option("--database", "db_url", default=None)
def records_verify(code: str, company: str | None, db_url: str | None) -> None:
    """Check a printed record's verification CODE against the journal (exit 1: not valid)."""
    svc = build_service(Database(db_url), load_catalog(extensions=installed()), migrate=False)
    try:
        result = verify_record(svc, _one_company(svc, company), code)
    finally:
        svc.close()
    click.echo(("valid: " if result.valid else "NOT VALID: ") + result.detail)
    sys.exit(0 if result.valid else 1)


@cli.command()
@click.option("--dry-run", is_flag=True, help="list the cases, change nothing")
@click.option(
    "--at",
    "at",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="with --dry-run: what will be due on this day (UTC) instead of now",
)
@click.option("--company", default=None, help="only this company")
@click.option("--database", "db_url", default=None)
def retention(
    dry_run: bool, at: dt.datetime | None, company: str | None, db_url: str | None
) -> None:
    """Clear the personal data of closed cases past their pack's retain: (never held ones)."""
    if at is not None and not dry_run:
        raise click.UsageError("--at only goes with --dry-run")
    svc = build_service(Database(db_url), load_catalog(extensions=installed()), migrate=False)
    try:
        now = at.replace(tzinfo=dt.UTC) if at is not None else svc.clock.now()
        found = retention_due(svc, now, company) if dry_run else retention_run(svc, now, company)
    finally:
        svc.close()
    for item in found:
        closed = item.closed_at.date().isoformat()
        click.echo(
            f"{item.company} {item.number} ({item.procedure}, closed {closed}): "
            + ("would clear " if dry_run else "cleared ")
            + ", ".join(item.fields)
        )
    click.echo(f"{len(found)} case(s)" + (" due (dry run: nothing changed)" if dry_run else ""))


@cli.command("copy-data")
@click.argument("target")
@click.option(
    "--database",
    "db_url",
    default=None,
    help="the database to copy (default: KEFU_DATABASE_URL or var/kefu.db)",
)
def copy_data(target: str, db_url: str | None) -> None:
    """Copy every company's cases, journal, people and settings into the empty database
    at TARGET, e.g. postgresql+psycopg://kefu@db.example/kefu when a department outgrows
    the embedded SQLite file. Ids, numbers and the journal's chain are kept (check with
    `kefu audit verify --database TARGET`); the search index is written anew. Stop kefu
    first, or copy a backup: changes made during the copy are not in it."""

    def shown(c: Copied) -> None:
        rate = f", {c.rows / c.seconds:,.0f}/s" if c.rows and c.seconds > 0.5 else ""
        click.echo(f"  {c.table:<34} {c.rows:>11,} rows in {c.seconds:7.1f} s{rate}")

    try:
        source, dest = Database(db_url), Database(target)
    except ArgumentError as exc:
        raise click.ClickException(f"not a database URL: {exc}") from None
    try:
        copied = copy_database(source, dest, progress=shown)
    except CopyRefused as exc:
        raise click.ClickException(str(exc)) from None
    except OperationalError as exc:
        raise click.ClickException(
            f"cannot reach a database: {str(exc.orig or exc).splitlines()[0]}"
        ) from None
    finally:
        source.dispose()
        dest.dispose()
    click.echo(f"copied {sum(c.rows for c in copied):,} rows into {shown_url(dest)}")


@cli.command()
@click.argument("pack")
@click.option("--locale", type=click.Choice(["zh-CN", "en"]), default="zh-CN", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write the SVG here (default: standard output)",
)
@click.option(
    "--rules", "rules_dir", type=click.Path(path_type=Path), default=None, help="packs folder"
)
def diagram(pack: str, locale: str, output: Path | None, rules_dir: Path | None) -> None:
    """Draw the procedure PACK (its key, or a pack folder) as an SVG swim-lane diagram:
    roles as lanes, steps as boxes, actions as arrows. The staff pages show the same."""
    path = Path(pack)
    if path.is_dir() or path.name.endswith(".yaml"):
        loaded, diags = load_pack(path, effect_registry(installed()), extensions=installed())
    else:
        cat = load_catalog(rules_dir, Path("/nonexistent"), extensions=installed())
        loaded, diags = cat.packs.get(pack), Diagnostics()
        if loaded is None:
            known = ", ".join(sorted(cat.packs)) or "none"
            raise click.ClickException(f"no pack '{pack}' (packs: {known})")
    if loaded is None:
        _echo_diags(diags)
        raise click.ClickException(f"the pack at {pack} has errors")
    svg = procedure_svg(loaded.pack, locale)
    if output is None:
        click.echo(svg, nl=False)
    else:
        output.write_text(svg, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@cli.group()
def audit() -> None:
    """Audit-trail tools."""


@audit.command("verify")
@click.option("--company", default=None)
@click.option("--database", "db_url", default=None)
@click.option(
    "--checkpoints",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="checkpoint file (default: KEFU_AUDIT_CHECKPOINTS or var/audit-checkpoints.jsonl)",
)
def audit_verify(company: str | None, db_url: str | None, checkpoints: Path | None) -> None:
    """Check every company's journal (each entry's code under the audit keyring, the
    chain's links and head), the signed checkpoints, and every case row against its
    journal; print each problem with its company, entry, case and kind. Exit 1 on any."""

    db = Database(db_url)
    try:
        with db.read() as conn:
            problems = verify_all(conn, company, checkpoints)
        numbers: dict[int, str] = {}
        case_ids = {p.case_id for p in problems if p.case_id is not None}
        if case_ids:
            with db.read() as conn:
                numbers = dict(
                    conn.execute(
                        select(t.case.c.id, t.case.c.number).where(t.case.c.id.in_(case_ids))
                    ).all()
                )
        for p in problems:
            where = (
                f"journal entry {p.seq}"
                if p.seq is not None
                else ("queues" if p.kind == "queue-load" else "checkpoints")
            )
            if p.case_id is not None:
                where += f" (case {numbers.get(p.case_id, p.case_id)})"
            click.echo(f"{p.company}: {where}: {p.kind}: {p.detail}", err=True)
        with db.read() as conn:
            for c in conn.execute(
                select(t.company.c.key, t.journal_head.c.seq).join(
                    t.journal_head, t.journal_head.c.company_id == t.company.c.id
                )
            ).all():
                if company and c.key != company:
                    continue
                if not any(p.company == c.key for p in problems):
                    click.echo(f"{c.key}: {c.seq} journal entries, chain and case rows intact")
    finally:
        db.dispose()
    if problems:
        click.echo(f"{len(problems)} problem(s)", err=True)
    sys.exit(1 if problems else 0)


@audit.command("repair-loads")
@click.option("--company", default=None, help="one company's key (default: every company)")
@click.option("--database", "db_url", default=None)
def audit_repair_loads(company: str | None, db_url: str | None) -> None:
    """Set each queue's count of open cases that dispatch reads (what `kefu audit verify`
    reports as queue-load) to the cases waiting in it, one company per transaction, and
    print each change. Run it with kefu stopped, as after a restore."""
    db = Database(db_url)
    try:
        with db.read() as conn:
            companies = conn.execute(
                select(t.company.c.id, t.company.c.key).order_by(t.company.c.key)
            ).all()
        if company is not None and company not in {c.key for c in companies}:
            raise click.ClickException(f"no company '{company}' in this database")
        for c in companies:
            if company is not None and c.key != company:
                continue
            with db.write() as conn:
                fixed = loads.repair(conn, c.id)
            for kind, ref, kept, counted in fixed:
                click.echo(f"{c.key}: queue {kind}:{ref}: {kept} -> {counted} open cases")
            if not fixed:
                click.echo(f"{c.key}: every queue's count matches the cases waiting in it")
    finally:
        db.dispose()


@audit.command("checkpoint")
@click.option("--database", "db_url", default=None)
def audit_checkpoint(db_url: str | None) -> None:
    """Write a signed checkpoint of every company's journal head now (the worker does it
    every --checkpoint-minutes)."""
    svc = build_service(Database(db_url), load_catalog(extensions=installed()), migrate=False)
    try:
        for cp in svc.write_checkpoints():
            click.echo(f"{cp.company}: checkpoint at entry {cp.seq} ({cp.hash[:12]}…)")
    finally:
        svc.close()


@audit.command("rotate-key")
def audit_rotate_key() -> None:
    """Add a new key to the audit keyring (KEFU_AUDIT_KEYS or var/audit-keys); entries
    written from now on use it, older ones keep verifying with theirs. Restart kefu's
    processes to take it up."""
    key_id = Keyring.rotate(keys_path())
    forget_keyring()
    click.echo(f"new audit key {key_id} in {keys_path()}")


@cli.command()
@click.argument("name", required=False)
@click.option("--company", default=None, help="the company key (default: the only one)")
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE", help="a report parameter (repeatable)"
)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "xlsx", "pdf", "svg"]),
    default="table",
    help="table and json are printed; csv, xlsx, pdf (table and chart) and svg (the chart) "
    "are written to --output",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None)
@click.option(
    "--database",
    "db_url",
    default=None,
    help="database URL (default: KEFU_DATABASE_URL or var/kefu.db)",
)
def report(
    name: str | None,
    company: str | None,
    params: tuple[str, ...],
    as_json: bool,
    fmt: str,
    output: Path | None,
    db_url: str | None,
) -> None:
    """Run report NAME (without NAME: list the reports the plugins give and the packs
    declare)."""

    _pm()
    if name is None:
        reports = installed().reports
        for key in sorted(reports):
            click.echo(
                f"{key:<20} {reports[key].title}  (plugin {installed().plugin_of('report', key)})"
            )
        for pkey, lp in sorted(load_catalog(extensions=installed()).packs.items()):
            for rname, rdef in lp.pack.reports.items():
                number = f" ({rdef.form_number})" if rdef.form_number else ""
                click.echo(f"{pkey}.{rname:<20} {rdef.title.text()}{number}  (procedure {pkey})")
        return
    parsed: dict[str, str] = {}
    for p in params:
        key, sep, value = p.partition("=")
        if not sep:
            raise click.BadParameter(f"'{p}' is not KEY=VALUE", param_hint="--param")
        parsed[key] = value
    svc = build_service(Database(db_url), load_catalog(extensions=installed()))
    try:
        if company is None:
            if len(svc.companies) != 1:
                raise click.UsageError(
                    f"give --company (one of {', '.join(sorted(svc.companies))})"
                )
            company = next(iter(svc.companies))
        try:
            result = run_report(svc, company, name, parsed)
            if fmt in ("csv", "xlsx", "pdf", "svg"):
                target = output or Path(f"{name}.{fmt}")
                _write_report(svc, company, name, parsed, fmt, target)
                click.echo(str(target))
                return
        except KefuError as exc:
            click.echo(f"kefu report: {exc}", err=True)
            sys.exit(1)
    finally:
        svc.close()
    if as_json or fmt == "json":
        click.echo(
            json.dumps(
                {"columns": result.columns, "rows": result.rows, "notes": result.notes},
                ensure_ascii=False,
                default=str,
            )
        )
        return
    click.echo("\t".join(result.columns))
    for row in result.rows:
        click.echo("\t".join(str(v) for v in row))
    for note in result.notes:
        click.echo(f"({note})")


def _write_report(
    svc: Any, company: str, name: str, params: dict[str, str], fmt: str, target: Path
) -> None:
    if fmt == "pdf":
        target.write_bytes(render_pdf(exports.report_html(svc, company, name, params)))
    elif fmt == "svg":
        chart = run_report(svc, company, name, params).chart
        if chart is None:
            raise NotFound(f"report '{name}' draws no chart")
        target.write_text(charts.svg(chart), encoding="utf-8")
    else:
        with target.open("wb") as f:
            for chunk in exports.chunks(exports.report(svc, company, name, params), fmt):
                f.write(chunk)


@cli.command()
def plugins() -> None:
    """List plugins: name, package, version, module and hooks."""
    _, infos = _pm()
    for i in infos:
        click.echo(
            f"{i.name:<16} {i.package} {i.version:<8} {i.module}  "
            f"hooks: {', '.join(i.hooks) or '-'}"
        )


def _pm() -> tuple[Any, list[Any]]:
    """The installed plugins (checked once); a broken one ends the command with exit code 3."""
    try:
        reg = installed()
    except PluginError as exc:
        click.echo(f"kefu: {exc}", err=True)
        sys.exit(3)
    return reg.pm, reg.infos


def main() -> None:
    pm, _ = _pm()
    pm.hook.kefu_cli_commands(cli=cli)
    cli()


if __name__ == "__main__":
    main()
