"""Alembic environment: runs on the connection `skyqa.service.archive.schema.migrate` hands it."""

from alembic import context
from sqlalchemy import text

from skyqa.service.archive.models import Base

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    # Two writers starting at once must not both create the tables: serialise on a transaction-scoped lock.
    connection.execute(text("SELECT pg_advisory_xact_lock(7246100)"))
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
