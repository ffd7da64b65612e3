"""What the carve-out needs of every region table, checked for tables added later too."""

from __future__ import annotations

from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint

from reelm.carveout.manifest import kind_of
from reelm.db import RegionModel


def test_every_region_column_has_a_canonical_form_for_manifests() -> None:
    for table in RegionModel.metadata.sorted_tables:
        for column in table.columns:
            kind_of(column)  # raises UnsupportedColumn naming the column and the fix


def test_every_foreign_key_of_a_region_table_is_indexed() -> None:
    """Deleting a user's rows at the source looks up children by foreign key: unindexed, that
    is a scan of the child table per deleted row (a carve-out of many users in quadratic time)."""
    missing = []
    for table in RegionModel.metadata.sorted_tables:
        leading = {ix.columns[0].name for ix in table.indexes if len(ix.columns) >= 1}
        leading |= {
            c.columns[0].name
            for c in table.constraints
            if isinstance(c, PrimaryKeyConstraint | UniqueConstraint) and len(c.columns)
        }
        for fk in table.foreign_keys:
            if fk.parent.name not in leading:
                missing.append(f"{table.name}.{fk.parent.name}")
    assert not missing, f"index these foreign keys (see reelm/carveout/models.py): {missing}"
