"""songs: full-text search, uses over time, loudness, preview, cover and waveform

Revision ID: g0030
Revises: g0020
Create Date: 2026-11-24 10:00:00

After the songs table (g0006). Full-text search is per dialect: on SQLite an FTS5 table that triggers keep
in step with `songs` (every writer, including plain deletes, keeps it right); on PostgreSQL a GIN
index on `to_tsvector('simple', search_key)`. `search_key` becomes the folded words of
"title artist" separated by single spaces, so both engines see the very same words.
"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelm.db

revision: str = "g0030"
down_revision: str | None = "g0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WORD = re.compile(r"[^\W_]+")


def _search_key(title: str, artist: str) -> str:
    """As `reelm.sounds.models.search_key` was when this revision was written."""
    decomposed = unicodedata.normalize("NFKD", f"{title} {artist}".casefold())
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_WORD.findall(folded))[:600]


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("songs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("loudness_lufs", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("preview_start_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("cover", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("waveform", sa.Text(), nullable=True))
        batch_op.drop_index(batch_op.f("ix_songs_original_of_video"))
        batch_op.create_index(
            batch_op.f("ix_songs_original_of_video"), ["original_of_video"], unique=True
        )

    op.create_table(
        "song_uses",
        sa.Column("video_id", sa.String(length=32), nullable=False),
        sa.Column("song_id", sa.String(length=32), nullable=False),
        sa.Column("used_at", reelm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["song_id"], ["songs.id"], name=op.f("fk_song_uses_song_id_songs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("video_id", name=op.f("pk_song_uses")),
    )
    with op.batch_alter_table("song_uses", schema=None) as batch_op:
        batch_op.create_index("ix_song_uses_recent", ["used_at", "song_id"], unique=False)

    songs = sa.table(
        "songs", sa.column("id"), sa.column("title"), sa.column("artist"), sa.column("search_key")
    )
    for song_id, title, artist in bind.execute(
        sa.select(songs.c.id, songs.c.title, songs.c.artist)
    ):
        bind.execute(
            songs.update()
            .where(songs.c.id == song_id)
            .values(search_key=_search_key(title, artist))
        )

    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE songs_fts USING fts5("
            "song_id UNINDEXED, search_key, tokenize = 'unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER songs_fts_insert AFTER INSERT ON songs BEGIN "
            "INSERT INTO songs_fts (song_id, search_key) VALUES (new.id, new.search_key); END"
        )
        op.execute(
            "CREATE TRIGGER songs_fts_delete AFTER DELETE ON songs BEGIN "
            "DELETE FROM songs_fts WHERE song_id = old.id; END"
        )
        op.execute(
            "CREATE TRIGGER songs_fts_update AFTER UPDATE OF search_key ON songs BEGIN "
            "UPDATE songs_fts SET search_key = new.search_key WHERE song_id = old.id; END"
        )
        op.execute("INSERT INTO songs_fts (song_id, search_key) SELECT id, search_key FROM songs")
    elif bind.dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_songs_search_tsv ON songs "
            "USING gin (to_tsvector('simple'::regconfig, search_key))"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS songs_fts_update")
        op.execute("DROP TRIGGER IF EXISTS songs_fts_delete")
        op.execute("DROP TRIGGER IF EXISTS songs_fts_insert")
        op.execute("DROP TABLE IF EXISTS songs_fts")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_songs_search_tsv")
    with op.batch_alter_table("song_uses", schema=None) as batch_op:
        batch_op.drop_index("ix_song_uses_recent")
    op.drop_table("song_uses")
    with op.batch_alter_table("songs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_songs_original_of_video"))
        batch_op.create_index(
            batch_op.f("ix_songs_original_of_video"), ["original_of_video"], unique=False
        )
        batch_op.drop_column("waveform")
        batch_op.drop_column("cover")
        batch_op.drop_column("preview_start_s")
        batch_op.drop_column("loudness_lufs")
