"""Alembic migrations for the two kinds of database: `global` and `region`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

HERE = Path(__file__).parent
Kind = Literal["global", "region"]


def alembic_config(kind: Kind) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / kind))
    return cfg


def upgrade(bind: Engine | Connection, kind: Kind, revision: str = "heads") -> None:
    """Bring one database to `revision` (every branch head by default); idempotent.

    Domains add migrations on their own branches off the latest revision they need, so work on
    separate domains never fights over one linear history."""
    cfg = alembic_config(kind)
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return
    with bind.begin():
        cfg.attributes["connection"] = bind
        command.upgrade(cfg, revision)
