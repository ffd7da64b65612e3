"""Following, profile grids, hashtag and sound pages, search: reads of the PublicCatalog, filtered
by the viewer's own blocks, mutes and follows (read in the viewer's region)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, tuple_

from reelm.accounts.service import CurrentUser
from reelm.errors import UserNotFound
from reelm.feed.schemas import (
    FeedItem,
    FeedPage,
    ProfilePage,
    SearchResults,
    decode_cursor,
    encode_cursor,
)
from reelm.media.models import PublishedVideo, VideoTag
from reelm.media.schemas import PublicVideoRead
from reelm.media.service import media_urls
from reelm.residency.models import ACTIVE, REMOTE_REGION, DirectoryEntry, PublicProfile
from reelm.residency.store import Platform
from reelm.social.models import NotInterested, PublicCounts
from reelm.social.service import (
    Person,
    blocked_between,
    follow_state,
    followed_ids,
    hidden_creators,
    person_by_handle,
)

MAX_PAGE = 50


def video_read(row: PublishedVideo, remote: dict[str, dict[str, str]] | None = None) -> PublicVideoRead:
    out = PublicVideoRead.model_validate(row)
    out.urls = media_urls(row.id, row.published_at, captions=row.has_captions)
    if row.region == REMOTE_REGION:  # a video of another server: its own links
        out.urls = (remote or {}).get(row.id, {})
    return out


def remote_urls(platform: Platform, rows: list[PublishedVideo]) -> dict[str, dict[str, str]]:
    """The media links of the remote videos among `rows` (federation keeps them)."""
    ids = [r.id for r in rows if r.region == REMOTE_REGION]
    if not ids:
        return {}
    from reelm.federation.models import RemoteObject

    with platform.global_store.session() as g:
        found = list(g.scalars(select(RemoteObject).where(RemoteObject.id.in_(ids))))
    return {
        o.id: {k: v for k, v in (("hls", o.hls_url), ("mp4", o.mp4_url), ("poster", o.poster_url),
                                 ("page", o.page_url)) if v}  # fmt: skip
        for o in found
    }


def _me(user: CurrentUser | None) -> Person | None:
    return Person(user.user_id, user.handle, user.region) if user else None


def _newest_page(
    platform: Platform,
    query: Select[Any],
    *,
    cursor: str | None,
    limit: int,
    hidden: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[PublishedVideo], str | None]:
    """Newest first, keyset-paginated on (published_at, id)."""
    limit = max(1, min(limit, MAX_PAGE))
    c = decode_cursor(cursor)
    if c:
        at = datetime.fromisoformat(c["t"])
        query = query.where(tuple_(PublishedVideo.published_at, PublishedVideo.id) < (at, c["i"]))
    if hidden:
        query = query.where(PublishedVideo.creator_id.not_in(hidden))
    query = query.order_by(PublishedVideo.published_at.desc(), PublishedVideo.id.desc()).limit(
        limit + 1
    )
    with platform.global_store.session() as g:
        rows = list(g.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = (
        encode_cursor({"t": rows[-1].published_at.isoformat(), "i": rows[-1].id}) if more else None
    )
    return rows, nxt


def not_interested_ids(platform: Platform, viewer: Person) -> set[str]:
    with platform.region(viewer.region).session() as s:
        return set(
            s.scalars(
                select(NotInterested.video_id).where(NotInterested.owner_id == viewer.user_id)
            )
        )


def following_feed(
    platform: Platform, user: CurrentUser, *, cursor: str | None, limit: int = 10
) -> FeedPage:
    """Newest videos of the creators the viewer follows (followers-only ones included)."""
    me = Person(user.user_id, user.handle, user.region)
    followed = followed_ids(platform, me)
    if not followed:
        return FeedPage(items=[])
    query = select(PublishedVideo).where(PublishedVideo.creator_id.in_(followed))
    skip = not_interested_ids(platform, me)
    if skip:
        query = query.where(PublishedVideo.id.not_in(skip))
    rows, nxt = _newest_page(
        platform, query, cursor=cursor, limit=limit, hidden=hidden_creators(platform, me)
    )
    remote = remote_urls(platform, rows)
    return FeedPage(
        items=[
            FeedItem(video=video_read(r, remote), reason=f"You follow @{r.creator_handle}")
            for r in rows
        ],
        next_cursor=nxt,
    )


def profile_page(
    platform: Platform,
    viewer: CurrentUser | None,
    handle: str,
    *,
    cursor: str | None = None,
    limit: int = 24,
) -> ProfilePage:
    them = person_by_handle(platform, handle)
    me = _me(viewer)
    if me is not None and me.user_id != them.user_id and blocked_between(platform, me, them):
        raise UserNotFound(handle)
    if me is None:
        state = "none"
    elif me.user_id == them.user_id:
        state = "self"
    else:
        state = follow_state(platform, me, them.user_id)
    query = select(PublishedVideo).where(PublishedVideo.creator_id == them.user_id)
    if state not in ("self", "active"):
        query = query.where(PublishedVideo.visibility == "public")
    rows, nxt = _newest_page(platform, query, cursor=cursor, limit=limit)
    with platform.global_store.session() as g:
        profile = g.get(PublicProfile, them.user_id)
        counts = g.get(PublicCounts, them.user_id)
        videos = (
            g.scalar(
                select(func.count()).where(
                    PublishedVideo.creator_id == them.user_id, PublishedVideo.visibility == "public"
                )
            )
            or 0
        )
    assert profile is not None
    return ProfilePage(
        handle=profile.handle,
        display_name=profile.display_name,
        bio=profile.bio,
        avatar_url=profile.avatar_url,
        region=profile.region,
        followers=counts.followers if counts else 0,
        following=counts.following if counts else 0,
        likes=counts.likes_received if counts else 0,
        videos=videos,
        follow_state=state,
        items=[video_read(r) for r in rows],
        next_cursor=nxt,
    )


def _public_listing(
    platform: Platform,
    viewer: CurrentUser | None,
    query: Select[Any],
    *,
    cursor: str | None,
    limit: int,
    reason: str,
) -> FeedPage:
    me = _me(viewer)
    hidden = hidden_creators(platform, me) if me else set()
    query = query.where(PublishedVideo.visibility == "public")
    rows, nxt = _newest_page(platform, query, cursor=cursor, limit=limit, hidden=hidden)
    return FeedPage(
        items=[FeedItem(video=video_read(r), reason=reason) for r in rows], next_cursor=nxt
    )


def hashtag_page(
    platform: Platform,
    viewer: CurrentUser | None,
    tag: str,
    *,
    cursor: str | None = None,
    limit: int = 24,
) -> dict[str, Any]:
    tag = tag.lower().lstrip("#")
    tagged = select(VideoTag.video_id).where(VideoTag.kind == "hashtag", VideoTag.value == tag)
    page = _public_listing(
        platform,
        viewer,
        select(PublishedVideo).where(PublishedVideo.id.in_(tagged)),
        cursor=cursor,
        limit=limit,
        reason=f"#{tag}",
    )
    with platform.global_store.session() as g:
        total = (
            g.scalar(
                select(func.count())
                .select_from(VideoTag)
                .where(VideoTag.kind == "hashtag", VideoTag.value == tag)
            )
            or 0
        )
        views = (
            g.scalar(
                select(func.coalesce(func.sum(PublishedVideo.view_count), 0)).where(
                    PublishedVideo.id.in_(tagged)
                )
            )
            or 0
        )
    return {"tag": tag, "videos": total, "views": int(views), "page": page}


def sound_page(
    platform: Platform,
    viewer: CurrentUser | None,
    sound_id: str,
    *,
    cursor: str | None = None,
    limit: int = 24,
) -> dict[str, Any]:
    from reelm.sounds.schemas import SongRead
    from reelm.sounds.service import get_song

    song = get_song(platform, sound_id)
    sound = SongRead.of(song).model_dump(mode="json")
    # An original sound's own video uses it too (its sound is the video's, not a song's).
    uses = or_(PublishedVideo.sound_id == sound_id, PublishedVideo.id == song.original_of_video)
    page = _public_listing(
        platform,
        viewer,
        select(PublishedVideo).where(uses),
        cursor=cursor,
        limit=limit,
        reason="Uses this sound",
    )
    with platform.global_store.session() as g:
        total = (
            g.scalar(select(func.count()).where(uses, PublishedVideo.visibility == "public")) or 0
        )
    return {"sound": sound, "videos": total, "page": page}


def _like(q: str) -> str:
    return "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search(
    platform: Platform, viewer: CurrentUser | None, q: str, *, limit: int = 10
) -> SearchResults:
    q = q.strip()
    if not q:
        return SearchResults(users=[], hashtags=[], sounds=[], videos=[])
    pattern = _like(q.lstrip("#@"))
    me = _me(viewer)
    hidden = hidden_creators(platform, me) if me else set()
    with platform.global_store.session() as g:
        users = [
            {"handle": p.handle, "display_name": p.display_name, "region": p.region}
            for p in g.scalars(
                select(PublicProfile)
                .join(DirectoryEntry, DirectoryEntry.user_id == PublicProfile.user_id)
                .where(
                    DirectoryEntry.state == ACTIVE,
                    or_(
                        func.lower(PublicProfile.handle).like(pattern, escape="\\"),
                        func.lower(PublicProfile.display_name).like(pattern, escape="\\"),
                    ),
                )
                .limit(limit)
            )
            if p.user_id not in hidden
        ]
        hashtags = [
            {"tag": tag, "videos": n}
            for tag, n in g.execute(
                select(VideoTag.value, func.count())
                .where(VideoTag.kind == "hashtag", VideoTag.value.like(pattern, escape="\\"))
                .group_by(VideoTag.value)
                .order_by(func.count().desc())
                .limit(limit)
            )
        ]
        videos = [
            video_read(v)
            for v in g.scalars(
                select(PublishedVideo)
                .where(
                    PublishedVideo.visibility == "public",
                    func.lower(PublishedVideo.caption).like(pattern, escape="\\"),
                )
                .order_by(PublishedVideo.view_count.desc())
                .limit(limit)
            )
            if v.creator_id not in hidden
        ]
    from reelm.sounds.service import search_songs

    sounds = [s.model_dump(mode="json") for s in search_songs(platform, q=q, limit=limit).items]
    return SearchResults(users=users, hashtags=hashtags, sounds=sounds, videos=videos)
