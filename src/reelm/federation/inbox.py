"""The inbox: every activity verified before anything is stored (HTTP signature, instance,
actor), handled once (by its id), and written as public remote data into the catalog, or, for
what reaches a local user, into their home region."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from reelm.db import new_id
from reelm.effects.service import action
from reelm.errors import InvalidInput, TryAgainLater
from reelm.federation import activities as ap
from reelm.federation.follows import count_follow, send_answer
from reelm.federation.models import (
    InboundActivity,
    RemoteActor,
    RemoteFollower,
    RemoteLike,
    RemoteObject,
)
from reelm.federation.service import (
    Federation,
    LocalActor,
    RemoteUnreachable,
    WrongActor,
    check_instance,
    domain_of,
    fetch_json,
    is_private_account,
    local_actor,
    remote_actor,
    store_actor,
)
from reelm.federation.signatures import (
    SignatureRefused,
    SignedRequest,
    parse_signature,
)
from reelm.media.models import PublishedVideo
from reelm.media.schemas import PublicVideoRecord, VideoWithdrawal
from reelm.residency.egress import egress
from reelm.residency.models import MOVING, REMOTE_REGION, DirectoryEntry
from reelm.residency.store import MOVING_RETRY_AFTER
from reelm.social.models import Block, Follow, FollowStatus, PublicComment
from reelm.social.schemas import (
    CommentRemoval,
    CountChange,
    CounterKind,
    NotificationRecord,
    PublicCommentRecord,
    end_follow,
)

log = logging.getLogger(__name__)


# --- the inbox ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    actor: RemoteActor
    activity: dict[str, Any]


def check_inbox(fed: Federation, request: SignedRequest, *, user_id: str | None) -> str:
    """Verify and handle one inbound activity. Everything is checked before anything is
    stored: the signature (401: missing, bad, stale), the instance (403), the signer being the
    activity's actor (403). A replay of an activity already handled changes nothing."""
    if user_id is not None:
        local_actor(fed.platform, user_id)
    sig = parse_signature(request, max_skew_s=fed.settings.federation_signature_skew_seconds)
    try:
        activity = json.loads(request.body)
    except ValueError:
        raise InvalidInput("The activity is not JSON.", code="bad_json") from None
    if not isinstance(activity, dict) or not isinstance(activity.get("id"), str):
        raise InvalidInput("An activity needs an id.", code="bad_activity")
    key_owner = sig.key_id.split("#", 1)[0]
    check_instance(fed, domain_of(key_owner))
    actor = _verified_actor(fed, sig, key_owner)
    if ap.first_id(activity.get("actor")) != actor.uri:
        raise WrongActor("The activity's actor is not the one who signed it.")
    if domain_of(activity["id"]) != actor.domain:
        raise WrongActor("The activity's id is not on its actor's server.")
    key = hashlib.sha256(activity["id"].encode()).hexdigest()
    with fed.platform.global_store.session() as g:
        if g.get(InboundActivity, key) is not None:
            return "duplicate"
    result = _handle(fed, actor, activity)
    try:
        with fed.platform.global_store.transaction() as g:
            g.add(InboundActivity(id_sha256=key))
    except IntegrityError:
        return "duplicate"
    return result


def _verified_actor(fed: Federation, sig: Any, key_owner: str) -> RemoteActor:
    """The signer, with the signature checked against its cached key, or (unknown signer, or a
    key that changed) against its freshly fetched one. The actor is cached only once its
    signature verified."""
    with fed.platform.global_store.session() as g:
        cached = g.scalar(select(RemoteActor).where(
            (RemoteActor.key_id == sig.key_id) | (RemoteActor.uri == key_owner)))  # fmt: skip
    if cached is not None:
        try:
            sig.verify(cached.public_pem)
            return cached
        except SignatureRefused:
            pass
    try:
        doc = ap.parse_actor(fetch_json(fed, key_owner))
    except (RemoteUnreachable, ap.Unparseable, InvalidInput) as e:
        raise SignatureRefused(f"The signer's key could not be fetched: {e}") from None
    if doc.key_id != sig.key_id or doc.uri != key_owner:
        raise SignatureRefused("The signer's actor does not publish this key.")
    sig.verify(doc.public_pem)
    with fed.platform.global_store.transaction() as g:
        return store_actor(g, doc, local_id=cached.id if cached is not None else None)


def _local_id(fed: Federation, uri: str | None, kind: str) -> str | None:
    """The local id in one of this server's URLs (`/ap/<kind>/<id>`), or None."""
    if not uri:
        return None
    prefix = f"{fed.urls.base}/ap/{kind}/"
    if uri.startswith(prefix):
        rest = uri[len(prefix):].split("/", 1)[0]
        return rest or None
    return None


def _handle(fed: Federation, actor: RemoteActor, activity: dict[str, Any]) -> str:
    kinds = ap.types_of(activity)
    obj = activity.get("object")
    if "Follow" in kinds:
        return _on_follow(fed, actor, activity)
    if "Undo" in kinds:
        inner = obj if isinstance(obj, dict) else {}
        inner_kinds = ap.types_of(inner)
        if ap.first_id(inner.get("actor")) not in (None, actor.uri):
            raise WrongActor("An actor may only undo its own activities.")
        if "Follow" in inner_kinds:
            return _on_unfollow(fed, actor, inner)
        if "Like" in inner_kinds:
            return _on_unlike(fed, actor, inner)
        return "ignored"
    if "Accept" in kinds or "Reject" in kinds:
        return _on_answer(fed, actor, obj, accepted="Accept" in kinds)
    if "Create" in kinds or "Update" in kinds:
        if not isinstance(obj, dict):
            return "ignored"
        if ap.is_video(obj):
            return _on_video(fed, actor, obj)
        if ap.first_id(obj.get("attributedTo")) not in (None, actor.uri):
            raise WrongActor("An actor may only create its own objects.")
        if "Note" in ap.types_of(obj):
            return _on_note(fed, actor, obj)
        if ap.types_of(obj) & {"Person", "Service", "Group", "Application"}:
            remote_actor(fed, actor.uri, refresh=True)
            return "actor updated"
        return "ignored"
    if "Delete" in kinds:
        return _on_delete(fed, actor, ap.first_id(obj))
    if "Like" in kinds:
        return _on_like(fed, actor, activity)
    if "Announce" in kinds:
        video_id = _local_id(fed, ap.first_id(obj), "videos")
        if video_id is None:
            return "ignored"
        with fed.platform.global_store.transaction() as g:
            if g.get(PublishedVideo, video_id) is not None:
                egress(g, CountChange(target="video", id=video_id, field=CounterKind.SHARE_COUNT, delta=1))
        return "announce"
    if "Move" in kinds:
        remote_actor(fed, actor.uri, refresh=True)
        return "moved"
    return "ignored"


def _check_writable(local: LocalActor) -> None:
    """A user a carve-out is moving cannot be written: 503 before anything is stored, so the
    remote server delivers again later (as it does for any 5xx)."""
    if local.state == MOVING:
        raise TryAgainLater(
            "This account is being moved; deliver again in a moment.", retry_after=MOVING_RETRY_AFTER,
            code="user_moving",
        )


def _notify_local(fed: Federation, local: LocalActor, actor: RemoteActor, kind: str, **fields: Any) -> None:
    """A notification in the local user's home region (public fields only). What it tells
    has committed already, so a failure here is logged, never answered as an error."""
    try:
        with fed.platform.region(local.region).transaction() as r:
            egress(r, NotificationRecord(recipient_id=local.user_id, kind=kind, actor_id=actor.id,
                                         actor_handle=actor.acct[:30], **fields))  # fmt: skip
    except Exception:
        log.exception("federation: notification %s for %s not written", kind, local.user_id)


def _blocked_by(fed: Federation, local: LocalActor, remote_id: str) -> bool:
    with fed.platform.region(local.region).session() as s:
        return s.scalar(select(Block.id).where(Block.owner_id == local.user_id,
                                              Block.target_id == remote_id)) is not None  # fmt: skip


def _on_follow(fed: Federation, actor: RemoteActor, activity: dict[str, Any]) -> str:
    user_id = _local_id(fed, ap.first_id(activity.get("object")), "actors")
    if user_id is None:
        return "ignored"
    local = local_actor(fed.platform, user_id)
    _check_writable(local)
    follow_uri = activity["id"]
    if _blocked_by(fed, local, actor.id):
        send_answer(fed, local, actor, follow_uri, accept=False)
        return "rejected"
    private = is_private_account(fed.platform, local)
    state = FollowStatus.PENDING if private else FollowStatus.ACTIVE
    with fed.platform.global_store.transaction() as g:
        row = g.scalar(select(RemoteFollower).where(RemoteFollower.remote_id == actor.id,
                                                   RemoteFollower.user_id == local.user_id))  # fmt: skip
        if row is not None:
            row.follow_uri = follow_uri
            state = FollowStatus(row.state)
            new = False
        else:
            g.add(RemoteFollower(remote_id=actor.id, user_id=local.user_id, state=state,
                                 follow_uri=follow_uri))  # fmt: skip
            new = True
            if state == FollowStatus.ACTIVE:
                count_follow(g, follower=actor.id, followee=local.user_id, delta=1)
    if state == FollowStatus.ACTIVE:
        send_answer(fed, local, actor, follow_uri, accept=True)
    if new:
        _notify_local(fed, local, actor, "follow" if state == FollowStatus.ACTIVE else "follow_request")
    return f"follow {state}"





def _on_unfollow(fed: Federation, actor: RemoteActor, follow: dict[str, Any]) -> str:
    user_id = _local_id(fed, ap.first_id(follow.get("object")), "actors")
    if user_id is None:
        return "ignored"
    with fed.platform.global_store.transaction() as g:
        row = g.scalar(select(RemoteFollower).where(RemoteFollower.remote_id == actor.id,
                                                   RemoteFollower.user_id == user_id))  # fmt: skip
        if row is None:
            return "not following"
        if row.state == FollowStatus.ACTIVE:
            count_follow(g, follower=actor.id, followee=user_id, delta=-1)
        g.delete(row)
    return "unfollowed"


def _on_answer(fed: Federation, actor: RemoteActor, obj: Any, *, accepted: bool) -> str:
    """The remote actor accepted or rejected a local user's follow (the Follow is ours: its
    id names the follower and the followee)."""
    follow_uri = ap.first_id(obj)
    prefix = f"{fed.urls.base}/ap/follows/"
    if not follow_uri or not follow_uri.startswith(prefix):
        return "ignored"
    follower_id, _, followee_id = follow_uri[len(prefix):].partition("/")
    if followee_id != actor.id:
        raise WrongActor("Only the followed actor may answer a follow.")
    local = local_actor(fed.platform, follower_id)
    _check_writable(local)
    with action(fed.platform, local.region, local.user_id) as (s, outbox):
        row = s.scalar(select(Follow).where(Follow.owner_id == local.user_id,
                                            Follow.followee_id == actor.id))  # fmt: skip
        if row is None:
            return "no follow"
        if not accepted:
            end_follow(s, outbox, local.user_id, actor.id)
            return "follow rejected"
        if row.state == FollowStatus.ACTIVE:
            return "already active"
        row.state = FollowStatus.ACTIVE
        outbox.emit(CountChange(target="user", id=actor.id, field=CounterKind.FOLLOWERS, delta=1))
        outbox.emit(CountChange(target="user", id=local.user_id, field=CounterKind.FOLLOWING, delta=1))
    return "follow accepted"


def _on_video(fed: Federation, actor: RemoteActor, obj: dict[str, Any]) -> str:
    video = ap.parse_video(obj)
    if video.attributed_to != actor.uri or domain_of(video.uri) != actor.domain:
        raise WrongActor("An actor may only publish its own videos.")
    caption = video.content or video.name
    with fed.platform.global_store.transaction() as g:
        known = g.scalar(select(RemoteObject).where(RemoteObject.uri == video.uri))
        video_id = known.id if known is not None else new_id()
        egress(g, PublicVideoRecord(
            id=video_id, creator_id=actor.id, creator_handle=actor.acct[:30],
            region=REMOTE_REGION, caption=caption[:2200],
            hashtags=video.hashtags, mentions=[], visibility="public",
            allow_comments=video.comments_enabled, allow_sound_reuse=False, sound_id=None,
            duration_s=video.duration_s or 1.0, width=video.width, height=video.height,
            published_at=video.published_at,
        ))  # fmt: skip
        if known is None:
            g.add(RemoteObject(id=video_id, uri=video.uri, kind="video", actor_id=actor.id))
            g.flush()
            known = g.get(RemoteObject, video_id)
            assert known is not None
        known.hls_url, known.mp4_url = video.hls_url, video.mp4_url
        known.poster_url, known.page_url = video.poster_url, video.page_url
    return "video stored"


def _on_note(fed: Federation, actor: RemoteActor, obj: dict[str, Any]) -> str:
    """A remote comment in reply to a video (local or remote) or to a comment."""
    uri = obj.get("id")
    reply_to = ap.first_id(obj.get("inReplyTo"))
    if not isinstance(uri, str) or reply_to is None or domain_of(uri) != actor.domain:
        return "ignored"
    text = ap.text_of(obj.get("content"))[:500]
    if not text:
        return "ignored"
    with fed.platform.global_store.session() as g:
        if g.scalar(select(RemoteObject.id).where(RemoteObject.uri == uri)) is not None:
            return "known"
        video_id = _local_id(fed, reply_to, "videos")
        parent_id = None
        if video_id is None:
            parent_id = _local_id(fed, reply_to, "comments")
            if parent_id is None:
                target = g.scalar(select(RemoteObject).where(RemoteObject.uri == reply_to))
                if target is None:
                    return "ignored"
                if target.kind == "video":
                    video_id = target.id
                else:
                    parent_id = target.id
            if parent_id is not None:
                parent = g.get(PublicComment, parent_id)
                if parent is None:
                    return "ignored"
                video_id, parent_id = parent.video_id, parent.parent_id or parent.id
        video = g.get(PublishedVideo, video_id)
        if video is None or not video.allow_comments or video.visibility != "public":
            return "ignored"
        creator = (video.creator_id, video.region)
    comment_id = new_id()
    with fed.platform.global_store.transaction() as g:
        egress(g, PublicCommentRecord(
            id=comment_id, video_id=video_id, author_id=actor.id, author_handle=actor.acct[:30],
            parent_id=parent_id, text=text, created_at=ap.parse_datetime(obj.get("published")),
        ))  # fmt: skip
        g.add(RemoteObject(id=comment_id, uri=uri, kind="comment", actor_id=actor.id))
    if creator[1] != REMOTE_REGION:
        local = local_actor(fed.platform, creator[0])
        if not _blocked_by(fed, local, actor.id):
            _notify_local(fed, local, actor, "comment", video_id=video_id, comment_id=comment_id,
                          snippet=text[:200])  # fmt: skip
    return "comment stored"


def _on_like(fed: Federation, actor: RemoteActor, activity: dict[str, Any]) -> str:
    video_id = _local_id(fed, ap.first_id(activity.get("object")), "videos")
    if video_id is None:
        return "ignored"
    with fed.platform.global_store.transaction() as g:
        video = g.get(PublishedVideo, video_id)
        if video is None or video.visibility != "public":
            return "ignored"
        _check_writable(local_actor(fed.platform, video.creator_id))
        if g.scalar(select(RemoteLike.id).where(RemoteLike.remote_id == actor.id,
                                                RemoteLike.video_id == video_id)) is not None:  # fmt: skip
            return "already liked"
        g.add(RemoteLike(remote_id=actor.id, video_id=video_id, like_uri=activity["id"]))
        egress(g, CountChange(target="video", id=video_id, field=CounterKind.LIKE_COUNT, delta=1))
        egress(g, CountChange(target="user", id=video.creator_id, field=CounterKind.LIKES_RECEIVED, delta=1))
        creator = video.creator_id
    local = local_actor(fed.platform, creator)
    if not _blocked_by(fed, local, actor.id):
        _notify_local(fed, local, actor, "like", video_id=video_id)
    return "like stored"


def _on_unlike(fed: Federation, actor: RemoteActor, like: dict[str, Any]) -> str:
    video_id = _local_id(fed, ap.first_id(like.get("object")), "videos")
    if video_id is None:
        return "ignored"
    with fed.platform.global_store.transaction() as g:
        row = g.scalar(select(RemoteLike).where(RemoteLike.remote_id == actor.id,
                                                RemoteLike.video_id == video_id))  # fmt: skip
        if row is None:
            return "not liked"
        g.delete(row)
        video = g.get(PublishedVideo, video_id)
        if video is not None:
            egress(g, CountChange(target="video", id=video_id, field=CounterKind.LIKE_COUNT, delta=-1))
            egress(g, CountChange(target="user", id=video.creator_id, field=CounterKind.LIKES_RECEIVED, delta=-1))
    return "like undone"


def _on_delete(fed: Federation, actor: RemoteActor, uri: str | None) -> str:
    if uri is None:
        return "ignored"
    if uri == actor.uri:
        with fed.platform.global_store.transaction() as g:
            g.execute(delete(PublishedVideo).where(PublishedVideo.creator_id == actor.id))
            g.execute(delete(DirectoryEntry).where(DirectoryEntry.user_id == actor.id))
        return "actor deleted"
    with fed.platform.global_store.transaction() as g:
        obj = g.scalar(select(RemoteObject).where(RemoteObject.uri == uri))
        if obj is None:
            return "unknown"
        if obj.actor_id != actor.id:
            raise WrongActor("An actor may only delete its own objects.")
        if obj.kind == "video":
            egress(g, VideoWithdrawal(id=obj.id))
        else:
            comment = g.get(PublicComment, obj.id)
            if comment is not None:
                egress(g, CommentRemoval(id=obj.id, video_id=comment.video_id))
        g.delete(obj)
    return "deleted"
