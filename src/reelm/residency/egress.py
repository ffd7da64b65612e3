"""Egress: the one way data leaves a region.

It accepts only instances of the registered PUBLIC schemas, exactly (a subclass with more fields is
refused), re-validates them, and hands them to the writer registered for that schema. Anything else
(an ORM row, a dict, a protected schema) raises `EgressRefused` and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from reelm.errors import EgressRefused


class PublicRecord(BaseModel):
    """Base of every PUBLIC schema: frozen, with a fixed set of fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


R = TypeVar("R", bound=PublicRecord)
Writer = Callable[[Session, Any], None]
_WRITERS: dict[type[PublicRecord], Writer] = {}


def public_schema(writer: Callable[[Session, R], None]) -> Callable[[type[R]], type[R]]:
    """Register a PUBLIC schema together with the function that writes it to the catalog."""

    def register(cls: type[R]) -> type[R]:
        _WRITERS[cls] = writer
        return cls

    return register


def public_schemas() -> tuple[type[PublicRecord], ...]:
    return tuple(_WRITERS)


def egress(catalog: Session, record: object) -> None:
    """Publish one PUBLIC record to the global catalog (the caller's session commits)."""
    # exact type: no subclass smuggles extra fields out
    writer = _WRITERS.get(type(record)) if isinstance(record, PublicRecord) else None
    if writer is None or not isinstance(record, PublicRecord):
        raise EgressRefused(
            f"Egress refused a {type(record).__name__}: only the PUBLIC schemas "
            f"{sorted(c.__name__ for c in _WRITERS)} may leave a region"
        )
    checked = type(record).model_validate(record.model_dump())  # model_construct can't bypass it
    writer(catalog, checked)
