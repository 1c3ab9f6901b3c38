"""Alembic environment: run by core.storage.migrate with a connection already open."""

from alembic import context

from core.storage.schema import in_metadata, metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - kefu always passes its own connection
    raise RuntimeError("run migrations through `kefu init` (core.storage.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=in_metadata,
)
with context.begin_transaction():
    context.run_migrations()
