"""The catalog's one table: songs. Global and non-personal (DataClass CATALOG)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, GlobalModel, UTCDateTime, new_id, utcnow

WORLDWIDE = "*"


class Song(GlobalModel):
    """A song anyone may put under a video, in the territories it is licensed for.

    Its file is `catalog/songs/<id>.m4a` in every region's blob store, each copy with this
    `sha256`, so a region's workers never read another region's store. `search_key` is the
    case- and accent-folded "title artist" that search matches substrings of.
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
    # Set for an "original sound": the published video whose audio this is.
    original_of_video: Mapped[str | None] = mapped_column(ID, default=None, index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # How many published videos use it; Create increments it (see do_count_song_use).
    use_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (Index("ix_songs_trending", "use_count", "created_at"),)

    @property
    def territory_list(self) -> list[str]:
        return self.territories.split(",") if self.territories else []

    @property
    def blob_key(self) -> str:
        return song_blob_key(self.id)


def song_blob_key(song_id: str) -> str:
    return f"catalog/songs/{song_id}.m4a"
