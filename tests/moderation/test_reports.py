"""Reports: the reporter's row stays in their region; the content's region gets counts only."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from helpers import make_user, make_video, row_count
from reelm.audit.entries import ReportReceived, parse_entry
from reelm.audit.log import region_log
from reelm.config import Settings
from reelm.moderation.models import ModerationCase
from reelm.residency.scan import do_scan
from reelm.residency.store import Platform


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(platform: Platform, settings: Settings) -> dict[str, str]:
    ava_id, _, ava = make_user(platform, settings, handle="ava", jurisdiction="US")
    mei_id, _, mei = make_user(platform, settings, handle="mei", jurisdiction="SG")
    bo_id, _, bo = make_user(platform, settings, handle="bob", jurisdiction="US")
    video = make_video(platform, owner_id=mei_id, region="sg", caption="laksa #food")
    return {"ava": ava, "bob": bo, "mei": mei, "mei_id": mei_id, "video": video}


def cases(platform: Platform, region: str) -> list[ModerationCase]:
    with platform.regions[region].session() as s:
        return list(s.scalars(select(ModerationCase)))


def report(client: TestClient, token: str, **body: str) -> dict[str, object]:
    r = client.post("/api/v1/reports", headers=h(token), json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_us_report_of_sg_video_stays_in_us_and_reaches_the_sg_case_as_counts(
    client: TestClient, platform: Platform, settings: Settings, world: dict[str, str]
) -> None:
    out = report(
        client,
        world["ava"],
        kind="video",
        target=world["video"],
        reason="other",
        text="private words of the reporter",
    )
    assert out["counted"] is True
    assert row_count(platform, "us", "reports") == 1
    assert row_count(platform, "sg", "reports") == 0
    (case,) = cases(platform, "sg")
    assert cases(platform, "us") == []
    assert (case.owner_id, case.target_kind, case.target_id) == (
        world["mei_id"],
        "video",
        world["video"],
    )
    assert case.report_count == 1
    assert json.loads(case.reasons) == {"other": 1}
    log = region_log(settings, platform.regions["sg"])
    received = [
        e
        for e in (parse_entry(bytes(x.data)) for x in log.entries(0, log.size()))
        if isinstance(e, ReportReceived)
    ]
    assert [(e.case, e.target_kind, e.reason) for e in received] == [(case.id, "video", "other")]
    assert "private words" not in json.dumps([e.model_dump(mode="json") for e in received])
    assert do_scan(platform).violations == []


def test_the_same_user_reporting_twice_counts_once_and_another_user_counts_again(
    client: TestClient, platform: Platform, world: dict[str, str]
) -> None:
    first = report(client, world["ava"], kind="video", target=world["video"], reason="spam")
    again = report(client, world["ava"], kind="video", target=world["video"], reason="hate")
    assert again["counted"] is False
    assert again["id"] == first["id"]
    report(client, world["bob"], kind="video", target=world["video"], reason="hate")
    (case,) = cases(platform, "sg")
    assert case.report_count == 2
    assert json.loads(case.reasons) == {"hate": 1, "spam": 1}
    assert row_count(platform, "us", "reports") == 2


def test_comments_and_accounts_are_reported_into_their_authors_region(
    client: TestClient, platform: Platform, world: dict[str, str]
) -> None:
    comment = client.post(
        f"/api/v1/videos/{world['video']}/comments", headers=h(world["bob"]), json={"text": "ugh"}
    ).json()["id"]
    report(client, world["ava"], kind="comment", target=comment, reason="harassment_or_bullying")
    report(client, world["ava"], kind="account", target="mei", reason="spam")
    assert [(c.target_kind, c.report_count) for c in cases(platform, "us")] == [("comment", 1)]
    assert [c.target_kind for c in cases(platform, "sg")] == ["account"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"kind": "video", "target": "0" * 32, "reason": "spam"}, 404, "video_not_found"),
        ({"kind": "video", "target": "VIDEO", "reason": "rude"}, 422, "invalid_input"),
        ({"kind": "video", "target": "VIDEO", "reason": "other"}, 422, "invalid_input"),
        ({"kind": "account", "target": "ava", "reason": "spam"}, 422, "self_report"),
        ({"kind": "account", "target": "nobody", "reason": "spam"}, 404, "user_not_found"),
    ],
)
def test_a_bad_report_is_refused_and_nothing_is_stored(
    client: TestClient,
    platform: Platform,
    world: dict[str, str],
    body: dict[str, str],
    status: int,
    code: str,
) -> None:
    body = {k: (world["video"] if v == "VIDEO" else v) for k, v in body.items()}
    r = client.post("/api/v1/reports", headers=h(world["ava"]), json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert row_count(platform, "us", "reports") == 0
    assert cases(platform, "sg") == []


def test_reports_are_rate_limited_per_user(
    client: TestClient, platform: Platform, settings: Settings, world: dict[str, str]
) -> None:
    settings.reports_per_hour = 2
    mei_id = world["mei_id"]
    videos = [make_video(platform, owner_id=mei_id, region="sg") for _ in range(3)]
    for video in videos[:2]:
        report(client, world["ava"], kind="video", target=video, reason="spam")
    r = client.post(
        "/api/v1/reports",
        headers=h(world["ava"]),
        json={"kind": "video", "target": videos[2], "reason": "spam"},
    )
    assert r.status_code == 429, r.text
    assert 3500 <= int(r.headers["Retry-After"]) <= 3601
    assert row_count(platform, "us", "reports") == 2
    report(client, world["bob"], kind="video", target=videos[2], reason="spam")  # bob's own hour


def test_reporting_needs_a_signed_in_user(client: TestClient, world: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/reports", json={"kind": "video", "target": world["video"], "reason": "spam"}
    )
    assert r.status_code == 401
