"""The carve-out journal and the run records shared by a move (`service`, `move`) and a
hand-over (`handover`): the tables, the run's options and result, and the reads of what a run has
already logged. The steps a journal records are described in `service.py`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert

from reelm.audit.log import MAX_PAGE, RegionLog
from reelm.carveout import models as m
from reelm.config import Settings
from reelm.db import GlobalModel
from reelm.residency.models import DirectoryEntry
from reelm.sql import chunks

RUNS: Table = m.CarveOutRun.__table__  # type: ignore[assignment]
JOURNAL: Table = m.CarveOutUser.__table__  # type: ignore[assignment]
DIRECTORY: Table = DirectoryEntry.__table__  # type: ignore[assignment]
PRE_FLIP = (m.PLANNED, m.MARKED, m.COPIED, m.VERIFIED)


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    rows: int = 0
    blobs: int = 0
    bytes: int = 0


@dataclass
class RunOptions:
    batch: int = 500
    rate: float | None = None
    """Users per second at most (None: as fast as it goes)."""
    drain: float = 2.0
    """Seconds between a batch's flip and the deletion of its source copy: requests routed to
    the old home before the flip finish reading it."""
    clean_batch: int | None = None
    """Users whose source copies are deleted together (default: `batch`). Larger groups cost
    less on databases whose rows are not clustered by user; the copies of flipped users wait
    that much longer at the source (the residency scan names them meanwhile)."""
    progress: Callable[[Progress], None] | None = None


@dataclass
class RunResult:
    run_id: str
    moved: int
    failed: list[str]
    skipped: int
    seconds: float
    report: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def repoint_tables() -> list[tuple[Table, str]]:
    """PublicCatalog tables that say where a user's public data is served from: every global
    table with a `region` column and a column referring to the Directory's user id."""
    out = []
    for table in GlobalModel.metadata.sorted_tables:
        if "region" not in table.c or table.name == "directory":
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == "directory" and fk.column.name == "user_id":
                out.append((table, fk.parent.name))
    return out


def run_dir(settings: Settings, run_id: str) -> Path:
    return settings.data_dir / "carveout" / run_id


def journal_insert(g: Any, run_id: str, moves: dict[str, tuple[str, str]], now: Any) -> None:
    rows = [
        {"run_id": run_id, "user_id": u, "from_region": f, "to_region": t, "step": m.PLANNED,
         "manifest_root": None, "updated_at": now}
        for u, (f, t) in sorted(moves.items())
    ]  # fmt: skip
    for chunk in chunks(rows, 5000):
        g.execute(insert(JOURNAL), chunk)


def logged_carveout_entries(log: RegionLog, start: int, run_id: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    end = log.size()
    while start < end:
        rows = log.entries(start, min(end, start + MAX_PAGE))
        if not rows:
            break
        for row in rows:
            entry = json.loads(row.data)
            if entry.get("kind") == "carve_out_move" and entry.get("run_id") == run_id:
                found.add((entry["direction"], entry["subject"]))
            elif entry.get("kind") == "key_destruction" and entry.get("reason") == "carve_out":
                found.add(("key", entry["subject"]))
        start = rows[-1].idx + 1
    return found
