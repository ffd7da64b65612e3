"""Alembic migrations for the two kinds of database: `global` and `region`.

Each kind has one linear history whose revision ids sort in the order they apply
(`tests/test_migrations.py` checks it): a new migration takes the next id after the head and
names the head as its `down_revision`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

HERE = Path(__file__).parent
Kind = Literal["global", "region"]

BRANCHED_HISTORY: dict[Kind, tuple[dict[str, tuple[str, ...]], dict[str, str]]] = {
    # Until December 2026 each domain added its migrations on a branch of its own (g0040 and
    # r0030 merged them; r0040 branched again), and a database recorded one row per branch
    # head. Each kind's
    # history was then made one line, in the order the migrations were first released (so
    # every database that was ever upgraded to all heads holds a beginning of that line), and
    # the ids that did not sort in that order were renamed. Here: every old revision with its
    # old parents, and the renamed ids.
    "global": (
        {"g0001": (), "g0002": ("g0001",), "g0003": ("g0002",), "g0004": ("g0002",),
         "g0010": ("g0004",), "g0005": ("g0010",), "g0030": ("g0003",),
         "g0040": ("g0005", "g0030")},
        {"g0003": "g0006", "g0005": "g0020"},
    ),
    "region": (
        {"r0001": (), "r0002": ("r0001",), "r0003": ("r0002",), "r0004": ("r0003",),
         "r0010": ("r0004",), "r0005": ("r0010",), "r0020": ("r0001",),
         "r0030": ("r0005", "r0020"), "r0040": ("r0003",)},
        {"r0005": "r0021"},
    ),
}  # fmt: skip


def alembic_config(kind: Kind) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / kind))
    return cfg


def upgrade(bind: Engine | Connection, kind: Kind, revision: str = "head") -> None:
    """Bring one database to `revision` (the head by default); idempotent. A database made
    while the history was branched is first recorded at its place in the linear history."""
    cfg = alembic_config(kind)
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            _upgrade(conn, cfg, kind, revision)
        return
    with bind.begin():
        _upgrade(bind, cfg, kind, revision)


def _upgrade(conn: Connection, cfg: Config, kind: Kind, revision: str) -> None:
    adopt_branched_history(conn, kind)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def linear_history(kind: Kind) -> list[str]:
    """The revision ids of `kind`, in the order they apply."""
    script = ScriptDirectory.from_config(alembic_config(kind))
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def adopt_branched_history(conn: Connection, kind: Kind) -> None:
    """Rewrite the version rows of a database made while the history was branched (up to one
    row per old head, old ids) as the one revision of the linear history it has applied."""
    if "alembic_version" not in inspect(conn).get_table_names():
        return
    rows = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    parents, renamed = BRANCHED_HISTORY[kind]
    if len(rows) <= 1 and not rows & renamed.keys():
        return  # at one revision of the linear history (or new): nothing to adopt
    if not rows <= parents.keys():
        raise RuntimeError(
            f"the {kind} database is recorded at revisions {sorted(rows)}, which are not of "
            "reelm's migration history: it cannot be upgraded automatically"
        )
    applied: set[str] = set()
    todo = list(rows)
    while todo:
        revision = todo.pop()
        if revision not in applied:
            applied.add(revision)
            todo.extend(parents[revision])
    now = {renamed.get(r, r) for r in applied}
    line = linear_history(kind)
    if set(line[: len(now)]) != now:
        raise RuntimeError(
            f"the {kind} database has applied {sorted(now)}, which is not a beginning of the "
            f"linear history {line}: it cannot be upgraded automatically"
        )
    conn.execute(text("DELETE FROM alembic_version"))
    conn.execute(
        text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": line[len(now) - 1]}
    )
