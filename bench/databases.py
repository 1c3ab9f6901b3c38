"""Where the benchmarks run: a throwaway SQLite file, then a throwaway PostgreSQL database."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text


def on_each_database(pg_admin_url: str, bench: Callable[[str, Callable[[], str]], None]) -> None:
    """Call ``bench(label, new_url)`` for SQLite and for PostgreSQL (skipped, said so, when down).

    ``new_url()`` makes a fresh database each time it is called; the PostgreSQL ones are
    dropped afterwards.
    """
    tmp = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    bench("SQLite", lambda: f"sqlite:///{tmp / (uuid.uuid4().hex + '.db')}")
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def pg_url() -> str:
        name = f"kefu_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return pg_admin_url.rsplit("/", 1)[0] + "/" + name

    try:
        with admin.connect():
            pass
    except Exception as exc:
        print(f"PostgreSQL   skipped: {str(exc).splitlines()[0]}")
        return
    try:
        bench("PostgreSQL", pg_url)
    finally:
        with admin.connect() as c:
            for name in made:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
