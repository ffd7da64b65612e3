"""The stored form of a user's For You candidate set (`foryou_candidates`, one row per user in
their home region): the ranked main and exploration candidates of one session build without its
seed's jitter, and the viewer's taste, to score what arrives after it was built.

Written by the region's worker after each training (`feed/precompute.py`), read by the first
page of a session (`feed/foryou.py`). zlib-compressed JSON: about 10 KB per user.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from reelm.feed import reads
from reelm.feed.models import ForYouCandidates
from reelm.residency.store import RegionStore
from reelm.sql import chunks, qmarks, read_rows

FORMAT = 1

LOAD_SQL = (
    "SELECT region, built_at, model_trained_at, data FROM foryou_candidates WHERE owner_id = ?"
)


@dataclass
class CandidateSet:
    region: str  # whose model ranked it
    built_at: datetime
    model_trained_at: datetime
    main: list[tuple[str, int, str, float]]  # (video, source, reason, score without the jitter)
    explore: list[tuple[str, str, float]]  # (video, reason, score without the jitter)
    seen: set[str] = field(default_factory=set)  # liked, saved or shared: never offered
    follows: set[str] = field(default_factory=set)  # active follows when it was built
    tag_weight: dict[str, float] = field(default_factory=dict)
    sound_weight: dict[str, float] = field(default_factory=dict)
    user_vector: list[float] | None = None  # folded into the model of `model_trained_at`


def encode(cs: CandidateSet) -> bytes:
    reasons = list(dict.fromkeys([r for _, _, r, _ in cs.main] + [r for _, r, _ in cs.explore]))
    at = {r: i for i, r in enumerate(reasons)}
    doc = {
        "v": FORMAT,
        "reasons": reasons,
        "main": [[v, s, at[r], round(x, 6)] for v, s, r, x in cs.main],
        "explore": [[v, at[r], round(x, 6)] for v, r, x in cs.explore],
        "seen": sorted(cs.seen),
        "follows": sorted(cs.follows),
        "tags": cs.tag_weight,
        "sounds": cs.sound_weight,
        "vector": cs.user_vector,
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)


def decode(
    region: str, built_at: datetime, trained_at: datetime, data: bytes
) -> CandidateSet | None:
    """None for a set written in another format (it is then rebuilt, as if missing)."""
    doc = json.loads(zlib.decompress(data))
    if doc.get("v") != FORMAT:
        return None
    reasons = doc["reasons"]
    return CandidateSet(
        region=region,
        built_at=built_at,
        model_trained_at=trained_at,
        main=[(v, int(s), reasons[r], float(x)) for v, s, r, x in doc["main"]],
        explore=[(v, reasons[r], float(x)) for v, r, x in doc["explore"]],
        seen=set(doc["seen"]),
        follows=set(doc["follows"]),
        tag_weight={str(k): float(w) for k, w in doc["tags"].items()},
        sound_weight={str(k): float(w) for k, w in doc["sounds"].items()},
        user_vector=doc["vector"],
    )


def load(store: RegionStore, owner_id: str) -> CandidateSet | None:
    """The user's stored set (one primary-key read in their home region), or None."""
    with store.unchecked_connection(reason="For You: the viewer's candidate set (read)") as conn:
        rows = read_rows(conn, LOAD_SQL, (owner_id,))
    if not rows:
        return None
    region, built_at, trained_at, data = rows[0]
    return decode(region, reads.timestamp(built_at), reads.timestamp(trained_at), bytes(data))


def built_for(store: RegionStore, owner_ids: Iterable[str]) -> dict[str, datetime]:
    """Which model each of these users' stored sets was ranked with."""
    out: dict[str, datetime] = {}
    with store.unchecked_connection(reason="For You precompute: which sets exist") as conn:
        for chunk in chunks(list(owner_ids), 500):
            sql = (
                "SELECT owner_id, model_trained_at FROM foryou_candidates "
                f"WHERE owner_id IN ({qmarks(len(chunk))})"
            )
            out.update((o, reads.timestamp(t)) for o, t in read_rows(conn, sql, chunk))
    return out


def save(store: RegionStore, sets: dict[str, CandidateSet], *, seed: int = 0) -> None:
    """Write (or replace) these users' sets in one transaction of their home region."""
    with store.transaction() as s:
        existing = {
            row.owner_id: row
            for row in s.scalars(
                select(ForYouCandidates).where(ForYouCandidates.owner_id.in_(list(sets)))
            )
        }
        for owner, cs in sets.items():
            row = existing.get(owner) or ForYouCandidates(owner_id=owner)
            row.region, row.built_at, row.model_trained_at = (
                cs.region,
                cs.built_at,
                cs.model_trained_at,
            )
            row.seed, row.data = seed, encode(cs)
            s.add(row)
