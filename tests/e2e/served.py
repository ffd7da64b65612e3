"""`reelm serve` and `reelm worker` as real processes on a fresh data folder, for the browser
tests that must see what a deployment does (jobs on the region queues, run by other processes),
not the suite's in-process jobs (`jobs_immediate`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CHEAP = {
    "REELM_ARGON2_TIME_COST": "1",
    "REELM_ARGON2_MEMORY_KIB": "64",
    "REELM_ARGON2_PARALLELISM": "1",
    "REELM_SECRET_KEY": "e2e-served-secret",
    "PYTHONUNBUFFERED": "1",
}


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class Served:
    """A data folder with `reelm serve --no-workers` and one `reelm worker` per region."""

    data_dir: Path
    logs: Path
    url: str = ""
    server: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REELM_")}
        return {**env, **CHEAP, "REELM_DATA_DIR": str(self.data_dir), **(extra or {})}

    def _cli(
        self, *args: str, log: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "reelm.cli", *args],
            env=self._env(env),
            stdout=(self.logs / log).open("ab"),
            stderr=subprocess.STDOUT,
        )

    def start_server(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{port}"
        self.server = self._cli("serve", "--no-workers", "--port", str(port), log="serve.log")

        def up() -> bool:
            assert self.server is not None
            assert self.server.poll() is None, self.log("serve.log")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "reelm serve")

    def restart_server(self) -> None:
        """Stop `reelm serve` (SIGTERM, as an operator's restart does) and start it again on the
        same data folder; the workers keep running."""
        assert self.server is not None
        self.server.terminate()
        try:
            self.server.wait(20)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.start_server()

    def start_worker(self, region: str, **env: str) -> subprocess.Popen[bytes]:
        proc = self._cli("worker", "--region", region, log=f"worker-{region}.log", env=env)
        self.workers[region] = proc
        wait_for(
            lambda: proc.poll() is not None or "requeued" in self.log(f"worker-{region}.log"),
            60,
            f"the {region} worker",
        )
        return proc

    def stop_worker(self, region: str) -> None:
        proc = self.workers.pop(region)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # huey's consumer stops cleanly on SIGINT
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # the next worker's "requeued" line is its own
        log = self.logs / f"worker-{region}.log"
        log.rename(log.with_suffix(f".{time.monotonic_ns()}.log"))

    def log(self, name: str) -> str:
        path = self.logs / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for region in list(self.workers):
            self.stop_worker(region)
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                self.server.kill()
