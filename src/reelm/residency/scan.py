"""The residency scanner: proves that every protected row sits in its owner's home region.

It walks every table of `RegionModel.metadata` in every region. Per table the database groups rows
by owner (one pass, no row shipped to Python), and only the rows of owners who do not belong in that
region are fetched, with their primary keys, for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import func, select

import reelm.all_models  # noqa: F401  (every region table is known)
from reelm.db import RegionModel
from reelm.residency.store import Home, Platform
from reelm.sql import chunks


@dataclass(frozen=True)
class Violation:
    region: str
    table: str
    row_id: str
    owner_id: str
    home_region: str | None

    def describe(self) -> str:
        where = f"home region {self.home_region!r}" if self.home_region else "not in the Directory"
        return (
            f"region {self.region}: {self.table} row {self.row_id} of user {self.owner_id} "
            f"({where})"
        )


@dataclass
class ScanReport:
    rows: int = 0
    tables: int = 0
    violations: list[Violation] | None = None

    @property
    def clean(self) -> bool:
        return not self.violations


Progress = Callable[[str, str, int], None]


def scan_units(platform: Platform) -> Iterator[tuple[str, str]]:
    for region in platform.regions:
        for table in RegionModel.metadata.sorted_tables:
            yield region, table.name


def do_scan(platform: Platform, *, progress: Progress | None = None) -> ScanReport:
    homes: dict[str, Home] = platform.directory.all_homes()
    report = ScanReport(violations=[])
    assert report.violations is not None
    for region, store in platform.regions.items():
        existing = store.table_names()
        with store.unchecked_connection(reason="residency scan: read every owner") as conn:
            for table in RegionModel.metadata.sorted_tables:
                if table.name not in existing:
                    continue
                report.tables += 1
                counted = 0
                bad: list[str] = []
                for owner, n in conn.execute(
                    select(table.c.owner_id, func.count()).group_by(table.c.owner_id)
                ):
                    counted += n
                    home = homes.get(owner)
                    if home is None or not home.allows(region):
                        bad.append(owner)
                report.rows += counted
                pk = list(table.primary_key.columns)
                for chunk in chunks(bad, 500):
                    for row in conn.execute(
                        select(*pk, table.c.owner_id).where(table.c.owner_id.in_(chunk))
                    ):
                        owner = row[-1]
                        home = homes.get(owner)
                        report.violations.append(
                            Violation(
                                region=region,
                                table=table.name,
                                row_id="/".join(str(v) for v in row[:-1]),
                                owner_id=owner,
                                home_region=home.region if home else None,
                            )
                        )
                if progress is not None:
                    progress(region, table.name, counted)
    return report
