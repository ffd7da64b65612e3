"""/api/v1 social actions, comments, watch events and notifications."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from reelm.social import service
from reelm.social.schemas import (
    CommentCreate,
    CommentRead,
    FollowState,
    NotificationRead,
    WatchBatch,
)
from reelm.web.deps import CurrentUserDep, IdempotencyKeyDep, OptionalUserDep, PlatformDep

router = APIRouter(prefix="/api/v1", tags=["social"])


class ShareBody(BaseModel):
    channel: str = "link"


class Toggle(BaseModel):
    enabled: bool


@router.post("/users/{handle}/follow")
def follow(handle: str, user: CurrentUserDep, platform: PlatformDep) -> FollowState:
    """Follow; a private account gets a request to approve instead."""
    return service.do_follow(platform, user, handle)


@router.delete("/users/{handle}/follow")
def unfollow(handle: str, user: CurrentUserDep, platform: PlatformDep) -> FollowState:
    return service.do_unfollow(platform, user, handle)


@router.get("/me/follow-requests")
def follow_requests(user: CurrentUserDep, platform: PlatformDep) -> list[str]:
    return service.follow_requests(platform, user)


@router.post("/me/follow-requests/{handle}/approve")
def approve(handle: str, user: CurrentUserDep, platform: PlatformDep) -> FollowState:
    return service.do_answer_follow_request(platform, user, handle, approve=True)


@router.post("/me/follow-requests/{handle}/decline")
def decline(handle: str, user: CurrentUserDep, platform: PlatformDep) -> FollowState:
    return service.do_answer_follow_request(platform, user, handle, approve=False)


@router.post("/users/{handle}/block", status_code=status.HTTP_204_NO_CONTENT)
def block(handle: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_block(platform, user, handle, blocked=True)


@router.delete("/users/{handle}/block", status_code=status.HTTP_204_NO_CONTENT)
def unblock(handle: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_block(platform, user, handle, blocked=False)


@router.post("/users/{handle}/mute", status_code=status.HTTP_204_NO_CONTENT)
def mute(handle: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_mute(platform, user, handle, muted=True)


@router.delete("/users/{handle}/mute", status_code=status.HTTP_204_NO_CONTENT)
def unmute(handle: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_mute(platform, user, handle, muted=False)


@router.post("/videos/{video_id}/like")
def like(video_id: str, user: CurrentUserDep, platform: PlatformDep) -> dict[str, int]:
    return {"like_count": service.do_like(platform, user, video_id)}


@router.delete("/videos/{video_id}/like", status_code=status.HTTP_204_NO_CONTENT)
def unlike(video_id: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_unlike(platform, user, video_id)


@router.post("/videos/{video_id}/save", status_code=status.HTTP_204_NO_CONTENT)
def save(video_id: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_save(platform, user, video_id, saved=True)


@router.delete("/videos/{video_id}/save", status_code=status.HTTP_204_NO_CONTENT)
def unsave(video_id: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_save(platform, user, video_id, saved=False)


@router.post("/videos/{video_id}/share")
def share(
    video_id: str,
    body: ShareBody,
    user: OptionalUserDep,
    platform: PlatformDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> dict[str, Any]:
    """A link to share, and the new share count."""
    return service.do_share(
        platform, user, video_id, channel=body.channel, idempotency_key=idempotency_key
    )


@router.get("/me/video-states")
def video_states(
    user: CurrentUserDep,
    platform: PlatformDep,
    ids: Annotated[str, Query(max_length=1700, description="Video ids, comma-separated.")],
) -> dict[str, dict[str, bool]]:
    """Whether you liked and saved each video and follow its creator (at most 50 ids)."""
    return service.viewer_states(platform, user, [i for i in ids.split(",") if i][:50])


@router.post("/videos/{video_id}/not-interested", status_code=status.HTTP_204_NO_CONTENT)
def not_interested(video_id: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_not_interested(platform, user, video_id)


@router.put("/me/videos/{video_id}/comments", status_code=status.HTTP_204_NO_CONTENT)
def set_comments(video_id: str, body: Toggle, user: CurrentUserDep, platform: PlatformDep) -> None:
    """Turn comments on or off for your video."""
    service.do_set_comments(platform, user, video_id, enabled=body.enabled)


@router.get("/videos/{video_id}/comments")
def comments(
    video_id: str,
    user: OptionalUserDep,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[CommentRead]:
    return service.list_comments(platform, user, video_id, limit=limit)


@router.post("/videos/{video_id}/comments", status_code=status.HTTP_201_CREATED)
def comment(
    video_id: str,
    body: CommentCreate,
    user: CurrentUserDep,
    platform: PlatformDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> CommentRead:
    return service.do_comment(platform, user, video_id, body, idempotency_key=idempotency_key)


@router.delete("/comments/{comment_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_comment(comment_id: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_delete_comment(platform, user, comment_id)


@router.post("/watch-events")
def watch_events(body: WatchBatch, user: OptionalUserDep, platform: PlatformDep) -> dict[str, int]:
    """The player's batch of watch time and completions; returns how many views it counted."""
    return {"views": service.do_record_watch(platform, user, body)}


@router.get("/me/notifications")
def notifications(
    user: CurrentUserDep, platform: PlatformDep, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> dict[str, Any]:
    items: list[NotificationRead] = service.list_notifications(platform, user, limit=limit)
    return {"unread": service.unread_count(platform, user), "items": items}


@router.post("/me/notifications/read")
def mark_read(user: CurrentUserDep, platform: PlatformDep) -> dict[str, int]:
    return {"marked": service.do_mark_read(platform, user)}
