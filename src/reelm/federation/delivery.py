"""Sending deliveries: each built from the Egress record it carries, signed with its actor's
key, POSTed to its inbox (a shared inbox for every follower on a server), retried with backoff
and parked after `federation_max_tries` (the dead-letter list)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select, update

from reelm.accounts.schemas import PublicProfileRecord
from reelm.config import Settings
from reelm.db import utcnow
from reelm.federation import activities as ap
from reelm.federation.models import (
    Delivery,
    DeliveryState,
    RemoteActor,
)
from reelm.federation.service import (
    Federation,
    actor_document,
    actor_key,
    check_fetchable,
    check_instance,
    create_activity,
    domain_of,
    object_uri,
)
from reelm.federation.signatures import (
    sign_request,
)
from reelm.media.schemas import PublicVideoRecord, VideoWithdrawal
from reelm.residency.egress import schema_named
from reelm.residency.store import Platform
from reelm.social.schemas import (
    CommentRemoval,
    NotificationRecord,
    PublicCommentRecord,
)

log = logging.getLogger(__name__)


MAX_BACKOFF = timedelta(hours=6)
SEND_THREADS = 16


# --- building what a delivery sends -------------------------------------------------------------


def build_activity(fed: Federation, row: Delivery) -> dict[str, Any]:
    """The activity of a delivery, from the Egress record it carries."""
    data = json.loads(row.record)
    record = schema_named(data["kind"]).model_validate(data["record"]) if data["kind"] else None
    urls, me = fed.urls, fed.urls.actor(row.owner_id)
    act_id = urls.activity(row.activity_id)
    with fed.platform.global_store.session() as g:
        target = g.get(RemoteActor, row.target_id) if row.target_id else None
        if row.kind in ("video", "video_update"):
            assert isinstance(record, PublicVideoRecord)
            return create_activity(fed, record, update=row.kind == "video_update") | {"id": act_id}
        if row.kind == "video_delete":
            assert isinstance(record, VideoWithdrawal)
            return ap.activity("Delete", id=act_id, actor=me,
                               obj={"id": urls.video(record.id), "type": "Tombstone"},
                               to=[ap.PUBLIC], cc=[urls.followers(row.owner_id)])  # fmt: skip
        if row.kind == "profile":
            assert isinstance(record, PublicProfileRecord)
            obj = actor_document(fed, record.user_id)
            obj.pop("@context")
            return ap.activity("Update", id=act_id, actor=me, obj=obj, to=[ap.PUBLIC],
                               cc=[urls.followers(row.owner_id)])  # fmt: skip
        assert target is not None, f"delivery {row.id}: its remote actor is gone"
        if row.kind in ("like", "undo_like"):
            video_id = record.video_id if isinstance(record, NotificationRecord) else record.id  # type: ignore[union-attr]
            assert video_id is not None
            like = ap.activity("Like", id=urls.like(row.owner_id, video_id), actor=me,
                               obj=object_uri(fed, g, video_id, kind="video"), to=[target.uri])  # fmt: skip
            if row.kind == "like":
                return like
            like.pop("@context")
            return ap.activity("Undo", id=act_id, actor=me, obj=like, to=[target.uri])
        if row.kind == "comment":
            assert isinstance(record, PublicCommentRecord)
            reply_to = object_uri(fed, g, record.parent_id or record.video_id,
                                   kind="comment" if record.parent_id else "video")  # fmt: skip
            note = ap.note_object(urls, record, in_reply_to=reply_to, to=[target.uri])
            return ap.activity("Create", id=act_id, actor=me, obj=note, to=[ap.PUBLIC],
                               cc=[target.uri], published=record.created_at)  # fmt: skip
        if row.kind == "comment_delete":
            assert isinstance(record, CommentRemoval)
            return ap.activity("Delete", id=act_id, actor=me,
                               obj={"id": urls.comment(record.id), "type": "Tombstone"},
                               to=[ap.PUBLIC], cc=[target.uri])  # fmt: skip
        if row.kind in ("follow", "undo_follow"):
            follow = ap.activity("Follow", id=urls.follow(row.owner_id, target.id), actor=me,
                                 obj=target.uri, to=[target.uri])  # fmt: skip
            if row.kind == "follow":
                return follow
            follow.pop("@context")
            return ap.activity("Undo", id=act_id, actor=me, obj=follow, to=[target.uri])
        if row.kind in ("accept", "reject"):
            follow_obj = {"id": data["follow_uri"], "type": "Follow", "actor": target.uri,
                          "object": me}  # fmt: skip
            return ap.activity("Accept" if row.kind == "accept" else "Reject", id=act_id,
                               actor=me, obj=follow_obj, to=[target.uri])  # fmt: skip
    raise ValueError(f"delivery {row.id}: unknown kind {row.kind!r}")


# --- sending ------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)


def _backoff(settings: Settings, attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=settings.federation_retry_seconds * 2 ** max(0, attempts - 1)))


def post_signed(fed: Federation, user_id: str, inbox: str, body: bytes) -> httpx.Response:
    key = actor_key(fed.platform, user_id)
    headers = sign_request("POST", inbox, body, key_id=fed.urls.key(user_id), private_pem=key.private_pem)
    headers["Content-Type"] = ap.ACTIVITY_JSON
    headers["Accept"] = ap.ACTIVITY_JSON
    return fed.client.post(inbox, content=body, headers=headers)


def deliver_due(fed: Federation, region: str, *, limit: int = 500, due_only: bool = True) -> DeliveryReport:
    """Send the region's due deliveries (each once, in parallel), delete what an inbox took,
    back off what failed, park what failed `federation_max_tries` times."""
    store = fed.platform.region(region)
    report = DeliveryReport()
    with store.session() as s:
        q = select(Delivery).where(Delivery.state == DeliveryState.PENDING)
        if due_only:
            q = q.where(Delivery.next_attempt_at <= utcnow())
        rows = list(s.scalars(q.order_by(Delivery.created_at).limit(limit)))
    if not rows:
        return report
    bodies: dict[str, bytes] = {}
    results: dict[str, str | None] = {}

    def send(row: Delivery) -> None:
        try:
            check_fetchable(fed, row.inbox)
            check_instance(fed, domain_of(row.inbox))
            if row.activity_id not in bodies:
                bodies[row.activity_id] = json.dumps(build_activity(fed, row)).encode()
            r = post_signed(fed, row.owner_id, row.inbox, bodies[row.activity_id])
            results[row.id] = None if 200 <= r.status_code < 300 else f"{row.inbox} answered {r.status_code}: {r.text[:200]}"
        except Exception as e:
            results[row.id] = f"{type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=min(SEND_THREADS, len(rows))) as pool:
        list(pool.map(send, rows))
    done = [i for i, err in results.items() if err is None]
    failed = {i: err for i, err in results.items() if err is not None}
    report.sent, report.failed = len(done), len(failed)
    report.errors = list(failed.values())
    with store.transaction() as s:
        if done:
            s.execute(delete(Delivery).where(Delivery.id.in_(done)))
        for row in s.scalars(select(Delivery).where(Delivery.id.in_(list(failed)))):
            row.attempts += 1
            row.last_error = (failed[row.id] or "")[:2000]
            row.next_attempt_at = utcnow() + _backoff(fed.settings, row.attempts)
            if row.attempts >= fed.settings.federation_max_tries:
                row.state = DeliveryState.PARKED
                report.parked += 1
                log.error("delivery %s to %s parked: %s", row.id, row.inbox, row.last_error)
    return report


def deliver_all(
    fed: Federation, *, due_only: bool = True, regions: Iterable[str] | None = None
) -> DeliveryReport:
    total = DeliveryReport()
    for region in regions or list(fed.platform.regions):
        while True:
            r = deliver_due(fed, region, due_only=due_only)
            total.sent += r.sent
            total.failed += r.failed
            total.parked += r.parked
            total.errors += r.errors
            if r.sent == 0:
                break
    return total


def run_deliverer(
    fed: Federation, stop: threading.Event, *, interval: float = 1.0,
    regions: Iterable[str] | None = None,
) -> None:  # fmt: skip
    """The delivery loop of a serving process (every region) or a region worker (its own)."""
    names = list(regions) if regions is not None else None
    while not stop.is_set():
        try:
            deliver_all(fed, regions=names)
        except Exception:
            log.exception("federation: delivery pass failed; trying again")
        stop.wait(interval)


@dataclass(frozen=True)
class DeliveryInfo:
    id: str
    region: str
    owner_id: str
    kind: str
    inbox: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime


def list_deliveries(platform: Platform, *, parked_only: bool = False) -> list[DeliveryInfo]:
    out = []
    for name, store in platform.regions.items():
        with store.session() as s:
            q = select(Delivery)
            if parked_only:
                q = q.where(Delivery.state == DeliveryState.PARKED)
            for d in s.scalars(q.order_by(Delivery.created_at)):
                out.append(DeliveryInfo(d.id, name, d.owner_id, d.kind, d.inbox, d.state,
                                        d.attempts, d.last_error, d.next_attempt_at))  # fmt: skip
    return out


def do_retry_deliveries(platform: Platform, ids: Iterable[str] | None = None) -> int:
    n = 0
    for store in platform.regions.values():
        with store.transaction() as s:
            q = update(Delivery).where(Delivery.state == DeliveryState.PARKED)
            if ids is not None:
                q = q.where(Delivery.id.in_(list(ids)))
            result = s.execute(q.values(state=DeliveryState.PENDING, attempts=0, next_attempt_at=utcnow()))
            n += int(getattr(result, "rowcount", 0) or 0)
    return n
