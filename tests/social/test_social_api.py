"""Two users in different regions follow, like, comment; each one's behaviour stays home."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from helpers import make_user, make_video, row_count
from reelm.config import Settings
from reelm.residency.scan import do_scan
from reelm.residency.store import Platform


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def pair(platform: Platform, settings: Settings) -> dict[str, str]:
    ava_id, _, ava = make_user(platform, settings, handle="ava", jurisdiction="US")
    mei_id, _, mei = make_user(platform, settings, handle="mei", jurisdiction="SG")
    ava_video = make_video(platform, owner_id=ava_id, region="us", caption="skate #skate")
    mei_video = make_video(platform, owner_id=mei_id, region="sg", caption="laksa #food @ava")
    return {
        "ava": ava,
        "mei": mei,
        "ava_id": ava_id,
        "mei_id": mei_id,
        "ava_video": ava_video,
        "mei_video": mei_video,
    }


def test_cross_region_follow_like_comment_stay_in_each_actors_region(
    client: TestClient, platform: Platform, pair: dict[str, str]
) -> None:
    assert (
        client.post("/api/v1/users/mei/follow", headers=h(pair["ava"])).json()["state"] == "active"
    )
    assert client.post(
        f"/api/v1/videos/{pair['mei_video']}/like", headers=h(pair["ava"])
    ).json() == {"like_count": 1}
    c = client.post(
        f"/api/v1/videos/{pair['mei_video']}/comments",
        headers=h(pair["ava"]),
        json={"text": "looks great"},
    )
    assert c.status_code == 201
    client.post("/api/v1/users/ava/follow", headers=h(pair["mei"]))
    client.post(f"/api/v1/videos/{pair['ava_video']}/like", headers=h(pair["mei"]))

    # ava's behaviour lives in us, mei's in sg
    assert row_count(platform, "us", "follows", pair["ava_id"]) == 1
    assert row_count(platform, "sg", "follows", pair["ava_id"]) == 0
    assert row_count(platform, "us", "likes", pair["ava_id"]) == 1
    assert row_count(platform, "us", "comments", pair["ava_id"]) == 1
    assert row_count(platform, "sg", "likes", pair["mei_id"]) == 1
    assert row_count(platform, "us", "likes", pair["mei_id"]) == 0
    # notifications are delivered into the recipient's region
    assert row_count(platform, "sg", "notifications", pair["mei_id"]) == 3  # follow, like, comment
    assert row_count(platform, "us", "notifications", pair["ava_id"]) == 2  # follow, like
    assert do_scan(platform).clean

    notes = client.get("/api/v1/me/notifications", headers=h(pair["mei"])).json()
    assert notes["unread"] == 3
    assert {n["kind"] for n in notes["items"]} == {"follow", "like", "comment"}
    assert all(n["actor_handle"] == "ava" for n in notes["items"])
    assert client.post("/api/v1/me/notifications/read", headers=h(pair["mei"])).json() == {
        "marked": 3
    }

    public = client.get(f"/api/v1/videos/{pair['mei_video']}").json()
    assert public["like_count"] == 1
    assert public["comment_count"] == 1
    comments = client.get(f"/api/v1/videos/{pair['mei_video']}/comments").json()
    assert [(x["author_handle"], x["text"]) for x in comments] == [("ava", "looks great")]
    prof = client.get("/api/v1/users/mei/videos", headers=h(pair["ava"])).json()
    assert (prof["followers"], prof["following"], prof["likes"], prof["follow_state"]) == (
        1,
        1,
        1,
        "active",
    )

    following = client.get("/api/v1/feed/following", headers=h(pair["ava"])).json()
    assert [i["video"]["id"] for i in following["items"]] == [pair["mei_video"]]
    assert following["items"][0]["reason"] == "You follow @mei"


def test_replies_are_one_level_deep_and_notify_the_parent_author(
    client: TestClient, platform: Platform, settings: Settings, pair: dict[str, str]
) -> None:
    _, _, liam = make_user(platform, settings, handle="liam", jurisdiction="CA")
    top = client.post(
        f"/api/v1/videos/{pair['mei_video']}/comments",
        headers=h(pair["ava"]),
        json={"text": "first"},
    ).json()
    reply = client.post(
        f"/api/v1/videos/{pair['mei_video']}/comments",
        headers=h(liam),
        json={"text": "reply", "parent_id": top["id"]},
    ).json()
    deeper = client.post(
        f"/api/v1/videos/{pair['mei_video']}/comments",
        headers=h(pair["mei"]),
        json={"text": "deeper", "parent_id": reply["id"]},
    ).json()
    assert reply["parent_id"] == top["id"]
    assert deeper["parent_id"] == top["id"]
    kinds = [
        n["kind"]
        for n in client.get("/api/v1/me/notifications", headers=h(pair["ava"])).json()["items"]
    ]
    assert "reply" in kinds


def test_comment_deletion_by_author_and_by_creator_and_comments_off(
    client: TestClient, pair: dict[str, str]
) -> None:
    vid = pair["mei_video"]
    a = client.post(
        f"/api/v1/videos/{vid}/comments", headers=h(pair["ava"]), json={"text": "one"}
    ).json()
    b = client.post(
        f"/api/v1/videos/{vid}/comments", headers=h(pair["ava"]), json={"text": "two"}
    ).json()
    assert client.delete(f"/api/v1/comments/{a['id']}", headers=h(pair["ava"])).status_code == 204
    assert client.delete(f"/api/v1/comments/{b['id']}", headers=h(pair["mei"])).status_code == 204
    assert client.get(f"/api/v1/videos/{vid}/comments").json() == []
    c = client.post(
        f"/api/v1/videos/{vid}/comments", headers=h(pair["mei"]), json={"text": "three"}
    ).json()
    assert client.delete(f"/api/v1/comments/{c['id']}", headers=h(pair["ava"])).status_code == 403
    assert (
        client.put(
            f"/api/v1/me/videos/{vid}/comments", headers=h(pair["mei"]), json={"enabled": False}
        ).status_code
        == 204
    )
    r = client.post(f"/api/v1/videos/{vid}/comments", headers=h(pair["ava"]), json={"text": "x"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "comments_off"


def test_private_account_gets_a_follow_request_to_approve(
    client: TestClient, platform: Platform, settings: Settings, pair: dict[str, str]
) -> None:
    client.patch("/api/v1/me/profile", headers=h(pair["mei"]), json={"is_private": True})
    followers_only = make_video(
        platform, owner_id=pair["mei_id"], region="sg", visibility="followers"
    )
    assert (
        client.post("/api/v1/users/mei/follow", headers=h(pair["ava"])).json()["state"] == "pending"
    )
    assert (
        client.get(f"/api/v1/videos/{followers_only}/comments", headers=h(pair["ava"])).status_code
        == 404
    )
    assert client.get("/api/v1/me/follow-requests", headers=h(pair["mei"])).json() == ["ava"]
    assert (
        client.post("/api/v1/me/follow-requests/ava/approve", headers=h(pair["mei"])).json()[
            "state"
        ]
        == "active"
    )
    assert (
        client.get(f"/api/v1/videos/{followers_only}/comments", headers=h(pair["ava"])).status_code
        == 200
    )
    feed = client.get("/api/v1/feed/following", headers=h(pair["ava"])).json()
    assert followers_only in [i["video"]["id"] for i in feed["items"]]


def test_block_hides_videos_comments_and_profile_both_ways(
    client: TestClient, pair: dict[str, str]
) -> None:
    client.post("/api/v1/users/mei/follow", headers=h(pair["ava"]))
    assert client.post("/api/v1/users/ava/block", headers=h(pair["mei"])).status_code == 204
    assert (
        client.post(f"/api/v1/videos/{pair['mei_video']}/like", headers=h(pair["ava"])).status_code
        == 404
    )
    assert client.get("/api/v1/users/mei/videos", headers=h(pair["ava"])).status_code == 404
    assert client.get("/api/v1/feed/following", headers=h(pair["ava"])).json()["items"] == []
    assert client.post("/api/v1/users/mei/follow", headers=h(pair["ava"])).status_code == 403


def test_watch_events_are_stored_in_the_viewers_region_and_count_views(
    client: TestClient, platform: Platform, pair: dict[str, str]
) -> None:
    r = client.post(
        "/api/v1/watch-events",
        headers=h(pair["ava"]),
        json={
            "events": [
                {"video_id": pair["mei_video"], "watched_ms": 4000, "completed": True},
                {"video_id": pair["mei_video"], "watched_ms": 300},
            ]
        },
    )
    assert r.json() == {"views": 1}
    assert row_count(platform, "us", "watch_events", pair["ava_id"]) == 2
    assert row_count(platform, "sg", "watch_events") == 0
    assert client.get(f"/api/v1/videos/{pair['mei_video']}").json()["view_count"] == 1


def test_share_link_and_count_and_search(client: TestClient, pair: dict[str, str]) -> None:
    r = client.post(f"/api/v1/videos/{pair['ava_video']}/share", json={"channel": "copy"})
    assert r.json() == {"url": f"/v/{pair['ava_video']}", "share_count": 1}
    found = client.get("/api/v1/search", params={"q": "skate"}).json()
    assert [v["id"] for v in found["videos"]] == [pair["ava_video"]]
    assert found["hashtags"] == [{"tag": "skate", "videos": 1}]
    assert client.get("/api/v1/search", params={"q": "mei"}).json()["users"][0]["handle"] == "mei"
    tag = client.get("/api/v1/hashtags/skate").json()
    assert tag["videos"] == 1
    assert tag["page"]["items"][0]["video"]["id"] == pair["ava_video"]
