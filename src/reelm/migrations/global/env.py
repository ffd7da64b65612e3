"""Alembic environment for the global database(s); run through reelm.migrations.upgrade."""

from alembic import context

import reelm.all_models  # noqa: F401  (fills the metadata)
from reelm.db import GlobalModel

target_metadata = GlobalModel.metadata
# Made by migrations outside the models (a full-text index): autogenerate must not drop them.
outside_models = target_metadata.info.get("outside_models", set())
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through reelm.migrations.upgrade() or `reelm init`")
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=lambda name, type_, parents: name not in outside_models,
)
with context.begin_transaction():
    context.run_migrations()
