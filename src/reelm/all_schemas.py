"""Imports every domain's PUBLIC schemas, so Egress knows them all in any process (the outbox's
dispatcher reads records back by schema name, in workers and CLI commands too)."""

from reelm.accounts import schemas as accounts_schemas
from reelm.media import schemas as media_schemas
from reelm.moderation import schemas as moderation_schemas
from reelm.social import schemas as social_schemas
from reelm.sounds import schemas as sounds_schemas

__all__ = [
    "accounts_schemas",
    "media_schemas",
    "moderation_schemas",
    "social_schemas",
    "sounds_schemas",
]
