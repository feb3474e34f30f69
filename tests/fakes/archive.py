"""A fake archive service: ``GET /archive/results/{id}`` over real HTTP/1.1 on 127.0.0.1.

It answers as the archive does (``{"success": true, "data": {...}}``), checks the
internal-service headers, and can be switched down and up::

    async with FakeArchive(service_key="k") as archive:
        archive.add(archive_v2)                      # the ``data`` of a result
        client = ArchiveClient(client=http, base_url=archive.base_url, service_key="k")
        archive.down("503")                          # or "refuse": connections refused
        archive.up()
        assert archive.request_count == 2

Which result an id gets, in this order:

1. one added with :meth:`FakeArchive.add` (or given as ``results``);
2. with ``synthesize`` (on in process mode), an id of the form ``<user-uuid>.<anything>``
   gets the v2 fixture's result with that ``id`` and ``user_id`` = the UUID before the
   first dot, so a benchmark can publish events for any number of distinct results of
   users it knows without telling the fake anything: result ``f"{user_id}.{n}"``;
3. with ``default_user``, any other id gets the v2 fixture for that user;
4. else 404 ``{"success": false, "error": {"code": "NOT_FOUND"}}``.

Wrong or missing ``X-Internal-Service: true`` / ``X-Service-Key`` (when a key is set):
401 ``UNAUTHORIZED``. :meth:`FakeArchive.down` with ``"503"`` answers 503 to everything,
with ``"refuse"`` closes the listening socket and every open connection (the next
connection is refused), with ``"hang"`` accepts requests and never answers (until up).
``delay`` seconds pass before each answer.

Run as a process (for benchmarks) it prints ``READY <base_url>`` once listening and
serves until SIGINT/SIGTERM, synthesizing results as in 2.::

    python -m tests.fakes.archive --port 0 [--service-key K] [--default-user UUID]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import http
import json
import signal
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from uuid import UUID

from tests.conftest import load_fixture

__all__ = ["PREFIX", "ArchiveRequest", "FakeArchive", "main", "synthetic_result_id"]

PREFIX: Final = "/archive/results/"
_MAX_HEAD: Final = 64 * 1024

DownMode = Literal["503", "refuse", "hang"]


def synthetic_result_id(user_id: UUID | str, n: int | str) -> str:
    """The id of a result the fake synthesizes for ``user_id`` (see the module doc)."""
    return f"{user_id}.{n}"


@dataclass(frozen=True, slots=True)
class ArchiveRequest:
    """One request as received."""

    method: str
    path: str
    result_id: str | None
    headers: Mapping[str, str]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}}


class FakeArchive:
    """The archive's results endpoint on 127.0.0.1 (see the module doc).

    Args:
        host: the address to listen on.
        port: the port, 0 for any free one (kept across :meth:`down`/:meth:`up`).
        service_key: the key ``X-Service-Key`` must carry; None accepts any request.
        results: results (``data`` objects) by id.
        synthesize: answer ``<user-uuid>.<n>`` ids with the v2 fixture.
        default_user: answer any unknown id with the v2 fixture for this user.
        delay: seconds before each answer.
        record: keep :attr:`requests` (off for benchmarks).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        service_key: str | None = None,
        results: Mapping[str, Mapping[str, Any]] | None = None,
        synthesize: bool = False,
        default_user: UUID | None = None,
        delay: float = 0.0,
        record: bool = True,
    ) -> None:
        self._host = host
        self._port = port
        self.service_key = service_key
        self.results: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (results or {}).items()}
        self.synthesize = synthesize
        self.default_user = default_user
        self.delay = delay
        self.record = record
        self.mode: DownMode | None = None
        self.requests: list[ArchiveRequest] = []
        self.request_count = 0
        """Requests answered or refused so far (not counting refused connections)."""
        self._template: dict[str, Any] | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._released = asyncio.Event()

    # lifecycle

    async def start(self) -> None:
        """Start listening (idempotent)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self._host, self._port)
            self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        self._released.set()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def __aenter__(self) -> FakeArchive:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The port (known once started; the same after a restart)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the client's ``ARCHIVE_SERVICE_URL``."""
        return f"http://{self._host}:{self._port}"

    # behaviour

    def add(self, data: Mapping[str, Any]) -> None:
        """Serve ``data`` (a result's ``data`` object, with its ``id``)."""
        self.results[str(data["id"])] = dict(data)

    async def down(self, mode: DownMode = "503") -> None:
        """Fail from now on: 503 answers, refused connections, or hung requests."""
        self.mode = mode
        self._released.clear()
        if mode == "refuse":
            await self.close()

    async def up(self) -> None:
        """Answer normally again (listening again on the same port after ``refuse``)."""
        self.mode = None
        self._released.set()
        await self.start()

    def template(self) -> dict[str, Any]:
        """The v2 fixture's ``data`` (what synthesized results are made of)."""
        if self._template is None:
            self._template = load_fixture("archive_result_v2.json")["data"]
        return copy.deepcopy(self._template)

    def _lookup(self, result_id: str) -> dict[str, Any] | None:
        if result_id in self.results:
            return self.results[result_id]
        user: UUID | None = None
        if self.synthesize and "." in result_id:
            with contextlib.suppress(ValueError):
                user = UUID(result_id.split(".", 1)[0])
        user = user or self.default_user
        if user is None:
            return None
        data = self.template()
        data["id"] = result_id
        data["user_id"] = str(user)
        return data

    # HTTP/1.1 (GET only; keep-alive)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    break
                keep_alive = await self._respond(reader, writer, head)
                if not keep_alive:
                    break
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        method, target, *_ = [*lines[0].split(" "), "", ""]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if length:
            await reader.readexactly(length)
        keep_alive = headers.get("connection", "").lower() != "close"
        path = target.split("?", 1)[0]
        result_id = urllib.parse.unquote(path[len(PREFIX) :]) if path.startswith(PREFIX) else None
        self.request_count += 1
        if self.record:
            self.requests.append(ArchiveRequest(method, path, result_id, headers))
        if self.mode == "hang":
            await self._released.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        status, payload = self._answer(method, path, result_id, headers)
        body = json.dumps(payload, separators=(",", ":")).encode()
        reason = http.HTTPStatus(status).phrase
        head_out = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("" if keep_alive else "Connection: close\r\n")
            + "\r\n"
        )
        writer.write(head_out.encode("latin-1") + body)
        await writer.drain()
        return keep_alive

    def _answer(
        self, method: str, path: str, result_id: str | None, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if self.mode == "503":
            return 503, _error("SERVICE_UNAVAILABLE", "archive is down (fake)")
        if path == "/health":
            return 200, {"success": True, "status": "healthy"}
        if result_id is None or not result_id:
            return 404, _error("NOT_FOUND", "route not found")
        if method != "GET":
            return 405, _error("METHOD_NOT_ALLOWED", "only GET")
        if self.service_key is not None and (
            headers.get("x-internal-service") != "true"
            or headers.get("x-service-key") != self.service_key
        ):
            return 401, _error("UNAUTHORIZED", "invalid service key")
        data = self._lookup(result_id)
        if data is None:
            return 404, _error("NOT_FOUND", "Analysis result not found")
        return 200, {"success": True, "message": "Result retrieved", "data": data}


# Process mode -----------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeArchive(
        host=args.host,
        port=args.port,
        service_key=args.service_key,
        synthesize=True,
        default_user=args.default_user,
        delay=args.delay,
        record=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with fake:
        print(f"READY {fake.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fake archive until SIGINT/SIGTERM; print ``READY <base_url>`` first."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.archive",
        description="A fake archive service on 127.0.0.1: any result id of the form "
        "<user-uuid>.<n> is answered with the v2 fixture for that user.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port, 0 for any (default 0)")
    parser.add_argument("--service-key", default=None, help="require this X-Service-Key")
    parser.add_argument(
        "--default-user", type=UUID, default=None, help="answer any other id for this user"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
