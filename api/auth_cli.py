"""``kefu user …`` and ``kefu token …``: people who may sign in, and API tokens for integrations.

    kefu user add USERNAME --company C [--department D]… [--role R]… [--name N] [--password P]
    kefu user password USERNAME [--password P | --password-stdin]   set a new password
    kefu token create USERNAME --company C --name N     prints the token once
    kefu token list [--company C]
    kefu token revoke ID

Each takes ``--database URL`` (default: ``KEFU_DATABASE_URL`` or ``var/kefu.db``) and
brings the schema up to date first, like ``kefu init``. Companies come from ``kefu init``.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click
from sqlalchemy import Connection, delete, select, update

from core.clock import SystemClock
from core.runtime import users
from core.storage import schema as t
from core.storage.db import Database
from core.storage.migrate import upgrade

_DATABASE = click.option(
    "--database",
    "db_url",
    default=None,
    help="database URL (default: KEFU_DATABASE_URL or var/kefu.db)",
)


def register(cli: click.Group) -> None:
    """Add the ``user`` and ``token`` command groups to the ``kefu`` command."""
    cli.add_command(user)
    cli.add_command(token)


def _open(db_url: str | None) -> Database:
    db = Database(db_url)
    upgrade(db)
    return db


def _company(conn: Connection, key: str) -> int:
    company_id = users.company_id(conn, key)
    if company_id is None:
        known = (
            ", ".join(conn.execute(select(t.company.c.key).order_by(t.company.c.key)).scalars())
            or "none"
        )
        raise click.ClickException(
            f"unknown company '{key}' (in this database: {known}); "
            "`kefu init` loads the companies of config/"
        )
    return company_id


def _when(moment: dt.datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@click.group()
def user() -> None:
    """People who may sign in."""


@user.command("add")
@click.argument("username")
@click.option("--company", required=True, help="the company's key (as in config/<company>.yaml)")
@click.option(
    "--department", "departments", multiple=True, help="a department of the company (repeatable)"
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    help="a role held directly, not through a department (repeatable)",
)
@click.option(
    "--name", "display_name", default=None, help="the name shown to others (default: USERNAME)"
)
@click.option("--email", default=None)
@click.option("--password", default=None, help="the password (default: generate one and print it)")
@_DATABASE
def user_add(
    username: str,
    company: str,
    departments: tuple[str, ...],
    roles: tuple[str, ...],
    display_name: str | None,
    email: str | None,
    password: str | None,
    db_url: str | None,
) -> None:
    """Create a user in a company, or set an existing user's departments and roles there.

    A new user gets the password given, or a generated one printed once. An existing
    user keeps their password unless --password is given.
    """
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise click.BadParameter("1–64 characters without spaces", param_hint="USERNAME")
    if password is not None and not password:
        raise click.BadParameter("must not be empty", param_hint="--password")
    db = _open(db_url)
    now = SystemClock().now()
    try:
        with db.write() as conn:
            company_id = _company(conn, company)
            existed = conn.execute(
                select(t.app_user.c.id).where(t.app_user.c.username == username)
            ).first()
            generated = users.new_password() if existed is None and password is None else None
            uid = users.ensure_user(
                conn,
                username,
                display_name or username,
                now,
                email=email,
                password=password or generated,
            )
            if existed is not None and display_name:
                conn.execute(
                    update(t.app_user)
                    .where(t.app_user.c.id == uid)
                    .values(display_name=display_name)
                )
            users.set_membership(conn, uid, company_id, departments, roles)
    finally:
        db.dispose()
    what = "updated" if existed else "created"
    click.echo(
        f"user {username} {what} in {company}: "
        f"departments {', '.join(sorted(set(departments))) or '-'}; "
        f"roles {', '.join(sorted(set(roles))) or '-'}"
    )
    if generated:
        click.echo(f"password: {generated}")


@user.command("password")
@click.argument("username")
@click.option(
    "--password", default=None, help="the new password (default: generate one and print it)"
)
@click.option(
    "--password-stdin",
    "from_stdin",
    is_flag=True,
    help="read the new password from the first line of standard input",
)
@_DATABASE
def user_password(
    username: str, password: str | None, from_stdin: bool, db_url: str | None
) -> None:
    """Set a new password for USERNAME: a generated one (printed once), --password, or
    standard input with --password-stdin (it stays out of the shell history).

    The user's sessions end and a lock after failed sign-ins is lifted; API tokens keep
    working (revoke them with `kefu token revoke`).
    """
    if from_stdin:
        if password is not None:
            raise click.UsageError("give --password or --password-stdin, not both")
        password = sys.stdin.readline().rstrip("\r\n")
    where = "standard input" if from_stdin else "--password"
    if password is not None and not password:
        raise click.BadParameter("must not be empty", param_hint=where)
    if password is not None and len(password) > 1024:
        raise click.BadParameter("at most 1024 characters", param_hint=where)
    generated = password is None
    new = users.new_password() if password is None else password
    db = _open(db_url)
    try:
        with db.write() as conn:
            uid = conn.execute(
                select(t.app_user.c.id).where(t.app_user.c.username == username)
            ).scalar()
            if uid is None:
                raise click.ClickException(
                    f"unknown user '{username}' (kefu user add {username} --company C creates one)"
                )
            users.set_password(conn, uid, new)
            users.clear_failed_logins(conn, uid)
            ended = conn.execute(
                delete(t.user_session).where(t.user_session.c.user_id == uid)
            ).rowcount
    finally:
        db.dispose()
    click.echo(f"new password set for {username}; {ended} session(s) ended")
    if generated:
        click.echo(f"password: {new}")


@click.group()
def token() -> None:
    """API tokens for integrations (Authorization: Bearer kefu_…), each bound to one company."""


@token.command("create")
@click.argument("username")
@click.option("--company", required=True, help="the company the token acts in")
@click.option("--name", required=True, help="what the token is for, e.g. erp-sync")
@_DATABASE
def token_create(username: str, company: str, name: str, db_url: str | None) -> None:
    """Create a token for USERNAME in a company; print it once (only its hash is stored)."""
    if not name.strip() or len(name) > 100:
        raise click.BadParameter("1–100 characters", param_hint="--name")
    db = _open(db_url)
    try:
        with db.write() as conn:
            company_id = _company(conn, company)
            uid = conn.execute(
                select(t.app_user.c.id).where(t.app_user.c.username == username)
            ).scalar()
            if uid is None:
                raise click.ClickException(f"unknown user '{username}' (kefu user add)")
            if company not in {m.company for m in users.memberships(conn, uid)}:
                raise click.ClickException(
                    f"'{username}' is not a member of '{company}' "
                    f"(kefu user add {username} --company {company})"
                )
            token_id, raw = users.create_token(
                conn, uid, company_id, name.strip(), SystemClock().now()
            )
    finally:
        db.dispose()
    # the token alone on stdout, so `kefu token create … > file` keeps just the secret
    click.echo(
        f"token {token_id} '{name.strip()}' for {username} in {company}; it is shown only now:",
        err=True,
    )
    click.echo(raw)


@token.command("list")
@click.option("--company", default=None, help="only this company's tokens")
@_DATABASE
def token_list(company: str | None, db_url: str | None) -> None:
    """List tokens: id, company, user, name, prefix, created, last used, state.

    Never their secrets.
    """
    db = _open(db_url)
    try:
        with db.read() as conn:
            rows: list[Any] = users.list_tokens(conn, _company(conn, company) if company else None)
    finally:
        db.dispose()
    if not rows:
        click.echo("no tokens")
        return
    click.echo(
        f"{'id':>4}  {'company':<10} {'user':<12} {'name':<20} {'prefix':<14} {'created':<20} "
        f"{'last used':<20} state"
    )
    for r in rows:
        state = "active" if r.revoked_at is None else f"revoked {_when(r.revoked_at)}"
        click.echo(
            f"{r.id:>4}  {r.company:<10} {r.username:<12} {r.name:<20} {r.prefix + '…':<14} "
            f"{_when(r.created_at):<20} {_when(r.last_used_at):<20} {state}"
        )


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(min=1))
@_DATABASE
def token_revoke(token_id: int, db_url: str | None) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    db = _open(db_url)
    try:
        with db.write() as conn:
            row = conn.execute(
                select(t.api_token.c.revoked_at).where(t.api_token.c.id == token_id)
            ).first()
            if row is None:
                raise click.ClickException(f"no token {token_id} (kefu token list)")
            revoked = users.revoke_token(conn, token_id, SystemClock().now())
    finally:
        db.dispose()
    click.echo(
        f"token {token_id} revoked"
        if revoked
        else f"token {token_id} was already revoked on {_when(row.revoked_at)}"
    )
