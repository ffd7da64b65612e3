"""Social actions. Each commits once, in the actor's region: the actor's record together with
its effects in that region's outbox (public counters, a comment's published text, notifications
for the recipient's region), which the dispatcher applies exactly once after the commit (see
effects/service.py). A check that needs another user's protected data (is the creator's account
private? did they block me?) runs in that user's region and returns only the yes/no answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from reelm.accounts.models import Account
from reelm.accounts.service import CurrentUser
from reelm.db import utcnow
from reelm.effects.idempotency import Idempotency, remember, replay
from reelm.effects.outbox import Outbox
from reelm.effects.service import action
from reelm.errors import (
    CommentNotFound,
    Forbidden,
    InvalidInput,
    NotFound,
    UserNotFound,
    VideoNotFound,
)
from reelm.media.models import PublishedVideo, Video
from reelm.media.publish import creator_handle, emit_publication
from reelm.residency.egress import egress
from reelm.residency.models import ACTIVE, MOVING, REMOTE, REMOTE_REGION, DirectoryEntry
from reelm.residency.store import Platform
from reelm.social.models import (
    Block,
    Comment,
    Follow,
    FollowStatus,
    Like,
    Mute,
    Notification,
    NotInterested,
    PublicComment,
    Save,
    Share,
    WatchEvent,
)
from reelm.social.schemas import (
    CommentCreate,
    CommentRead,
    CommentRemoval,
    CountChange,
    CounterKind,
    FollowSevered,
    FollowState,
    NotificationRead,
    NotificationRecord,
    PublicCommentRecord,
    WatchBatch,
    end_follow,
)
from reelm.text import parse_caption

VIEW_AFTER_MS = 1000


@dataclass(frozen=True)
class Person:
    user_id: str
    handle: str
    region: str


LIVE = (ACTIVE, MOVING, REMOTE)
"""Users others can act on: a user whose data a carve-out is moving is still there (what is
sent to them waits in the sender's outbox until the move is over); a remote actor (federation
delivers what is sent to them). A remote actor's handle key is never a local handle, so
`person_by_handle` finds local users only."""


def person_by_handle(platform: Platform, handle: str) -> Person:
    with platform.global_store.session() as g:
        e = g.scalar(
            select(DirectoryEntry).where(
                DirectoryEntry.handle_key == handle.lower(), DirectoryEntry.state.in_(LIVE)
            )
        )
    if e is None:
        raise UserNotFound(handle)
    return Person(e.user_id, e.handle, e.home_region)


def person_by_id(platform: Platform, user_id: str) -> Person:
    with platform.global_store.session() as g:
        e = g.get(DirectoryEntry, user_id)
    if e is None or e.state not in LIVE:
        raise UserNotFound()
    return Person(e.user_id, e.handle, e.home_region)


def _me(user: CurrentUser) -> Person:
    return Person(user.user_id, user.handle, user.region)


def _count(outbox: Outbox, target: str, target_id: str, kind: CounterKind, delta: int) -> None:
    outbox.emit(CountChange(target=target, id=target_id, field=kind, delta=delta))


def _notify(
    outbox: Outbox,
    recipient: Person,
    actor: Person,
    kind: str,
    *,
    video_id: str | None = None,
    comment_id: str | None = None,
    snippet: str = "",
) -> None:
    if recipient.user_id == actor.user_id:
        return
    outbox.emit(
        NotificationRecord(
            recipient_id=recipient.user_id,
            kind=kind,
            actor_id=actor.user_id,
            actor_handle=actor.handle,
            video_id=video_id,
            comment_id=comment_id,
            snippet=snippet[:200],
        ),
        region=recipient.region,
    )


def _count_follow(outbox: Outbox, follower: Person, followee: Person, delta: int) -> None:
    _count(outbox, "user", followee.user_id, CounterKind.FOLLOWERS, delta)
    _count(outbox, "user", follower.user_id, CounterKind.FOLLOWING, delta)


# answers that come from another user's region (yes/no only)


def blocks(platform: Platform, owner: Person, target_id: str) -> bool:
    if owner.region == REMOTE_REGION:
        return False  # a remote actor's own blocks are its server's business
    with platform.region(owner.region).session() as s:
        return (
            s.scalar(
                select(Block.id).where(
                    Block.owner_id == owner.user_id, Block.target_id == target_id
                )
            )
            is not None
        )


def blocked_between(platform: Platform, a: Person, b: Person) -> bool:
    return blocks(platform, a, b.user_id) or blocks(platform, b, a.user_id)


def is_private(platform: Platform, person: Person) -> bool:
    with platform.region(person.region).session() as s:
        return bool(s.scalar(select(Account.is_private).where(Account.id == person.user_id)))


def follow_state(platform: Platform, follower: Person, followee_id: str) -> FollowStatus:
    with platform.region(follower.region).session() as s:
        state = s.scalar(
            select(Follow.state).where(
                Follow.owner_id == follower.user_id, Follow.followee_id == followee_id
            )
        )
    return FollowStatus(state) if state else FollowStatus.NONE


# videos a viewer may act on


def access_catalog_video(
    platform: Platform, viewer: Person | None, video_id: str
) -> PublishedVideo:
    """A published video `viewer` may see: blocks and followers-only respected."""
    with platform.global_store.session() as g:
        video = g.get(PublishedVideo, video_id)
    if video is None:
        raise VideoNotFound()
    if viewer is None:
        if video.visibility != "public":
            raise VideoNotFound()
        return video
    if viewer.user_id == video.creator_id:
        return video
    creator = Person(video.creator_id, video.creator_handle, video.region)
    if blocked_between(platform, viewer, creator):
        raise VideoNotFound()
    if (
        video.visibility == "followers"
        and follow_state(platform, viewer, creator.user_id) != FollowStatus.ACTIVE
    ):
        raise VideoNotFound()
    return video


def _creator(video: PublishedVideo) -> Person:
    return Person(video.creator_id, video.creator_handle, video.region)


# follows


def do_follow(platform: Platform, user: CurrentUser, handle: str) -> FollowState:
    me, them = _me(user), person_by_handle(platform, handle)
    if me.user_id == them.user_id:
        raise InvalidInput("You cannot follow yourself.", code="self_follow")
    if blocked_between(platform, me, them):
        raise Forbidden("You cannot follow this account.", code="blocked")
    state = FollowStatus.PENDING if is_private(platform, them) else FollowStatus.ACTIVE
    try:
        with action(platform, me.region, me.user_id) as (s, outbox):
            s.add(Follow(owner_id=me.user_id, followee_id=them.user_id, state=state))
            s.flush()
            if state == FollowStatus.ACTIVE:
                _count_follow(outbox, me, them, 1)
                _notify(outbox, them, me, "follow")
            else:
                _notify(outbox, them, me, "follow_request")
    except IntegrityError:  # already following (or asked): a follow is idempotent
        return FollowState(handle=them.handle, state=follow_state(platform, me, them.user_id))
    return FollowState(handle=them.handle, state=state)


def do_unfollow(platform: Platform, user: CurrentUser, handle: str) -> FollowState:
    me, them = _me(user), person_by_handle(platform, handle)
    _remove_follow(platform, me, them)
    return FollowState(handle=them.handle, state=FollowStatus.NONE)


def _remove_follow(platform: Platform, follower: Person, followee: Person) -> None:
    with action(platform, follower.region, follower.user_id) as (s, outbox):
        end_follow(s, outbox, follower.user_id, followee.user_id)


def do_answer_follow_request(
    platform: Platform, user: CurrentUser, follower_handle: str, *, approve: bool
) -> FollowState:
    """The followee approves or declines; the request is the follower's record, in their
    region, so the follower's region commits it with its effects."""
    me, them = _me(user), person_by_handle(platform, follower_handle)
    with action(platform, them.region, them.user_id) as (s, outbox):
        row = s.scalar(
            select(Follow).where(
                Follow.owner_id == them.user_id,
                Follow.followee_id == me.user_id,
                Follow.state == FollowStatus.PENDING,
            )
        )
        if row is None:
            raise NotFound("No such follow request.", code="no_request")
        if approve:
            row.state = FollowStatus.ACTIVE
            _count_follow(outbox, them, me, 1)
            _notify(outbox, them, me, "follow")
        else:
            s.delete(row)
    return FollowState(
        handle=them.handle, state=FollowStatus.ACTIVE if approve else FollowStatus.NONE
    )


def follow_requests(platform: Platform, user: CurrentUser) -> list[str]:
    """Handles that asked to follow `user`. Requests live in each follower's region, so every
    region answers with the ids of its pending requests towards `user` (no other data)."""
    ids: list[str] = []
    for store in platform.regions.values():
        with store.session() as s:
            ids += list(
                s.scalars(
                    select(Follow.owner_id).where(
                        Follow.followee_id == user.user_id, Follow.state == FollowStatus.PENDING
                    )
                )
            )
    with platform.global_store.session() as g:
        return list(g.scalars(select(DirectoryEntry.handle).where(DirectoryEntry.user_id.in_(ids))))


def followed_ids(platform: Platform, viewer: Person) -> list[str]:
    with platform.region(viewer.region).session() as s:
        return list(
            s.scalars(
                select(Follow.followee_id).where(
                    Follow.owner_id == viewer.user_id, Follow.state == FollowStatus.ACTIVE
                )
            )
        )


# likes, saves, shares, not interested


def do_like(platform: Platform, user: CurrentUser, video_id: str) -> int:
    """Like a video (liking it again changes nothing); the like count after it."""
    me = _me(user)
    video = access_catalog_video(platform, me, video_id)
    try:
        with action(platform, me.region, me.user_id) as (s, outbox):
            s.add(Like(owner_id=me.user_id, video_id=video_id))
            s.flush()
            _count(outbox, "video", video_id, CounterKind.LIKE_COUNT, 1)
            _count(outbox, "user", video.creator_id, CounterKind.LIKES_RECEIVED, 1)
            _notify(outbox, _creator(video), me, "like", video_id=video_id)
    except IntegrityError:
        return video.like_count
    return video.like_count + 1


def do_unlike(platform: Platform, user: CurrentUser, video_id: str) -> None:
    me = _me(user)
    with platform.global_store.session() as g:
        creator_id = g.scalar(
            select(PublishedVideo.creator_id).where(PublishedVideo.id == video_id)
        )
    with action(platform, me.region, me.user_id) as (s, outbox):
        n = s.execute(
            delete(Like).where(Like.owner_id == me.user_id, Like.video_id == video_id)
        ).rowcount  # type: ignore[attr-defined]
        if n:
            _count(outbox, "video", video_id, CounterKind.LIKE_COUNT, -1)
            if creator_id is not None:
                _count(outbox, "user", creator_id, CounterKind.LIKES_RECEIVED, -1)


def do_save(platform: Platform, user: CurrentUser, video_id: str, *, saved: bool) -> None:
    me = _me(user)
    if saved:
        access_catalog_video(platform, me, video_id)
        try:
            with platform.region(me.region).transaction() as s:
                s.add(Save(owner_id=me.user_id, video_id=video_id))
        except IntegrityError:
            pass
    else:
        with platform.region(me.region).transaction() as s:
            s.execute(delete(Save).where(Save.owner_id == me.user_id, Save.video_id == video_id))


def do_share(
    platform: Platform,
    user: CurrentUser | None,
    video_id: str,
    *,
    channel: str,
    idempotency_key: str | None = None,
) -> dict[str, object]:
    """Count a share (and keep it in the sharer's region when signed in). With an
    Idempotency-Key, a retry answers the first result and counts nothing again."""
    viewer = _me(user) if user else None
    request = Idempotency.of(idempotency_key, "share", video_id, channel) if viewer else None
    if viewer is not None and (reply := replay(platform, viewer.region, viewer.user_id, request)):
        return dict(json.loads(reply))
    video = access_catalog_video(platform, viewer, video_id)
    result: dict[str, object] = {"url": f"/v/{video_id}", "share_count": video.share_count + 1}
    if viewer is None:  # nothing to keep in a region: the count is the only write
        with platform.global_store.transaction() as g:
            egress(g, CountChange(target="video", id=video_id, field=CounterKind.SHARE_COUNT, delta=1))
        return result
    try:
        with action(platform, viewer.region, viewer.user_id) as (s, outbox):
            s.add(Share(owner_id=viewer.user_id, video_id=video_id, channel=channel[:20]))
            _count(outbox, "video", video_id, CounterKind.SHARE_COUNT, 1)
            remember(s, viewer.user_id, request, json.dumps(result))
    except IntegrityError:  # the same key at the same moment: the other request answered
        if (reply := replay(platform, viewer.region, viewer.user_id, request)) is not None:
            return dict(json.loads(reply))
        raise
    return result


def do_not_interested(platform: Platform, user: CurrentUser, video_id: str) -> None:
    me = _me(user)
    try:
        with platform.region(me.region).transaction() as s:
            s.add(NotInterested(owner_id=me.user_id, video_id=video_id))
    except IntegrityError:
        pass


def viewer_states(
    platform: Platform, user: CurrentUser, video_ids: list[str]
) -> dict[str, dict[str, bool]]:
    """For each video: whether the viewer liked it, saved it and follows its creator, so a player
    shows the rail as the viewer left it. Read in the viewer's own region (their records) and
    the catalog (who made each video)."""
    ids = list(dict.fromkeys(video_ids))
    if not ids:
        return {}
    with platform.global_store.session() as g:
        creators = dict(
            g.execute(
                select(PublishedVideo.id, PublishedVideo.creator_id).where(
                    PublishedVideo.id.in_(ids)
                )
            ).all()
        )
    with platform.region(user.region).session() as s:
        mine = Like.owner_id == user.user_id
        liked = set(s.scalars(select(Like.video_id).where(mine, Like.video_id.in_(ids))))
        saved = set(
            s.scalars(
                select(Save.video_id).where(Save.owner_id == user.user_id, Save.video_id.in_(ids))
            )
        )
        followed = set(
            s.scalars(
                select(Follow.followee_id).where(
                    Follow.owner_id == user.user_id,
                    Follow.followee_id.in_(set(creators.values())),
                    Follow.state == FollowStatus.ACTIVE,
                )
            )
        )
    return {
        video_id: {
            "liked": video_id in liked,
            "saved": video_id in saved,
            "following": creators[video_id] in followed,
        }
        for video_id in ids
        if video_id in creators
    }


# blocks and mutes


def do_block(platform: Platform, user: CurrentUser, handle: str, *, blocked: bool) -> None:
    me, them = _me(user), person_by_handle(platform, handle)
    if me.user_id == them.user_id:
        raise InvalidInput("You cannot block yourself.", code="self_block")
    if blocked:
        # one commit in my region: the block, my follow of them gone, and theirs of me ended
        # by an effect in their region (their record)
        try:
            with action(platform, me.region, me.user_id) as (s, outbox):
                s.add(Block(owner_id=me.user_id, target_id=them.user_id))
                s.flush()
                end_follow(s, outbox, me.user_id, them.user_id)
                outbox.emit(FollowSevered(recipient_id=them.user_id, followee_id=me.user_id))
        except IntegrityError:
            return
    else:
        with platform.region(me.region).transaction() as s:
            s.execute(
                delete(Block).where(Block.owner_id == me.user_id, Block.target_id == them.user_id)
            )


def do_mute(platform: Platform, user: CurrentUser, handle: str, *, muted: bool) -> None:
    me, them = _me(user), person_by_handle(platform, handle)
    if muted:
        try:
            with platform.region(me.region).transaction() as s:
                s.add(Mute(owner_id=me.user_id, target_id=them.user_id))
        except IntegrityError:
            pass
    else:
        with platform.region(me.region).transaction() as s:
            s.execute(
                delete(Mute).where(Mute.owner_id == me.user_id, Mute.target_id == them.user_id)
            )


def hidden_creators(platform: Platform, viewer: Person) -> set[str]:
    """Creators whose videos never reach `viewer`: blocked, muted (the viewer's own records), and
    those who blocked the viewer (answered by each region with ids only)."""
    with platform.region(viewer.region).session() as s:
        out = set(s.scalars(select(Block.target_id).where(Block.owner_id == viewer.user_id)))
        out |= set(s.scalars(select(Mute.target_id).where(Mute.owner_id == viewer.user_id)))
    for store in platform.regions.values():
        with store.session() as s:
            out |= set(s.scalars(select(Block.owner_id).where(Block.target_id == viewer.user_id)))
    return out


# comments


@dataclass
class _CommentTarget:
    """What a new comment hangs under and who hears of it, checked before it is written."""

    video: PublishedVideo
    parent_id: str | None
    notify: list[tuple[Person, str]] = field(default_factory=list)


def do_comment(
    platform: Platform,
    user: CurrentUser,
    video_id: str,
    body: CommentCreate,
    *,
    idempotency_key: str | None = None,
) -> CommentRead:
    """Comment on a video (or reply to a comment). With an Idempotency-Key, a retry of the same
    comment answers the first result and stores nothing again; the same key with another
    comment is refused (422)."""
    me = _me(user)
    request = Idempotency.of(idempotency_key, "comment", video_id, body.model_dump(mode="json"))
    if (reply := replay(platform, me.region, me.user_id, request)) is not None:
        return CommentRead.model_validate_json(reply)
    target = _check_comment_target(platform, me, video_id, body)
    try:
        return _record_comment(platform, me, target, body, request)
    except IntegrityError:  # the same key at the same moment: the other request answered
        if (reply := replay(platform, me.region, me.user_id, request)) is not None:
            return CommentRead.model_validate_json(reply)
        raise


def _check_comment_target(
    platform: Platform, me: Person, video_id: str, body: CommentCreate
) -> _CommentTarget:
    video = access_catalog_video(platform, me, video_id)
    if not video.allow_comments:
        raise Forbidden("Comments are turned off for this video.", code="comments_off")
    target = _CommentTarget(video=video, parent_id=body.parent_id)
    target.notify.append((_creator(video), "comment"))
    if body.parent_id is not None:
        with platform.global_store.session() as g:
            parent = g.get(PublicComment, body.parent_id)
        if parent is None or parent.video_id != video_id:
            raise CommentNotFound("No such comment to reply to.")
        target.parent_id = parent.parent_id or parent.id  # replies are one level deep
        parent_author = person_by_id(platform, parent.author_id)
        if parent_author.user_id != video.creator_id:
            target.notify.append((parent_author, "reply"))
    for handle in parse_caption(body.text)[1]:
        try:
            mentioned = person_by_handle(platform, handle)
        except UserNotFound:
            continue
        if not blocked_between(platform, me, mentioned):
            target.notify.append((mentioned, "mention"))
    return target


def _record_comment(
    platform: Platform,
    me: Person,
    target: _CommentTarget,
    body: CommentCreate,
    request: Idempotency | None,
) -> CommentRead:
    video_id = target.video.id
    with action(platform, me.region, me.user_id) as (s, outbox):
        source = Comment(
            owner_id=me.user_id, video_id=video_id, parent_id=target.parent_id, text=body.text
        )
        s.add(source)
        s.flush()
        result = CommentRead(
            id=source.id,
            video_id=video_id,
            author_handle=me.handle,
            parent_id=target.parent_id,
            text=body.text,
            created_at=source.created_at,
            like_count=0,
        )
        outbox.emit(
            PublicCommentRecord(
                id=source.id,
                video_id=video_id,
                author_id=me.user_id,
                author_handle=me.handle,
                parent_id=target.parent_id,
                text=body.text,
                created_at=source.created_at,
            )
        )
        for recipient, kind in target.notify:
            _notify(
                outbox, recipient, me, kind, video_id=video_id, comment_id=source.id,
                snippet=body.text,
            )
        remember(s, me.user_id, request, result.model_dump_json())
    return result


def list_comments(
    platform: Platform,
    viewer: CurrentUser | None,
    video_id: str,
    *,
    limit: int = 50,
    before: datetime | None = None,
) -> list[CommentRead]:
    me = _me(viewer) if viewer else None
    access_catalog_video(platform, me, video_id)
    hidden = hidden_creators(platform, me) if me else set()
    with platform.global_store.session() as g:
        q = select(PublicComment).where(PublicComment.video_id == video_id)
        if before is not None:
            q = q.where(PublicComment.created_at < before)
        rows = g.scalars(q.order_by(PublicComment.created_at.desc()).limit(limit))
        return [CommentRead.model_validate(r) for r in rows if r.author_id not in hidden]


def do_delete_comment(platform: Platform, user: CurrentUser, comment_id: str) -> None:
    """The author deletes their comment, or the creator deletes one on their own video. The
    comment's source is the author's record, so the author's region commits the deletion with
    its effect (the catalog drops the comment and its replies, and recounts)."""
    with platform.global_store.session() as g:
        row = g.get(PublicComment, comment_id)
        video = g.get(PublishedVideo, row.video_id) if row is not None else None
    if row is None or video is None:
        raise CommentNotFound()
    if user.user_id not in (row.author_id, video.creator_id):
        raise Forbidden("Only its author or the video's creator can delete a comment.")
    author = person_by_id(platform, row.author_id)
    with action(platform, author.region, author.user_id) as (s, outbox):
        source = s.get(Comment, comment_id)
        if source is not None and source.deleted_at is None:
            source.deleted_at = utcnow()
        outbox.emit(CommentRemoval(id=comment_id, video_id=row.video_id))


def do_set_comments(platform: Platform, user: CurrentUser, video_id: str, *, enabled: bool) -> None:
    handle = creator_handle(platform, user.user_id)
    with action(platform, user.region, user.user_id) as (s, outbox):
        video = s.get(Video, video_id)
        if video is None or video.owner_id != user.user_id:
            raise VideoNotFound()
        video.allow_comments = enabled
        emit_publication(outbox, video, handle=handle, region=user.region)


# watch events and notifications


def do_record_watch(platform: Platform, user: CurrentUser | None, batch: WatchBatch) -> int:
    """Store the viewer's watch events in their region, with the views they add to the
    catalog's counts as effects of that commit; an anonymous viewer's views are counted
    directly (there is nothing of theirs to keep)."""
    views: dict[str, int] = {}
    for e in batch.events:
        if e.watched_ms >= VIEW_AFTER_MS or e.completed:
            views[e.video_id] = views.get(e.video_id, 0) + 1
    if views:
        with platform.global_store.session() as g:
            known = set(g.scalars(select(PublishedVideo.id).where(PublishedVideo.id.in_(views))))
        views = {video_id: n for video_id, n in views.items() if video_id in known}
    counts = [
        CountChange(target="video", id=video_id, field=CounterKind.VIEW_COUNT, delta=n)
        for video_id, n in views.items()
    ]
    if user is not None and batch.events:
        with action(platform, user.region, user.user_id) as (s, outbox):
            s.add_all(
                WatchEvent(
                    owner_id=user.user_id,
                    video_id=e.video_id,
                    watched_ms=e.watched_ms,
                    completed=e.completed,
                )
                for e in batch.events
            )
            for count in counts:
                outbox.emit(count)
    elif counts:
        with platform.global_store.transaction() as g:
            for count in counts:
                egress(g, count)
    return sum(views.values())


def list_notifications(
    platform: Platform, user: CurrentUser, *, limit: int = 50, before: datetime | None = None
) -> list[NotificationRead]:
    with platform.region(user.region).session() as s:
        q = select(Notification).where(Notification.owner_id == user.user_id)
        if before is not None:
            q = q.where(Notification.created_at < before)
        rows = s.scalars(q.order_by(Notification.created_at.desc()).limit(limit))
        return [
            NotificationRead(
                id=r.id,
                kind=r.kind,
                actor_handle=r.actor_handle,
                video_id=r.video_id,
                comment_id=r.comment_id,
                snippet=r.snippet,
                created_at=r.created_at,
                read=r.read_at is not None,
            )
            for r in rows
        ]


def do_mark_read(platform: Platform, user: CurrentUser) -> int:
    with platform.region(user.region).transaction() as s:
        result = s.execute(
            update(Notification)
            .where(Notification.owner_id == user.user_id, Notification.read_at.is_(None))
            .values(read_at=utcnow())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def unread_count(platform: Platform, user: CurrentUser) -> int:
    with platform.region(user.region).session() as s:
        return int(
            s.scalar(
                select(func.count()).where(
                    Notification.owner_id == user.user_id, Notification.read_at.is_(None)
                )
            )
            or 0
        )
