"""Drafts: an unfinished edit kept sealed with its creator's key in their home region, seen only
by them, published later (gone in the same commit) or deleted with its clip."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from helpers import blob_path, make_user, row_count
from reelm.config import Settings
from reelm.residency.scan import do_scan
from reelm.residency.store import Platform

CAPTIONS = "WEBVTT\n\n00:00.000 --> 00:01.000\nsecret words of a draft\n"


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client: TestClient, token: str, clip: Path) -> str:
    with clip.open("rb") as f:
        r = client.post("/api/v1/uploads/file", headers=h(token), files={"file": ("c.mp4", f)})
    assert r.status_code == 201, r.text
    upload_id: str = r.json()["id"]
    return upload_id


def body(upload_id: str, **extra: object) -> dict[str, object]:
    return {
        "upload_id": upload_id,
        "edit": {
            "trim_start_s": 0.2,
            "trim_end_s": 1.8,
            "filter": "vintage",
            "texts": [{"text": "draft text", "start_s": 0.5}],
            "cover_time_s": 1.0,
        },
        "caption": "my unfinished #draft",
        "captions_vtt": CAPTIONS,
        "visibility": "followers",
        **extra,
    }


def test_a_draft_is_sealed_in_the_home_region_and_only_its_owner_sees_it(
    client: TestClient, platform: Platform, settings: Settings, small_clip: Path
) -> None:
    uid, _, token = make_user(platform, settings, handle="mei", jurisdiction="SG")
    _, _, other = make_user(platform, settings, handle="ava", jurisdiction="US")
    r = client.post(
        "/api/v1/drafts", headers=h(token), json=body(upload(client, token, small_clip))
    )
    assert r.status_code == 201, r.text
    draft = r.json()
    assert draft["content"]["edit"]["texts"][0]["text"] == "draft text"
    assert draft["content"]["captions_vtt"] == CAPTIONS
    # sealed with the owner's key, in the owner's region only; nothing in plain text
    store = platform.regions["sg"]
    (key,) = list(store.blobs.keys(f"{uid}/drafts/"))
    sealed = store.blobs.read_bytes(key)
    assert b"secret words" not in sealed
    assert b"unfinished" not in sealed
    assert b"secret words" in store.cipher(uid).decrypt_bytes(key, sealed)
    assert row_count(platform, "sg", "drafts") == 1
    assert row_count(platform, "us", "drafts") == 0
    assert do_scan(platform).clean
    # only the owner
    assert client.get(f"/api/v1/drafts/{draft['id']}", headers=h(other)).status_code == 404
    assert client.get("/api/v1/me/drafts", headers=h(other)).json() == []
    assert client.delete(f"/api/v1/drafts/{draft['id']}", headers=h(other)).status_code == 404
    mine = client.get("/api/v1/me/drafts", headers=h(token)).json()
    assert [d["id"] for d in mine] == [draft["id"]]
    # listed under the profile, for its owner only
    assert client.get("/@mei/drafts", follow_redirects=False).status_code in (302, 303, 307)
    assert client.get("/@mei/drafts", headers=h(other)).status_code == 404
    page = client.get("/@mei/drafts", headers=h(token))
    assert page.status_code == 200
    assert "my unfinished #draft" in page.text
    assert "my unfinished" not in client.get("/@mei", headers=h(other)).text


def test_an_unfinished_edit_is_kept_and_only_checked_when_published(
    client: TestClient, platform: Platform, settings: Settings, small_clip: Path
) -> None:
    uid, _, token = make_user(platform, settings, handle="noa", jurisdiction="US")
    upload_id = upload(client, token, small_clip)
    unfinished = body(upload_id)
    unfinished["edit"] = {"trim_start_s": 1.5, "trim_end_s": 1.0}  # not a valid trim yet
    draft = client.post("/api/v1/drafts", headers=h(token), json=unfinished).json()
    refused = client.post(
        "/api/v1/videos", headers=h(token), json={**unfinished, "draft_id": draft["id"]}
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_trim"
    assert row_count(platform, "us", "drafts") == 1  # nothing changed
    fixed = client.put(f"/api/v1/drafts/{draft['id']}", headers=h(token), json=body(upload_id))
    assert fixed.status_code == 200
    assert fixed.json()["content"]["edit"]["trim_end_s"] == 1.8
    posted = client.post(
        "/api/v1/videos", headers=h(token), json={**body(upload_id), "draft_id": draft["id"]}
    )
    assert posted.status_code == 202, posted.text
    assert posted.json()["state"] == "ready"
    assert posted.json()["has_captions"] is True
    assert row_count(platform, "us", "drafts") == 0
    assert list(platform.regions["us"].blobs.keys(f"{uid}/drafts/")) == []
    assert client.get(f"/api/v1/drafts/{draft['id']}", headers=h(token)).status_code == 404


def test_deleting_a_draft_removes_its_sealed_content_and_its_clip(
    client: TestClient, platform: Platform, settings: Settings, small_clip: Path
) -> None:
    uid, _, token = make_user(platform, settings, handle="lea", jurisdiction="US")
    draft = client.post(
        "/api/v1/drafts", headers=h(token), json=body(upload(client, token, small_clip))
    ).json()
    assert client.delete(f"/api/v1/drafts/{draft['id']}", headers=h(token)).status_code == 204
    store = platform.regions["us"]
    assert list(store.blobs.keys(f"{uid}/drafts/")) == []
    assert list(store.blobs.keys(f"{uid}/uploads/")) == []
    assert row_count(platform, "us", "uploads") == 0
    assert client.get("/api/v1/me/drafts", headers=h(token)).json() == []


def test_posting_a_draft_whose_sealed_content_cannot_be_removed_still_posts(
    client: TestClient, platform: Platform, settings: Settings, small_clip: Path
) -> None:
    """The video and the draft's end are one commit; the blob is removed after it, and a
    failure then (here: a folder where the file was) is no error of the request."""
    uid, _, token = make_user(platform, settings, handle="ida", jurisdiction="US")
    upload_id = upload(client, token, small_clip)
    draft = client.post("/api/v1/drafts", headers=h(token), json=body(upload_id)).json()
    store = platform.regions["us"]
    (key,) = list(store.blobs.keys(f"{uid}/drafts/"))
    path = blob_path(store, key)
    path.unlink()
    (path / "stuck").mkdir(parents=True)
    posted = client.post(
        "/api/v1/videos", headers=h(token), json={**body(upload_id), "draft_id": draft["id"]}
    )
    assert posted.status_code == 202, posted.text
    assert posted.json()["state"] == "ready"
    assert row_count(platform, "us", "drafts") == 0
    assert row_count(platform, "us", "videos") == 1
