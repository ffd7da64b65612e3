"""The per-address login throttle, shared by every web process: failed logins per client address
in a fixed window, on Redis or on a small SQLite file local to the web machines.

Where it lives is a residency decision (docs/deploy.md, "Login throttles"). A client address is
personal data of someone we cannot place yet (the login has not said who they are), so it goes
into no region and never into the global database, which is replicated to every region. What is
stored is an HMAC of the address under the deployment's secret (not the address), and only for
the window: Redis expires the key, the SQLite file deletes rows whose window has ended. The
per-account throttle is the account's own data and lives in its home region (`accounts.service`).
"""

from __future__ import annotations

import hmac
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from reelm.config import Settings

Clock = Callable[[], float]


class AddressThrottle(Protocol):
    """Failures per key (an HMAC of a client address) in a fixed window of `window` seconds."""

    def blocked_for(self, key: str, limit: int) -> int:
        """Seconds until `key` may try again (0: it may now)."""

    def record_failure(self, key: str) -> None: ...

    def close(self) -> None: ...


def address_key(settings: Settings, address: str) -> str:
    """What the throttle stores instead of the address: an HMAC under the deployment's secret."""
    mac = hmac.new(settings.secret_key.encode(), b"login-address|" + address.encode(), "sha256")
    return mac.hexdigest()[:32]


class SqliteAddressThrottle:
    """One SQLite file shared by the web processes of one machine (the embedded default).

    Each failure is one UPSERT, atomic across processes (SQLite's write lock); a window that
    has ended restarts at 1. Rows of ended windows are deleted as failures are recorded."""

    def __init__(self, path: Path, *, window: int, clock: Clock = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.window = window
        self.clock = clock
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS login_failures "
            "(key TEXT PRIMARY KEY, failures INTEGER NOT NULL, ends_at REAL NOT NULL)"
        )

    def blocked_for(self, key: str, limit: int) -> int:
        now = self.clock()
        with self._lock:
            row = self._db.execute(
                "SELECT failures, ends_at FROM login_failures WHERE key = ?", (key,)
            ).fetchone()
        if row is None or row[1] <= now or row[0] < limit:
            return 0
        return max(1, math.ceil(float(row[1]) - now))

    def record_failure(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            self._db.execute(
                "INSERT INTO login_failures (key, failures, ends_at) VALUES (?, 1, ?) "
                "ON CONFLICT (key) DO UPDATE SET "
                "failures = CASE WHEN ends_at <= ? THEN 1 ELSE failures + 1 END, "
                "ends_at = CASE WHEN ends_at <= ? THEN excluded.ends_at ELSE ends_at END",
                (key, now + self.window, now, now),
            )
            self._db.execute("DELETE FROM login_failures WHERE ends_at <= ?", (now,))

    def close(self) -> None:
        self._db.close()


class RedisAddressThrottle:
    """A Redis shared by every web process of every machine: one counter per key that expires
    with its window (`SET NX EX`, then `INCR`, in one transaction)."""

    def __init__(self, url: str, *, window: int) -> None:
        import redis

        self.window = window
        self._redis: Any = redis.Redis.from_url(url)

    def _name(self, key: str) -> str:
        return f"reelm.login.address.{key}"

    def blocked_for(self, key: str, limit: int) -> int:
        pipe = self._redis.pipeline()
        pipe.get(self._name(key))
        pipe.pttl(self._name(key))
        failures, ttl_ms = pipe.execute()
        if failures is None or int(failures) < limit or ttl_ms <= 0:
            return 0
        return max(1, math.ceil(int(ttl_ms) / 1000))

    def record_failure(self, key: str) -> None:
        pipe = self._redis.pipeline()
        pipe.set(self._name(key), 0, ex=self.window, nx=True)
        pipe.incr(self._name(key))
        pipe.execute()

    def close(self) -> None:
        self._redis.close()


def open_address_throttle(settings: Settings) -> AddressThrottle:
    """`login_throttle_url`: `redis://…` for Redis; unset, a SQLite file in the data folder."""
    url = settings.login_throttle_url
    window = settings.login_window_seconds
    if url and url.startswith(("redis://", "rediss://")):
        return RedisAddressThrottle(url, window=window)
    if url and not url.startswith("sqlite:///"):
        raise ValueError(
            f"REELM_LOGIN_THROTTLE_URL={url!r}: use redis://host:6379/0 or sqlite:////path/file.db"
        )
    path = Path(url.removeprefix("sqlite:///")) if url else settings.data_dir / "throttle.db"
    return SqliteAddressThrottle(path, window=window)

