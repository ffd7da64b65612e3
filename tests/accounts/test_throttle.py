"""The per-address login throttle holds across processes, on its SQLite file and on a real Redis,
and stores no address: only a keyed hash, and only for its window."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from reelm.accounts.throttle import (
    AddressThrottle,
    RedisAddressThrottle,
    SqliteAddressThrottle,
    address_key,
    open_address_throttle,
)
from reelm.config import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _fail_from_another_process(path: str, key: str, times: int) -> None:
    throttle = SqliteAddressThrottle(Path(path), window=300)
    for _ in range(times):
        throttle.record_failure(key)
    throttle.close()


def test_failures_recorded_by_several_processes_add_up(tmp_path: Path) -> None:
    path = tmp_path / "throttle.db"
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_fail_from_another_process, args=(str(path), "k", 5)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    throttle = SqliteAddressThrottle(path, window=300)
    assert throttle.blocked_for("k", 11) == 0
    assert throttle.blocked_for("k", 10) > 0  # ten failures, five from each process
    throttle.close()


def test_a_window_that_ended_starts_again_and_its_row_is_deleted(tmp_path: Path) -> None:
    clock = Clock()
    throttle = SqliteAddressThrottle(tmp_path / "t.db", window=60, clock=clock)
    for _ in range(3):
        throttle.record_failure("a")
    assert throttle.blocked_for("a", 3) == 60
    clock.now += 59.5
    assert throttle.blocked_for("a", 3) == 1
    clock.now += 1
    assert throttle.blocked_for("a", 3) == 0
    throttle.record_failure("b")  # recording prunes the ended window of "a"
    rows = sqlite3.connect(tmp_path / "t.db").execute("SELECT key FROM login_failures").fetchall()
    assert rows == [("b",)]
    throttle.record_failure("a")
    assert throttle.blocked_for("a", 2) == 0  # one failure in the new window


def test_on_redis_the_counter_expires_with_its_window(fresh_redis: str) -> None:
    import redis

    throttle = RedisAddressThrottle(fresh_redis, window=300)
    other = RedisAddressThrottle(fresh_redis, window=300)  # another web process
    throttle.record_failure("k")
    other.record_failure("k")
    assert throttle.blocked_for("k", 3) == 0
    other.record_failure("k")
    assert 299 <= throttle.blocked_for("k", 3) <= 300
    with redis.Redis.from_url(fresh_redis) as client:
        (name,) = client.keys("reelm.login.*")
        assert 0 < client.ttl(name) <= 300
    throttle.close()
    other.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_address_itself_is_never_stored(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("fresh_redis") if kind == "redis" else None
    settings = Settings(data_dir=tmp_path, login_throttle_url=url, secret_key="s" * 40)
    throttle: AddressThrottle = open_address_throttle(settings)
    key = address_key(settings, "203.0.113.7")
    throttle.record_failure(key)
    assert "203.0.113" not in key
    assert key != address_key(settings.model_copy(update={"secret_key": "t" * 40}), "203.0.113.7")
    if kind == "sqlite":
        files = list(tmp_path.glob("throttle.db*"))  # the database and its write-ahead log
        assert files
        assert all(b"203.0.113" not in f.read_bytes() for f in files)
    else:
        import redis

        with redis.Redis.from_url(url or "") as client:
            assert [k.decode() for k in client.keys("*")] == [f"reelm.login.address.{key}"]
    throttle.close()


def test_an_unknown_throttle_url_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="REELM_LOGIN_THROTTLE_URL"):
        open_address_throttle(Settings(data_dir=tmp_path, login_throttle_url="memcached://x"))
