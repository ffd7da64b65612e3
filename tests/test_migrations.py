"""The Alembic migrations build exactly the schema the models describe, on the backend under test."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from conftest import Urls
from reelm.db import GlobalModel, RegionModel, RegionSystemModel
from reelm.residency.store import make_engine


def _modelled(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave out what a domain made in a migration outside the models (a full-text index)."""
    return name not in GlobalModel.metadata.info.get("outside_models", ())


def test_region_and_global_migrations_match_the_models(migrated: Urls) -> None:
    region = make_engine(migrated.regions["us"])
    with region.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn), [RegionModel.metadata, RegionSystemModel.metadata]
        )
    assert diff == [], f"region models and migrations differ: {diff}"
    glob = make_engine(migrated.global_url)
    with glob.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _modelled})
        diff = compare_metadata(context, GlobalModel.metadata)
    assert diff == [], f"global models and migrations differ: {diff}"


def test_every_region_table_has_a_non_null_owner_id() -> None:
    for table in RegionModel.metadata.sorted_tables:
        assert "owner_id" in table.c, table.name
        assert table.c.owner_id.nullable is False, table.name
