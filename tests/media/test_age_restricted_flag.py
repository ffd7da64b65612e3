"""The age-restricted flag of a published video travels to the catalog on its public record."""

from __future__ import annotations

from helpers import make_user, make_video
from reelm.config import Settings
from reelm.media.models import PublishedVideo
from reelm.media.schemas import PublicVideoRecord
from reelm.residency.egress import egress
from reelm.residency.store import Platform


def test_age_restricted_defaults_false_and_reaches_the_catalog_on_the_record(
    platform: Platform, settings: Settings
) -> None:
    uid, region, _ = make_user(platform, settings, handle="maker")
    video_id = make_video(platform, owner_id=uid, region=region, caption="hi #x")
    with platform.global_store.session() as g:
        row = g.get(PublishedVideo, video_id)
        assert row is not None
        assert row.age_restricted is False
        record = PublicVideoRecord(
            id=row.id, creator_id=uid, creator_handle="maker", region=region, caption=row.caption,
            hashtags=["x"], mentions=[], visibility="public", allow_comments=True,
            allow_sound_reuse=True, sound_id=None, duration_s=row.duration_s, width=row.width,
            height=row.height, published_at=row.published_at, age_restricted=True,
        )  # fmt: skip
    with platform.global_store.transaction() as g:
        egress(g, record)
    with platform.global_store.session() as g:
        row = g.get(PublishedVideo, video_id)
        assert row is not None
        assert row.age_restricted is True
