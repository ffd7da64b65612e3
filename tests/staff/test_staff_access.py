"""Staff reads of protected data: Cedar decides, the region's audit log records every decision."""

from __future__ import annotations

import pyotp
import pytest
from fastapi.testclient import TestClient

from helpers import make_user
from reelm.audit.entries import StaffAccess, parse_entry
from reelm.audit.log import region_log
from reelm.config import Settings
from reelm.residency.store import Platform
from reelm.staff.service import do_add_staff, totp_secret

PASSWORD = "staff password 123"


def staff_token(
    client: TestClient, platform: Platform, settings: Settings, handle: str, operator: str
) -> str:
    do_add_staff(platform, settings, handle=handle, operator=operator, password=PASSWORD)
    code = pyotp.TOTP(totp_secret(platform, settings, handle)).now()
    r = client.post(
        "/staff/api/v1/sessions", json={"handle": handle, "password": PASSWORD, "totp": code}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def logged(platform: Platform, settings: Settings, region: str) -> list[StaffAccess]:
    log = region_log(settings, platform.regions[region])
    entries = [parse_entry(bytes(e.data)) for e in log.entries(0, log.size())]
    return [e for e in entries if isinstance(e, StaffAccess)]


@pytest.fixture
def world(client: TestClient, platform: Platform, settings: Settings) -> dict[str, str]:
    make_user(platform, settings, handle="ava", jurisdiction="US")
    make_user(platform, settings, handle="mei", jurisdiction="SG")
    us = staff_token(client, platform, settings, "us-alice", "usds")
    sg = staff_token(client, platform, settings, "sg-bob", "global")
    us_ticket = client.post(
        "/staff/api/v1/tickets", headers=h(us), json={"region": "us", "purpose": "support"}
    ).json()["id"]
    sg_ticket_for_us = client.post(
        "/staff/api/v1/tickets", headers=h(sg), json={"region": "us", "purpose": "support"}
    ).json()["id"]
    sg_ticket = client.post(
        "/staff/api/v1/tickets", headers=h(sg), json={"region": "sg", "purpose": "safety"}
    ).json()["id"]
    us_ticket_for_sg = client.post(
        "/staff/api/v1/tickets", headers=h(us), json={"region": "sg", "purpose": "support"}
    ).json()["id"]
    return {
        "us": us,
        "sg": sg,
        "us_ticket": us_ticket,
        "sg_ticket_for_us": sg_ticket_for_us,
        "sg_ticket": sg_ticket,
        "us_ticket_for_sg": us_ticket_for_sg,
    }


MATRIX = [
    # staff, user, ticket key, purpose, expected status, expected policy ids
    ("us", "ava", "us_ticket", "support", 200, ["region-operator-with-open-ticket"]),
    ("us", "ava", None, "support", 403, ["default-deny"]),
    ("us", "ava", "sg_ticket_for_us", "support", 403, ["default-deny"]),
    ("us", "ava", "us_ticket", "curiosity", 403, ["default-deny"]),
    ("sg", "ava", "sg_ticket_for_us", "support", 403, ["global-operator-never-reads-us"]),
    ("sg", "ava", "us_ticket", "support", 403, ["global-operator-never-reads-us"]),
    ("sg", "mei", "sg_ticket", "safety", 200, ["region-operator-with-open-ticket"]),
    ("sg", "mei", None, "safety", 403, ["default-deny"]),
    ("us", "mei", "us_ticket_for_sg", "support", 403, ["default-deny"]),
]


@pytest.mark.parametrize(("who", "user", "ticket", "purpose", "status", "policies"), MATRIX)
def test_staff_access_matrix_is_enforced_and_every_decision_is_logged(
    client: TestClient,
    platform: Platform,
    settings: Settings,
    world: dict[str, str],
    who: str,
    user: str,
    ticket: str | None,
    purpose: str,
    status: int,
    policies: list[str],
) -> None:
    region = "us" if user == "ava" else "sg"
    before = len(logged(platform, settings, region))
    params = {"purpose": purpose, **({"ticket": world[ticket]} if ticket else {})}
    r = client.get(f"/staff/api/v1/users/{user}/account", headers=h(world[who]), params=params)
    assert r.status_code == status, r.text
    entries = logged(platform, settings, region)
    assert len(entries) == before + 1
    last = entries[-1]
    assert last.decision == ("allow" if status == 200 else "deny")
    assert last.policy_ids == policies
    assert last.operator == ("usds" if who == "us" else "global")
    assert last.data_category == "account"
    assert last.subject.startswith("p_")
    if status == 200:
        assert r.json()["account"]["email"] == f"{user}@example.org"
        assert r.json()["policy_ids"] == policies
    else:
        assert r.json()["error"]["code"] == "access_denied"
        assert "example.org" not in r.text


def test_closed_ticket_no_longer_opens_anything(
    client: TestClient, platform: Platform, settings: Settings, world: dict[str, str]
) -> None:
    params = {"purpose": "support", "ticket": world["us_ticket"]}
    assert (
        client.get(
            "/staff/api/v1/users/ava/sessions", headers=h(world["us"]), params=params
        ).status_code
        == 200
    )
    client.post(f"/staff/api/v1/tickets/{world['us_ticket']}/close", headers=h(world["us"]))
    assert (
        client.get(
            "/staff/api/v1/users/ava/sessions", headers=h(world["us"]), params=params
        ).status_code
        == 403
    )


def test_audit_entries_hold_no_personal_data(
    client: TestClient, platform: Platform, settings: Settings, world: dict[str, str]
) -> None:
    client.get(
        "/staff/api/v1/users/ava/account",
        headers=h(world["us"]),
        params={"purpose": "support", "ticket": world["us_ticket"]},
    )
    log = region_log(settings, platform.regions["us"])
    raw = b"".join(bytes(e.data) for e in log.entries(0, log.size()))
    assert b"ava" not in raw
    assert b"example.org" not in raw


def test_staff_login_needs_the_second_factor(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    do_add_staff(platform, settings, handle="us-carol", operator="usds", password=PASSWORD)
    r = client.post(
        "/staff/api/v1/sessions",
        json={"handle": "us-carol", "password": PASSWORD, "totp": "000000"},
    )
    assert r.status_code == 401
    good = pyotp.TOTP(totp_secret(platform, settings, "us-carol")).now()
    r = client.post(
        "/staff/api/v1/sessions",
        json={"handle": "us-carol", "password": "wrong password!", "totp": good},
    )
    assert r.status_code == 401


def test_a_user_session_cannot_use_the_staff_api(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    _, _, token = make_user(platform, settings, handle="ava", jurisdiction="US")
    r = client.get(
        "/staff/api/v1/users/ava/account", headers=h(token), params={"purpose": "support"}
    )
    assert r.status_code == 401


def test_unknown_operator_for_staff_is_refused(platform: Platform, settings: Settings) -> None:
    from reelm.errors import InvalidInput

    with pytest.raises(InvalidInput, match="Unknown operator"):
        do_add_staff(platform, settings, handle="x-dave", operator="bytedance", password=PASSWORD)
