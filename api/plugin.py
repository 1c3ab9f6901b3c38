"""The API as a built-in plugin: it adds ``kefu serve`` (and the user/token commands).

Registered under the ``kefu`` entry-point group like any third-party plugin, so the core
never imports the web layer.
"""

from __future__ import annotations

from typing import Any

import click

from core import hookimpl


@hookimpl
def kefu_cli_commands(cli: Any) -> None:
    cli.add_command(serve)
    from api.auth_cli import register

    register(cli)


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
    help="send the session cookie over plain HTTP (default: only when serving on loopback)",
)
@click.option(
    "--worker/--no-worker",
    "embedded_worker",
    default=None,
    help="run a worker thread (timers, schedules, outbox) in this process "
    "(default: on for SQLite, off for PostgreSQL where `kefu worker` processes run)",
)
def serve(
    host: str,
    port: int,
    db_url: str | None,
    insecure_cookies: bool | None,
    embedded_worker: bool | None,
) -> None:
    """Serve the REST API (OpenAPI UI at /schema)."""
    import dataclasses
    import threading

    import uvicorn

    from api.app import create_app
    from api.auth import AuthSettings
    from core.runtime.bootstrap import build_service
    from core.runtime.plugins import installed
    from core.runtime.worker import Worker
    from core.spec.catalog import load_catalog
    from core.storage.db import Database

    cat = load_catalog(extensions=installed())
    if cat.diagnostics.errors:
        for d in cat.diagnostics:
            click.echo(d.format(), err=True)
        raise click.ClickException("fix the problems above first (kefu validate)")
    svc = build_service(Database(db_url), cat)
    settings = AuthSettings.from_env()
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if insecure_cookies or (insecure_cookies is None and loopback):
        # browsers keep Secure cookies over http://localhost, curl and others do not
        settings = dataclasses.replace(settings, cookie_secure=False)
    app = create_app(svc, auth=settings)
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
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        if worker is not None:
            worker.stop()
        svc.close()
