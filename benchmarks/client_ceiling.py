"""The load generator's own ceiling: how many requests per second the client can make.

Starts a trivial HTTP/1.1 server (asyncio, a canned 200 answer, in its own process) on
a free 127.0.0.1 port, measures it with ``wrk`` when installed (the server's capacity),
then drives it closed loop with the client of ``load.py`` (benchmarks/httpclient.py)
and with ``httpx.AsyncClient``. When the trivial server answers faster than a client
can ask, the client's figure is that client's ceiling on this machine, which bounds
any baseline it measures. Every phase is bounded in time and count.

    python benchmarks/client_ceiling.py [--duration 5] [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx

from httpclient import Connection, build_request

_BODY = b'{"success":true,"message":"alive","data":{"status":"ok"}}'
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)
_MAX_REQUESTS = 2_000_000


class _Canned(asyncio.Protocol):
    """Answers every request (up to its blank line) with the same response."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        count = self._buffer.count(b"\r\n\r\n")
        if count and self._transport is not None:
            self._buffer = self._buffer[self._buffer.rindex(b"\r\n\r\n") + 4 :]
            self._transport.write(_RESPONSE * count)


async def _serve(port: int, lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Canned, "127.0.0.1", port, backlog=1024)
    async with server:
        await asyncio.sleep(lifetime)  # bounded: the server stops by itself


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _closed_loop(
    connections: int, duration: float, one: Callable[[int], Awaitable[bool]]
) -> tuple[float, int, float]:
    """Run ``one(worker)`` back to back in ``connections`` workers; (req/s, errors, CPU)."""
    done = errors = 0
    deadline = time.perf_counter() + duration

    async def worker(index: int) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline and done + errors < _MAX_REQUESTS:
            if await one(index):
                done += 1
            else:
                errors += 1

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    wall = time.perf_counter() - start
    return done / wall, errors, (time.process_time() - cpu) / wall


async def _raw_client(port: int, connections: int, duration: float) -> tuple[float, int, float]:
    pool = [Connection("127.0.0.1", port) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in pool))
    raw = build_request("GET", "/health/live", f"127.0.0.1:{port}")

    async def one(index: int) -> bool:
        try:
            reply = await pool[index].request(raw, 10.0)
        except (OSError, TimeoutError):
            return False
        return reply.status == 200

    try:
        return await _closed_loop(connections, duration, one)
    finally:
        for connection in pool:
            connection.close()


async def _httpx_client(port: int, connections: int, duration: float) -> tuple[float, int, float]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:

        async def one(_: int) -> bool:
            try:
                response = await client.get("/health/live", timeout=10.0)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        return await _closed_loop(connections, duration, one)


def _wrk(port: int, connections: int, duration: float) -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        return "wrk not installed"
    seconds = max(1, round(duration))
    completed = subprocess.run(  # noqa: S603 - our own argv
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/health/live"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", completed.stdout)
    return f"{float(match.group(1)):.0f} req/s" if match else completed.stdout[-300:]


async def _measure(args: argparse.Namespace) -> None:
    port = _free_port()
    lifetime = 4 * args.duration + 60
    server = subprocess.Popen(  # noqa: S603, ASYNC220 - our own argv; returns at once
        [sys.executable, __file__, "--serve", str(port), "--lifetime", str(lifetime)]
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            await asyncio.sleep(0.05)
        print(f"trivial asyncio server on port {port}; {args.connections} connections each")
        wrk = await asyncio.to_thread(_wrk, port, args.connections, args.duration)
        print(f"  wrk -t1 (the server's capacity):  {wrk}")
        for name, client in (("load.py client", _raw_client), ("httpx.AsyncClient", _httpx_client)):
            rate, errors, cpu = await client(port, args.connections, args.duration)
            print(f"  {name:32} {rate:8.0f} req/s, {errors} errors, client CPU {cpu:.0%}")
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 60 or not 1 <= args.connections <= 1000:
        parser.error("--duration must be in (0, 60] and --connections in [1, 1000]")
    if args.serve:
        asyncio.run(_serve(args.serve, args.lifetime))
    else:
        asyncio.run(_measure(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
