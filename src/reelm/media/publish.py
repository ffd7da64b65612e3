"""Publishing: a ready video's public record leaves its creator's region through the outbox.

The record (or, for a video made private, its withdrawal) is emitted in the same transaction
that makes the video ready or changes its settings, so the catalog never shows a video its
region does not hold as ready, and a crash after that commit only delays the publication (the
region worker's dispatcher applies it).
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from reelm.effects.outbox import Outbox
from reelm.effects.service import action
from reelm.media.models import Video, VideoState
from reelm.media.schemas import PublicVideoRecord, VideoWithdrawal
from reelm.media.transcode import MP4_NAME, POSTER_NAME
from reelm.residency.models import DirectoryEntry
from reelm.residency.store import Platform, RegionStore
from reelm.sounds.originals import do_create_original_sound
from reelm.text import parse_caption

log = logging.getLogger(__name__)


def creator_handle(platform: Platform, owner_id: str) -> str:
    with platform.global_store.session() as g:
        handle = g.scalar(select(DirectoryEntry.handle).where(DirectoryEntry.user_id == owner_id))
    if handle is None:
        raise LookupError(f"user {owner_id} is not in the Directory")
    return handle


def emit_publication(outbox: Outbox, video: Video, *, handle: str, region: str) -> None:
    """Emit what the catalog must show of `video` now: its public record, or its withdrawal
    when it is private. Nothing for a video that is not ready."""
    if video.state != VideoState.READY:
        return
    if video.visibility == "private":
        outbox.emit(VideoWithdrawal(id=video.id))
        return
    tags, mentions = parse_caption(video.caption)
    assert video.published_at is not None
    assert video.duration_s is not None
    assert video.width is not None
    assert video.height is not None
    outbox.emit(
        PublicVideoRecord(
            id=video.id,
            creator_id=video.owner_id,
            creator_handle=handle,
            region=region,
            caption=video.caption,
            captions_vtt=video.captions_vtt,
            hashtags=tags,
            mentions=mentions,
            visibility="followers" if video.visibility == "followers" else "public",
            allow_comments=video.allow_comments,
            allow_sound_reuse=video.allow_sound_reuse,
            sound_id=video.sound_id,
            duration_s=video.duration_s,
            width=video.width,
            height=video.height,
            published_at=video.published_at,
        )
    )


def do_publish(platform: Platform, store: RegionStore, video_id: str) -> None:
    """Publish a ready video's public fields again (or withdraw a private one), then offer its
    sound for reuse when its creator allows it."""
    with store.session() as s:
        owner = s.scalar(select(Video.owner_id).where(Video.id == video_id))
    if owner is None:
        return
    handle = creator_handle(platform, owner)
    with action(platform, store.name, owner) as (s, outbox):
        video = s.get(Video, video_id)
        if video is None:
            return
        emit_publication(outbox, video, handle=handle, region=store.name)
    offer_original_sound(platform, store, video, handle)


def offer_original_sound(platform: Platform, store: RegionStore, video: Video, handle: str) -> None:
    """A public, ready video whose creator lets others use its own recorded sound becomes an
    original sound. The video is published already, so a failure here is logged and never
    un-publishes it."""
    if not (
        video.state == VideoState.READY
        and video.visibility == "public"
        and video.allow_sound_reuse
        and _keeps_own_sound(video)
    ):
        return
    assert video.published_at is not None
    base = f"{video.owner_id}/videos/{video.id}"
    try:
        do_create_original_sound(
            platform,
            store,
            video_id=video.id,
            handle=handle,
            published_at=video.published_at,
            video_key=f"{base}/{MP4_NAME}",
            poster_key=f"{base}/{POSTER_NAME}",
        )
    except Exception:
        log.exception("video %s: the original sound could not be made", video.id)


def _keeps_own_sound(video: Video) -> bool:
    """The video's soundtrack is its own recorded sound (no library song, not silenced)."""
    if video.sound_id is not None:
        return False
    try:
        soundtrack = json.loads(video.edit).get("soundtrack") or {}
    except (ValueError, AttributeError):
        return False
    return isinstance(soundtrack, dict) and soundtrack.get("kind", "original") == "original"
