"""The outbox of each region and its dispatcher.

An action commits once, in the actor's home region. Whatever it changes elsewhere (a public
counter, the catalog's copy of a comment or a video, a notification in the recipient's region)
is emitted as an `Effect` row in that same transaction (`action`), so the action and its
effects commit or fail together. The dispatcher then applies each effect in its own
transaction on the target side, together with the effect's applied key (`AppliedEffect` in the
catalog, `ReceivedEffect` in a region), and only then deletes the outbox row: a dispatcher that
dies between the two finds the key when it runs again and applies nothing twice.

It runs right after the action's commit (`action` calls it, so a like is counted before its
answer), and, for what is left, in the region worker every few seconds (`run_dispatcher`): a
recipient being carved out (`moving`), a database that is down, a crash. Waiting effects wait;
an effect whose writer keeps failing is parked with its error after MAX_FAILURES tries and shown
by `reelm effects list` until `reelm effects retry` puts it back. Nothing is dropped, except a
notification for a user that no longer exists.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

import reelm.all_schemas  # noqa: F401  (every PUBLIC schema registered, by name)
from reelm.carveout.crash import crash_point
from reelm.db import utcnow
from reelm.effects.idempotency import prune_replies
from reelm.effects.models import AppliedEffect, Effect, EffectState, ReceivedEffect
from reelm.effects.outbox import Emitted, Outbox
from reelm.errors import EgressRefused, ResidencyViolation, TryAgainLater
from reelm.residency.egress import PublicRecord, destination, egress, schema_named
from reelm.residency.models import ACTIVE, DELETED, REMOTE, REMOTE_REGION
from reelm.residency.store import Home, Platform, RegionStore
from reelm.sql import chunks

log = logging.getLogger(__name__)

MAX_FAILURES = 5
"""Tries of an effect whose writer raises (not a wait) before it is parked."""
BATCH = 500
"""Effects one dispatcher pass reads from a region's outbox."""
KEY_RETENTION = timedelta(days=7)
"""How long applied keys are kept. An outbox row is deleted right after its effect applies
(or by the next pass, seconds later), so a key only has to outlive that."""

CATALOG = "catalog"
"""The destination name of effects written into the global catalog."""


@contextmanager
def action(platform: Platform, region: str, owner_id: str) -> Iterator[tuple[Session, Outbox]]:
    """One action of `owner_id`: a transaction in `region` with its outbox. After the commit its
    effects are dispatched at once; a failure there is only logged (the action has committed,
    so its answer is a success, and the region worker applies what is left)."""
    store = platform.region(region)
    with store.transaction() as session:
        outbox = Outbox(session, owner_id)
        yield session, outbox
    dispatch_soon(platform, region, outbox.emitted)


def dispatch_soon(platform: Platform, region: str, emitted: Sequence[Emitted]) -> None:
    """Apply these just-committed effects now if their targets allow; never raises."""
    if not emitted:
        return
    try:
        dispatch(platform, region, emitted=emitted)
    except Exception:
        log.exception("region %s: effects %s left for the worker", region, [e.id for e in emitted])


@dataclass
class DispatchReport:
    selected: int = 0
    applied: int = 0
    waiting: int = 0
    failed: int = 0
    parked: int = 0
    discarded: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DispatchReport) -> None:
        for name in ("selected", "applied", "waiting", "failed", "parked", "discarded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors


class _Wait(Exception):
    """The target cannot take the effect yet (a moving recipient, a database that is down)."""


def dispatch(
    platform: Platform,
    region: str,
    *,
    emitted: Sequence[Emitted] | None = None,
    limit: int = BATCH,
    due_only: bool = True,
) -> DispatchReport:
    """Apply pending effects of `region`'s outbox: the oldest due ones (with
    `due_only=False`, also those still waiting out their backoff), or those an action has just
    `emitted`, as it holds them (if another dispatcher applied one meanwhile, its key says so).

    Effects of one lane apply in order: one waits while an older one of its lane is pending or
    parked. Effects for one destination apply in one transaction there; if that transaction
    fails for a reason other than a wait, each is tried alone so one poison effect holds up
    only itself."""
    store = platform.region(region)
    fresh = emitted is not None
    items = list(emitted) if emitted is not None else _load(store, limit=limit, due_only=due_only)
    report = DispatchReport(selected=len(items))
    if not items:
        return report
    blocked = _blocked_lanes(platform, store, items)
    homes = platform.directory.homes(
        r
        for i in items
        if i.record is not None and i.region is None and (r := _recipient(i.record)) is not None
    )
    outcome = _Outcome()
    groups: dict[str, list[Emitted]] = {}
    for item in items:
        if item.lane is not None and item.lane in blocked:
            outcome.wait(item, "an older effect of its lane is not applied yet")
        elif item.record is None:
            outcome.fail(item, item.error or "unreadable")
            if item.lane is not None:
                blocked.add(item.lane)
        elif (recipient := _recipient(item.record)) is None:
            groups.setdefault(CATALOG, []).append(item)
        elif item.region == REMOTE_REGION:
            outcome.discard(item, "its recipient is on another server (federation delivers)")
        elif item.region is not None:
            # the action's hint: a wrong one fails the target's residency check, and the
            # next pass routes by the Directory
            groups.setdefault(item.region, []).append(item)
        else:
            _route(item, recipient, homes.get(recipient), groups, outcome)
    for target, group in groups.items():
        _apply_group(platform, target, group, outcome, blocked, fresh=fresh)
    # Right after an action its applied effects stay in the outbox: crossing them off is one
    # more transaction in the actor's region per request, and the worker's next pass does it
    # for many at once (their keys make it apply nothing again).
    outcome.settle(store, report, cross_off=not fresh)
    return report


def _load(store: RegionStore, *, limit: int, due_only: bool) -> list[Emitted]:
    with store.session() as s:
        q = select(Effect).where(Effect.state == EffectState.PENDING)
        if due_only:
            q = q.where(Effect.next_attempt_at <= utcnow())
        rows = list(s.scalars(q.order_by(Effect.created_at, Effect.ordinal).limit(limit)))
    return [_decode(row) for row in rows]


def _decode(row: Effect) -> Emitted:
    try:
        record: PublicRecord | None = schema_named(row.kind).model_validate_json(row.payload)
        error = None
    except (EgressRefused, ValueError) as e:
        record, error = None, f"{type(e).__name__}: {e}"
    return Emitted(row.id, row.owner_id, row.lane, row.created_at, record, error)


def _blocked_lanes(platform: Platform, store: RegionStore, items: list[Emitted]) -> set[str]:
    """Lanes in which an effect outside this batch, older than the batch's first of that lane,
    is still waiting or parked (one already applied, whose row the worker has not crossed off
    yet, does not count: lanes are the catalog's, so its key is there)."""
    first: dict[str, datetime] = {}
    for item in items:
        if item.lane is not None and item.lane not in first:
            first[item.lane] = item.created_at
    if not first:
        return set()
    with store.session() as s:
        rows = s.execute(
            select(Effect.id, Effect.lane, Effect.created_at).where(
                Effect.lane.in_(list(first)), Effect.id.not_in([i.id for i in items])
            )
        ).all()
    older: list[tuple[str, str]] = [
        (i, lane) for i, lane, at in rows if lane is not None and at <= first[lane]
    ]
    if not older:
        return set()
    with platform.global_store.session() as g:
        applied = _keys_present(g, AppliedEffect, [i for i, _ in older])
    return {lane for i, lane in older if i not in applied}


def _recipient(record: PublicRecord) -> str | None:
    """The user whose region `record` is written into, or None for the catalog."""
    field_name = destination(record).recipient
    return None if field_name is None else str(getattr(record, field_name))


def _route(
    item: Emitted,
    recipient: str,
    home: Home | None,
    groups: dict[str, list[Emitted]],
    outcome: _Outcome,
) -> None:
    """Add an effect bound for a user's region to the group of that region, as of now."""
    if home is None or home.state == DELETED:
        outcome.discard(item, f"recipient {recipient} no longer exists")
    elif home.state == REMOTE:
        outcome.discard(item, f"recipient {recipient} is on another server (federation delivers)")
    elif home.state != ACTIVE:
        outcome.wait(item, f"recipient {recipient} is {home.state}")
    else:
        groups.setdefault(home.region, []).append(item)


def _apply_group(
    platform: Platform,
    target: str,
    group: list[Emitted],
    outcome: _Outcome,
    blocked: set[str],
    *,
    fresh: bool = False,
) -> None:
    try:
        _apply(platform, target, group, fresh=fresh)
        outcome.applied += [i.id for i in group]
        return
    except _Wait as e:
        for item in group:
            outcome.wait(item, str(e))
        return
    except Exception as e:
        if len(group) == 1:
            outcome.fail(group[0], f"{type(e).__name__}: {e}")
            return
    for item in group:  # one by one, in order, so a poison effect holds up only its lane
        if item.lane is not None and item.lane in blocked:
            outcome.wait(item, "an older effect of its lane is not applied yet")
            continue
        try:
            _apply(platform, target, [item])
            outcome.applied.append(item.id)
        except _Wait as e:
            outcome.wait(item, str(e))
        except Exception as e:
            outcome.fail(item, f"{type(e).__name__}: {e}")
        else:
            continue
        if item.lane is not None:
            blocked.add(item.lane)


def _apply(platform: Platform, target: str, group: list[Emitted], *, fresh: bool = False) -> None:
    """Write `group`'s records at `target` with their keys, in one transaction there.

    `fresh`: effects an action emitted a moment ago, almost never applied yet, so their keys
    are inserted without looking first; if one is there (another dispatcher was quicker), the
    insert fails, the transaction rolls back, and the group is applied again looking first."""
    ids = [i.id for i in group]
    try:
        if target == CATALOG:
            with platform.global_store.transaction() as g:
                done = set() if fresh else _keys_present(g, AppliedEffect, ids)
                todo = [i for i in group if i.id not in done]
                if todo:
                    g.add_all(AppliedEffect(id=i.id) for i in todo)
                    g.flush()
                for item in todo:
                    egress(g, item.record)
                g.flush()
                crash_point("effects.target_writing")
        else:
            with platform.region(target).transaction() as r:
                done = set() if fresh else _keys_present(r, ReceivedEffect, ids)
                todo = [i for i in group if i.id not in done]
                for item in todo:
                    assert item.record is not None
                    r.add(ReceivedEffect(id=item.id, owner_id=_recipient(item.record)))
                r.flush()
                for item in todo:
                    egress(r, item.record)
                r.flush()
                crash_point("effects.target_writing")
    except (TryAgainLater, OperationalError) as e:
        raise _Wait(f"{type(e).__name__}: {e}") from e
    except ResidencyViolation as e:
        # the recipient's home changed since it was read (a carve-out flipped them)
        raise _Wait(f"{type(e).__name__}: {e}") from e
    except IntegrityError as e:
        # another dispatcher applied one of these at the same moment: its key is there now
        if _all_applied(platform, target, ids):
            return
        if fresh:
            _apply(platform, target, group)
            return
        raise e
    except DBAPIError as e:
        if e.connection_invalidated:
            raise _Wait(f"{type(e).__name__}: {e}") from e
        raise
    crash_point("effects.target_committed")


def _keys_present(session: Session, key: type[AppliedEffect | ReceivedEffect], ids: list[str]) -> set[str]:
    return set(session.scalars(select(key.id).where(key.id.in_(ids))))


def _all_applied(platform: Platform, target: str, ids: list[str]) -> bool:
    key = AppliedEffect if target == CATALOG else ReceivedEffect
    store = platform.global_store if target == CATALOG else platform.region(target)
    with store.session() as s:
        found = s.scalar(select(func.count()).where(key.id.in_(ids))) or 0
    return int(found) == len(ids)


class _Outcome:
    """What one pass did to each effect, written back to the outbox at the end."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.discarded: list[str] = []
        self.waits: dict[str, str] = {}
        self.failures: dict[str, str] = {}

    def wait(self, item: Emitted, why: str) -> None:
        self.waits[item.id] = why

    def fail(self, item: Emitted, error: str) -> None:
        self.failures[item.id] = error

    def discard(self, item: Emitted, why: str) -> None:
        log.info("effect %s discarded: %s", item.id, why)
        self.discarded.append(item.id)

    def settle(self, store: RegionStore, report: DispatchReport, *, cross_off: bool) -> None:
        done = (self.applied if cross_off else []) + self.discarded
        try:
            for chunk in chunks(done, BATCH):
                with store.transaction() as s:
                    s.execute(delete(Effect).where(Effect.id.in_(chunk)))
        except (TryAgainLater, OperationalError) as e:
            # an owner is moving, or the region is down: the keys make the next pass skip them
            log.info("region %s: applied effects stay in the outbox for now (%s)", store.name, e)
        report.applied += len(self.applied)
        report.discarded += len(self.discarded)
        report.waiting += len(self.waits)
        report.failed += len(self.failures)
        report.errors += list(self.failures.values())
        if self.waits or self.failures:
            try:
                report.parked += _note_tries(store, self.waits, self.failures)
            except (TryAgainLater, OperationalError) as e:
                log.info("region %s: could not note effect tries (%s)", store.name, e)


def _note_tries(store: RegionStore, waits: dict[str, str], failures: dict[str, str]) -> int:
    now, parked = utcnow(), 0
    with store.transaction() as s:
        for effect in s.scalars(select(Effect).where(Effect.id.in_([*waits, *failures]))):
            effect.attempts += 1
            effect.next_attempt_at = now + _backoff(effect.attempts)
            if effect.id in failures:
                effect.failures += 1
                effect.last_error = failures[effect.id][:2000]
                if effect.failures >= MAX_FAILURES:
                    effect.state = EffectState.PARKED
                    parked += 1
                    log.error("effect %s parked: %s", effect.id, effect.last_error)
    return parked


MAX_BACKOFF_S = 15
"""The longest wait between tries: an effect held up by a move applies at most this long after
the recipient's batch is done (a batch lasts seconds; a whole carve-out can last minutes)."""


def _backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8, then every MAX_BACKOFF_S seconds."""
    return timedelta(seconds=min(MAX_BACKOFF_S, 2 ** min(attempts - 1, 6)))


# --- the worker's loop, and what operators see ---------------------------------------------------


def dispatch_all(platform: Platform, region: str, *, due_only: bool = True) -> DispatchReport:
    """Passes over the region's outbox until no due effect is left that can apply now
    (`due_only=False`: every pending one is tried, backoff or not, as an operator asks)."""
    total = DispatchReport()
    while True:
        report = dispatch(platform, region, due_only=due_only)
        total.add(report)
        if report.selected < BATCH or report.applied + report.discarded == 0:
            return total


def run_dispatcher(
    platform: Platform, region: str, stop: threading.Event, *, interval: float = 2.0
) -> None:
    """The region worker's dispatcher: a pass every `interval` seconds until `stop` is set,
    and once an hour the applied keys past KEY_RETENTION and the idempotent replies past
    their day are pruned."""
    pruned_at = utcnow() - timedelta(hours=2)
    while not stop.is_set():
        try:
            dispatch_all(platform, region)
            if utcnow() - pruned_at > timedelta(hours=1):
                prune_keys(platform, region)
                prune_replies(platform, region)
                pruned_at = utcnow()
        except Exception:
            log.exception("region %s: dispatcher pass failed; trying again", region)
        stop.wait(interval)


def prune_keys(platform: Platform, region: str, *, now: datetime | None = None) -> int:
    """Drop applied keys older than KEY_RETENTION in `region` and in the catalog."""
    cutoff = (now or utcnow()) - KEY_RETENTION
    n = 0
    try:
        with platform.region(region).transaction() as r:
            n += _rowcount(r.execute(delete(ReceivedEffect).where(ReceivedEffect.applied_at < cutoff)))
    except TryAgainLater:
        pass  # a recipient is moving; next hour
    with platform.global_store.transaction() as g:
        n += _rowcount(g.execute(delete(AppliedEffect).where(AppliedEffect.applied_at < cutoff)))
    return n


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class EffectInfo:
    id: str
    region: str
    owner_id: str
    kind: str
    state: str
    attempts: int
    failures: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime


def list_effects(
    platform: Platform, *, regions: Iterable[str] | None = None, parked_only: bool = False
) -> list[EffectInfo]:
    out: list[EffectInfo] = []
    for name in regions or platform.regions:
        with platform.region(name).session() as s:
            q = select(Effect)
            if parked_only:
                q = q.where(Effect.state == EffectState.PARKED)
            for e in s.scalars(q.order_by(Effect.created_at, Effect.ordinal)):
                out.append(
                    EffectInfo(
                        e.id, name, e.owner_id, e.kind, e.state, e.attempts, e.failures,
                        e.last_error, e.created_at, e.next_attempt_at,
                    )
                )
    return out


def do_retry(
    platform: Platform, *, ids: Sequence[str] | None = None, regions: Iterable[str] | None = None
) -> int:
    """Put parked effects (`ids`, or all of them) back to pending, due now, with their failure
    count reset; the dispatcher's next pass tries them."""
    n = 0
    for name in regions or platform.regions:
        with platform.region(name).transaction() as s:
            q = update(Effect).where(Effect.state == EffectState.PARKED)
            if ids is not None:
                q = q.where(Effect.id.in_(list(ids)))
            n += _rowcount(
                s.execute(
                    q.values(
                        state=EffectState.PENDING, failures=0, next_attempt_at=utcnow()
                    )
                )
            )
    return n


def pending_count(platform: Platform, region: str) -> int:
    with platform.region(region).session() as s:
        return int(s.scalar(select(func.count()).select_from(Effect)) or 0)
