"""Social actions. The actor's record goes to the actor's region; public aggregates and a
comment's published text go to the catalog through Egress; notifications go into the recipient's
region through Egress. A check that needs another user's protected data (is the creator's account
private? did they block me?) runs in that user's region and returns only the yes/no answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from reelm.accounts.models import Account
from reelm.accounts.service import CurrentUser
from reelm.db import utcnow
from reelm.errors import Forbidden, InvalidInput, NotFound
from reelm.media.models import PublishedVideo, Video
from reelm.residency.egress import egress
from reelm.residency.models import ACTIVE, DirectoryEntry
from reelm.residency.store import Platform
from reelm.social.models import (
    Block,
    Comment,
    Follow,
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
    CountChange,
    FollowState,
    NotificationRead,
    NotificationRecord,
    PublicCommentRecord,
    WatchBatch,
)

VIEW_AFTER_MS = 1000


@dataclass(frozen=True)
class Person:
    user_id: str
    handle: str
    region: str


def person_by_handle(platform: Platform, handle: str) -> Person:
    with platform.global_store.session() as g:
        e = g.scalar(
            select(DirectoryEntry).where(
                DirectoryEntry.handle_key == handle.lower(), DirectoryEntry.state == ACTIVE
            )
        )
    if e is None:
        raise NotFound(f"No user @{handle}.", code="user_not_found")
    return Person(e.user_id, e.handle, e.home_region)


def person_by_id(platform: Platform, user_id: str) -> Person:
    with platform.global_store.session() as g:
        e = g.get(DirectoryEntry, user_id)
    if e is None or e.state != ACTIVE:
        raise NotFound("No such user.", code="user_not_found")
    return Person(e.user_id, e.handle, e.home_region)


def _me(user: CurrentUser) -> Person:
    return Person(user.user_id, user.handle, user.region)


def _count(platform: Platform, target: str, target_id: str, field: str, delta: int) -> None:
    with platform.global_store.transaction() as g:
        egress(g, CountChange(target=target, id=target_id, field=field, delta=delta))


def _notify(
    platform: Platform,
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
    with platform.region(recipient.region).transaction() as s:
        egress(
            s,
            NotificationRecord(
                recipient_id=recipient.user_id,
                kind=kind,
                actor_id=actor.user_id,
                actor_handle=actor.handle,
                video_id=video_id,
                comment_id=comment_id,
                snippet=snippet[:200],
            ),
        )


# answers that come from another user's region (yes/no only)


def blocks(platform: Platform, owner: Person, target_id: str) -> bool:
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


def follow_state(platform: Platform, follower: Person, followee_id: str) -> str:
    with platform.region(follower.region).session() as s:
        state = s.scalar(
            select(Follow.state).where(
                Follow.owner_id == follower.user_id, Follow.followee_id == followee_id
            )
        )
    return state or "none"


# videos a viewer may act on


def access_catalog_video(
    platform: Platform, viewer: Person | None, video_id: str
) -> PublishedVideo:
    """A published video `viewer` may see: blocks and followers-only respected."""
    with platform.global_store.session() as g:
        video = g.get(PublishedVideo, video_id)
    if video is None:
        raise NotFound("No such video.", code="video_not_found")
    if viewer is None:
        if video.visibility != "public":
            raise NotFound("No such video.", code="video_not_found")
        return video
    if viewer.user_id == video.creator_id:
        return video
    creator = Person(video.creator_id, video.creator_handle, video.region)
    if blocked_between(platform, viewer, creator):
        raise NotFound("No such video.", code="video_not_found")
    if (
        video.visibility == "followers"
        and follow_state(platform, viewer, creator.user_id) != "active"
    ):
        raise NotFound("No such video.", code="video_not_found")
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
    state = "pending" if is_private(platform, them) else "active"
    try:
        with platform.region(me.region).transaction() as s:
            s.add(Follow(owner_id=me.user_id, followee_id=them.user_id, state=state))
    except IntegrityError:
        return FollowState(handle=them.handle, state=follow_state(platform, me, them.user_id))
    if state == "active":
        _count(platform, "user", them.user_id, "followers", 1)
        _count(platform, "user", me.user_id, "following", 1)
        _notify(platform, them, me, "follow")
    else:
        _notify(platform, them, me, "follow_request")
    return FollowState(handle=them.handle, state=state)


def do_unfollow(platform: Platform, user: CurrentUser, handle: str) -> FollowState:
    me, them = _me(user), person_by_handle(platform, handle)
    _remove_follow(platform, me, them)
    return FollowState(handle=them.handle, state="none")


def _remove_follow(platform: Platform, follower: Person, followee: Person) -> None:
    with platform.region(follower.region).transaction() as s:
        row = s.scalar(
            select(Follow).where(
                Follow.owner_id == follower.user_id, Follow.followee_id == followee.user_id
            )
        )
        if row is None:
            return
        was_active = row.state == "active"
        s.delete(row)
    if was_active:
        _count(platform, "user", followee.user_id, "followers", -1)
        _count(platform, "user", follower.user_id, "following", -1)


def do_answer_follow_request(
    platform: Platform, user: CurrentUser, follower_handle: str, *, approve: bool
) -> FollowState:
    """The followee approves or declines; the request is the follower's record, in their region."""
    me, them = _me(user), person_by_handle(platform, follower_handle)
    with platform.region(them.region).transaction() as s:
        row = s.scalar(
            select(Follow).where(
                Follow.owner_id == them.user_id,
                Follow.followee_id == me.user_id,
                Follow.state == "pending",
            )
        )
        if row is None:
            raise NotFound("No such follow request.", code="no_request")
        if approve:
            row.state = "active"
        else:
            s.delete(row)
    if approve:
        _count(platform, "user", me.user_id, "followers", 1)
        _count(platform, "user", them.user_id, "following", 1)
        _notify(platform, them, me, "follow")
    return FollowState(handle=them.handle, state="active" if approve else "none")


def follow_requests(platform: Platform, user: CurrentUser) -> list[str]:
    """Handles that asked to follow `user`. Requests live in each follower's region, so every
    region answers with the ids of its pending requests towards `user` (no other data)."""
    ids: list[str] = []
    for store in platform.regions.values():
        with store.session() as s:
            ids += list(
                s.scalars(
                    select(Follow.owner_id).where(
                        Follow.followee_id == user.user_id, Follow.state == "pending"
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
                    Follow.owner_id == viewer.user_id, Follow.state == "active"
                )
            )
        )


# likes, saves, shares, not interested


def do_like(platform: Platform, user: CurrentUser, video_id: str) -> int:
    me = _me(user)
    video = access_catalog_video(platform, me, video_id)
    try:
        with platform.region(me.region).transaction() as s:
            s.add(Like(owner_id=me.user_id, video_id=video_id))
    except IntegrityError:
        return video.like_count
    _count(platform, "video", video_id, "like_count", 1)
    _count(platform, "user", video.creator_id, "likes_received", 1)
    _notify(platform, _creator(video), me, "like", video_id=video_id)
    return video.like_count + 1


def do_unlike(platform: Platform, user: CurrentUser, video_id: str) -> None:
    me = _me(user)
    with platform.region(me.region).transaction() as s:
        n = s.execute(
            delete(Like).where(Like.owner_id == me.user_id, Like.video_id == video_id)
        ).rowcount  # type: ignore[attr-defined]
    if n:
        with platform.global_store.session() as g:
            video = g.get(PublishedVideo, video_id)
        _count(platform, "video", video_id, "like_count", -1)
        if video is not None:
            _count(platform, "user", video.creator_id, "likes_received", -1)


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
    platform: Platform, user: CurrentUser | None, video_id: str, *, channel: str
) -> dict[str, object]:
    viewer = _me(user) if user else None
    video = access_catalog_video(platform, viewer, video_id)
    if viewer is not None:
        with platform.region(viewer.region).transaction() as s:
            s.add(Share(owner_id=viewer.user_id, video_id=video_id, channel=channel[:20]))
    _count(platform, "video", video_id, "share_count", 1)
    return {"url": f"/v/{video_id}", "share_count": video.share_count + 1}


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
                    Follow.state == "active",
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
        try:
            with platform.region(me.region).transaction() as s:
                s.add(Block(owner_id=me.user_id, target_id=them.user_id))
        except IntegrityError:
            return
        _remove_follow(platform, me, them)
        _remove_follow(platform, them, me)
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


def do_comment(
    platform: Platform, user: CurrentUser, video_id: str, body: CommentCreate
) -> CommentRead:
    me = _me(user)
    video = access_catalog_video(platform, me, video_id)
    if not video.allow_comments:
        raise Forbidden("Comments are turned off for this video.", code="comments_off")
    parent_author: Person | None = None
    parent_id = body.parent_id
    if parent_id is not None:
        with platform.global_store.session() as g:
            parent = g.get(PublicComment, parent_id)
        if parent is None or parent.video_id != video_id:
            raise NotFound("No such comment to reply to.", code="comment_not_found")
        parent_id = parent.parent_id or parent.id  # replies are one level deep
        parent_author = person_by_id(platform, parent.author_id)
    with platform.region(me.region).transaction() as s:
        source = Comment(
            owner_id=me.user_id, video_id=video_id, parent_id=parent_id, text=body.text
        )
        s.add(source)
        s.flush()
        comment_id, created = source.id, source.created_at
    with platform.global_store.transaction() as g:
        egress(
            g,
            PublicCommentRecord(
                id=comment_id,
                video_id=video_id,
                author_id=me.user_id,
                author_handle=me.handle,
                parent_id=parent_id,
                text=body.text,
                created_at=created,
            ),
        )
        egress(g, CountChange(target="video", id=video_id, field="comment_count", delta=1))
    _notify(
        platform,
        _creator(video),
        me,
        "comment",
        video_id=video_id,
        comment_id=comment_id,
        snippet=body.text,
    )
    if parent_author is not None and parent_author.user_id != video.creator_id:
        _notify(
            platform,
            parent_author,
            me,
            "reply",
            video_id=video_id,
            comment_id=comment_id,
            snippet=body.text,
        )
    from reelm.media.service import parse_caption

    for handle in parse_caption(body.text)[1]:
        try:
            mentioned = person_by_handle(platform, handle)
        except NotFound:
            continue
        if not blocked_between(platform, me, mentioned):
            _notify(
                platform,
                mentioned,
                me,
                "mention",
                video_id=video_id,
                comment_id=comment_id,
                snippet=body.text,
            )
    return CommentRead(
        id=comment_id,
        video_id=video_id,
        author_handle=me.handle,
        parent_id=parent_id,
        text=body.text,
        created_at=created,
        like_count=0,
    )


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
    """The author deletes their comment, or the creator deletes one on their own video."""
    with platform.global_store.session() as g:
        row = g.get(PublicComment, comment_id)
        video = g.get(PublishedVideo, row.video_id) if row is not None else None
    if row is None or video is None:
        raise NotFound("No such comment.", code="comment_not_found")
    if user.user_id not in (row.author_id, video.creator_id):
        raise Forbidden("Only its author or the video's creator can delete a comment.")
    author = person_by_id(platform, row.author_id)
    with platform.region(author.region).transaction() as s:
        source = s.get(Comment, comment_id)
        if source is not None and source.deleted_at is None:
            source.deleted_at = utcnow()
    with platform.global_store.transaction() as g:
        replies = g.scalar(select(func.count()).where(PublicComment.parent_id == comment_id)) or 0
        g.execute(
            delete(PublicComment).where(
                (PublicComment.id == comment_id) | (PublicComment.parent_id == comment_id)
            )
        )
        egress(
            g,
            CountChange(
                target="video", id=row.video_id, field="comment_count", delta=-(1 + replies)
            ),
        )


def do_set_comments(platform: Platform, user: CurrentUser, video_id: str, *, enabled: bool) -> None:
    with platform.region(user.region).transaction() as s:
        video = s.get(Video, video_id)
        if video is None or video.owner_id != user.user_id:
            raise NotFound("No such video.", code="video_not_found")
        video.allow_comments = enabled
    from reelm.media.service import _do_publish

    _do_publish(platform, platform.region(user.region), video_id)


# watch events and notifications


def do_record_watch(platform: Platform, user: CurrentUser | None, batch: WatchBatch) -> int:
    """Store the viewer's watch events in their region; count views in the catalog."""
    views: dict[str, int] = {}
    for e in batch.events:
        if e.watched_ms >= VIEW_AFTER_MS or e.completed:
            views[e.video_id] = views.get(e.video_id, 0) + 1
    if user is not None and batch.events:
        with platform.region(user.region).transaction() as s:
            s.add_all(
                WatchEvent(
                    owner_id=user.user_id,
                    video_id=e.video_id,
                    watched_ms=e.watched_ms,
                    completed=e.completed,
                )
                for e in batch.events
            )
    if views:
        with platform.global_store.transaction() as g:
            known = set(g.scalars(select(PublishedVideo.id).where(PublishedVideo.id.in_(views))))
            for video_id, n in views.items():
                if video_id in known:
                    egress(g, CountChange(target="video", id=video_id, field="view_count", delta=n))
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
    from sqlalchemy import update

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
