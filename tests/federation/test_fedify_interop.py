"""Interop with software reelm did not write: a Fedify actor (npm @fedify/fedify) on localhost
follows a reelm user on 127.0.0.1, receives the user's new video as a `Create` whose HTTP
signature Fedify verifies, and its `Like` and reply reach reelm."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from helpers import make_user, make_video
from reelm.federation import delivery
from reelm.federation import service as fed_service
from reelm.federation.models import InstanceState, RemoteActor, RemoteFollower
from reelm.media.models import PublishedVideo
from reelm.social.models import Notification, PublicComment


def wait_for(check: Callable[[], object], what: str, timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_fedify_actor_follows_gets_video_likes_and_replies(reelm_live, fedify_peer) -> None:  # type: ignore[no-untyped-def]
    live, peer = reelm_live, fedify_peer
    platform, fed = live.platform, live.fed
    fed_service.do_set_instance(platform, peer.domain, InstanceState.ALLOWED)
    ava_id, ava_region, _token = make_user(platform, live.settings, handle="ava", jurisdiction="US")
    ava_actor = fed.urls.actor(ava_id)

    # Fedify looks ava up (her actor URL: its WebFinger lookups are https-only) and follows
    # her; reelm verifies the signature Fedify made
    peer.control("follow", actor=ava_actor)
    with platform.global_store.session() as g:
        remote = g.scalar(select(RemoteActor).where(RemoteActor.uri == peer.actor))
        assert remote is not None
        assert remote.domain == peer.domain
        follow = g.scalar(select(RemoteFollower).where(RemoteFollower.remote_id == remote.id))
        assert follow is not None
        assert follow.state == "active"
    # ava's Accept goes out from her region's deliveries, signed with her key
    assert delivery.deliver_all(fed).sent == 1
    accepts = wait_for(lambda: [a for a in peer.received() if a["type"] == "Accept"], "Accept")
    assert accepts[0]["actor"] == ava_actor  # type: ignore[index]

    # a new video of ava's: a Create of a Video, which Fedify's inbox verified and parsed
    video_id = make_video(platform, owner_id=ava_id, region=ava_region, caption="dawn run #sunrise")
    report = delivery.deliver_all(fed)
    assert report.sent == 1, report.errors
    creates = wait_for(lambda: [a for a in peer.received() if a["type"] == "Create"], "Create")
    create = creates[0]  # type: ignore[index]
    assert create["verified"] is True
    assert create["actor"] == ava_actor
    video = create["object"]
    assert video["type"] == "Video"
    assert video["id"] == fed.urls.video(video_id)
    assert video["name"] == "dawn run #sunrise"
    media_types = {u["mediaType"] for u in video["url"]}
    assert {"application/x-mpegURL", "video/mp4", "text/html"} <= media_types
    tags = video["tag"] if isinstance(video["tag"], list) else [video["tag"]]  # compacted JSON-LD
    assert any(t.get("name") == "#sunrise" for t in tags)
    assert video["duration"] == "PT10S"

    # Fedify likes it and replies; both reach reelm, counted and notified in ava's region
    peer.control("like", actor=ava_actor, object=fed.urls.video(video_id))
    peer.control("reply", actor=ava_actor, inReplyTo=fed.urls.video(video_id),
                 content="<p>Lovely light</p>")  # fmt: skip
    with platform.global_store.session() as g:
        row = g.get(PublishedVideo, video_id)
        assert row is not None
        assert row.like_count == 1
        assert row.comment_count == 1
        comment = g.scalar(select(PublicComment).where(PublicComment.video_id == video_id))
        assert comment is not None
        assert comment.text == "Lovely light"
        assert comment.author_handle == f"fedi@{peer.domain}"
    with platform.region(ava_region).session() as s:
        kinds = sorted(s.scalars(select(Notification.kind).where(Notification.owner_id == ava_id)))
    assert kinds == ["comment", "follow", "like"]
