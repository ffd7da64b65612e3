"""Carve-out test data: a deployment seeded under the `before-2020` policy (everyone in `sg`),
with media (encrypted uploads, renditions) and activity across people who move and who stay."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from helpers import make_user
from reelm.accounts.service import CurrentUser, access_session
from reelm.config import Settings
from reelm.db import new_id, utcnow
from reelm.media.models import Upload, Video
from reelm.residency.policy import BUILTIN_POLICIES, ResidencyPolicy, load_policy
from reelm.residency.store import Platform

# (handle, jurisdiction, videos): US, CA, AU and NZ move to `us`; the others stay in `sg`.
PEOPLE: list[tuple[str, str, int]] = [
    ("ava_us", "US", 2),
    ("ben_us", "US", 1),
    ("cora_us", "US", 0),
    ("dan_ca", "CA", 1),
    ("eve_au", "AU", 0),
    ("finn_nz", "NZ", 1),
    ("gus_sg", "SG", 1),
    ("hana_jp", "JP", 0),
    ("ida_de", "DE", 1),
]
MOVING_JURISDICTIONS = {"US", "CA", "AU", "NZ"}


@dataclass
class Person:
    handle: str
    jurisdiction: str
    user_id: str
    token: str
    videos: list[str] = field(default_factory=list)

    @property
    def moves(self) -> bool:
        return self.jurisdiction in MOVING_JURISDICTIONS


@dataclass
class Seeded:
    platform: Platform
    settings: Settings
    people: dict[str, Person]
    demo: ResidencyPolicy

    def movers(self) -> list[Person]:
        return [p for p in self.people.values() if p.moves]


def policy(settings: Settings, name: str) -> ResidencyPolicy:
    return load_policy(BUILTIN_POLICIES / f"{name}.toml", data_dir=settings.data_dir)


def user_of(platform: Platform, person: Person) -> CurrentUser:
    return access_session(platform, person.token)


def make_video(platform: Platform, person: Person, *, public: bool = True) -> str:
    """A processed video written as the media service leaves one: an encrypted upload, the
    rendition files and poster under `<owner>/videos/<id>/`, the rows, the catalog entry."""
    from reelm.media.publish import do_publish

    user = user_of(platform, person)
    store = platform.region(user.region)
    upload_id, video_id = new_id(), new_id()
    key = f"{person.user_id}/uploads/{upload_id}.enc"
    store.blobs.put_bytes(key, store.cipher(person.user_id).encrypt_bytes(key, os.urandom(3000)))
    for name, size in (("video.mp4", 4000), ("poster.jpg", 600), ("master.m3u8", 80)):
        store.blobs.put_bytes(f"{person.user_id}/videos/{video_id}/{name}", os.urandom(size))
    now = utcnow()
    with store.transaction() as s:
        s.add(
            Upload(
                id=upload_id, owner_id=person.user_id, filename="clip.mp4", declared_size=3000,
                received=3000, state="ready", blob_key=key, probe="{}", completed_at=now,
            )
        )  # fmt: skip
        s.flush()
        s.add(
            Video(
                id=video_id, owner_id=person.user_id, upload_id=upload_id, edit="{}",
                caption=f"a clip by @{person.handle} #carveout", state="ready", progress=100,
                visibility="public" if public else "private", duration_s=12.345678901234567,
                width=720, height=1280, published_at=now - timedelta(minutes=1),
            )
        )  # fmt: skip
    do_publish(platform, store, video_id)
    person.videos.append(video_id)
    return video_id


def seed_people(
    platform: Platform, settings: Settings, people: list[tuple[str, str, int]] = PEOPLE
) -> dict[str, Person]:
    out: dict[str, Person] = {}
    for handle, jurisdiction, videos in people:
        user_id, region, token = make_user(
            platform, settings, handle=handle, jurisdiction=jurisdiction
        )
        assert region == "sg", "seeded under before-2020: everyone starts in sg"
        person = Person(handle, jurisdiction, user_id, token)
        for _ in range(videos):
            make_video(platform, person)
        out[handle] = person
    _activity(platform, out)
    return out


def _activity(platform: Platform, people: dict[str, Person]) -> None:
    """Follows, likes and a comment across people who move and people who stay."""
    from reelm.social.schemas import CommentCreate
    from reelm.social.service import do_comment, do_follow, do_like

    pairs = [
        ("ava_us", "gus_sg"),
        ("gus_sg", "ava_us"),
        ("dan_ca", "ben_us"),
        ("ida_de", "finn_nz"),
    ]
    for a, b in pairs:
        if a in people and b in people:
            do_follow(platform, user_of(platform, people[a]), b)
    likes = [("gus_sg", "ava_us"), ("ava_us", "gus_sg"), ("ben_us", "dan_ca")]
    for a, b in likes:
        if a in people and b in people and people[b].videos:
            do_like(platform, user_of(platform, people[a]), people[b].videos[0])
    if "ben_us" in people and "ava_us" in people and people["ava_us"].videos:
        do_comment(
            platform,
            user_of(platform, people["ben_us"]),
            people["ava_us"].videos[0],
            CommentCreate(text="nice one"),
        )
