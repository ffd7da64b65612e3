"""Serving reelm in its own process and driving it over HTTP.

`serve(...)` runs `reelm init`, then uvicorn on loopback in a separate process (one worker, the
uvloop/httptools stack uvicorn picks by default, access log off), and stops it afterwards.

`drive(...)` is a small HTTP/1.1 load generator: N keep-alive connections on one asyncio loop
(uvloop when installed), each sending its next request as soon as the previous answer arrived,
for a fixed time. Why not httpx: on the 2-core benchmark machine httpx spent ~0.6 ms of client CPU
per request — more than reelm spends serving the bare endpoint — so the load generator, not
reelm, set the ceiling (~1,000 req/s with 16 threads, the server not even at one core). This
client spends ~0.05 ms per request.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import percentile, proc_cpu_seconds, reelm_command, reelm_env

HOST = "127.0.0.1"


# ---- the server ----------------------------------------------------------------------------


@dataclass
class Server:
    host: str
    port: int
    pid: int
    log: Path
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_ready(server: Server, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"reelm exited with status {proc.returncode} on start:\n{server.log.read_text()[-3000:]}"
            )
        try:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"reelm did not answer /healthz within {timeout:.0f} s")


@contextmanager
def serve(python: str, data_dir: Path, settings: dict[str, str]) -> Iterator[Server]:
    """`reelm init` then uvicorn with the app factory, both with REELM_DATA_DIR=data_dir and the
    given REELM_* settings (and no other REELM_* variable of the caller's environment)."""
    env = reelm_env(REELM_DATA_DIR=str(data_dir), **settings)
    init = subprocess.run(
        [*reelm_command(), "init"], env=env, capture_output=True, text=True, check=False
    )
    if init.returncode != 0:
        raise RuntimeError(f"reelm init failed:\n{init.stdout}\n{init.stderr}")
    port = _free_port()
    log = data_dir / "uvicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                python, "-m", "uvicorn", "--factory", "reelm.web.app:create_app",
                "--host", HOST, "--port", str(port), "--workers", "1",
                "--no-access-log", "--log-level", "warning",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(HOST, port, proc.pid, log, env)
    try:
        _wait_ready(server, proc)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- the load generator --------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request: method, path, JSON body, the status that counts as success, and a tag that is
    handed back to `on_ok`."""

    method: str
    path: str
    body: Any = None
    expect: int = 200
    tag: Any = None

    def encode(self, host: str) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: reelm-bench\r\n"
        if self.body is None:
            return (head + "\r\n").encode()
        payload = json.dumps(self.body).encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        return head.encode() + payload


@dataclass(frozen=True)
class AuthCall(Call):
    """A request with a session token as its bearer token. With `cookies`, the client keeps the
    cookies the server sets for this token (the session pass) and sends them back, as a browser
    or an app's HTTP client with a cookie jar does."""

    token: str = ""
    cookies: bool = False

    def encode(self, host: str, cookie: str | None = None) -> bytes:
        raw = super().encode(host)
        head, sep, rest = raw.partition(b"\r\n")
        extra = f"Authorization: Bearer {self.token}\r\n"
        if cookie:
            extra += f"Cookie: {cookie}\r\n"
        return head + sep + extra.encode() + rest


@dataclass
class Phase:
    """The result of driving one endpoint."""

    label: str
    ok: int = 0
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float | None = None
    db_cpu: float | None = None
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else float("nan")

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    def per_request(self, cpu: float | None) -> float:
        return cpu / self.ok if cpu is not None and self.ok else float("nan")


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, raw: bytes, jar: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Send one request; the answer's status and body (its cookies into `jar`)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = 0, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
            elif name == b"set-cookie" and jar is not None:
                pair = value.decode("latin-1").split(";", 1)[0].strip()
                key, _, val = pair.partition("=")
                if val:
                    jar[key] = val
                else:
                    jar.pop(key, None)
        if chunked:
            chunks = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers are sent
                    break
                chunks += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
            body = bytes(chunks)
        else:
            body = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, body


OnOk = Callable[[Call, bytes], None]
MakeCall = Callable[[int, int], Call]
"""(client number, that client's request number) → the request to send."""


async def _run(
    host: str, port: int, make_call: MakeCall, clients: int, seconds: float, phase: Phase,
    on_ok: OnOk | None,
) -> None:  # fmt: skip
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        conn = _Connection(host, port)
        jars: dict[str, dict[str, str]] = {}  # token → its cookies
        n = 0
        try:
            while time.perf_counter() < deadline:
                call = make_call(i, n)
                n += 1
                jar = None
                if isinstance(call, AuthCall) and call.cookies:
                    jar = jars.setdefault(call.token, {})
                    raw = call.encode(host, "; ".join(f"{k}={v}" for k, v in jar.items()))
                else:
                    raw = call.encode(host)
                t0 = time.perf_counter()
                try:
                    status, body = await conn.request(raw, jar)
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    phase.errors += 1
                    phase.error_kinds[type(e).__name__] += 1
                    await conn.close()
                    continue
                if status == call.expect:
                    phase.ok += 1
                    phase.latencies.append(time.perf_counter() - t0)
                    if on_ok is not None:
                        on_ok(call, body)
                else:
                    phase.errors += 1
                    try:
                        code = json.loads(body)["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        code = body[:60].decode(errors="replace")
                    phase.error_kinds[f"HTTP {status} {code}"] += 1
        finally:
            await conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))


def _event_loop_runner() -> Callable[..., Any]:
    try:
        import uvloop

        return uvloop.run  # type: ignore[no-any-return]
    except ImportError:
        return asyncio.run


def drive(
    server: Server,
    label: str,
    make_call: MakeCall,
    *,
    clients: int,
    seconds: float,
    on_ok: OnOk | None = None,
    db_cpu: Callable[[], float | None] | None = None,
) -> Phase:
    """Keep `clients` requests in flight for `seconds` (requests started before the end are
    awaited and counted; the phase lasts until the last one answered)."""
    phase = Phase(label)
    server_before = proc_cpu_seconds(server.pid)
    db_before = db_cpu() if db_cpu else None
    client_before = time.process_time()
    t0 = time.perf_counter()
    _event_loop_runner()(_run(server.host, server.port, make_call, clients, seconds, phase, on_ok))
    phase.seconds = time.perf_counter() - t0
    phase.client_cpu = time.process_time() - client_before
    server_after = proc_cpu_seconds(server.pid)
    if server_before is not None and server_after is not None:
        phase.server_cpu = server_after - server_before
    db_after = db_cpu() if db_cpu else None
    if db_before is not None and db_after is not None:
        phase.db_cpu = db_after - db_before
    return phase


def ping(_client: int, _n: int) -> Call:
    return Call("GET", "/api/v1/ping")
