"""The two declarative bases and shared column types.

`RegionModel` tables hold protected data and live in a region database; every one has a non-null
`owner_id` naming the user whose personal data the row is. `GlobalModel` tables (Directory,
PublicCatalog, songs) never hold personal data. The scanner and the carve-out walk
`RegionModel.metadata` generically, so a new region table needs no new residency code.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use reelm.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class GlobalModel(DeclarativeBase):
    """Tables of the global database: never personal data."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RegionModel(DeclarativeBase):
    """Tables of a region database: protected data, each row owned by exactly one user."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    @declared_attr
    def owner_id(cls) -> Mapped[str]:  # noqa: N805 - SQLAlchemy declared_attr convention
        return mapped_column(String(32), nullable=False, index=True)


class RegionSystemModel(DeclarativeBase):
    """Tables of a region database that belong to the region, not to a user: the audit log, the
    carve-out journal. They share the region's database and migrations but are never moved or
    scanned as protected rows, and hold only pseudonymous ids."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


ID = String(32)
