"""The song catalog: import (tags, loudness, preview, waveform, cover, a copy in every region),
uses, reads of single songs, and licensing for creators and viewers. Search and trending are in
`search.py`, original sounds in `originals.py`.

Songs are CATALOG data: non-personal and global. The row lives in the global database; the files
are copied into every region's blob store under `catalog/songs/<id>…`, so a region's transcoding
workers read songs from their own region and never across regions.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reelm.accounts.models import Account
from reelm.accounts.service import CurrentUser
from reelm.db import new_id
from reelm.errors import Conflict, Forbidden, InvalidInput, NotFound, ReelmError
from reelm.residency.blobs import BlobStat, BlobStore, blob_digest
from reelm.residency.jurisdictions import country_name
from reelm.residency.store import Platform, RegionStore
from reelm.sounds import audio
from reelm.sounds.models import (
    WORLDWIDE,
    Song,
    SongUse,
    cover_blob_key,
    fold,
    preview_blob_key,
    search_key,
    song_blob_key,
    song_blob_keys,
)
from reelm.sounds.schemas import SongCreate, VideoSound, record_song_use

# Search and trending live in search.py; callers may keep reading the catalog through service.
from reelm.sounds.search import MAX_PAGE as MAX_PAGE
from reelm.sounds.search import search_songs as search_songs
from reelm.sounds.search import trending_songs as trending_songs
from reelm.sounds.tags import UNKNOWN_ARTIST, name_from_file, read_tags

logger = logging.getLogger(__name__)

# What `reelm sounds import FOLDER` picks up; a file named on the command line is tried whatever
# its name.
AUDIO_SUFFIXES = frozenset(
    {".mp3", ".m4a", ".mp4", ".mov", ".flac", ".wav", ".ogg", ".oga", ".opus", ".mka", ".webm"}
)
FileKind = Literal["audio", "preview", "cover"]


# --- preparing and storing a song's files --------------------------------------------------------


@dataclass(frozen=True)
class PreparedSong:
    """A song's three files, ready in `folder`, and what was measured on the way."""

    folder: Path
    duration_s: float
    sha256: str
    size_bytes: int
    loudness_lufs: float
    preview_start_s: float
    peaks: list[float]
    cover: str

    @property
    def files(self) -> dict[str, Path]:
        """Blob key suffix → file."""
        return {
            ".m4a": self.folder / "song.m4a",
            ".preview.m4a": self.folder / "preview.m4a",
            ".jpg": self.folder / "cover.jpg",
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare_song(
    source: Path, folder: Path, *, title: str, artist: str, cover_art: bytes | None = None
) -> PreparedSong:
    """Probe, measure (EBU R128), normalise to -14 LUFS, cut the preview at the loudest 30 s,
    and make the cover: the file's own art when it has decodable art, else one drawn from the
    title's colours and the waveform."""
    probe = audio.probe_song(source)
    measured = audio.analyse(source)
    song = folder / "song.m4a"
    result = audio.write_song(source, song, probe, measured)
    stored = audio.probe_song(song, min_s=0.0)  # what listeners get: its real length
    audio.write_preview(song, folder / "preview.m4a", result.loudest_start_s, stored.duration_s)
    cover = audio.cover_from_image(cover_art) if cover_art else None
    (folder / "cover.jpg").write_bytes(cover or audio.generated_cover(title, artist, result.peaks))
    return PreparedSong(
        folder=folder,
        duration_s=round(stored.duration_s, 3),
        sha256=file_sha256(song),
        size_bytes=song.stat().st_size,
        loudness_lufs=round(result.loudness_lufs, 2),
        preview_start_s=min(result.loudest_start_s, max(0.0, stored.duration_s - audio.PREVIEW_S)),
        peaks=result.peaks,
        cover="embedded" if cover else "generated",
    )


def delete_everywhere(platform: Platform, song_id: str) -> None:
    for store in platform.regions.values():
        for key in song_blob_keys(song_id):
            store.blobs.delete(key)


def copy_everywhere(platform: Platform, song_id: str, prepared: PreparedSong) -> None:
    """Put a new song's files into every region's blob store, checking each audio copy's hash.

    All or nothing: on any failure the song's keys (new, so nothing else is under them) are
    removed from every region.
    """
    audio_key = song_blob_key(song_id)
    try:
        for store in platform.regions.values():
            for suffix, path in prepared.files.items():
                store.blobs.put_file(f"catalog/songs/{song_id}{suffix}", path)
            if blob_digest(store.blobs, audio_key)[1] != prepared.sha256:
                raise OSError(f"the copy of {audio_key} in region {store.name} does not match")
    except BaseException:
        delete_everywhere(platform, song_id)
        raise


def _add_song(platform: Platform, fields: SongCreate, prepared: PreparedSong) -> Song:
    """Copy the files everywhere, then commit the row that makes the song visible.

    The order is the invariant: every region has the files, each audio copy checked against one
    sha256, before the row is committed; if that commit fails the copies are removed. A crash in
    between leaves unreferenced files, never a song that some region cannot play.
    """
    song = Song(
        id=new_id(),
        title=fields.title,
        artist=fields.artist,
        search_key=search_key(fields.title, fields.artist),
        genre=fields.genre,
        bpm=fields.bpm,
        territories=fields.territories,
        duration_s=prepared.duration_s,
        sha256=prepared.sha256,
        size_bytes=prepared.size_bytes,
        loudness_lufs=prepared.loudness_lufs,
        preview_start_s=prepared.preview_start_s,
        cover=prepared.cover,
        waveform=json.dumps(prepared.peaks, separators=(",", ":")),
    )
    copy_everywhere(platform, song.id, prepared)
    try:
        with platform.global_store.transaction() as g:
            g.add(song)
    except BaseException:
        delete_everywhere(platform, song.id)
        raise
    return song


def _check_not_in_catalog(platform: Platform, fields: SongCreate) -> None:
    """Refuse a title and artist the catalog has (case- and accent-insensitively)."""
    wanted = (fold(fields.title), fold(fields.artist))
    with platform.global_store.session() as g:
        same_key = g.execute(
            select(Song.id, Song.title, Song.artist).where(
                Song.search_key == search_key(fields.title, fields.artist),
                Song.original_of_video.is_(None),
            )
        )
        exists = next((i for i, t, a in same_key if (fold(t), fold(a)) == wanted), None)
    if exists is not None:
        raise Conflict(
            f"“{fields.title}” by {fields.artist} is already in the catalog (song {exists}).",
            code="song_exists",
        )


# --- import --------------------------------------------------------------------------------------


def do_import_song(
    platform: Platform,
    *,
    path: Path,
    title: str,
    artist: str,
    genre: str = "",
    territories: str | Sequence[str] = WORLDWIDE,
    bpm: int | None = None,
    cover_art: bytes | None = None,
) -> Song:
    """Add a song to the catalog: check, prepare its files (see `prepare_song`), copy them to
    every region, record it. Nothing is stored when any step refuses the file."""
    fields = SongCreate.checked(
        title=title, artist=artist, genre=genre, bpm=bpm, territories=territories
    )
    _check_not_in_catalog(platform, fields)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reelm-song-") as tmp:
        prepared = prepare_song(
            path, Path(tmp), title=fields.title, artist=fields.artist, cover_art=cover_art
        )
        song = _add_song(platform, fields, prepared)
    logger.info(
        "imported song %s (%s by %s, %.1f s, %.1f LUFS) into %d regions in %.2f s",
        song.id,
        song.title,
        song.artist,
        song.duration_s,
        prepared.loudness_lufs,
        len(platform.regions),
        time.monotonic() - started,
    )
    return song


@dataclass(frozen=True)
class ImportOutcome:
    """What became of one file: a new `song`, `skipped` (already in the catalog) or `error`."""

    path: Path
    song: Song | None = None
    skipped: str | None = None
    error: str | None = None


def check_territories(territories: str) -> str:
    """The stored form of a territories option, or `InvalidInput` before any file is read."""
    return SongCreate.checked(title="-", artist="-", territories=territories).territories


def find_audio_files(path: Path) -> list[Path]:
    """A file as given, or every audio file (by extension) under a folder, recursively and in
    name order, leaving out hidden files and folders."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InvalidInput(f"No such file or folder: {path}", code="missing_file")
    return sorted(
        p
        for p in path.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and p.is_file()
    )


def do_import_file(
    platform: Platform,
    path: Path,
    *,
    title: str | None = None,
    artist: str | None = None,
    genre: str | None = None,
    bpm: int | None = None,
    territories: str = WORLDWIDE,
) -> ImportOutcome:
    """Import one file of a folder: the options given override the file's tags, the tags
    override its name ("Artist - Title.mp3"). Never raises for a bad file: its outcome says
    what is wrong, so one bad file never stops the rest of a folder."""
    tags = read_tags(path)
    named_title, named_artist = name_from_file(path)
    try:
        song = do_import_song(
            platform,
            path=path,
            title=(title or tags.title or named_title)[:200],
            artist=(artist or tags.artist or named_artist or UNKNOWN_ARTIST)[:200],
            genre=(genre if genre is not None else tags.genre or "")[:40],
            bpm=bpm if bpm is not None else tags.bpm,
            territories=territories,
            cover_art=tags.cover,
        )
    except Conflict as e:
        return ImportOutcome(path, skipped=e.message)
    except ReelmError as e:
        return ImportOutcome(path, error=e.message)
    except OSError as e:
        return ImportOutcome(path, error=f"{path.name}: {e.strerror or e}")
    except Exception as e:  # a bug must not cost the rest of the folder; it is logged in full
        logger.exception("importing %s failed", path)
        return ImportOutcome(path, error=f"{path.name}: unexpected {type(e).__name__}: {e}")
    return ImportOutcome(path, song=song)


# --- keeping every region's copy whole -----------------------------------------------------------


def do_replicate_songs(platform: Platform, *, verify: bool = False) -> int:
    """Copy every song's files to each region that lacks them (a region added by a new policy);
    returns the number of copies written. `verify` also re-hashes every audio copy and replaces
    those that do not match the recorded sha256."""
    with platform.global_store.session() as g:
        songs = list(g.execute(select(Song.id, Song.sha256, Song.size_bytes)))
    written = 0
    for song_id, sha256, size in songs:
        for key in song_blob_keys(song_id):
            is_audio = key == song_blob_key(song_id)
            good: RegionStore | None = None
            missing: list[RegionStore] = []
            for store in platform.regions.values():
                stat = store.blobs.stat(key)
                ok = stat is not None
                if stat is not None and is_audio:
                    ok = stat.size == size and (
                        not verify or blob_digest(store.blobs, key)[1] == sha256
                    )
                if ok and good is None:
                    good = store
                if not ok:
                    missing.append(store)
            if not missing:
                continue
            if good is None:
                if is_audio:
                    logger.error("song %s has no intact copy in any region", song_id)
                continue
            with good.blobs.staged(key) as path:
                for store in missing:
                    store.blobs.put_file(key, path)
                    written += 1
    return written


def do_complete_songs(platform: Platform) -> int:
    """Give songs imported before previews, covers and waveforms existed (migration g0030)
    theirs, from an intact copy; returns how many were completed. Their audio is kept as is."""
    with platform.global_store.session() as g:
        songs = list(g.scalars(select(Song).where(Song.preview_start_s.is_(None))))
    done = 0
    for song in songs:
        try:
            found = access_song_file(platform, song.id, "audio")
        except NotFound:
            continue
        with (
            tempfile.TemporaryDirectory(prefix="reelm-song-") as tmp,
            found.blobs.staged(found.key) as source,
        ):
            folder = Path(tmp)
            measured = audio.analyse(source)
            preview = folder / "preview.m4a"
            audio.write_preview(source, preview, measured.loudest_start_s, song.duration_s)
            cover = folder / "cover.jpg"
            cover.write_bytes(audio.generated_cover(song.title, song.artist, measured.peaks))
            for store in platform.regions.values():
                store.blobs.put_file(preview_blob_key(song.id), preview)
                store.blobs.put_file(cover_blob_key(song.id), cover)
        with platform.global_store.transaction() as g:
            g.execute(
                update(Song)
                .where(Song.id == song.id)
                .values(
                    loudness_lufs=round(measured.loudness_lufs, 2),
                    preview_start_s=measured.loudest_start_s,
                    cover="generated",
                    waveform=json.dumps(measured.peaks, separators=(",", ":")),
                )
            )
        done += 1
    return done


# --- uses ----------------------------------------------------------------------------------------


def do_count_song_use(session: Session, song_id: str, delta: int = 1) -> None:
    """Add `delta` uses in the caller's global transaction; one atomic UPDATE, so concurrent
    publishers never lose a count, and never below zero."""
    session.execute(
        update(Song)
        .where(Song.id == song_id, Song.use_count + delta >= 0)
        .values(use_count=Song.use_count + delta)
    )


def do_record_song_use(
    session: Session, song_id: str, *, video_id: str, at: datetime | None = None
) -> bool:
    """A published video uses a song: remember when (trending counts the last TRENDING_DAYS)
    and count it, in the caller's global transaction. Once per video: a second call for the
    same video changes nothing and returns False."""
    return record_song_use(session, song_id, video_id=video_id, at=at)


def do_forget_song_use(session: Session, video_id: str) -> None:
    """The video no longer uses its song (deleted): drop its use and its count."""
    use = session.get(SongUse, video_id)
    if use is not None:
        do_count_song_use(session, use.song_id, -1)
        session.delete(use)
        session.flush()


# --- reads ---------------------------------------------------------------------------------------


def get_song(platform: Platform, song_id: str) -> Song:
    with platform.global_store.session() as g:
        song = g.get(Song, song_id) if len(song_id) <= 32 else None
    if song is None:
        raise NotFound("No such sound.", code="song_not_found")
    return song


@contextmanager
def song_file(store: RegionStore, song_id: str) -> Iterator[Path]:
    """The song's file from this region's blob store, as a local file while the block runs:
    what a transcoder in the region reads."""
    key = song_blob_key(song_id)
    if not store.blobs.exists(key):
        raise NotFound(
            f"The sound's file is missing in region {store.name!r}; run `reelm sounds sync`.",
            code="song_file_missing",
        )
    with store.blobs.staged(key) as path:
        yield path


@dataclass(frozen=True)
class SongFile:
    """One of a song's files in one region's blob store (any region's copy will do)."""

    song: Song
    blobs: BlobStore
    key: str
    stat: BlobStat


def access_song_file(platform: Platform, song_id: str, kind: FileKind) -> SongFile:
    """A song and a copy of one of its files, from the first region (in policy order) that
    holds one. Any copy will do: they are identical and the files are non-personal."""
    song = get_song(platform, song_id)
    key = {"audio": song_blob_key, "preview": preview_blob_key, "cover": cover_blob_key}[kind]
    for store in platform.regions.values():
        stat = store.blobs.stat(key(song_id))
        if stat is not None:
            return SongFile(song, store.blobs, key(song_id), stat)
    what = {"audio": "sound's file", "preview": "preview", "cover": "cover"}[kind]
    raise NotFound(f"The {what} is missing.", code=f"song_{kind}_missing")


# --- licensing -----------------------------------------------------------------------------------


def is_licensed_in(song: Song, jurisdiction: str) -> bool:
    """Whether the song may be used (chosen, or heard) by someone in `jurisdiction`."""
    return song.territories == WORLDWIDE or jurisdiction.upper() in song.territory_list


def check_song_licensed(song: Song, jurisdiction: str) -> None:
    """Refuse a song that is not licensed where the creator is, with a message they can act on."""
    if not is_licensed_in(song, jurisdiction):
        raise Forbidden(
            f"“{song.title}” is not licensed in {country_name(jurisdiction.upper())}. "
            "Please pick another sound.",
            code="song_not_licensed",
        )


def viewer_jurisdiction(platform: Platform, viewer: CurrentUser | None) -> str | None:
    """The signed-in viewer's jurisdiction, read in their own region (it never leaves it)."""
    if viewer is None:
        return None
    with platform.region(viewer.region).session() as s:
        account = s.get(Account, viewer.user_id)
        return account.jurisdiction if account is not None else None


class Playable(Protocol):
    """A public video as the API shows it (`PublicVideoRead`): what licensing fills in."""

    id: str
    sound_id: str | None
    sound: VideoSound | None
    muted_notice: str | None


def muted_notice(song: Song, jurisdiction: str | None) -> str:
    if jurisdiction is None:
        return (
            f"“{song.title}” is licensed only in some countries, so this video plays without "
            "sound. Sign in to hear it where it is licensed."
        )
    return (
        f"“{song.title}” isn't licensed in {country_name(jurisdiction.upper())}, so this video "
        "plays without sound."
    )


def annotate_sounds(
    platform: Platform, viewer: CurrentUser | None, videos: Sequence[Playable]
) -> None:
    """Fill in each video's `sound` (its library song, or the original sound made from it) and,
    where the song is not licensed for this viewer, `muted_notice`: the player mutes those.

    Two reads of the catalog for any number of videos, and one of the viewer's own region only
    when some song is licensed regionally. A viewer who is not signed in hears only songs
    licensed worldwide (their jurisdiction is unknown).
    """
    ids = {v.sound_id for v in videos if v.sound_id}
    originals = [v.id for v in videos if not v.sound_id]
    if not ids and not originals:
        return
    with platform.global_store.session() as g:
        songs = {s.id: s for s in g.scalars(select(Song).where(Song.id.in_(ids)))} if ids else {}
        made_from = (
            {
                s.original_of_video: s
                for s in g.scalars(select(Song).where(Song.original_of_video.in_(originals)))
            }
            if originals
            else {}
        )
    regional = any(s.territories != WORLDWIDE for s in songs.values())
    jurisdiction = viewer_jurisdiction(platform, viewer) if regional else None
    for video in videos:
        song = songs.get(video.sound_id) if video.sound_id else made_from.get(video.id)
        if song is None:
            video.sound, video.muted_notice = None, None
            continue
        licensed = song.territories == WORLDWIDE or (
            jurisdiction is not None and is_licensed_in(song, jurisdiction)
        )
        video.sound = VideoSound(
            id=song.id,
            title=song.title,
            artist=song.artist,
            cover_url=f"/api/v1/sounds/{song.id}/cover" if song.cover else None,
            original=song.original_of_video is not None,
            licensed_here=licensed,
        )
        video.muted_notice = None if licensed else muted_notice(song, jurisdiction)


# --- demo ----------------------------------------------------------------------------------------

_demo_lock = threading.Lock()
_demo_dir: Path | None = None
_demo_prepared: dict[str, PreparedSong] = {}


def _prepared_demo(title: str, artist: str, source: Path) -> PreparedSong:
    """A demo song's files prepared once per process (like its rendering): seeding several data
    folders in one process (tests) measures and cuts each song once."""
    global _demo_dir
    with _demo_lock:
        if _demo_dir is None:
            _demo_dir = Path(tempfile.mkdtemp(prefix="reelm-demo-catalog-"))
            atexit.register(shutil.rmtree, _demo_dir, True)
        prepared = _demo_prepared.get(title)
        if prepared is None or not all(p.is_file() for p in prepared.files.values()):
            folder = _demo_dir / hashlib.sha256(title.encode()).hexdigest()[:16]
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            prepared = prepare_song(source, folder, title=title, artist=artist)
            _demo_prepared[title] = prepared
        return prepared


def do_seed_demo_songs(platform: Platform) -> list[Song]:
    """Generate and import the demo songs the catalog lacks (by title), through the same steps
    as any import; idempotent. Returns every demo song, in the order of `DEMO_SONGS`."""
    from reelm.sounds.synth import DEMO_SONGS, demo_song_files

    titles = [s.title for s in DEMO_SONGS]
    with platform.global_store.session() as g:
        have = set(g.scalars(select(Song.title).where(Song.title.in_(titles))))
    missing = [s for s in DEMO_SONGS if s.title not in have]
    for demo, path in demo_song_files(missing) if missing else []:
        fields = SongCreate.checked(
            title=demo.title,
            artist=demo.artist,
            genre=demo.genre,
            bpm=demo.bpm,
            territories=demo.territories,
        )
        _check_not_in_catalog(platform, fields)
        _add_song(platform, fields, _prepared_demo(demo.title, demo.artist, path))
    do_complete_songs(platform)
    do_replicate_songs(platform)
    with platform.global_store.session() as g:
        by_title = {s.title: s for s in g.scalars(select(Song).where(Song.title.in_(titles)))}
    return [by_title[t] for t in titles if t in by_title]
