"""The song catalog: import (probe, transcode, copy to every region), search, trending, licensing.

Songs are CATALOG data: non-personal and global. The row lives in the global database; the file
is copied into every region's blob store under `catalog/songs/<id>.m4a`, so a region's
transcoding workers read songs from their own region and never across regions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path

import av
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from reelm.db import new_id
from reelm.errors import Conflict, Forbidden, InvalidInput, NotFound
from reelm.residency.jurisdictions import country_name
from reelm.residency.store import Platform, RegionStore
from reelm.sounds.models import WORLDWIDE, Song, song_blob_key
from reelm.sounds.schemas import SongCreate, SongPage, SongRead

logger = logging.getLogger(__name__)

MIN_SONG_S = 5.0
MAX_SONG_S = 600.0
MAX_SONG_BYTES = 200 * 1024 * 1024
SONG_BITRATE = 128_000
MAX_PAGE = 100
# Demuxers a song may come in: MP4/M4A/MOV, Matroska/WebM, MP3, FLAC, WAV, Ogg. None of them
# follows references to other files or URLs; the `file` protocol is the only one allowed.
_AUDIO_FORMATS = "mov,matroska,mp3,flac,wav,ogg"
_ACCEPTED = "Please use an MP3, AAC (.m4a), FLAC, WAV or Ogg file."
_OPEN_TIMEOUT_S = 10.0
_LIKE_ESCAPE = "!"


@dataclass(frozen=True)
class SongProbe:
    """What an audio file is; `reusable` when it is already AAC in MP4 and can be copied as is."""

    duration_s: float
    codec: str
    channels: int
    sample_rate: int
    bit_rate: int | None
    reusable: bool


def fold(text: str) -> str:
    """Case- and accent-insensitive form for search: "Beyoncé" and "BEYONCE" both → "beyonce"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _search_key(title: str, artist: str) -> str:
    return fold(f"{title} {artist}")[:600]


# --- probing and transcoding ------------------------------------------------------------------


def _checked_size(path: Path) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InvalidInput(f"No such file: {path}", code="missing_file") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"{path} is not a regular file. {_ACCEPTED}", code="not_audio")
    if st.st_size == 0:
        raise InvalidInput(f"{path} is empty. {_ACCEPTED}", code="empty_file")
    if st.st_size > MAX_SONG_BYTES:
        raise InvalidInput(
            f"{path} is {st.st_size / 1e6:.0f} MB; a song may be at most "
            f"{MAX_SONG_BYTES / 1e6:.0f} MB.",
            code="too_large",
        )
    return st.st_size


def _open_audio(path: Path) -> InputContainer:
    """Open a local audio file with only the audio demuxers and the `file` protocol."""
    _checked_size(path)
    try:
        return av.open(
            "file:" + str(path.resolve()),
            "r",
            container_options={
                "protocol_whitelist": "file",
                "format_whitelist": _AUDIO_FORMATS,
                "enable_drefs": "0",
                "use_absolute_path": "0",
            },
            timeout=(_OPEN_TIMEOUT_S, _OPEN_TIMEOUT_S),
        )
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as exc:
        raise InvalidInput(
            f"{path.name} is not an audio file we can read. {_ACCEPTED}", code="not_audio"
        ) from exc


def _audio_stream(container: InputContainer, name: str) -> AudioStream:
    stream = next((s for s in container.streams.audio if s.codec_context is not None), None)
    if stream is None:
        raise InvalidInput(
            f"{name} has no sound in it: a song needs an audio stream. {_ACCEPTED}",
            code="no_audio_stream",
        )
    return stream


def _duration(container: InputContainer, stream: AudioStream) -> float:
    """The declared duration, else the end of the last packet (bounded by the limit)."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        if end > MAX_SONG_S:
            break
    container.seek(0)
    return end


def probe_song(path: Path) -> SongProbe:
    """Describe an audio file, or refuse it with a message saying what is wrong.

    Decodes the first frame, so a file with a plausible header and broken audio is refused
    here and not halfway through a transcode.
    """
    container = _open_audio(path)
    try:
        stream = _audio_stream(container, path.name)
        duration = _duration(container, stream)
        if duration < MIN_SONG_S:
            raise InvalidInput(
                f"{path.name} is {duration:.1f} seconds long; a song must be at least "
                f"{MIN_SONG_S:g} seconds.",
                code="too_short",
            )
        if duration > MAX_SONG_S:
            raise InvalidInput(
                f"{path.name} is {duration:.0f} seconds long; a song may be at most "
                f"{MAX_SONG_S:g} seconds ({MAX_SONG_S / 60:g} minutes).",
                code="too_long",
            )
        ctx = stream.codec_context
        if next(_decoded(container, stream), None) is None:
            raise InvalidInput(f"{path.name}: no sound could be decoded.", code="corrupt_audio")
        codec = stream.codec.name
        channels = ctx.channels
        bit_rate = stream.bit_rate or None
        fmt = container.format.name.split(",")
        reusable = (
            codec == "aac"
            and "mp4" in fmt
            and channels in (1, 2)
            and ctx.sample_rate in (44_100, 48_000)
            and (bit_rate is None or bit_rate <= 192_000)
            and ctx.profile in (None, "LC")
        )
        return SongProbe(
            duration_s=duration,
            codec=codec,
            channels=channels,
            sample_rate=ctx.sample_rate,
            bit_rate=bit_rate,
            reusable=reusable,
        )
    except av.FFmpegError as exc:
        raise InvalidInput(
            f"{path.name}: the sound could not be decoded. {_ACCEPTED}", code="corrupt_audio"
        ) from exc
    finally:
        container.close()


def _decoded(container: InputContainer, stream: AudioStream) -> Iterator[AudioFrame]:
    for packet in container.demux(stream):
        for frame in packet.decode():
            if isinstance(frame, AudioFrame):
                yield frame


def _transcode(source: Path, target: Path, probe: SongProbe) -> None:
    """Write `source` as an .m4a of AAC-LC: a stream copy when it already is one, else stereo
    AAC at 128 kbit/s. Only the sound is kept: no cover art, no tags, no other streams."""
    container = _open_audio(source)
    try:
        stream = _audio_stream(container, source.name)
        with av.open(str(target), "w", format="ipod", options={"movflags": "+faststart"}) as out:
            if probe.reusable:
                copy = out.add_stream_from_template(stream)
                for packet in container.demux(stream):
                    if packet.dts is None:
                        continue
                    packet.stream = copy
                    out.mux(packet)
                return
            rate = probe.sample_rate if probe.sample_rate in (44_100, 48_000) else 48_000
            aac = out.add_stream("aac", rate=rate)
            assert isinstance(aac, AudioStream)
            aac.layout = "stereo"
            aac.bit_rate = SONG_BITRATE
            resampler = AudioResampler(format="fltp", layout="stereo", rate=rate)
            time_base = Fraction(1, rate)
            written = 0
            # Timestamps are counted here, in samples: sources' own (an MP3's gapless padding,
            # a WAV's none) would only carry gaps and offsets into the song.
            for frame in chain(_decoded(container, stream), [None]):
                for ready in resampler.resample(frame):
                    ready.pts, ready.time_base = written, time_base
                    written += ready.samples
                    out.mux(aac.encode(ready))
            out.mux(aac.encode(None))
    except av.FFmpegError as exc:
        raise InvalidInput(
            f"{source.name}: the sound could not be decoded. {_ACCEPTED}", code="corrupt_audio"
        ) from exc
    finally:
        container.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_everywhere(platform: Platform, key: str, source: Path, sha256: str) -> None:
    """Put a new catalog file into every region's blob store and check each copy's hash.

    All or nothing: on any failure the key (new, so nothing else is under it) is removed from
    every region.
    """
    try:
        for store in platform.regions.values():
            store.blobs.put_file(key, source)
            copy = store.blobs.local_path(key)
            if copy is not None and _sha256(copy) != sha256:
                raise OSError(f"the copy of {key} in region {store.name} does not match")
    except BaseException:
        for store in platform.regions.values():
            store.blobs.delete(key)
        raise


# --- import -------------------------------------------------------------------------------------


def do_import_song(
    platform: Platform,
    *,
    path: Path,
    title: str,
    artist: str,
    genre: str = "",
    territories: str | Sequence[str] = WORLDWIDE,
    bpm: int | None = None,
) -> Song:
    """Add a song to the catalog: probe, transcode to AAC .m4a, copy to every region, record.

    The order is the invariant: the file is in every region, each copy checked against one
    sha256, before the row that makes the song visible is committed; if that commit fails the
    copies are removed. A crash in between leaves unreferenced files, never a song that some
    region cannot play.
    """
    fields = SongCreate.checked(
        title=title, artist=artist, genre=genre, bpm=bpm, territories=territories
    )
    started = time.monotonic()
    probe = probe_song(path)
    key = _search_key(fields.title, fields.artist)
    with platform.global_store.session() as g:
        same_key = g.execute(
            select(Song.id, Song.title, Song.artist).where(
                Song.search_key == key, Song.original_of_video.is_(None)
            )
        )
        exists = next(
            (
                song_id
                for song_id, t, a in same_key
                if (fold(t), fold(a)) == (fold(fields.title), fold(fields.artist))
            ),
            None,
        )
    if exists is not None:
        raise Conflict(
            f"“{fields.title}” by {fields.artist} is already in the catalog (song {exists}).",
            code="song_exists",
        )
    song = Song(
        id=new_id(),
        title=fields.title,
        artist=fields.artist,
        search_key=key,
        genre=fields.genre,
        bpm=fields.bpm,
        territories=fields.territories,
    )
    with tempfile.TemporaryDirectory(prefix="reelm-song-") as tmp:
        target = Path(tmp) / "song.m4a"
        _transcode(path, target, probe)
        stored = probe_song(target)  # what listeners get: its real length
        song.duration_s = round(stored.duration_s, 3)
        song.sha256 = _sha256(target)
        song.size_bytes = target.stat().st_size
        _copy_everywhere(platform, song.blob_key, target, song.sha256)
    try:
        with platform.global_store.transaction() as g:
            g.add(song)
    except BaseException:
        for store in platform.regions.values():
            store.blobs.delete(song.blob_key)
        raise
    logger.info(
        "imported song %s (%s by %s, %.1f s, %s) into %d regions in %.2f s",
        song.id,
        song.title,
        song.artist,
        song.duration_s,
        "copied" if probe.reusable else "transcoded",
        len(platform.regions),
        time.monotonic() - started,
    )
    return song


def do_replicate_songs(platform: Platform, *, verify: bool = False) -> int:
    """Copy every song's file to each region that lacks it (a region added by a new policy);
    returns the number of copies written. `verify` also re-hashes every copy and replaces those
    that do not match the recorded sha256."""
    with platform.global_store.session() as g:
        songs = list(g.execute(select(Song.id, Song.sha256, Song.size_bytes)))
    written = 0
    for song_id, sha256, size in songs:
        key = song_blob_key(song_id)
        good: Path | None = None
        missing: list[RegionStore] = []
        for store in platform.regions.values():
            path = store.blobs.local_path(key)
            ok = path is not None and path.is_file() and path.stat().st_size == size
            if ok and verify:
                ok = path is not None and _sha256(path) == sha256
            if ok and good is None:
                good = path
            if not ok:
                missing.append(store)
        if not missing:
            continue
        if good is None:
            logger.error("song %s has no intact copy in any region", song_id)
            continue
        for store in missing:
            store.blobs.put_file(key, good)
            written += 1
    return written


def do_count_song_use(session: Session, song_id: str, delta: int = 1) -> None:
    """Add `delta` uses (a video published or deleted with this song) in the caller's global
    transaction; one atomic UPDATE, so concurrent publishers never lose a count."""
    session.execute(
        update(Song)
        .where(Song.id == song_id, Song.use_count + delta >= 0)
        .values(use_count=Song.use_count + delta)
    )


# --- reads --------------------------------------------------------------------------------------


def get_song(platform: Platform, song_id: str) -> Song:
    with platform.global_store.session() as g:
        song = g.get(Song, song_id) if len(song_id) <= 32 else None
    if song is None:
        raise NotFound("No such sound.", code="song_not_found")
    return song


def _encode_cursor(song: Song) -> str:
    raw = json.dumps([song.search_key, song.id], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, song_id = json.loads(raw)
        if isinstance(key, str) and isinstance(song_id, str):
            return key, song_id
    except (binascii.Error, ValueError, TypeError):
        pass
    raise InvalidInput(
        "This page cursor is not valid; start again from the first page.", code="invalid_cursor"
    )


def _like(word: str) -> str:
    escaped = (
        word.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


def search_songs(
    platform: Platform, *, q: str = "", limit: int = 20, cursor: str | None = None
) -> SongPage:
    """Songs whose title or artist contains every word of `q` (case- and accent-insensitive),
    by title then artist; an empty `q` lists the whole catalog. Keyset pagination, so a page is
    as cheap at the end of the catalog as at the start."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(Song)
    for word in fold(q[:200]).split()[:8]:
        query = query.where(Song.search_key.like(_like(word), escape=_LIKE_ESCAPE))
    if cursor:
        key, song_id = _decode_cursor(cursor)
        query = query.where(
            or_(Song.search_key > key, (Song.search_key == key) & (Song.id > song_id))
        )
    query = query.order_by(Song.search_key, Song.id).limit(limit + 1)
    with platform.global_store.session() as g:
        songs = list(g.scalars(query))
    more = len(songs) > limit
    songs = songs[:limit]
    return SongPage(
        items=[SongRead.of(s) for s in songs],
        next_cursor=_encode_cursor(songs[-1]) if more else None,
    )


def trending_songs(platform: Platform, limit: int = 20) -> SongPage:
    """The most used songs, newest first among equals."""
    limit = max(1, min(limit, MAX_PAGE))
    query = (
        select(Song)
        .order_by(Song.use_count.desc(), Song.created_at.desc(), Song.id.desc())
        .limit(limit)
    )
    with platform.global_store.session() as g:
        return SongPage(items=[SongRead.of(s) for s in g.scalars(query)])


def song_path(store: RegionStore, song_id: str) -> Path:
    """The song's file in this region's blob store: what a transcoder in the region reads."""
    path = store.blobs.local_path(song_blob_key(song_id))
    if path is None or not path.is_file():
        raise NotFound(
            f"The sound's file is missing in region {store.name!r}; run `reelm sounds sync`.",
            code="song_file_missing",
        )
    return path


def access_song_audio(platform: Platform, song_id: str) -> tuple[Song, Path]:
    """A song and a copy of its file, from the first region (in policy order) that holds one.

    Any copy will do: they are identical and the file is non-personal.
    """
    song = get_song(platform, song_id)
    for store in platform.regions.values():
        try:
            return song, song_path(store, song_id)
        except NotFound:
            continue
    raise NotFound("The sound's file is missing.", code="song_file_missing")


# --- licensing ----------------------------------------------------------------------------------


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


# --- demo ---------------------------------------------------------------------------------------


def do_seed_demo_songs(platform: Platform) -> list[Song]:
    """Generate and import the demo songs the catalog lacks (by title); idempotent.

    Returns every demo song, in the order of `DEMO_SONGS`.
    """
    from reelm.sounds.synth import DEMO_SONGS, demo_song_files

    titles = [s.title for s in DEMO_SONGS]
    with platform.global_store.session() as g:
        have = set(g.scalars(select(Song.title).where(Song.title.in_(titles))))
    missing = [s for s in DEMO_SONGS if s.title not in have]
    for demo, path in demo_song_files(missing) if missing else []:
        do_import_song(
            platform,
            path=path,
            title=demo.title,
            artist=demo.artist,
            genre=demo.genre,
            territories=demo.territories,
            bpm=demo.bpm,
        )
    do_replicate_songs(platform)
    with platform.global_store.session() as g:
        by_title = {s.title: s for s in g.scalars(select(Song).where(Song.title.in_(titles)))}
    return [by_title[t] for t in titles if t in by_title]
