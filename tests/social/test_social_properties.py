"""Property: any mix of cross-region social actions keeps every record home and every
notification public."""

from __future__ import annotations

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from conftest import empty_all
from helpers import make_user, make_video
from reelm.accounts.service import access_session
from reelm.config import Settings
from reelm.errors import ReelmError
from reelm.residency.scan import do_scan
from reelm.residency.store import Platform
from reelm.social import service
from reelm.social.models import Notification, PublicComment
from reelm.social.schemas import CommentCreate, NotificationRecord

PEOPLE = [("ava", "US"), ("liam", "CA"), ("mei", "SG"), ("amelie", "DE")]
ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["follow", "unfollow", "like", "unlike", "comment", "block", "unblock", "mute"]
        ),
        st.integers(0, 3),
        st.integers(0, 3),
        st.text(min_size=1, max_size=30),
    ),
    max_size=25,
)


@hsettings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(actions=ACTIONS)
def test_random_social_actions_keep_residency_and_public_notifications(
    platform: Platform, settings: Settings, actions: list[tuple[str, int, int, str]]
) -> None:
    empty_all(platform)
    users = []
    for handle, j in PEOPLE:
        uid, region, token = make_user(platform, settings, handle=handle, jurisdiction=j)
        video = make_video(platform, owner_id=uid, region=region, caption=f"{handle} #x")
        users.append((access_session(platform, token), video))
    refused: list[int] = []
    for action, a, b, text in actions:
        actor, _ = users[a]
        target, video = users[b]
        try:
            if action == "follow":
                service.do_follow(platform, actor, target.handle)
            elif action == "unfollow":
                service.do_unfollow(platform, actor, target.handle)
            elif action == "like":
                service.do_like(platform, actor, video)
            elif action == "unlike":
                service.do_unlike(platform, actor, video)
            elif action == "comment":
                service.do_comment(platform, actor, video, CommentCreate(text=text))
            elif action in ("block", "unblock"):
                service.do_block(platform, actor, target.handle, blocked=action == "block")
            else:
                service.do_mute(platform, actor, target.handle, muted=True)
        except ReelmError as e:
            refused.append(e.status)  # refused cleanly (blocked, self-follow…)

    assert set(refused) <= {403, 404, 422}
    assert do_scan(platform).clean
    public_fields = set(NotificationRecord.model_fields) - {"recipient_id"}
    handles = {u.user_id: u.handle for u, _ in users}
    with platform.global_store.session() as g:
        comment_texts = {c.id: c.text for c in g.scalars(select(PublicComment))}
    for store in platform.regions.values():
        with store.session() as s:
            for n in s.scalars(select(Notification)):
                assert handles[n.actor_id] == n.actor_handle
                assert store.name == next(u.region for u, _ in users if u.user_id == n.owner_id)
                if n.comment_id is not None and n.comment_id in comment_texts:
                    assert n.snippet == comment_texts[n.comment_id][:200]
                stored = {c.name for c in Notification.__table__.columns}
                assert stored - {"id", "owner_id", "created_at", "read_at"} == public_fields
