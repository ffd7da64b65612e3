"""Password hashing (argon2id), session tokens that name their region, and login rate limits."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from reelm.config import Settings
from reelm.errors import RateLimited


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


class LoginRateLimiter:
    """Failed logins per handle and per client address, in a sliding window.

    In-process state: one uvicorn process in the embedded default. Several processes behind a
    proxy each keep their own window, which multiplies the allowance by the process count.
    """

    def __init__(
        self,
        *,
        max_per_handle: int,
        max_per_address: int,
        window_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_per_handle = max_per_handle
        self.max_per_address = max_per_address
        self.window = window_seconds
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginRateLimiter:
        return cls(
            max_per_handle=settings.login_max_failures_per_handle,
            max_per_address=settings.login_max_failures_per_address,
            window_seconds=settings.login_window_seconds,
        )

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def check(self, handle_key: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key, limit in (
                (f"h:{handle_key}", self.max_per_handle),
                (f"a:{address}", self.max_per_address),
            ):
                q = self._recent(key, now)
                if len(q) >= limit:
                    retry = max(1, int(q[0] + self.window - now) + 1)
                    raise RateLimited(
                        f"Too many failed logins; try again in {retry} seconds.", retry_after=retry
                    )

    def record_failure(self, handle_key: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            self._recent(f"h:{handle_key}", now).append(now)
            self._recent(f"a:{address}", now).append(now)

    def record_success(self, handle_key: str) -> None:
        with self._lock:
            self._failures.pop(f"h:{handle_key}", None)
