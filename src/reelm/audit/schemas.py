"""The JSON the public audit endpoints serve and `reelm audit` prints: hashes in standard base64.

The server fills these from its database; `reelm audit verify` reads them back and trusts none
of it beyond what it can check against a signed checkpoint.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{text[:20]!r} is not base64") from exc


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EntryRead(_Read):
    """One leaf: `data` is the exact bytes hashed (base64); `entry` is the same, parsed."""

    index: int
    data: str
    leaf_hash: str
    entry: dict[str, Any] | None = None


class EntriesPage(_Read):
    """Entries [start, end) of a log of `size` entries; a page holds at most MAX_PAGE."""

    start: int
    end: int
    size: int
    entries: list[EntryRead]


class InclusionProofRead(_Read):
    """PATH(index, D[0:size]) of RFC 9162, nearest the leaf first; `root` is the server's claim."""

    index: int
    size: int
    root: str
    proof: list[str]


class ConsistencyProofRead(_Read):
    """PROOF(first, D[0:second]) of RFC 9162; the roots are the server's claims."""

    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]
