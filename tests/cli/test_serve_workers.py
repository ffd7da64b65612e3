"""`reelm serve` stops the region workers it started when it is stopped, by SIGTERM (a service
manager, `kill`) as well as by Ctrl-C: an orphaned worker would go on running jobs with the code
it was started with, beside the workers of the next `reelm serve`. With several web processes
(`--workers 2`) there is still one job worker per region, and every process ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="processes, not the database")


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            out.add(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.parametrize("web", [1, 2], ids=lambda n: f"web{n}")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_stopping_serve_stops_the_workers_it_started(
    tmp_path: Path, sig: signal.Signals, web: int
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELM_")}
    serve = subprocess.Popen(
        [sys.executable, "-m", "reelm.cli", "--data-dir", str(tmp_path / "data"), "serve",
         "--port", str(port), "--workers", str(web)],
        env={**env, "REELM_ARGON2_MEMORY_KIB": "64"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120  # a busy machine: several processes import reelm
        while True:
            assert time.monotonic() < deadline, "reelm serve did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        deadline = time.monotonic() + 60
        while True:  # the web processes answer before the last of them is counted
            workers = descendants(serve.pid)
            regions = {w for w in workers if " worker --region " in cmdline(w)}
            webs = {w for w in children(serve.pid) if "spawn_main" in cmdline(w)}
            if len(webs) >= (web if web > 1 else 0):
                break
            assert time.monotonic() < deadline, "the web processes did not start"
            time.sleep(0.2)
        assert len(regions) == 2  # us and sg: one each, however many web processes
        assert len(webs) == (web if web > 1 else 0)  # one web process: this one
        serve.send_signal(sig)
        serve.wait(30)
        deadline = time.monotonic() + 30
        while any(alive(w) for w in workers):
            assert time.monotonic() < deadline, f"workers left running after {sig.name}"
            time.sleep(0.2)
    finally:
        for w in workers | (descendants(serve.pid) if serve.poll() is None else set()):
            if alive(w):
                os.kill(w, signal.SIGKILL)
        if serve.poll() is None:
            serve.kill()
            serve.wait()
