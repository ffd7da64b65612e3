"""The Alembic migrations build exactly the schema the models describe, on the backend under test,
along one line of revisions per kind of database."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from conftest import Urls
from reelm.db import GlobalModel, RegionModel, RegionSystemModel
from reelm.migrations import HERE, Kind, alembic_config, linear_history, upgrade
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


@pytest.mark.parametrize("kind", ["global", "region"])
def test_each_kind_has_one_line_of_migrations_sorted_as_they_apply(kind: Kind) -> None:
    """One base, one head, no merge or branch; ids and file names sort in the order they
    apply, so the next migration is the one after the last file."""
    script = ScriptDirectory.from_config(alembic_config(kind))
    assert len(script.get_bases()) == 1, script.get_bases()
    assert len(script.get_heads()) == 1, script.get_heads()
    revisions = sorted(script.walk_revisions(), key=lambda s: s.revision)
    previous = None
    for rev in revisions:
        assert rev.down_revision == previous, (rev.revision, rev.down_revision, previous)
        assert not rev.branch_labels, rev.revision
        assert not rev.dependencies, rev.revision
        assert Path(rev.path).name.startswith(f"{rev.revision}_"), rev.path
        previous = rev.revision
    files = sorted(p.name for p in (HERE / kind / "versions").glob("*.py"))
    assert [f.split("_", 1)[0] for f in files] == [r.revision for r in revisions]
    assert linear_history(kind) == [r.revision for r in revisions]


def _versions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _record(engine: Engine, versions: set[str]) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
        for v in sorted(versions):
            conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": v})


@pytest.mark.parametrize(
    ("kind", "applied_to", "old_rows", "table"),
    [
        # carve-out journal (old g0005, after g0010 on its branch) not yet applied
        ("global", "g0010", {"g0003", "g0010"}, "carveout_runs"),
        # everything of the branched history, at both old heads
        ("global", "g0030", {"g0005", "g0030"}, "applied_effects"),
        # interests on their branch off r0001, the foreign-key indexes (old r0005) not yet
        ("region", "r0020", {"r0010", "r0020"}, "outbox"),
        ("region", "r0021", {"r0005", "r0020"}, "outbox"),
        # the last state of the branched history: r0030 merged, r0040 on its branch off r0003
        ("region", "r0040", {"r0030", "r0040"}, "outbox"),
    ],
)
def test_a_database_from_the_branched_history_keeps_upgrading(
    tmp_path: Path, kind: Kind, applied_to: str, old_rows: set[str], table: str
) -> None:
    """A database upgraded while each domain had its own branch records one row per old head,
    by old ids; it is recorded at its place in the line and upgraded from there."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, kind, applied_to)
    _record(engine, old_rows)
    upgrade(engine, kind)
    assert _versions(engine) == {linear_history(kind)[-1]}
    assert table in inspect(engine).get_table_names()


def test_a_database_at_no_known_place_in_the_history_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'odd.db'}")
    upgrade(engine, "global", "g0010")
    _record(engine, {"g0002", "g0010"})  # old g0003 (songs) missing below g0010: never released
    with pytest.raises(RuntimeError, match="not a beginning of the linear history"):
        upgrade(engine, "global")
