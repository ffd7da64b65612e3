"""Demo content: users in both demo regions, their videos (generated clips run through the real
Create pipeline with looks and demo songs), and a little activity between them."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select

from reelm.accounts.schemas import SignUp
from reelm.accounts.service import CurrentUser, check_sign_up
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


# --- demo videos --------------------------------------------------------------------------------


T = TypeVar("T")


def _run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when this thread already runs an event
    loop (a caller inside an async server or a browser-test session): in a thread of its own."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass(frozen=True)
class DemoVideo:
    handle: str
    caption: str
    pattern: str  # an FFmpeg video source with options (see media.synth.make_test_clip)
    look: str | None
    song: str | None  # a demo song's title; None keeps the clip's own sound
    seconds: float = 4.0


DEMO_VIDEOS: list[DemoVideo] = [
    DemoVideo(
        "ava",
        "Golden hour at the skatepark, one more try 🛹 #skate #portland #goldenhour",
        "gradients=type=linear:speed=0.04:c0=#ff9a3c:c1=#ff4e50:c2=#6a0572:nb_colors=3",
        "golden_hour",
        "Sunday Skate",
    ),
    DemoVideo(
        "mei",
        "Rating every laksa in Katong so you don't have to 🍜 #food #singapore #hawker",
        "life=mold=10:ratio=0.12:life_color=#ffd166:death_color=#3a0ca3:mold_color=#ef476f",
        "vivid",
        "Midnight Taxi",
    ),
    DemoVideo(
        "yuki",
        "Shibuya crossing at night, shot on a phone 📸 #tokyo #streetphotography #nightwalk",
        "mandelbrot=end_scale=0.2:outer=normalized_iteration_count",
        "cyberpunk",
        "Neon Drift",
    ),
    DemoVideo(
        "olivia",
        "6am paddle out. Glassy and cold 🌊 #surf #sydney #morning",
        "gradients=type=circular:speed=0.03:c0=#00c6ff:c1=#0072ff:c2=#a1ffce:nb_colors=3",
        "teal_orange",
        "Rooftop Sunrise",
    ),
    DemoVideo(
        "amelie",
        "Friday night in Berlin, bass you can feel in your chest #techno #berlin #rave",
        "zoneplate=ku=512:kv=100:kt2=20:kx2=256:ky2=52",
        "vhs",
        "Cosmic Bounce",
    ),
    DemoVideo(
        "lucas",
        "Samba school rehearsal, three weeks to carnival 🥁 #samba #rio #carnaval",
        "cellauto=rule=110:scroll=1:start_full=0",
        "high_contrast",
        "Street Sprint",
    ),
    DemoVideo(
        "jack",
        "Tongariro crossing, wind at 80 km/h and worth it ⛰️ #hiking #newzealand #outdoors",
        "gradients=type=spiral:speed=0.02:c0=#134e5e:c1=#71b280:c2=#f4f1bb:nb_colors=3",
        "cinematic",
        "Paper Planes Home",
    ),
    DemoVideo(
        "aarav",
        "Last-over finish in the park match, chai on me 🏏 #cricket #mumbai",
        "testsrc2",
        "warm",
        "Pixel Parade",
    ),
    DemoVideo(
        "liam",
        "First snow on the outdoor rink 🏒 @ava come visit #hockey #montreal #winter",
        "gradients=type=radial:speed=0.05:c0=#e0eafc:c1=#7f9cf5:c2=#1e3c72:nb_colors=3",
        "cool",
        "Hyperloop",
    ),
    DemoVideo(
        "yuki",
        "Rainy day mood in Shimokitazawa ☔ #tokyo #lofi #film",
        "life=mold=25:ratio=0.08:life_color=#a0c4ff:death_color=#101020:mold_color=#bdb2ff",
        "film_grain",
        "Lo-Fi Library",
    ),
    DemoVideo(
        "mei",
        "Sunrise from the Marina Bay rooftop, worth the 5am alarm 🌅 #singapore #sunrise",
        "gradients=type=linear:speed=0.03:c0=#ffecd2:c1=#fcb69f:c2=#ff6f91:nb_colors=3",
        "pastel",
        "Golden Hour",
    ),
    DemoVideo(
        "ava",
        "Kickflip tutorial part 1: the pop #skate #tutorial @liam",
        "cellauto=rule=90:scroll=1:start_full=0",
        "noir",
        "Static Bloom",
    ),
]


def _demo_user(platform: Platform, handle: str) -> CurrentUser | None:
    """A demo user acting without a session (the seed runs on the server, not through a login)."""
    with platform.global_store.session() as g:
        entry = g.scalar(select(DirectoryEntry).where(DirectoryEntry.handle_key == handle))
    if entry is None:
        return None
    return CurrentUser(
        user_id=entry.user_id, handle=entry.handle, region=entry.home_region, session_id="demo"
    )


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            yield block


def do_seed_demo_videos(
    platform: Platform, settings: Settings, *, progress: Callable[[str], None] | None = None
) -> int:
    """Make each demo user's videos the way a creator would: a generated clip is uploaded, given
    a look and a demo song, and processed by the real Create pipeline (in this process). Skips
    videos already published (idempotent); returns how many videos it made."""
    from reelm.media.models import PublishedVideo
    from reelm.media.schemas import VideoCreate
    from reelm.media.service import do_append_upload, do_create_upload
    from reelm.media.synth import make_test_clip
    from reelm.media.tasks import create_video
    from reelm.sounds.models import Song

    immediate = settings.model_copy(update={"jobs_immediate": True})
    with platform.global_store.session() as g:
        have = set(g.execute(select(PublishedVideo.creator_handle, PublishedVideo.caption)))
        songs = {song.title: song.id for song in g.scalars(select(Song))}
    made = 0
    with tempfile.TemporaryDirectory(prefix="reelm-demo-") as tmp:
        for n, demo in enumerate(DEMO_VIDEOS):
            if (demo.handle, demo.caption) in have:
                continue
            started = time.monotonic()
            user = _demo_user(platform, demo.handle)
            if user is None:
                continue
            clip = make_test_clip(
                Path(tmp) / f"{n}.mp4",
                seconds=demo.seconds,
                width=360,
                height=640,
                pattern=demo.pattern,
            )
            upload = do_create_upload(
                platform, settings, user, size=clip.stat().st_size, filename=f"{demo.handle}.mp4"
            )
            _run_coroutine(
                do_append_upload(
                    platform, settings, user, upload.id, offset=0, chunks=_chunks(clip)
                )
            )
            song_id = songs.get(demo.song) if demo.song else None
            soundtrack = (
                {"kind": "song", "song_id": song_id, "offset_s": 0, "mix": 85}
                if song_id
                else {"kind": "original"}
            )
            create_video(
                platform,
                immediate,
                user,
                VideoCreate(
                    upload_id=upload.id,
                    edit={
                        "trim_start_s": 0,
                        "trim_end_s": demo.seconds,
                        "filter": demo.look,
                        "filter_intensity": 85,
                        "soundtrack": soundtrack,
                        "cover_time_s": demo.seconds / 2,
                    },
                    caption=demo.caption,
                ),
            )
            made += 1
            if progress is not None:
                progress(
                    f"@{demo.handle}: {demo.caption[:40]}… ({time.monotonic() - started:.1f}s)"
                )
    if made:
        do_seed_demo_activity(platform)
    return made


DEMO_FOLLOWS: list[tuple[str, str]] = [
    ("mei", "ava"),
    ("yuki", "ava"),
    ("liam", "ava"),
    ("ava", "mei"),
    ("olivia", "mei"),
    ("jack", "olivia"),
    ("ava", "yuki"),
    ("amelie", "yuki"),
    ("lucas", "amelie"),
    ("aarav", "mei"),
    ("yuki", "mei"),
    ("ava", "liam"),
]
DEMO_COMMENTS: list[tuple[str, str, str]] = [
    # commenter, creator whose first video it is on, text
    ("mei", "ava", "That landing 🔥"),
    ("liam", "ava", "Teach me!! @ava"),
    ("ava", "mei", "Adding all of these to my list for the trip"),
    ("yuki", "mei", "The colours 😍"),
    ("amelie", "yuki", "Tokyo at night never gets old"),
    ("jack", "olivia", "Brave, that water is freezing"),
]


def do_seed_demo_activity(platform: Platform) -> None:
    """Follows, likes and comments among the demo users, through the real social services (so
    each record lands in its actor's region and the counts move through Egress)."""
    from reelm.media.models import PublishedVideo
    from reelm.social.models import PublicComment
    from reelm.social.schemas import CommentCreate
    from reelm.social.service import do_comment, do_follow, do_like

    users = {h: u for h, *_ in DEMO_USERS if (u := _demo_user(platform, h)) is not None}
    for follower, followee in DEMO_FOLLOWS:
        if follower in users and followee in users:
            do_follow(platform, users[follower], followee)
    with platform.global_store.session() as g:
        videos = list(g.scalars(select(PublishedVideo).order_by(PublishedVideo.published_at)))
    first: dict[str, str] = {}
    for v in videos:
        first.setdefault(v.creator_handle, v.id)
    for i, v in enumerate(videos):
        for j, handle in enumerate(users):
            if handle != v.creator_handle and (i + j) % 3 != 0:
                do_like(platform, users[handle], v.id)
    for commenter, creator, text in DEMO_COMMENTS:
        if creator not in first or commenter not in users:
            continue
        with platform.global_store.session() as g:
            said = g.scalar(
                select(PublicComment.id).where(
                    PublicComment.video_id == first[creator], PublicComment.text == text
                )
            )
        if said is None:
            do_comment(platform, users[commenter], first[creator], CommentCreate(text=text))
