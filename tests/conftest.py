"""Shared fixtures: real databases (SQLite files, or a real PostgreSQL server started here),
migrated by Alembic once per run, emptied after every test.

REELM_TEST_DB=sqlite (default) or postgresql selects the backend; `make test` runs both.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

import reelm.all_models  # noqa: F401
from reelm import migrations
from reelm.config import Settings
from reelm.db import GlobalModel, RegionModel, RegionSystemModel
from reelm.residency.policy import BUILTIN_POLICIES, load_policy
from reelm.residency.service import do_activate_policy
from reelm.residency.store import Platform, make_engine
from reelm.web.app import create_app

BACKEND = os.environ.get("REELM_TEST_DB", "sqlite")
REGIONS = ("us", "sg")


def pytest_report_header() -> str:
    return f"reelm database backend: {BACKEND}"


@dataclass(frozen=True)
class Urls:
    global_url: str
    regions: dict[str, str]


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Urls]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if BACKEND == "sqlite":
        root = tmp_path_factory.mktemp("db")
        yield Urls(
            global_url=f"sqlite:///{root / 'global.db'}",
            regions={r: f"sqlite:///{root / f'{r}.db'}" for r in REGIONS},
        )
        return
    if BACKEND != "postgresql":
        raise pytest.UsageError(f"REELM_TEST_DB must be sqlite or postgresql, not {BACKEND!r}")
    import pgserver

    pgdata = Path(os.environ.get("REELM_TEST_PGDATA", "/tmp/reelm-test-pgdata"))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    names = {"global": f"reelm_{worker}_global", **{r: f"reelm_{worker}_{r}" for r in REGIONS}}
    for name in names.values():
        server.psql(f"DROP DATABASE IF EXISTS {name};")
        server.psql(f"CREATE DATABASE {name};")
    yield Urls(
        global_url=server.get_uri(names["global"]),
        regions={r: server.get_uri(names[r]) for r in REGIONS},
    )


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server (Debian's `redis-server`, installed by `make redis`) on a loopback
    port, started for this run and stopped after it; nothing is saved to disk."""
    import subprocess

    binary = shutil.which("redis-server")
    if binary is None:
        raise pytest.UsageError("redis-server is missing: run `make redis` (make test does)")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--daemonize", "no", "--loglevel", "warning"],
        stdout=(folder / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None, (folder / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def fresh_redis(redis_url: str) -> str:
    """The run's Redis, emptied for this test (its queues are named after regions)."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    return redis_url


@pytest.fixture(scope="session")
def migrated(database_urls: Urls) -> Urls:
    migrations.upgrade(make_engine(database_urls.global_url), "global")
    for url in database_urls.regions.values():
        migrations.upgrade(make_engine(url), "region")
    return database_urls


def empty_all(platform: Platform) -> None:
    for store in platform.regions.values():
        with store.unchecked_connection(reason="test: write below the hooks") as conn, conn.begin():
            for table in reversed(
                RegionModel.metadata.sorted_tables + RegionSystemModel.metadata.sorted_tables
            ):
                conn.execute(table.delete())
        root = getattr(store.blobs, "root", None)
        if isinstance(root, Path) and root.exists():
            shutil.rmtree(root)
            root.mkdir(parents=True)
    with platform.global_store.engine.begin() as conn:
        for table in reversed(GlobalModel.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a cheap argon2 cost so tests create many users quickly."""
    return Settings(
        data_dir=tmp_path / "data",
        argon2_time_cost=1,
        argon2_memory_kib=64,
        argon2_parallelism=1,
        jobs_immediate=True,
    )


@pytest.fixture
def platform(migrated: Urls, settings: Settings) -> Iterator[Platform]:
    policy = load_policy(BUILTIN_POLICIES / "demo.toml", data_dir=settings.data_dir)
    p = Platform(
        policy=policy,
        global_url=migrated.global_url,
        keys_dir=settings.data_dir / "keys",
        region_urls=migrated.regions,
    )
    do_activate_policy(p, policy)
    try:
        yield p
    finally:
        empty_all(p)
        p.close()


@pytest.fixture
def client(platform: Platform, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, platform=platform)) as c:
        yield c


@pytest.fixture
def live_url(platform: Platform, settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, platform=platform), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
