"""A real PostgreSQL server for benchmarks, started with `pgserver` (as the test suite does).

One server per `python -m bench` process, in /tmp/reelm-bench-pgdata (override with
REELM_BENCH_PGDATA; kept apart from the test suite's server), stopped when the process exits.
Each benchmark asks for fresh databases and drops them when done.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_server: Any = None


def server() -> Any:
    global _server
    if _server is None:
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver

        pgdata = Path(os.environ.get("REELM_BENCH_PGDATA", "/tmp/reelm-bench-pgdata"))
        _server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return _server


def version() -> str:
    out = server().psql("SHOW server_version;")
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return f"PostgreSQL {lines[2]}" if len(lines) > 2 else "PostgreSQL"


def postmaster_pid() -> int | None:
    pid = server().get_pid()
    return int(pid) if pid is not None else None


def cpu_seconds() -> float | None:
    """CPU seconds used so far by PostgreSQL: the postmaster, its live backends, and the backends
    that already exited (which the postmaster has reaped, so they count in its children times).
    Needs psutil, which pgserver depends on."""
    pid = postmaster_pid()
    if pid is None:
        return None
    try:
        import psutil

        root = psutil.Process(pid)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in root.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                pass
        return total
    except Exception:
        return None


@contextmanager
def databases(
    prefix: str, names: list[str], *, templates: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """Fresh databases `<prefix>_<name>` (empty, or copies of `templates[name]`); yields name →
    URL; drops them afterwards."""
    srv = server()
    full = {n: f"{prefix}_{n}" for n in names}
    for n, db in full.items():
        srv.psql(f"SET client_min_messages = warning;\nDROP DATABASE IF EXISTS {db} WITH (FORCE);")
        template = f" TEMPLATE {templates[n]}" if templates else ""
        srv.psql(f"CREATE DATABASE {db}{template};")
    try:
        yield {n: srv.get_uri(database=db) for n, db in full.items()}
    finally:
        for db in full.values():
            try:
                srv.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")
            except Exception as e:  # a failed drop must not hide the benchmark's own error
                print(f"warning: could not drop database {db}: {e}")


def exists(db: str) -> bool:
    out = server().psql(f"SELECT count(*) FROM pg_database WHERE datname = '{db}';")
    return any(line.strip() == "1" for line in out.splitlines())


def copy_database(source: str, target: str) -> None:
    """`target` as a file-level copy of `source` (which nobody may be connected to)."""
    srv = server()
    srv.psql(f"SET client_min_messages = warning;\nDROP DATABASE IF EXISTS {target} WITH (FORCE);")
    srv.psql(f"CREATE DATABASE {target} TEMPLATE {source};")
