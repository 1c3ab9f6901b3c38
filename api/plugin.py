"""The API as a built-in plugin: it adds ``kefu serve`` (and the user/token commands).

Registered under the ``kefu`` entry-point group like any third-party plugin, so the core
never imports the web layer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from core import hookimpl
from core.runtime.bootstrap import build_service, freeze_startup_heap
from core.runtime.plugins import installed
from core.runtime.worker import Worker
from core.spec.catalog import load_catalog
from core.storage.db import Database

if TYPE_CHECKING:
    from api.auth import AuthSettings


@hookimpl
def kefu_effect_types() -> list[Any]:
    """``portal_link``: a one-time link for the customer, sent through the outbox."""
    from api.portal import PORTAL_LINK  # lazy: the registry must not need the web layer

    return [PORTAL_LINK]


@hookimpl
def kefu_cli_commands(cli: Any) -> None:
    cli.add_command(serve)
    from api.auth_cli import register  # lazy: kefu's CLI starts without Litestar

    register(cli)


def serve_auth_settings(
    host: str, insecure_cookies: bool | None, environ: Mapping[str, str]
) -> AuthSettings:
    """The auth settings ``kefu serve`` runs with: the environment's, except that on a
    loopback address the cookie goes without ``Secure`` unless ``KEFU_COOKIE_SECURE`` says
    otherwise (a reverse proxy on the same host serves https: set it to 1 there);
    ``--insecure-cookies`` always drops it."""
    from api.auth import AuthSettings  # Litestar: only when serving (kefu --help starts fast)

    settings = AuthSettings.from_env(environ)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    chosen = (environ.get("KEFU_COOKIE_SECURE") or "").strip() != ""
    if insecure_cookies or (insecure_cookies is None and loopback and not chosen):
        # browsers keep Secure cookies over http://localhost, curl and others do not
        settings = dataclasses.replace(settings, cookie_secure=False)
    return settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--database",
    "db_url",
    default=None,
    help="database URL (default: KEFU_DATABASE_URL or var/kefu.db)",
)
@click.option(
    "--insecure-cookies",
    is_flag=True,
    default=None,
    help="send the session cookie over plain HTTP (default: only when serving on loopback "
    "and KEFU_COOKIE_SECURE is not set)",
)
@click.option(
    "--worker/--no-worker",
    "embedded_worker",
    default=None,
    help="run a worker thread (timers, schedules, outbox) in this process "
    "(default: on for SQLite, off for PostgreSQL where `kefu worker` processes run)",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="server processes (PostgreSQL only; run `kefu worker` processes beside them)",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    help="log every request (off by default: one log line per request costs throughput)",
)
def serve(
    host: str,
    port: int,
    db_url: str | None,
    insecure_cookies: bool | None,
    embedded_worker: bool | None,
    workers: int,
    access_log: bool,
) -> None:
    """Serve the REST API (OpenAPI UI at /schema)."""
    import threading

    import uvicorn

    from api.app import create_app  # lazy: only `kefu serve` loads Litestar
    from api.web.i18n import MissingCatalogue, check_catalogues  # lazy, as create_app

    try:
        check_catalogues()
    except MissingCatalogue as exc:
        raise click.ClickException(str(exc)) from exc
    cat = load_catalog(extensions=installed())
    if cat.diagnostics.errors:
        for d in cat.diagnostics:
            click.echo(d.format(), err=True)
        raise click.ClickException("fix the problems above first (kefu validate)")
    db = Database(db_url)
    if workers > 1 and db.is_sqlite:
        raise click.ClickException(
            "SQLite takes one writer at a time, so more server processes add no throughput "
            "and fight for the file lock: serve SQLite with one process, or use PostgreSQL "
            "(--database postgresql+psycopg://…) for --workers"
        )
    svc = build_service(db, cat)
    settings = serve_auth_settings(host, insecure_cookies, os.environ)
    if workers > 1:
        # every process builds its own service from the environment (api.app.app_from_env);
        # this one migrated the database already, and runs no worker thread: timers and the
        # outbox belong to `kefu worker` processes
        svc.close()
        os.environ["KEFU_DATABASE_URL"] = db.url
        os.environ["KEFU_COOKIE_SECURE"] = "1" if settings.cookie_secure else "0"
        click.echo(f"kefu serving http://{host}:{port} with {workers} processes")
        uvicorn.run(
            "api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=access_log,
            # the client's address is api.guard.client_address's (KEFU_TRUSTED_PROXIES),
            # not uvicorn's own reading of X-Forwarded-For (FORWARDED_ALLOW_IPS)
            proxy_headers=False,
        )
        return
    app = create_app(svc, auth=settings)
    freeze_startup_heap()
    worker: Worker | None = None
    if embedded_worker or (embedded_worker is None and svc.db.is_sqlite):
        channels = installed().channels  # checked when kefu started (a broken plugin exits with 3)
        worker = Worker(svc, channels)
        threading.Thread(target=worker.run, name="kefu-worker", daemon=True).start()
        click.echo(
            f"embedded worker {worker.owner}: channels {', '.join(sorted(channels)) or 'none'}"
        )
    click.echo(f"kefu serving http://{host}:{port}  (OpenAPI UI: http://{host}:{port}/schema)")
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
            proxy_headers=False,  # KEFU_TRUSTED_PROXIES decides (api.guard.client_address)
        )
    finally:
        if worker is not None:
            worker.stop()
        svc.close()
