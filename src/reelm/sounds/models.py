"""The catalog's tables: songs and their uses. Global and non-personal (DataClass CATALOG)."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, GlobalModel, UTCDateTime, new_id, utcnow

WORLDWIDE = "*"
_WORD = re.compile(r"[^\W_]+")
# Full-text search over `songs.search_key`, made by migration g0030 per dialect and so outside
# the models: on SQLite an FTS5 table (and the tables FTS5 keeps for it) that triggers keep in
# step with `songs`; on PostgreSQL a GIN index on `to_tsvector('simple', search_key)`. Both see
# the same folded words. `outside_models` tells the schema comparison to leave them alone.
SONGS_FTS = "songs_fts"
SONGS_TSV_INDEX = "ix_songs_search_tsv"
GlobalModel.metadata.info.setdefault("outside_models", set()).update(
    {
        SONGS_FTS,
        *(f"{SONGS_FTS}_{part}" for part in ("data", "idx", "content", "docsize", "config")),
        SONGS_TSV_INDEX,
    }
)


class Song(GlobalModel):
    """A song anyone may put under a video, in the territories it is licensed for.

    Its files are in every region's blob store (`catalog/songs/<id>.m4a`, `.preview.m4a`,
    `.jpg`), each audio copy with this `sha256`, so a region's workers never read another
    region's store. `search_key` is the case- and accent-folded words of "title artist", the
    text both full-text indexes are built on.
    """

    __tablename__ = "songs"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    artist: Mapped[str] = mapped_column(String(200))
    search_key: Mapped[str] = mapped_column(String(600), index=True)
    genre: Mapped[str] = mapped_column(String(40), default="")
    bpm: Mapped[int | None] = mapped_column(Integer, default=None)
    duration_s: Mapped[float] = mapped_column(Float)
    # "*" (worldwide) or comma-separated ISO 3166-1 alpha-2 codes, sorted: "AU,CA,NZ,US".
    territories: Mapped[str] = mapped_column(Text, default=WORLDWIDE)
    # Set for an "original sound": the published video whose audio this is (one sound each).
    original_of_video: Mapped[str | None] = mapped_column(ID, default=None, index=True, unique=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # How many published videos use it, all time; Create moves it (see do_record_song_use).
    use_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Integrated loudness of the stored file (EBU R128, LUFS), as measured on import.
    loudness_lufs: Mapped[float | None] = mapped_column(Float, default=None)
    # Where the 30 s preview starts in the song; None until the preview file exists.
    preview_start_s: Mapped[float | None] = mapped_column(Float, default=None)
    # "embedded" (the file's own art), "generated" (from the title) or "video" (an original
    # sound's poster); None until `catalog/songs/<id>.jpg` exists.
    cover: Mapped[str | None] = mapped_column(String(16), default=None)
    # Peak level of each of WAVEFORM_POINTS equal slices of the song, 0..1, as JSON.
    waveform: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (Index("ix_songs_trending", "use_count", "created_at"),)

    @property
    def territory_list(self) -> list[str]:
        return self.territories.split(",") if self.territories else []

    @property
    def blob_key(self) -> str:
        return song_blob_key(self.id)

    @property
    def peaks(self) -> list[float]:
        return [float(p) for p in json.loads(self.waveform)] if self.waveform else []


class SongUse(GlobalModel):
    """One published video using a song, and when: what "trending" counts over the last days.

    Non-personal: a public video's id and a time, nothing about who watched or made it beyond
    what the PublicCatalog already shows. One row per video (a video has one sound).
    """

    __tablename__ = "song_uses"

    video_id: Mapped[str] = mapped_column(ID, primary_key=True)
    song_id: Mapped[str] = mapped_column(ID, ForeignKey("songs.id", ondelete="CASCADE"))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_song_uses_recent", "used_at", "song_id"),)


def song_blob_key(song_id: str) -> str:
    return f"catalog/songs/{song_id}.m4a"


def preview_blob_key(song_id: str) -> str:
    return f"catalog/songs/{song_id}.preview.m4a"


def cover_blob_key(song_id: str) -> str:
    return f"catalog/songs/{song_id}.jpg"


def song_blob_keys(song_id: str) -> tuple[str, str, str]:
    """Every file a song has, in every region."""
    return song_blob_key(song_id), preview_blob_key(song_id), cover_blob_key(song_id)


def fold(text: str) -> str:
    """Case- and accent-insensitive form for search: "Beyoncé" and "BEYONCE" both → "beyonce"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def search_words(text: str) -> list[str]:
    """The folded words of `text` (runs of letters and digits): what both full-text indexes
    hold and what a query is split into, so SQLite and PostgreSQL see the very same words."""
    return _WORD.findall(fold(text))


def search_key(title: str, artist: str) -> str:
    return " ".join(search_words(f"{title} {artist}"))[:600]
