"""Original sounds: the audio of a creator's public video, offered for reuse, as a catalog sound.

The work happens in the creator's region (their published MP4 is read there); only the fields of
`PublicOriginalSound` leave it, through Egress, and the sound's files go to every region like any
song's, because the creator published this sound and allowed its reuse.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from reelm.db import new_id
from reelm.errors import InvalidInput
from reelm.residency.egress import egress
from reelm.residency.store import Platform, RegionStore
from reelm.sounds import audio
from reelm.sounds.models import Song, SongUse
from reelm.sounds.schemas import PublicOriginalSound, original_sound_title
from reelm.sounds.service import (
    PreparedSong,
    copy_everywhere,
    delete_everywhere,
    file_sha256,
    get_song,
)

logger = logging.getLogger(__name__)


def _local_copy(store: RegionStore, key: str, target: Path) -> Path | None:
    """A copy of a blob in `target` (a scratch folder of this run), or None when missing."""
    try:
        with store.blobs.open(key) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
    except FileNotFoundError:
        target.unlink(missing_ok=True)
        return None
    return target


def do_create_original_sound(
    platform: Platform,
    store: RegionStore,
    *,
    video_id: str,
    handle: str,
    published_at: datetime,
    video_key: str,
    poster_key: str,
) -> Song | None:
    """Make a public video's own audio a reusable sound, "original sound - @handle".

    Called by Create's publish step, in the creator's region, for a public video whose creator
    allowed reuse and which kept its own sound. The audio track of the published MP4 (already
    loudness-normalised by the transcode) is copied out without re-encoding; only the fields of
    `PublicOriginalSound` leave the region, through Egress, and the files go to every region
    like any catalog song (the creator published this sound). Idempotent: one sound per video;
    returns it, or None when the video has no audible sound (or its file is gone).
    """
    with platform.global_store.session() as g:
        existing = g.scalar(select(Song).where(Song.original_of_video == video_id))
    if existing is not None:
        return existing
    title = original_sound_title(handle)
    with tempfile.TemporaryDirectory(prefix="reelm-original-") as tmp:
        folder = Path(tmp)
        video = _local_copy(store, video_key, folder / "video.mp4")
        if video is None:
            logger.info("video %s: no published MP4 to take an original sound from", video_id)
            return None
        song_file = folder / "song.m4a"
        try:
            audio.copy_audio(video, song_file, "mov")
            measured = audio.analyse(song_file, "mov")
        except InvalidInput as e:
            logger.info("video %s: no original sound (%s)", video_id, e.message)
            return None
        if measured.loudness_lufs < audio.SILENT_LUFS:
            logger.info("video %s: silent, so no original sound", video_id)
            return None
        audio.write_preview(
            song_file, folder / "preview.m4a", measured.loudest_start_s, measured.duration_s
        )
        poster = _local_copy(store, poster_key, folder / "poster.jpg")
        cover = audio.cover_from_image(poster.read_bytes()) if poster is not None else None
        (folder / "cover.jpg").write_bytes(
            cover or audio.generated_cover(title, handle, measured.peaks)
        )
        prepared = PreparedSong(
            folder=folder,
            duration_s=round(measured.duration_s, 3),
            sha256=file_sha256(song_file),
            size_bytes=song_file.stat().st_size,
            loudness_lufs=round(measured.loudness_lufs, 2),
            preview_start_s=measured.loudest_start_s,
            peaks=measured.peaks,
            cover="video" if cover else "generated",
        )
        song_id = new_id()
        copy_everywhere(platform, song_id, prepared)
    record = PublicOriginalSound(
        id=song_id,
        video_id=video_id,
        creator_handle=handle,
        duration_s=prepared.duration_s,
        sha256=prepared.sha256,
        size_bytes=prepared.size_bytes,
        loudness_lufs=prepared.loudness_lufs,
        preview_start_s=prepared.preview_start_s,
        waveform=prepared.peaks,
        cover="video" if prepared.cover == "video" else "generated",
        published_at=published_at,
    )
    try:
        with platform.global_store.transaction() as g:
            egress(g, record)
    except IntegrityError:  # another run made this video's sound first
        delete_everywhere(platform, song_id)
        with platform.global_store.session() as g:
            return g.scalar(select(Song).where(Song.original_of_video == video_id))
    except BaseException:
        delete_everywhere(platform, song_id)
        raise
    logger.info("video %s: original sound %s (%.1f s)", video_id, song_id, prepared.duration_s)
    return get_song(platform, song_id)


def do_remove_original_sounds(platform: Platform) -> int:
    """Remove the original sounds whose video is no longer public in the catalog (deleted,
    withdrawn, or its creator's account gone): rows, uses and files. Videos that used such a
    sound keep their mixed audio. Returns how many were removed."""
    from reelm.media.models import PublishedVideo

    public = select(PublishedVideo.id).where(PublishedVideo.visibility == "public")
    with platform.global_store.transaction() as g:
        gone = list(
            g.scalars(
                select(Song.id).where(
                    Song.original_of_video.is_not(None), Song.original_of_video.not_in(public)
                )
            )
        )
        if gone:
            g.execute(delete(SongUse).where(SongUse.song_id.in_(gone)))
            g.execute(delete(Song).where(Song.id.in_(gone)))
    for song_id in gone:
        delete_everywhere(platform, song_id)
    return len(gone)
