"""Autogenerate a migration: `python scripts/new_migration.py region "add likes" r0050`.

Each kind of database has one line of migrations: give an id that sorts after the head's (the
new file builds on the head). Builds a scratch SQLite database at the head, then diffs the models
against it.
"""

import sys
import tempfile
from pathlib import Path

from alembic import command

from reelm import migrations
from reelm.migrations import alembic_config
from reelm.residency.store import make_engine

kind, message, rev_id = sys.argv[1], sys.argv[2], sys.argv[3]
with tempfile.TemporaryDirectory() as tmp:
    engine = make_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
    migrations.upgrade(engine, kind)  # type: ignore[arg-type]
    cfg = alembic_config(kind)  # type: ignore[arg-type]
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id, head="head")
