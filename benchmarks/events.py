"""The assessment journey under load: ``analysis.completed`` → ``chatbot_ready`` on the socket.

Starts, for this run only (nothing else on the broker or the database is touched):

* a database of its own on the local PostgreSQL (created, migrated, dropped at the end);
* the fake archive (``python -m tests.fakes.archive --port 0 --service-key K``), which
  answers any result id ``<user-uuid>.<n>`` with the v2 fixture for that user;
* one ``chatcore serve`` (``load.started_service``) and one ``chatcore consume``, both
  with ``RABBITMQ_URL``, the fake archive, ``INTERNAL_SERVICE_KEY``, ``LOG_LEVEL=warning``,
  raised rate limits and exchange/queue names unique to the run.

Then it opens one authenticated ``/ws`` socket per user (``--users``, 100) and, per
phase of ``--rates`` (default ``100,max``), publishes ``--results`` (10) distinct
``analysis.completed`` events per user (1000) on the run's events exchange, as the
analysis worker does (persistent, ``timestamp``, ``messageId``, no ``content_type``,
routing key ``analysis.completed``): at a fixed rate (open loop: latency counts from
the *scheduled* publish, so a lagging publisher or server cannot hide its queue) or
as fast as the broker confirms (``max``). Per event it measures the time from the
publish to the ``chatbot_ready`` frame for that result on the user's socket; per
phase it prints events/s sustained, p50/p95/p99, missing and duplicate frames, and
the CPU each process spent per event. At the end it checks through the API
(``GET /conversations``) that every published result has exactly one conversation,
looks at the dead-letter and retry queues, and deletes the run's exchanges and queues.

Goals: at least 100 events/s sustained (the ``max`` phase), p95 publish-to-ready under
250 ms (at the fixed rate). Every phase is bounded in count and time.

    python benchmarks/events.py [--users 100] [--results 10] [--rates 100,max]

See docs/benchmarks-journey.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aio_pika
from aio_pika import DeliveryMode, ExchangeType, Message

from adapters.rabbitmq import Topology, delete_topology
from entrypoints.auth import issue_token
from httpclient import ConnectionPool, build_request
from load import CpuSample, Service, _fmt, descendants, report_quiet
from sockets import (
    DEFAULT_ADMIN_URL,
    DEFAULT_RABBITMQ_URL,
    ROOT,
    WsClient,
    open_sockets,
    percentile,
    print_table,
    raise_file_limit,
    run_names,
    server_env,
    started_server,
    temporary_database,
)

P95_GOAL_MS: Final = 250.0
THROUGHPUT_GOAL: Final = 100.0  # events per second
ROUTING_KEY: Final = "analysis.completed"
RETRY_DELAYS: Final = (1.0, 5.0, 30.0, 120.0, 600.0)  # the consumer's default
_READY_PREFIX: Final = b'{"event":"chatbot_ready"'
_EVENT_NAME: Final = b'{"event":"'


def _from_tests(name: str) -> Any:
    """``tests.fakes.archive.<name>`` / ``tests.conftest.<name>`` (the repository root is
    not on the benchmarks' path)."""
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    import importlib  # noqa: PLC0415

    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


# ---------------------------------------------------------------------------
# Processes: the fake archive and the consumer


@contextlib.asynccontextmanager
async def fake_archive(service_key: str) -> AsyncIterator[tuple[str, int]]:
    """``python -m tests.fakes.archive`` for the block: its base URL and pid."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.archive",
        "--port",
        "0",
        "--service-key",
        service_key,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"the fake archive did not start: {line!r}")
        yield line.split(" ", 1)[1], process.pid
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _consumer_count(url: str, queue: str) -> int:
    """Consumers of ``queue`` (0 when it does not exist yet)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return 0
        result = declared.declaration_result
        return int(result.consumer_count or 0) if result is not None else 0


@contextlib.asynccontextmanager
async def started_consumer(env: dict[str, str], rabbitmq: str) -> AsyncIterator[int]:
    """``chatcore consume`` for the block, once its queue has a consumer; its pid."""
    data_dir = Path(tempfile.mkdtemp(prefix="chatcore-bench-consumer-"))
    log_path = data_dir / "consumer.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 - our own argv; returns at once
            [sys.executable, "-m", "entrypoints.cli", "consume"],
            env={**env, "CHATCORE_DATA_DIR": str(data_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while await _consumer_count(rabbitmq, env["RABBITMQ_QUEUE"]) < 1:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_bytes()[-3000:].decode(errors="replace")
                raise RuntimeError(f"the consumer did not start; the end of its log:\n{tail}")
            await asyncio.sleep(0.25)
        yield process.pid
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for _ in range(400):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
        lines = [line for line in log_text.splitlines() if line.strip()]
        print(f"\nconsumer log: {len(lines)} lines at LOG_LEVEL {env.get('LOG_LEVEL')}")
        for line in lines[-5:]:
            print(f"  {line[:300]}")
        shutil.rmtree(data_dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# The measurement


@dataclass(slots=True)
class Expected:
    """One published event: whose, and when its clock started."""

    user: uuid.UUID
    started: float = 0.0  # perf_counter: scheduled (rate) or actual (max) publish
    ready: float = 0.0  # perf_counter: the chatbot_ready frame arrived
    frames: int = 0


@dataclass(slots=True)
class PhaseStats:
    mode: str  # "100/s" or "max"
    events: int
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0
    duplicates: int = 0
    publish_errors: Counter[str] = field(default_factory=Counter)
    publish_seconds: float = 0.0  # first publish start to last confirm
    elapsed: float = 0.0  # first publish start to last chatbot_ready
    max_send_lag_ms: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per event, by process
    machine_busy: float = 0.0
    frames: Counter[str] = field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    @property
    def sustained(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def publish_rate(self) -> float:
        return self.events / self.publish_seconds if self.publish_seconds > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


class Journey:
    """The sockets' frames, matched to the events published."""

    def __init__(self) -> None:
        self.expected: dict[str, Expected] = {}
        self.frames: Counter[str] = Counter()
        self.duplicates = 0
        self.unknown = 0
        self.outstanding = 0
        self.done = asyncio.Event()

    def on_frame(self, client: WsClient, payload: bytes, arrived: float) -> None:
        if payload.startswith(_EVENT_NAME):
            end = payload.find(b'"', len(_EVENT_NAME))
            self.frames[payload[len(_EVENT_NAME) : end].decode()] += 1
        if not payload.startswith(_READY_PREFIX):
            return
        result_id = json.loads(payload)["data"]["resultId"]
        expected = self.expected.get(result_id)
        if expected is None:
            self.unknown += 1
            return
        expected.frames += 1
        if expected.frames > 1:
            self.duplicates += 1
            return
        expected.ready = arrived
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.done.set()


def event_body(template: dict[str, Any], user: uuid.UUID, result_id: str) -> tuple[bytes, str]:
    """The worker's body for one result, and its ``messageId``."""
    job = str(uuid.uuid4())
    now = datetime.now(UTC)
    body = {
        **template,
        "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "jobId": job,
        "userId": str(user),
        "userEmail": f"{user.hex[:8]}@example.com",
        "resultId": result_id,
    }
    return json.dumps(body).encode(), f"{job}-{ROUTING_KEY}-{int(now.timestamp() * 1000)}"


async def publish(exchange: Any, body: bytes, message_id: str) -> None:
    message = Message(
        body,
        delivery_mode=DeliveryMode.PERSISTENT,
        timestamp=datetime.now(UTC),
        message_id=message_id,
    )
    await exchange.publish(message, routing_key=ROUTING_KEY, timeout=10)


async def run_phase(
    exchange: Any,
    journey: Journey,
    template: dict[str, Any],
    plan: Sequence[tuple[uuid.UUID, str]],
    *,
    rate: float | None,
    window: int,
    wait: float,
    pids: dict[str, Any],
) -> PhaseStats:
    """Publish one event per ``(user, result id)`` of ``plan`` at ``rate`` per second
    (None: as fast as confirms come, ``window`` unconfirmed at most) and wait up to
    ``wait`` seconds after the last publish for every ``chatbot_ready``."""
    stats = PhaseStats("max" if rate is None else f"{rate:g}/s", len(plan))
    bodies = [event_body(template, user, result_id) for user, result_id in plan]
    journey.done.clear()
    journey.outstanding = len(plan)
    frames_before = journey.frames.copy()
    duplicates_before = journey.duplicates
    for user, result_id in plan:
        journey.expected[result_id] = Expected(user)
    slots = asyncio.Semaphore(window)
    tasks: set[asyncio.Task[None]] = set()
    last_confirm = 0.0

    async def one(result_id: str, body: bytes, message_id: str, started: float) -> None:
        nonlocal last_confirm
        journey.expected[result_id].started = started
        try:
            await publish(exchange, body, message_id)
        except Exception as exc:
            stats.publish_errors[type(exc).__name__] += 1
        finally:
            if rate is None:
                slots.release()
        last_confirm = max(last_confirm, time.perf_counter())

    cpu_before = CpuSample.take()
    begin = time.perf_counter() + 0.05
    for index, ((_, result_id), (body, message_id)) in enumerate(zip(plan, bodies, strict=True)):
        if rate is None:
            await slots.acquire()
            started = time.perf_counter()
        else:
            started = begin + index / rate
            delay = started - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                stats.max_send_lag_ms = max(stats.max_send_lag_ms, -delay * 1000)
        if index == 0:
            begin = started
        task = asyncio.create_task(one(result_id, body, message_id, started))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=15)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(journey.done.wait(), wait)
    wall = time.perf_counter() - begin
    cpu_after = CpuSample.take()
    if "database" in pids:
        pids["postgres backends"] = backends_of(next(iter(pids["database"])))
    stats.publish_seconds = last_confirm - begin
    last_ready = begin
    for _, result_id in plan:
        expected = journey.expected[result_id]
        if expected.ready:
            stats.latencies_ms.append((expected.ready - expected.started) * 1000)
            last_ready = max(last_ready, expected.ready)
        else:
            stats.missing += 1
    stats.elapsed = last_ready - begin
    stats.duplicates = journey.duplicates - duplicates_before
    stats.frames = journey.frames - frames_before
    _account(stats, cpu_before, cpu_after, wall, pids)
    return stats


def backends_of(database: str) -> set[int]:
    """PostgreSQL backends connected to ``database`` (their process title names it)."""
    found = set()
    needle = f" {database} ".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                title = fh.read(200)
        except OSError:
            continue
        if title.startswith(b"postgres:") and needle in title:
            found.add(int(entry))
    return found


def _account(
    stats: PhaseStats, before: CpuSample, after: CpuSample, wall: float, pids: dict[str, Any]
) -> None:
    """CPU ms per completed event of each process (and the machine's busy share)."""
    events = max(1, stats.completed)
    total = after.machine_total - before.machine_total
    stats.machine_busy = (after.machine_busy - before.machine_busy) / total if total else 0.0
    accounted = 0.0
    for name, group in pids.items():
        if name in {"postgres backends", "database"}:
            continue
        used, _ = after.used_since(before, group)
        stats.cpu_ms[name] = used["server"] * 1000 / events
        accounted += used["server"]
    used, others = after.used_since(before, set())
    stats.cpu_ms["client"] = used["client"] * 1000 / events
    # PostgreSQL: the backends serving this run's database (others' tests share the server).
    backends, _ = after.used_since(before, pids.get("postgres backends", set()))
    stats.cpu_ms["postgres"] = backends["server"] * 1000 / events
    stats.cpu_ms["postgres (all)"] = used["postgres"] * 1000 / events
    rabbit = others.get("beam.smp", 0.0)
    stats.cpu_ms["rabbitmq"] = rabbit * 1000 / events
    other = used["other"] - rabbit - accounted
    stats.cpu_ms["other"] = max(0.0, other) * 1000 / events
    stats.cpu_ms["wall s"] = wall


# ---------------------------------------------------------------------------
# Verification through the API, and the broker's queues


@dataclass(slots=True)
class Verification:
    results: int = 0
    exactly_one: int = 0
    none: int = 0
    several: int = 0
    unexpected: int = 0
    conversations: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def verify(
    service: Service, tokens: dict[uuid.UUID, str], expected: dict[str, Expected]
) -> Verification:
    """``GET /conversations?context_type=assessment`` of every user: each expected
    result must have exactly one conversation, and there must be no other."""
    by_user: dict[uuid.UUID, set[str]] = {}
    for result_id, item in expected.items():
        by_user.setdefault(item.user, set()).add(result_id)
    outcome = Verification(results=len(expected))
    pool = ConnectionPool(service.host, service.port, 16)

    async def one(user: uuid.UUID, wanted: set[str]) -> None:
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        seen: Counter[str] = Counter()
        cursor: str | None = None
        for _ in range(100):  # pages; bounded
            query = {"limit": "100", "context_type": "assessment"}
            if cursor:
                query["cursor"] = cursor
            path = "/conversations?" + urllib.parse.urlencode(query)
            reply = await pool.request(
                build_request("GET", path, service.authority, headers=headers), 30.0
            )
            if reply.status != 200:
                outcome.errors[f"HTTP {reply.status}"] += 1
                return
            data = json.loads(reply.body)["data"]
            for conversation in data["conversations"]:
                seen[str(conversation["context_data"].get("result_id"))] += 1
            cursor = data["pagination"]["next_cursor"]
            if not cursor:
                break
        outcome.conversations += sum(seen.values())
        for result_id in wanted:
            count = seen.get(result_id, 0)
            if count == 1:
                outcome.exactly_one += 1
            elif count == 0:
                outcome.none += 1
            else:
                outcome.several += 1
        outcome.unexpected += sum(n for r, n in seen.items() if r not in wanted)

    try:
        await asyncio.gather(*(one(user, wanted) for user, wanted in by_user.items()))
    finally:
        pool.close()
    return outcome


async def queue_depths(url: str, topology: Topology) -> dict[str, int]:
    """Messages waiting in each queue of the consumer's topology."""
    depths: dict[str, int] = {}
    connection = await aio_pika.connect(url)
    async with connection:
        for name in topology.queues:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                depths[name] = -1
                continue
            result = queue.declaration_result
            depths[name] = int(result.message_count or 0) if result is not None else 0
            await channel.close()
    return depths


async def delete_run_topology(url: str, topology: Topology, notifications: str) -> None:
    """Delete the run's queues and exchanges (``adapters.rabbitmq.delete_topology``)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await delete_topology(channel, topology)
        await channel.exchange_delete(notifications)
    print(
        f"deleted exchanges {topology.exchange}, {notifications} and queues "
        f"{', '.join(topology.queues)}"
    )


# ---------------------------------------------------------------------------
# The run


def _rates(text: str) -> tuple[float | None, ...]:
    rates: list[float | None] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "max":
            rates.append(None)
            continue
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a rate is a number or max: {part!r}") from None
        if not 1 <= value <= 5000:
            raise argparse.ArgumentTypeError("rates between 1 and 5000 events/s")
        rates.append(value)
    if not rates:
        raise argparse.ArgumentTypeError("give at least one rate")
    return tuple(rates)


def _close_all(clients: Iterable[WsClient]) -> None:
    for client in clients:
        client.close()


async def run(args: argparse.Namespace) -> int:
    raise_file_limit(4096)
    names = run_names("bench-events")
    key = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(32)
    topology = Topology(
        exchange=names["RABBITMQ_EXCHANGE"],
        queue=names["RABBITMQ_QUEUE"],
        routing_keys=("analysis.completed", "analysis.started", "analysis.failed"),
        retry_delays=RETRY_DELAYS,
    )
    template = _from_tests("tests.conftest.load_fixture")("event_analysis_completed.json")
    synthetic_result_id = _from_tests("tests.fakes.archive.synthetic_result_id")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    async with contextlib.AsyncExitStack() as stack:
        # Registered first so that it runs last, once every process has stopped.
        stack.push_async_callback(
            delete_run_topology, args.rabbitmq, topology, names["NOTIFICATIONS_EXCHANGE"]
        )
        database = await stack.enter_async_context(
            temporary_database(args.postgres, "chatcore_bench_events")
        )
        archive_url, archive_pid = await stack.enter_async_context(fake_archive(key))
        env = server_env(
            {
                "DATABASE_URL": database,
                "RABBITMQ_URL": args.rabbitmq,
                "ARCHIVE_SERVICE_URL": archive_url,
                "INTERNAL_SERVICE_KEY": key,
                "JWT_SECRET": secret,
                "LOG_LEVEL": args.log_level,
                "RABBITMQ_RETRY_DELAYS": ",".join(f"{d:g}" for d in RETRY_DELAYS),
                **names,
            }
        )
        if args.prefetch:
            env["RABBITMQ_PREFETCH"] = str(args.prefetch)
        server = await stack.enter_async_context(
            started_server("chatcore", env, log_level=args.log_level)
        )
        consumer_pid = await stack.enter_async_context(started_consumer(env, args.rabbitmq))
        service = server.service
        print(f"server: {server.description}, at http://{service.authority}")
        print(
            f"consumer: chatcore consume, prefetch {args.prefetch or 16}; fake archive at "
            f"{archive_url}; exchange {topology.exchange}, queue {topology.queue}"
        )
        print(
            f"client: asyncio, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
            f"{args.users} users with one socket each, {args.results} results per user per phase"
        )
        await report_quiet()

        users = [uuid.uuid4() for _ in range(args.users)]
        tokens = {
            user: issue_token(
                secret=secret,
                user_id=user,
                issuer=service.issuer,
                audience=service.audience,
                ttl_seconds=3600,
            )
            for user in users
        }
        journey = Journey()
        sockets, failures, _ = await open_sockets(
            "127.0.0.1",
            service.port,
            [(index, tokens[user]) for index, user in enumerate(users)],
            journey.on_frame,
        )
        stack.callback(_close_all, sockets)
        if failures:
            raise SystemExit(f"opening the sockets failed: {dict(failures)}")
        print(f"{len(sockets)} sockets open and authenticated")

        connection = await aio_pika.connect(args.rabbitmq)
        stack.push_async_callback(connection.close)
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            topology.exchange, ExchangeType.TOPIC, durable=True
        )
        pids: dict[str, Any] = {
            "database": {urllib.parse.urlsplit(database).path.lstrip("/")},
            "server": descendants(server.root_pid),
            "consumer": descendants(consumer_pid),
            "archive": descendants(archive_pid),
        }

        # Warm-up (not reported): connections, pools, code paths.
        warm_plan = [(u, synthetic_result_id(u, f"warm{i}")) for i, u in enumerate(users[:20])]
        warm = await run_phase(
            exchange, journey, template, warm_plan, rate=20, window=1, wait=30, pids=pids
        )
        print(f"warm-up: {warm.completed}/{warm.events} ready, p50 {warm.p(50):.1f} ms")

        phases: list[PhaseStats] = []
        for number, rate in enumerate(args.rates):
            plan = [
                (user, synthetic_result_id(user, number * args.results + n))
                for n in range(args.results)
                for user in users
            ]
            stats = await run_phase(
                exchange,
                journey,
                template,
                plan,
                rate=rate,
                window=args.window,
                wait=args.wait,
                pids=pids,
            )
            phases.append(stats)
            print(
                f"  {stats.mode:>7}: {stats.completed}/{stats.events} ready, "
                f"{stats.sustained:.1f} events/s sustained, published at "
                f"{stats.publish_rate:.0f}/s; p50 {stats.p(50):.1f} p95 {stats.p(95):.1f} "
                f"p99 {stats.p(99):.1f} ms; missing {stats.missing}, duplicates "
                f"{stats.duplicates}, publish errors {dict(stats.publish_errors) or 0}",
                flush=True,
            )
            await asyncio.sleep(args.pause)

        await asyncio.sleep(1.0)  # let the last commits land before reading back
        checked = await verify(service, tokens, journey.expected)
        depths = await queue_depths(args.rabbitmq, topology)
        print_report(phases, checked, depths, journey, args)
    return 0


def print_report(
    phases: Sequence[PhaseStats],
    checked: Verification,
    depths: dict[str, int],
    journey: Journey,
    args: argparse.Namespace,
) -> None:
    print_table(
        f"analysis.completed -> chatbot_ready ({args.users} users x {args.results} results "
        f"per phase; latency in ms from the publish)",
        [
            "phase",
            "events",
            "ready",
            "events/s",
            "published/s",
            "p50",
            "p95",
            "p99",
            "max",
            "missing",
            "dup",
            "pub err",
            "busy %",
        ],
        [
            [
                s.mode,
                str(s.events),
                str(s.completed),
                f"{s.sustained:.1f}",
                f"{s.publish_rate:.0f}",
                _fmt(s.p(50)),
                _fmt(s.p(95)),
                _fmt(s.p(99)),
                _fmt(max(s.latencies_ms, default=math.nan)),
                str(s.missing),
                str(s.duplicates),
                str(sum(s.publish_errors.values())),
                f"{s.machine_busy * 100:.0f}",
            ]
            for s in phases
        ],
    )
    names = ["server", "consumer", "postgres", "rabbitmq", "archive", "client"]
    print_table(
        "CPU ms per event, by process (server = chatcore serve, consumer = chatcore consume)",
        ["phase", *names, "total", "pg (all)", "other procs", "wall s"],
        [
            [
                s.mode,
                *(f"{s.cpu_ms.get(n, 0.0):.2f}" for n in names),
                f"{sum(s.cpu_ms.get(n, 0.0) for n in names):.2f}",
                f"{s.cpu_ms.get('postgres (all)', 0.0):.2f}",
                f"{s.cpu_ms.get('other', 0.0):.2f}",
                f"{s.cpu_ms.get('wall s', 0.0):.1f}",
            ]
            for s in phases
        ],
    )
    print("\nframes per event (expected: assessment_progress x2, chatbot_ready x1)")
    for s in phases:
        per = {k: round(v / max(1, s.events), 2) for k, v in sorted(s.frames.items())}
        print(f"  {s.mode:>7}: {per}")
    if journey.unknown:
        print(f"  chatbot_ready frames for results not published by this run: {journey.unknown}")
    print(
        f"\nAPI check (GET /conversations, context_type=assessment): {checked.results} results "
        f"published, {checked.exactly_one} with exactly one conversation, {checked.none} with "
        f"none, {checked.several} with several; {checked.unexpected} other conversations; "
        f"{checked.conversations} conversations read; errors {dict(checked.errors) or 0}"
    )
    waiting = {name: n for name, n in depths.items() if n}
    print(f"queues at the end: {waiting or 'all empty'}")

    checks: list[tuple[bool, str]] = []
    fastest = [s for s in phases if s.mode == "max"]
    if fastest:
        s = fastest[-1]
        checks.append(
            (
                s.sustained >= THROUGHPUT_GOAL and s.missing == 0,
                f"as fast as possible: {s.sustained:.1f} events/s sustained (goal >= "
                f"{THROUGHPUT_GOAL:g}); {s.missing} missing",
            )
        )
    for s in phases:
        if s.mode == "max":
            continue
        checks.append(
            (
                s.p(95) < P95_GOAL_MS and s.missing == 0,
                f"at {s.mode}: p95 publish-to-ready {s.p(95):.1f} ms (goal < {P95_GOAL_MS:g} "
                f"ms); {s.missing} missing",
            )
        )
    checks.append(
        (
            checked.exactly_one == checked.results and not checked.unexpected,
            f"exactly one conversation per result: {checked.exactly_one}/{checked.results}",
        )
    )
    print("\ngoals")
    for ok, text in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {text}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="analysis.completed -> chatbot_ready: events/s and latency.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=100, help="users, one socket each")
    parser.add_argument("--results", type=int, default=10, help="results per user per phase")
    parser.add_argument(
        "--rates",
        type=_rates,
        default=(100.0, None),
        help="phases, comma-separated: events/s, or max (as fast as confirms come)",
    )
    parser.add_argument(
        "--window", type=int, default=256, help="max phase: unconfirmed publishes at once"
    )
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the last chatbot_ready"
    )
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between phases")
    parser.add_argument(
        "--prefetch", type=int, default=0, help="RABBITMQ_PREFETCH of the consumer (0: its default)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="PostgreSQL to create the run's database on (127.0.0.1)",
    )
    parser.add_argument(
        "--rabbitmq",
        default=os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL),
        help="RabbitMQ (127.0.0.1)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 2000 or not 1 <= args.results <= 100:
        parser.error("--users in [1, 2000], --results in [1, 100]")
    if args.users * args.results > 50_000:
        parser.error("at most 50,000 events per phase")
    if not 1 <= args.window <= 5000 or not 1 <= args.wait <= 300 or not 0 <= args.pause <= 60:
        parser.error("--window in [1, 5000], --wait in [1, 300], --pause in [0, 60]")
    if not 0 <= args.prefetch <= 1000:
        parser.error("--prefetch in [0, 1000]")
    for url in (args.rabbitmq, args.postgres):
        if urllib.parse.urlsplit(url).hostname not in {"127.0.0.1", "localhost"}:
            parser.error(f"only 127.0.0.1: {url}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
