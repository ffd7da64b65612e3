"""The player's rail shows what the viewer did: liked, saved, following (read in their region)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from helpers import make_user, make_video
from reelm.config import Settings
from reelm.residency.store import Platform


def test_video_states_report_likes_saves_and_follows_of_the_viewer_only(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    ava_id, _, ava = make_user(platform, settings, handle="ava", jurisdiction="US")
    _, _, mei = make_user(platform, settings, handle="mei", jurisdiction="SG")
    first = make_video(platform, owner_id=ava_id, region="us", caption="one")
    second = make_video(platform, owner_id=ava_id, region="us", caption="two")
    auth = {"Authorization": f"Bearer {mei}"}
    client.post(f"/api/v1/videos/{first}/like", headers=auth)
    client.post(f"/api/v1/videos/{second}/save", headers=auth)
    client.post("/api/v1/users/ava/follow", headers=auth)
    r = client.get(f"/api/v1/me/video-states?ids={first},{second},nope", headers=auth)
    assert r.status_code == 200
    assert r.json() == {
        first: {"liked": True, "saved": False, "following": True},
        second: {"liked": False, "saved": True, "following": True},
    }
    mine = client.get(
        f"/api/v1/me/video-states?ids={first}", headers={"Authorization": f"Bearer {ava}"}
    )
    assert mine.json() == {first: {"liked": False, "saved": False, "following": False}}
