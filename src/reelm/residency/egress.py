"""Egress: the one way data leaves a region.

It accepts only instances of the registered PUBLIC schemas, exactly (a subclass with more fields is
refused), re-validates them, and hands them to the writer registered for that schema. Anything else
(an ORM row, a dict, a protected schema) raises `EgressRefused` and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
_BY_NAME: dict[str, type[PublicRecord]] = {}


@dataclass(frozen=True)
class Destination:
    """Where a record of one schema is written: the global catalog, or (`recipient` names the
    field holding a user id) that user's home region. `lane`, when set, names the records that
    must apply in the order they were emitted (all records about one comment, one video)."""

    recipient: str | None = None
    lane: Callable[[Any], str] | None = None


_DESTINATIONS: dict[type[PublicRecord], Destination] = {}


def public_schema(
    writer: Callable[[Session, R], None],
    *,
    recipient: str | None = None,
    lane: Callable[[R], str] | None = None,
) -> Callable[[type[R]], type[R]]:
    """Register a PUBLIC schema together with the function that writes it: to the catalog, or,
    with `recipient`, into the home region of the user that field names."""

    def register(cls: type[R]) -> type[R]:
        if cls.__name__ in _BY_NAME and _BY_NAME[cls.__name__] is not cls:
            raise TypeError(f"two PUBLIC schemas are named {cls.__name__}")
        _WRITERS[cls] = writer
        _BY_NAME[cls.__name__] = cls
        _DESTINATIONS[cls] = Destination(recipient=recipient, lane=lane)
        return cls

    return register


def public_schemas() -> tuple[type[PublicRecord], ...]:
    return tuple(_WRITERS)


def check_public(record: object) -> PublicRecord:
    """`record` re-validated as exactly one registered PUBLIC schema, or `EgressRefused`."""
    # exact type: no subclass smuggles extra fields out
    writer = _WRITERS.get(type(record)) if isinstance(record, PublicRecord) else None
    if writer is None or not isinstance(record, PublicRecord):
        raise EgressRefused(
            f"Egress refused a {type(record).__name__}: only the PUBLIC schemas "
            f"{sorted(c.__name__ for c in _WRITERS)} may leave a region"
        )
    return type(record).model_validate(record.model_dump())  # model_construct can't bypass it


def destination(record: PublicRecord) -> Destination:
    return _DESTINATIONS[type(record)]


def schema_named(name: str) -> type[PublicRecord]:
    """The registered PUBLIC schema called `name` (how the outbox stores a record's kind)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise EgressRefused(f"{name!r} is not a registered PUBLIC schema") from None


def egress(catalog: Session, record: object) -> None:
    """Write one PUBLIC record where it lands (the caller's session commits): the catalog, or
    the recipient's region for a schema registered with `recipient`."""
    checked = check_public(record)
    _WRITERS[type(checked)](catalog, checked)
