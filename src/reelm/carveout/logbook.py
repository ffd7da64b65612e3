"""Appending a batch of carve-out entries to a region's audit log.

A carve-out appends three entries per moved user (out, in, key destruction): a million users are
three million entries. Every entry is validated by its type (pseudonymous subject, identifiers
only), exactly as `RegionLog.record` does; only the serialisation is done here, straight from
the validated fields, since `Entry.to_bytes` (a JSON-mode dump, then canonical JSON) costs more
than the append itself. The bytes are the same: the first entry of every batch is also
serialised by `Entry.to_bytes` and compared, so a change to the entry format fails loudly here
instead of writing entries a verifier would read differently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from reelm.audit.entries import ENTRY_VERSION, Entry, canonical_json
from reelm.audit.log import RegionLog, append_leaves
from reelm.db import utcnow


@lru_cache(maxsize=32)
def _template(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(keys))


def _plain(value: str) -> bool:
    """Printable ASCII without `"` and `\\`: JSON writes such a string as it is, in quotes."""
    return value.isascii() and value.isprintable() and '"' not in value and "\\" not in value


def _canonical(value: dict[str, Any]) -> bytes:
    """`canonical_json(value)` for a flat object of plain strings and integers (every carve-out
    entry, once validated: identifiers, hashes, pseudonyms), without the general encoder."""
    parts = []
    for key in _template(tuple(value)):
        v = value[key]
        if isinstance(v, str) and _plain(v):
            parts.append(f'"{key}":"{v}"')
        elif type(v) is int:
            parts.append(f'"{key}":{v}')
        else:
            return canonical_json(value)
    return ("{" + ",".join(parts) + "}").encode("ascii")


class EntryFormatChanged(RuntimeError):
    """The fast serialisation no longer matches `Entry.to_bytes`: update this module."""


def record_batch(log: RegionLog, items: Sequence[tuple[type[Entry], dict[str, Any]]]) -> int:
    """Validate and append `(entry type, fields)` items in one transaction; the first index."""
    if not items:
        return -1
    at = utcnow()
    first_cls, first_fields = items[0]
    reference = first_cls.model_validate({**first_fields, "time": at}).to_bytes()
    stamp = json.loads(reference)["time"]
    datas = []
    for cls, fields in items:
        cls.model_validate(fields)  # the type's rules (pseudonyms, identifiers), as record() does
        body = {k: v for k, v in fields.items() if v is not None}
        datas.append(_canonical({"v": ENTRY_VERSION, "kind": cls.kind, "time": stamp, **body}))
    if datas[0] != reference:
        raise EntryFormatChanged(
            f"audit entry bytes differ from Entry.to_bytes():\n{datas[0]!r}\n{reference!r}"
        )
    with log.store.transaction() as session:
        return append_leaves(session, datas, at=at)
