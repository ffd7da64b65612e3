"""Password hashing (argon2id) and session tokens that name their region (login throttles:
`accounts/throttle.py` and the account row)."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from reelm.config import Settings


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def password_hasher(settings: Settings) -> PasswordHasher:
    return _hasher(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


def hash_password(settings: Settings, password: str) -> str:
    return password_hasher(settings).hash(password)


def verify_password(settings: Settings, stored: str, password: str) -> bool:
    try:
        return password_hasher(settings).verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def new_session_token(region: str) -> str:
    """`<region>.<random>`: the region routes the request without any global look-up."""
    return f"{region}.{secrets.token_urlsafe(32)}"


def token_region(token: str) -> str | None:
    region, sep, rest = token.partition(".")
    return region if sep and rest and region else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
