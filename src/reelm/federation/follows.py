"""Follows across servers: a local user follows a remote account (their row, in their region,
pending until it accepts), a private account answers a remote request, and after a hand-over
the follows between users who left and users who stayed become federated follows."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reelm.accounts.service import CurrentUser
from reelm.effects.service import action
from reelm.errors import NotFound, ReelmError
from reelm.federation import activities as ap
from reelm.federation.models import (
    RemoteActor,
    RemoteFollower,
)
from reelm.federation.service import (
    Federation,
    LocalActor,
    check_instance,
    domain_of,
    federation_of,
    fetch_json,
    local_actor,
    queue_delivery,
    require,
    resolve_account,
    store_actor,
)
from reelm.residency.egress import egress
from reelm.residency.models import (
    REMOTE,
    DirectoryEntry,
)
from reelm.residency.store import Platform
from reelm.social.models import Block, Follow, FollowStatus
from reelm.social.schemas import (
    CountChange,
    CounterKind,
    NotificationRecord,
    end_follow,
)

log = logging.getLogger(__name__)


# --- local users and remote actors --------------------------------------------------------------


def do_follow_remote(platform: Platform, user: CurrentUser, account: str) -> str:
    """Follow a remote account: the follow is the user's, in their region, `pending` until the
    remote server accepts; the Follow activity is delivered from there."""
    fed = require(platform)
    remote = resolve_account(fed, account)
    try:
        with action(platform, user.region, user.user_id) as (s, _outbox):
            s.add(Follow(owner_id=user.user_id, followee_id=remote.id, state=FollowStatus.PENDING))
            s.flush()
            queue_delivery(fed, s, user.user_id, "follow", NotificationRecord(
                recipient_id=remote.id, kind="follow", actor_id=user.user_id,
                actor_handle=user.handle), target_id=remote.id)  # fmt: skip
    except IntegrityError:
        pass  # already following or asked
    return remote.acct


def do_unfollow_remote(platform: Platform, user: CurrentUser, account: str) -> None:
    fed = require(platform)
    remote = resolve_account(fed, account)
    with action(platform, user.region, user.user_id) as (s, outbox):
        end_follow(s, outbox, user.user_id, remote.id)
        queue_delivery(fed, s, user.user_id, "undo_follow", NotificationRecord(
            recipient_id=remote.id, kind="follow", actor_id=user.user_id,
            actor_handle=user.handle), target_id=remote.id)  # fmt: skip




def do_block_remote(platform: Platform, user: CurrentUser, account: str, *, blocked: bool) -> str:
    """A local user blocks (or unblocks) a remote actor: the block is theirs, in their region,
    like any block; their follow of the actor ends (an Undo is delivered) and the actor's
    follow of them is removed. A blocked actor's follows are then rejected and its likes,
    comments and replies notify no one; its comments are hidden from the blocker."""
    fed = require(platform)
    remote = resolve_account(fed, account)
    if not blocked:
        with platform.region(user.region).transaction() as s:
            s.execute(delete(Block).where(Block.owner_id == user.user_id, Block.target_id == remote.id))
        return remote.acct
    try:
        with action(platform, user.region, user.user_id) as (s, outbox):
            s.add(Block(owner_id=user.user_id, target_id=remote.id))
            s.flush()
            followed = s.scalar(select(Follow.id).where(Follow.owner_id == user.user_id,
                                                       Follow.followee_id == remote.id))  # fmt: skip
            end_follow(s, outbox, user.user_id, remote.id)
            if followed is not None:
                queue_delivery(fed, s, user.user_id, "undo_follow", NotificationRecord(
                    recipient_id=remote.id, kind="follow", actor_id=user.user_id,
                    actor_handle=user.handle), target_id=remote.id)  # fmt: skip
    except IntegrityError:
        return remote.acct  # blocked already
    with platform.global_store.transaction() as g:
        row = g.scalar(select(RemoteFollower).where(RemoteFollower.remote_id == remote.id,
                                                   RemoteFollower.user_id == user.user_id))  # fmt: skip
        if row is not None:
            if row.state == FollowStatus.ACTIVE:
                count_follow(g, follower=remote.id, followee=user.user_id, delta=-1)
            g.delete(row)
    return remote.acct


def count_follow(g: Session, *, follower: str, followee: str, delta: int) -> None:
    egress(g, CountChange(target="user", id=followee, field=CounterKind.FOLLOWERS, delta=delta))
    egress(g, CountChange(target="user", id=follower, field=CounterKind.FOLLOWING, delta=delta))

def send_answer(fed: Federation, local: LocalActor, actor: RemoteActor, follow_uri: str, *, accept: bool) -> None:
    """Queue the local user's Accept or Reject of a remote follow, in their region."""
    with fed.platform.region(local.region).transaction() as r:
        queue_delivery(fed, r, local.user_id, "accept" if accept else "reject", NotificationRecord(
            recipient_id=actor.id, kind="follow", actor_id=local.user_id,
            actor_handle=local.handle), target_id=actor.id,
            extra={"follow_uri": follow_uri})  # fmt: skip

def do_answer_remote_request(platform: Platform, user: CurrentUser, account: str, *, approve: bool) -> None:
    """A private account answers a remote follow request."""
    fed = require(platform)
    with platform.global_store.session() as g:
        row = g.execute(
            select(RemoteFollower, RemoteActor).join(RemoteActor, RemoteActor.id == RemoteFollower.remote_id)
            .where(RemoteFollower.user_id == user.user_id, RemoteActor.acct == account,
                   RemoteFollower.state == FollowStatus.PENDING)  # fmt: skip
        ).first()
    if row is None:
        raise NotFound("No such follow request.", code="no_request")
    follower, actor = row
    local = local_actor(platform, user.user_id)
    with platform.global_store.transaction() as g:
        f = g.get(RemoteFollower, follower.id)
        assert f is not None
        if approve:
            f.state = FollowStatus.ACTIVE
            count_follow(g, follower=actor.id, followee=user.user_id, delta=1)
        else:
            g.delete(f)
    send_answer(fed, local, actor, follower.follow_uri, accept=approve)

# --- after a hand-over: follows across the new boundary become federated follows ---------------


def _adopt_actor(fed: Federation, uri: str, *, local_id: str) -> RemoteActor:
    """The remote actor at `uri`, cached under `local_id` when it is new here (the id a
    hand-over kept, so rows naming that user keep naming them)."""
    check_instance(fed, domain_of(uri))
    doc = ap.parse_actor(fetch_json(fed, uri))
    with fed.platform.global_store.transaction() as g:
        known = g.scalar(select(RemoteActor).where(RemoteActor.uri == doc.uri))
        entry = g.get(DirectoryEntry, local_id)
        free = known is None and (entry is None or entry.state == REMOTE)
        return store_actor(g, doc, local_id=local_id if free else None)


def _refollow(fed: Federation, region: str, follower_id: str, old_id: str, remote: RemoteActor) -> None:
    """`follower_id`'s follow of `old_id` now names the remote actor, and is delivered."""
    with fed.platform.global_store.session() as g:
        handle = g.scalar(select(DirectoryEntry.handle).where(DirectoryEntry.user_id == follower_id))
    with fed.platform.region(region).transaction() as s:
        if remote.id != old_id:
            s.execute(update(Follow).where(Follow.owner_id == follower_id,
                                           Follow.followee_id == old_id)
                      .values(followee_id=remote.id))  # fmt: skip
        queue_delivery(fed, s, follower_id, "follow", NotificationRecord(
            recipient_id=remote.id, kind="follow", actor_id=follower_id,
            actor_handle=handle or "user"), target_id=remote.id)  # fmt: skip


def _followers_of(fed: Federation, followees: Iterable[str], *, owners: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
    """(region, follower, followee) of the follows of `followees` held in this deployment."""
    wanted, only = list(followees), list(owners) if owners is not None else None
    out: list[tuple[str, str, str]] = []
    for name, store in fed.platform.regions.items():
        with store.session() as s:
            q = select(Follow.owner_id, Follow.followee_id).where(Follow.followee_id.in_(wanted))
            if only is not None:
                q = q.where(Follow.owner_id.in_(only))
            out += [(name, o, f) for o, f in s.execute(q)]
    return out


def do_relink_imported(platform: Platform, *, source_url: str | None, users: list[str]) -> int:
    """At the recipient of a hand-over: what the handed-over users followed at the source
    (users who stayed there) becomes a federated follow of those users' actors at the source.
    Returns the follows re-established; one that cannot be (the source unreachable) is logged."""
    fed = federation_of(platform)
    if fed is None or not source_url or not users:
        return 0
    homes = platform.directory.homes(users)
    follows: list[tuple[str, str, str]] = []
    for name, store in platform.regions.items():
        mine = [u for u in users if u in homes and homes[u].region == name]
        if not mine:
            continue
        with store.session() as s:
            follows += [(name, o, f) for o, f in s.execute(
                select(Follow.owner_id, Follow.followee_id).where(Follow.owner_id.in_(mine)))]  # fmt: skip
    here = platform.directory.homes(f for _r, _o, f in follows)
    return _relink(fed, [(r, o, f) for r, o, f in follows if f not in here or here[f].state == REMOTE],
                   f"{source_url.rstrip('/')}/ap/actors/{{}}")  # fmt: skip


def do_relink_finished(platform: Platform, *, users: list[str], recipient_url: str) -> int:
    """At the source of a finished hand-over: the follows that users who stayed held of users
    who left become federated follows of their actors at the recipient."""
    fed = federation_of(platform)
    if fed is None or not users:
        return 0
    return _relink(fed, _followers_of(fed, users), f"{recipient_url.rstrip('/')}/ap/actors/{{}}")


def _relink(fed: Federation, follows: list[tuple[str, str, str]], template: str) -> int:
    actors: dict[str, RemoteActor | None] = {}
    n = 0
    for region, follower, followee in follows:
        if followee not in actors:
            try:
                actors[followee] = _adopt_actor(fed, template.format(followee), local_id=followee)
            except (ReelmError, ap.Unparseable) as e:
                log.warning("federation: %s not re-linked: %s", followee, e)
                actors[followee] = None
        remote = actors[followee]
        if remote is not None:
            _refollow(fed, region, follower, followee, remote)
            n += 1
    return n
