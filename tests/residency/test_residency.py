"""The residency rule holds by construction: protected rows land only in the owner's home region."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from helpers import make_user, row_count
from reelm.accounts.models import Account, LoginSession
from reelm.accounts.schemas import ProfileUpdate, PublicProfileRecord
from reelm.accounts.service import RESERVED, access_session, do_update_profile
from reelm.config import Settings
from reelm.db import RegionModel, utcnow
from reelm.errors import EgressRefused, ResidencyViolation
from reelm.residency.egress import egress
from reelm.residency.models import PublicProfile
from reelm.residency.scan import do_scan
from reelm.residency.store import Platform

JURISDICTIONS = [
    "US",
    "CA",
    "AU",
    "NZ",
    "SG",
    "DE",
    "FR",
    "BR",
    "IN",
    "JP",
    "KR",
    "MX",
    "GB",
    "IE",
    "ES",
    "IT",
    "NL",
    "SE",
    "NO",
    "PL",
    "ZA",
    "NG",
    "KE",
    "EG",
    "AR",
    "CL",
    "CO",
    "ID",
    "PH",
    "VN",
    "TH",
    "MY",
    "CN",
    "TW",
    "TR",
]


def all_rows(platform: Platform) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for name, store in platform.regions.items():
        with store.unchecked_connection(reason="test: read below the hooks") as conn:
            out[name] = {
                (t.name, owner)
                for t in RegionModel.metadata.sorted_tables
                for (owner,) in conn.execute(select(t.c.owner_id))
            }
    return out


@hsettings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    users=st.lists(
        st.tuples(
            st.sampled_from(JURISDICTIONS),
            st.text(string.ascii_lowercase, min_size=3, max_size=10).filter(
                lambda h: h not in RESERVED
            ),
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda t: t[1],
    ),
    edits=st.lists(st.tuples(st.integers(0, 100), st.text(max_size=40)), max_size=10),
)
def test_random_signups_and_edits_leave_every_row_in_its_home_region(
    platform: Platform,
    settings: Settings,
    users: list[tuple[str, str]],
    edits: list[tuple[int, str]],
) -> None:
    from conftest import empty_all

    empty_all(platform)
    made = []
    for jurisdiction, handle in users:
        uid, region, token = make_user(platform, settings, handle=handle, jurisdiction=jurisdiction)
        assert region == platform.policy.region_for(jurisdiction)
        made.append((uid, region, token))
    for idx, bio in edits:
        uid, region, token = made[idx % len(made)]
        do_update_profile(platform, access_session(platform, token), ProfileUpdate(bio=bio))

    report = do_scan(platform)
    assert report.clean, report.violations
    rows = all_rows(platform)
    for uid, region, _ in made:
        for other, owned in rows.items():
            mine = {t for t, o in owned if o == uid}
            if other == region:
                # a profile edit's effect waits in the outbox until the worker crosses it off
                assert mine - {"outbox"} == {"accounts", "sessions"}
            else:
                assert mine == set(), f"{uid} has rows in {other}"


def test_writing_a_us_users_row_into_sg_raises_and_changes_nothing(
    platform: Platform, settings: Settings
) -> None:
    uid, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    assert region == "us"
    before = all_rows(platform)
    with (
        pytest.raises(ResidencyViolation, match="home region 'us'"),
        platform.regions["sg"].transaction() as s,
    ):
        s.add(
            Account(
                id=uid,
                owner_id=uid,
                handle="ava",
                email_ct=b"x",
                password_hash="x",
                birth_date_ct=b"x",
                jurisdiction="US",
            )
        )
    assert all_rows(platform) == before


def test_bulk_insert_into_wrong_region_is_refused(platform: Platform, settings: Settings) -> None:
    uid, _, _ = make_user(platform, settings, handle="mei", jurisdiction="SG")
    with pytest.raises(ResidencyViolation), platform.regions["us"].transaction() as s:
        s.execute(
            insert(LoginSession),
            [
                {
                    "owner_id": uid,
                    "account_id": uid,
                    "token_hash": "h" * 64,
                    "expires_at": utcnow(),
                }
            ],
        )
    assert row_count(platform, "us", "sessions") == 0


def test_moving_an_existing_row_to_another_owner_is_checked(
    platform: Platform, settings: Settings
) -> None:
    us_uid, _, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    sg_uid, _, _ = make_user(platform, settings, handle="mei", jurisdiction="SG")
    with platform.regions["us"].session() as s:
        row = s.scalar(select(LoginSession).where(LoginSession.owner_id == us_uid))
        assert row is not None
        row.owner_id = sg_uid
        with pytest.raises(ResidencyViolation):
            s.commit()
    assert row_count(platform, "us", "sessions", us_uid) == 1


def test_row_of_unknown_owner_is_refused(platform: Platform) -> None:
    with (
        pytest.raises(ResidencyViolation, match="not in the Directory"),
        platform.regions["us"].transaction() as s,
    ):
        s.add(
            Account(
                id="x" * 32,
                owner_id="x" * 32,
                handle="ghost",
                email_ct=b"x",
                password_hash="x",
                birth_date_ct=b"x",
                jurisdiction="US",
            )
        )


def test_scan_finds_a_planted_violation(platform: Platform, settings: Settings) -> None:
    uid, _, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    assert do_scan(platform).clean
    # Plant a row behind the store's back, as a buggy tool or a hand-edit would.
    with (
        platform.regions["sg"].unchecked_connection(reason="test: write below the hooks") as conn,
        conn.begin(),
    ):
        conn.execute(
            insert(Account.__table__).values(
                id="planted",
                owner_id=uid,
                handle="ava",
                email_ct=b"x",
                password_hash="x",
                birth_date_ct=b"x",
                jurisdiction="US",
                display_name="",
                bio="",
                is_private=False,
                created_at=utcnow(),
            )
        )
    report = do_scan(platform)
    assert not report.clean
    assert [
        (v.region, v.table, v.row_id, v.owner_id, v.home_region) for v in report.violations or []
    ] == [("sg", "accounts", "planted", uid, "us")]


def test_egress_accepts_the_public_profile_schema_only(
    platform: Platform, settings: Settings
) -> None:
    uid, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")

    class Leaky(PublicProfileRecord):
        email: str

    with platform.global_store.session() as g:
        with pytest.raises(EgressRefused):
            egress(
                g,
                Leaky(
                    user_id=uid,
                    handle="ava",
                    display_name="",
                    bio="",
                    avatar_url=None,
                    region=region,
                    email="ava@example.org",
                ),
            )
        with pytest.raises(EgressRefused):
            egress(g, {"user_id": uid, "handle": "ava"})
        with pytest.raises(EgressRefused), platform.regions["us"].session() as s:
            egress(g, s.get(Account, uid))
        egress(
            g,
            PublicProfileRecord(
                user_id=uid,
                handle="ava",
                display_name="Ava",
                bio="hi",
                avatar_url=None,
                region=region,
            ),
        )
        g.commit()
        assert g.get(PublicProfile, uid).bio == "hi"  # type: ignore[union-attr]


def test_public_profile_holds_no_protected_field(platform: Platform, settings: Settings) -> None:
    make_user(platform, settings, handle="ava", jurisdiction="US")
    columns = {c.name for c in PublicProfile.__table__.columns}
    assert not columns & {"email", "birth_date", "password_hash", "jurisdiction", "client_address"}


def test_a_policy_change_is_recorded_as_active_and_in_every_regions_audit_log(
    platform: Platform, settings: Settings
) -> None:
    from reelm.audit.entries import PolicyChange, parse_entry
    from reelm.audit.log import region_log
    from reelm.residency.policy import BUILTIN_POLICIES, load_policy
    from reelm.residency.service import active_policy_hash, do_activate_policy

    first = platform.policy.content_hash
    assert active_policy_hash(platform) == first
    before = load_policy(BUILTIN_POLICIES / "before-2020.toml", data_dir=settings.data_dir)
    assert do_activate_policy(platform, before) is True
    assert do_activate_policy(platform, before) is False  # unchanged: nothing recorded
    assert active_policy_hash(platform) == before.content_hash
    for region in ("us", "sg"):
        log = region_log(settings, platform.regions[region])
        changes = [
            e
            for e in (parse_entry(bytes(r.data)) for r in log.entries(0, log.size()))
            if isinstance(e, PolicyChange)
        ]
        assert [(c.content_hash, c.previous_hash) for c in changes][-1] == (
            before.content_hash,
            first,
        )
