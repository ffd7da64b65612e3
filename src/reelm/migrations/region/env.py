"""Alembic environment for the region database(s); run through reelm.migrations.upgrade."""

from alembic import context

import reelm.all_models  # noqa: F401  (fills the metadata)
from reelm.db import RegionModel, RegionSystemModel

target_metadata = [RegionModel.metadata, RegionSystemModel.metadata]
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through reelm.migrations.upgrade() or `reelm init`")
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
