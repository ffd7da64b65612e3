"""Plain test-data helpers (no factory framework): make_user(...), row_count(...)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from sqlalchemy import text

from reelm.accounts.schemas import SignUp
from reelm.accounts.service import check_sign_up
from reelm.config import Settings
from reelm.residency.blobs import LocalBlobStore
from reelm.residency.store import Platform, RegionStore


def make_user(
    platform: Platform,
    settings: Settings,
    *,
    handle: str = "ava",
    jurisdiction: str = "US",
    password: str = "correct horse battery",
    birth_date: date = date(2000, 1, 1),
) -> tuple[str, str, str]:
    """Sign a user up; returns (user id, home region, session token)."""
    signed = check_sign_up(
        platform,
        settings,
        SignUp(
            handle=handle,
            password=password,
            email=f"{handle}@example.org",
            birth_date=birth_date,
            jurisdiction=jurisdiction,
        ),
    )
    return signed.account.id, signed.account.region, signed.token


def row_count(platform: Platform, region: str, table: str, owner_id: str | None = None) -> int:
    sql = f"SELECT count(*) FROM {table}" + (" WHERE owner_id = :o" if owner_id else "")
    with platform.regions[region].unchecked_connection(reason="test: read below the hooks") as conn:
        return int(conn.execute(text(sql), {"o": owner_id}).scalar_one())


def make_video(
    platform: Platform,
    *,
    owner_id: str,
    region: str,
    caption: str = "a clip #demo",
    visibility: str = "public",
    sound_id: str | None = None,
    allow_comments: bool = True,
) -> str:
    """A ready, published video without running a transcode (rows + catalog through Egress)."""
    from reelm.db import utcnow
    from reelm.media.models import Upload, Video
    from reelm.media.publish import do_publish

    store = platform.regions[region]
    with store.transaction() as s:
        upload = Upload(owner_id=owner_id, declared_size=1, received=1, state="ready")
        s.add(upload)
        s.flush()
        video = Video(
            owner_id=owner_id,
            upload_id=upload.id,
            edit="{}",
            caption=caption,
            visibility=visibility,
            state="ready",
            progress=100,
            duration_s=10.0,
            width=720,
            height=1280,
            published_at=utcnow(),
            sound_id=sound_id,
            allow_comments=allow_comments,
        )
        s.add(video)
        s.flush()
        video_id = video.id
    do_publish(platform, store, video_id)
    return video_id


def make_song(
    platform: Platform,
    title: str,
    artist: str,
    *,
    territories: str = "*",
    uses: int = 0,
    created_at: datetime | None = None,
) -> str:
    """A catalog song's row without files (search, trending and licensing read rows only)."""
    from reelm.db import new_id, utcnow
    from reelm.sounds.models import Song, search_key

    with platform.global_store.transaction() as g:
        song = Song(
            id=new_id(),
            title=title,
            artist=artist,
            search_key=search_key(title, artist),
            genre="Pop",
            duration_s=30.0,
            territories=territories,
            sha256="0" * 64,
            size_bytes=1,
            use_count=uses,
            created_at=created_at or utcnow(),
        )
        g.add(song)
        return song.id


def blob_path(store: RegionStore, key: str) -> Path:
    """Where a folder store keeps `key`: for tests that damage or inspect the file itself."""
    assert isinstance(store.blobs, LocalBlobStore), "this test needs a folder blob store"
    return store.blobs.root / key
