"""Demo content: users in both demo regions (and, as features land, their videos)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from reelm.accounts.schemas import SignUp
from reelm.accounts.service import check_sign_up
from reelm.config import Settings
from reelm.residency.models import DirectoryEntry
from reelm.residency.store import Platform

DEMO_PASSWORD = "reelm-demo-password"
DEMO_STAFF_PASSWORD = "reelm-staff-demo-password"
DEMO_STAFF: list[tuple[str, str]] = [("us-alice", "usds"), ("sg-bob", "global")]
DEMO_USERS: list[tuple[str, str, str, str]] = [
    # handle, jurisdiction, display name, bio
    ("ava", "US", "Ava Johnson", "Skate clips from Portland."),
    ("liam", "CA", "Liam Tremblay", "Hockey, snow, poutine."),
    ("olivia", "AU", "Olivia Nguyen", "Surf mornings in Sydney."),
    ("jack", "NZ", "Jack Wilson", "Hiking Aotearoa."),
    ("mei", "SG", "Mei Tan", "Hawker food reviews."),
    ("lucas", "BR", "Lucas Silva", "Samba and football."),
    ("amelie", "DE", "Amélie Becker", "Techno and bikes in Berlin."),
    ("aarav", "IN", "Aarav Sharma", "Cricket highlights and chai."),
    ("yuki", "JP", "Yuki Sato", "Tokyo street photography."),
]


def do_seed_demo(platform: Platform, settings: Settings) -> list[tuple[str, str]]:
    """Create the demo songs and users not there yet; returns (handle, region) of every user."""
    from reelm.accounts.schemas import ProfileUpdate
    from reelm.accounts.service import access_session, do_update_profile
    from reelm.sounds.service import do_seed_demo_songs

    do_seed_demo_songs(platform)
    out = []
    for handle, jurisdiction, name, bio in DEMO_USERS:
        with platform.global_store.session() as g:
            entry = g.scalar(select(DirectoryEntry).where(DirectoryEntry.handle_key == handle))
        if entry is None:
            signed = check_sign_up(
                platform,
                settings,
                SignUp(
                    handle=handle,
                    password=DEMO_PASSWORD,
                    email=f"{handle}@example.org",
                    birth_date=date(1998, 5, 17),
                    jurisdiction=jurisdiction,
                    display_name=name,
                ),
            )
            user = access_session(platform, signed.token)
            do_update_profile(platform, user, ProfileUpdate(bio=bio))
            out.append((handle, signed.account.region))
        else:
            out.append((handle, entry.home_region))
    return out


def do_seed_demo_staff(platform: Platform, settings: Settings) -> list[tuple[str, str, str]]:
    """Create one staff member per demo operator; returns (handle, operator, TOTP secret)."""
    from reelm.staff.models import StaffMember
    from reelm.staff.service import do_add_staff, totp_secret

    out = []
    for handle, operator in DEMO_STAFF:
        if operator not in platform.policy.operators:
            continue
        with platform.global_store.session() as g:
            exists = g.scalar(select(StaffMember.id).where(StaffMember.handle == handle))
        if exists is None:
            do_add_staff(
                platform, settings, handle=handle, operator=operator, password=DEMO_STAFF_PASSWORD
            )
        out.append((handle, operator, totp_secret(platform, settings, handle)))
    return out
