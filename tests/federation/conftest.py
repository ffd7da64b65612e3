"""Federation fixtures: reelm served on 127.0.0.1 with federation on, and the Fedify peer (a
Node program built on the npm package @fedify/fedify) on localhost, each on its own port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from reelm.config import Settings
from reelm.federation import service as fed_service
from reelm.federation.models import InstanceState
from reelm.residency.store import Platform
from reelm.web.app import create_app

PEER_DIR = Path(__file__).parent / "fedify_peer"


def free_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Live:
    url: str
    settings: Settings
    platform: Platform
    fed: fed_service.Federation


@pytest.fixture
def reelm_live(platform: Platform, settings: Settings) -> Iterator[Live]:
    """This deployment, federating as http://127.0.0.1:PORT (loopback http: the test-only
    setting), in allow-list mode."""
    sock = free_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fed_settings = settings.model_copy(
        update={"federation_base_url": url, "federation_loopback_http_for_tests": True,
                "federation_retry_seconds": 0.2, "federation_max_tries": 3}
    )  # fmt: skip
    app = create_app(fed_settings, platform=platform)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    fed = fed_service.federation_of(platform)
    assert fed is not None
    try:
        yield Live(url, fed_settings, platform, fed)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        fed_service.disable(platform)


@dataclass
class Peer:
    origin: str
    domain: str
    actor: str

    def control(self, what: str, **body: str) -> object:
        r = httpx.post(f"{self.origin}/control/{what}", json=body, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def received(self) -> list[dict[str, object]]:
        r = httpx.get(f"{self.origin}/control/received", timeout=10)
        assert r.status_code == 200, r.text
        out: list[dict[str, object]] = r.json()
        return out


@pytest.fixture(scope="module")
def fedify_peer() -> Iterator[Peer]:
    """The Fedify peer (installed by `make test` into tests/federation/fedify_peer)."""
    node = shutil.which("node")
    assert node, "Node.js is needed for the Fedify interop peer (make test installs it)"
    assert (PEER_DIR / "node_modules" / "@fedify" / "fedify").exists(), (
        "run `make fedify-peer` (part of `make test`) to install the Fedify peer"
    )
    sock = free_port()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [node, "peer.mjs", str(port)], cwd=PEER_DIR, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY"), line
    origin = line.split()[1]
    try:
        yield Peer(origin, f"localhost:{port}", f"{origin}/users/fedi")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def allow(platform: Platform, domain: str) -> None:
    fed_service.do_set_instance(platform, domain, InstanceState.ALLOWED)
