"""Load test: the message route against the ``GET /health/live`` baseline.

Starts ``chatcore serve`` itself (on a free port, with a temporary data directory,
and DATABASE_URL from the environment or else the embedded PostgreSQL), or targets a
running service with ``--url``. Creates as many users as the largest ``--users``
level (JWTs minted in-process), each with one conversation, then measures
``POST /conversations/{id}/messages`` (offline model, PostgreSQL) and
``GET /health/live`` three ways each:

* closed loop at 50 and at 200 concurrent users (each user sends its next request as
  soon as the previous answer arrives): throughput, p50/p95/p99 latency, errors;
* open loop at a fixed ``--rate`` (100 requests/s): requests are sent on a fixed
  schedule whatever the server does, and latency counts from the *scheduled* send
  time, so a stalled server cannot hide its queue (no coordinated omission).

It prints a table of each figure beside the baseline's, and the goals: message-route
throughput at least 10% of the baseline's, and p99 under 50 ms at 100 requests/s.
Every phase is bounded in time and in count. Run ``python benchmarks/load.py --help``;
see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from entrypoints.auth import issue_token
from httpclient import Connection, ConnectionPool, Reply, build_request

THROUGHPUT_GOAL: Final = 0.10  # message route throughput / baseline throughput
P99_GOAL_MS: Final = 50.0  # at the fixed rate
REQUEST_TIMEOUT: Final = 10.0  # seconds, per request
QUESTIONS: Final = (
    "Karier apa yang cocok untukku?",
    "What should I study if I like solving puzzles and working with people?",
    "Bagaimana cara mengetahui kekuatanku?",
    "Is data science a good fit for an introvert who likes statistics?",
    "Apa langkah pertama untuk magang di bidang desain?",
)
_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# Measurements


_Process = tuple[str, int, float, int]


def _read_processes() -> dict[int, _Process]:
    """Every process: pid -> (command name, parent pid, user + system CPU seconds, start
    time in clock ticks since boot). The start time tells a reused pid from the process
    it was; the name cannot, since a kernel worker's changes with its work queue."""
    found: dict[int, _Process] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parts = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(parts[11]) + int(parts[12])) / _CLK_TCK
        found[int(entry)] = (name, int(parts[1]), cpu, int(parts[19]))
    return found


def descendants(root: int) -> set[int]:
    """``root`` and every process below it (the server's workers)."""
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in _read_processes().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


@dataclass(slots=True)
class CpuSample:
    """The machine's CPU counters (jiffies) and every process's CPU time, at one instant."""

    machine_busy: float
    machine_total: float
    processes: dict[int, _Process]

    @classmethod
    def take(cls) -> CpuSample:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        total = sum(fields[:8])  # guest time is already counted in user
        return cls(total - idle, total, _read_processes())

    def used_since(
        self, before: CpuSample, server_pids: set[int]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """CPU seconds used since ``before`` by this client, the server, PostgreSQL and
        other processes; and the latter by command name."""
        used = dict.fromkeys(("client", "server", "postgres", "other"), 0.0)
        others: dict[str, float] = {}
        me = os.getpid()
        for pid, (name, _, cpu, started) in self.processes.items():
            earlier = before.processes.get(pid)
            delta = cpu - (earlier[2] if earlier and earlier[3] == started else 0.0)
            if pid == me:
                used["client"] += delta
            elif pid in server_pids:
                used["server"] += delta
            elif name == "postgres":
                used["postgres"] += delta
            else:
                used["other"] += delta
                others[name] = others.get(name, 0.0) + delta
        return used, others


@dataclass(slots=True)
class PhaseResult:
    """What one timed phase measured."""

    target: str
    mode: str  # "closed" or "open"
    load: int  # concurrent users (closed) or requests per second (open)
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0  # from the start to the last answer
    scheduled: int = 0  # open loop: requests scheduled
    max_send_lag_ms: float = 0.0  # open loop: worst lateness of the sender itself
    machine_busy: float = 0.0  # fraction of all CPUs busy
    client_cpu: float = 0.0  # fraction of one CPU used by this load generator
    other_cpu: float = 0.0  # fraction of one CPU used by unrelated processes (noise)
    other_top: list[tuple[str, float]] = field(default_factory=list)  # the busiest of them
    server_cpu_ms: float | None = None  # server CPU per completed request
    postgres_cpu_ms: float = 0.0  # PostgreSQL CPU per completed request

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        """Successful answers per second (the achieved rate, in the open loop)."""
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the successful requests' latency, in ms."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1]

    def label(self) -> str:
        return f"closed, {self.load} users" if self.mode == "closed" else f"open, {self.load} req/s"

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mode": self.mode,
            "load": self.load,
            "completed": self.completed,
            "errors": dict(self.errors),
            "elapsed_s": round(self.elapsed, 3),
            "throughput": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(self.latencies_ms, default=math.nan), 2),
            "scheduled": self.scheduled,
            "max_send_lag_ms": round(self.max_send_lag_ms, 2),
            "machine_busy": round(self.machine_busy, 3),
            "client_cpu": round(self.client_cpu, 3),
            "other_cpu": round(self.other_cpu, 3),
            "other_top": [[name, round(cpu, 3)] for name, cpu in self.other_top],
            "server_cpu_ms": None if self.server_cpu_ms is None else round(self.server_cpu_ms, 3),
            "postgres_cpu_ms": round(self.postgres_cpu_ms, 3),
        }


@dataclass(slots=True)
class CpuTally:
    """CPU used over one timed phase, or summed over the slices of a paired phase."""

    wall: float = 0.0
    machine_busy: float = 0.0
    machine_total: float = 0.0
    used: Counter[str] = field(default_factory=Counter)  # client, server, postgres, other
    others: Counter[str] = field(default_factory=Counter)  # other processes by name

    def add(self, before: CpuSample, after: CpuSample, wall: float, server_pids: set[int]) -> None:
        self.wall += wall
        self.machine_busy += after.machine_busy - before.machine_busy
        self.machine_total += after.machine_total - before.machine_total
        used, others = after.used_since(before, server_pids)
        self.used.update(used)
        self.others.update(others)


def account_cpu(result: PhaseResult, tally: CpuTally, server_pids: set[int]) -> None:
    """Fill in ``result``'s CPU figures from what was used while it ran."""
    wall, used = tally.wall, tally.used
    total = tally.machine_total
    result.machine_busy = tally.machine_busy / total if total else 0.0
    result.client_cpu = used["client"] / wall
    result.other_cpu = used["other"] / wall
    busiest = sorted(tally.others.items(), key=lambda item: item[1], reverse=True)[:3]
    result.other_top = [(name, cpu / wall) for name, cpu in busiest if cpu > 0]
    if result.completed:
        if server_pids:
            result.server_cpu_ms = used["server"] * 1000 / result.completed
        result.postgres_cpu_ms = used["postgres"] * 1000 / result.completed


# ---------------------------------------------------------------------------
# Targets: what a request of each kind looks like


@dataclass(slots=True, frozen=True)
class User:
    token: str
    conversation_id: str
    messages: tuple[bytes, ...]  # one ready request per question


@dataclass(slots=True, frozen=True)
class Target:
    name: str
    expected_status: int
    request: Callable[[User, int], bytes]  # (user, sequence number) -> request bytes


def message_target() -> Target:
    return Target(
        name="message",
        expected_status=201,
        request=lambda user, n: user.messages[n % len(user.messages)],
    )


def live_target(host: str) -> Target:
    raw = build_request("GET", "/health/live", host)
    return Target(name="baseline", expected_status=200, request=lambda _user, _n: raw)


# ---------------------------------------------------------------------------
# Load phases


def _record_error(result: PhaseResult, exc: BaseException | None, reply: Reply | None) -> None:
    if reply is not None:
        result.errors[f"HTTP {reply.status}"] += 1
    else:
        result.errors[type(exc).__name__] += 1


async def closed_loop(
    target: Target,
    users: Sequence[User],
    connections: Sequence[Connection],
    *,
    duration: float,
    max_requests: int,
) -> PhaseResult:
    """Each of ``len(connections)`` users sends its next request once the previous one
    answered, until ``duration`` seconds have passed or ``max_requests`` were sent."""
    result = PhaseResult(target.name, "closed", len(connections))
    budget = max_requests
    start = time.perf_counter()
    deadline = start + duration
    last_answer = start

    async def user_loop(index: int) -> None:
        nonlocal budget, last_answer
        user, connection = users[index], connections[index]
        sequence = 0
        while budget > 0:
            sent = time.perf_counter()
            if sent >= deadline:
                return
            budget -= 1
            raw = target.request(user, sequence)
            sequence += 1
            try:
                reply = await connection.request(raw, REQUEST_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                _record_error(result, exc, None)
                await asyncio.sleep(0.01)  # do not spin on a refused connection
                continue
            answered = time.perf_counter()
            last_answer = max(last_answer, answered)
            if reply.status == target.expected_status:
                result.latencies_ms.append((answered - sent) * 1000)
            else:
                _record_error(result, None, reply)

    async with asyncio.timeout(duration + REQUEST_TIMEOUT + 5):
        await asyncio.gather(*(user_loop(i) for i in range(len(connections))))
    result.elapsed = last_answer - start
    return result


async def open_loop(
    target: Target,
    users: Sequence[User],
    pool: ConnectionPool,
    *,
    rate: float,
    duration: float,
) -> PhaseResult:
    """Send ``rate * duration`` requests on a fixed schedule; a request's latency runs
    from the moment it was *due*, so time spent queued (for a connection, in the
    server) counts even when the sender or the server falls behind."""
    count = max(1, round(rate * duration))
    result = PhaseResult(target.name, "open", round(rate), scheduled=count)
    interval = 1.0 / rate
    start = time.perf_counter() + 0.01
    last_answer = start
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int, due: float) -> None:
        nonlocal last_answer
        raw = target.request(users[index % len(users)], index // len(users))
        try:
            reply = await pool.request(raw, REQUEST_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            _record_error(result, exc, None)
            return
        answered = time.perf_counter()
        last_answer = max(last_answer, answered)
        if reply.status == target.expected_status:
            result.latencies_ms.append((answered - due) * 1000)
        else:
            _record_error(result, None, reply)

    for index in range(count):
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.max_send_lag_ms = max(result.max_send_lag_ms, -delay * 1000)
        task = asyncio.create_task(one(index, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _done, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
        for task in pending:
            task.cancel()
        if pending:
            result.errors["unfinished"] += len(pending)
    result.elapsed = last_answer - start
    return result


# ---------------------------------------------------------------------------
# Setting up: the server, the users


@dataclass(slots=True)
class Service:
    """Where the service answers, and the processes to account its CPU to."""

    host: str
    port: int
    jwt_secret: str
    issuer: str
    audience: str
    pids: set[int] = field(default_factory=set)
    description: str = ""

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


def _database_label(url: str | None) -> str:
    if not url:
        return "embedded PostgreSQL (pgserver)"
    parts = urllib.parse.urlsplit(url)
    return f"PostgreSQL at {parts.hostname}:{parts.port or 5432}{parts.path}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _get(host: str, port: int, path: str) -> Reply | None:
    connection = Connection(host, port)
    try:
        return await connection.request(build_request("GET", path, f"{host}:{port}"), 5.0)
    except (OSError, TimeoutError):
        return None
    finally:
        connection.close()


async def wait_ready(host: str, port: int, timeout: float, alive: Callable[[], bool]) -> Reply:  # noqa: ASYNC109
    """Poll ``/health/ready`` until it answers 200; raise if the server died or took too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server exited during start-up")
        reply = await _get(host, port, "/health/ready")
        if reply is not None and reply.status == 200:
            return reply
        await asyncio.sleep(0.25)
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s")


@contextlib.asynccontextmanager
async def started_service(args: argparse.Namespace) -> AsyncIterator[Service]:
    """Run ``chatcore serve`` for the duration of the block, then stop it."""
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="chatcore-bench-"))
    port = _free_port()
    secret = os.environ.get("JWT_SECRET") or secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "CHATCORE_DATA_DIR": str(data_dir),
        "JWT_SECRET": secret,
        "LOG_LEVEL": args.log_level,
        "FREE_MODEL_RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_CONVERSATIONS_PER_DAY": "1000000",
    }
    cli = [sys.executable, "-m", "entrypoints.cli"]
    log_path = data_dir / "server.log"
    if env.get("DATABASE_URL"):
        # `chatcore serve` migrates only the embedded database; an external one first.
        subprocess.run(  # noqa: ASYNC221, S603 - our own argv; nothing else runs yet
            [*cli, "migrate"], env=env, check=True, timeout=180, stdout=subprocess.DEVNULL
        )
    server = getattr(args, "server", "chatcore")
    if server == "granian":
        # The server `chatcore serve` ran before decision 0009, on the same app factory.
        command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers"]
        command += [str(args.server_workers), "--no-access-log", "--log-level", "warning"]
        command += ["entrypoints.http.app:create_app_from_env"]
        label = f"granian {_version('granian')} (loop auto: {_granian_loop()})"
    else:
        command = [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--workers", str(args.server_workers)]
        label = f"chatcore serve (uvicorn {_version('uvicorn')})"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220, S603 - our own argv; returns at once
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        try:
            await wait_ready("127.0.0.1", port, 180, lambda: process.poll() is None)
        except RuntimeError:
            tail = log_path.read_bytes()[-3000:].decode(errors="replace")
            print(f"the server did not start; the end of its log:\n{tail}", file=sys.stderr)
            raise
        service = Service(
            host="127.0.0.1",
            port=port,
            jwt_secret=secret,
            issuer=env.get("JWT_ISSUER", "atma-auth-service"),
            audience=env.get("JWT_AUDIENCE", "atma-services"),
            pids=descendants(process.pid),
            description=(
                f"{label}, {args.server_workers} worker(s), "
                f"LOG_LEVEL={args.log_level}, {_database_label(os.environ.get('DATABASE_URL'))}"
            ),
        )
        yield service
    finally:
        await _stop(process)
        size = log_path.stat().st_size if log_path.exists() else 0
        kept = f"kept in {log_path}" if args.data_dir else "removed with the temporary data dir"
        print(f"\nserver log: {size / 1e6:.1f} MB ({kept})")
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _granian_loop() -> str:
    """What Granian's default loop (``auto``) picks: rloop, else uvloop, when installed."""
    import importlib.util  # noqa: PLC0415

    return next((n for n in ("rloop", "uvloop") if importlib.util.find_spec(n)), "asyncio")


async def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT the server's process group (a graceful stop), SIGKILL it after 20 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
    for _ in range(200):
        if process.poll() is not None:
            break
        await asyncio.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.asynccontextmanager
async def running_service(args: argparse.Namespace) -> AsyncIterator[Service]:
    """A service someone else runs, at ``--url``."""
    parts = urllib.parse.urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in {"127.0.0.1", "localhost"}:
        raise SystemExit("load.py only sends traffic to 127.0.0.1")
    secret = args.jwt_secret or os.environ.get("JWT_SECRET")
    if not secret:
        raise SystemExit("--url needs the service's JWT secret: --jwt-secret or JWT_SECRET")
    await wait_ready("127.0.0.1", port, 30, lambda: True)
    pids = descendants(args.server_pid) if args.server_pid else set()
    yield Service(
        host="127.0.0.1",
        port=port,
        jwt_secret=secret,
        issuer=os.environ.get("JWT_ISSUER", "atma-auth-service"),
        audience=os.environ.get("JWT_AUDIENCE", "atma-services"),
        pids=pids,
        description=f"running service at {args.url}",
    )


async def create_users(service: Service, count: int) -> list[User]:
    """``count`` users, each with a token and one conversation."""
    pool = ConnectionPool(service.host, service.port, 16)
    users: list[User] = []

    async def one() -> None:
        token = issue_token(
            secret=service.jwt_secret,
            user_id=uuid.uuid4(),
            issuer=service.issuer,
            audience=service.audience,
            ttl_seconds=3600,
        )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        raw = build_request(
            "POST", "/conversations", service.authority, headers=headers, body=b"{}"
        )
        reply = await pool.request(raw, REQUEST_TIMEOUT)
        if reply.status != 201:
            raise RuntimeError(f"POST /conversations: HTTP {reply.status} {reply.body[:200]!r}")
        conversation_id = json.loads(reply.body)["data"]["id"]
        path = f"/conversations/{conversation_id}/messages"
        messages = tuple(
            build_request(
                "POST",
                path,
                service.authority,
                headers=headers,
                body=json.dumps({"content": q}).encode(),
            )
            for q in QUESTIONS
        )
        users.append(User(token, conversation_id, messages))

    try:
        await asyncio.gather(*(one() for _ in range(count)))
    finally:
        pool.close()
    return users


# ---------------------------------------------------------------------------
# The run


@dataclass(slots=True)
class Plan:
    duration: float
    warmup: float
    rate: float
    max_requests: int


async def run_phase(
    service: Service,
    target: Target,
    users: Sequence[User],
    *,
    mode: str,
    load: int,
    plan: Plan,
) -> PhaseResult:
    """One warm-up (discarded) and one timed phase of ``target``."""
    connections: list[Connection] = []
    pool = ConnectionPool(service.host, service.port, size=512)

    async def once(duration: float) -> PhaseResult:
        if mode == "closed":
            return await closed_loop(
                target, users, connections, duration=duration, max_requests=plan.max_requests
            )
        return await open_loop(target, users, pool, rate=plan.rate, duration=duration)

    try:
        if mode == "closed":
            connections.extend(Connection(service.host, service.port) for _ in range(load))
            await asyncio.gather(*(c.open() for c in connections))
        else:
            await pool.prefill(32)
        if plan.warmup > 0:
            await once(plan.warmup)
        tally = CpuTally()
        before, wall = CpuSample.take(), time.perf_counter()
        result = await once(plan.duration)
        tally.add(before, CpuSample.take(), time.perf_counter() - wall, service.pids)
        account_cpu(result, tally, service.pids)
    finally:
        for connection in connections:
            connection.close()
        pool.close()
    return result


def merge_slice(into: PhaseResult, part: PhaseResult) -> None:
    """Add one slice's answers, errors and time to the phase it is part of."""
    into.latencies_ms.extend(part.latencies_ms)
    into.errors.update(part.errors)
    into.elapsed += part.elapsed


def slice_order(count: int, targets: Sequence[Target]) -> list[Target]:
    """The targets' slices in ABBA order (A B, B A, A B, ...): a machine that speeds up or
    slows down steadily during the phase weighs on both targets alike."""
    order: list[Target] = []
    for index in range(count):
        order.extend(targets if index % 2 == 0 else reversed(targets))
    return order


async def run_paired(
    service: Service,
    targets: Sequence[Target],
    users: Sequence[User],
    *,
    load: int,
    plan: Plan,
    slices: int,
) -> tuple[list[PhaseResult], list[float]]:
    """A closed loop of ``load`` users for each target, measured in ``slices`` slices per
    target that take turns (ABBA), so both see the machine at the same times: a
    neighbour's load on a shared machine, which can move throughput by a quarter within
    a minute, then moves both figures instead of their ratio.

    Returns one result per target (the slices merged, in ``targets``' order) and, with
    two targets, the ratio of the second's throughput to the first's in each round (a
    slice of each, back to back): their spread shows how steady the machine was.
    """
    connections = [Connection(service.host, service.port) for _ in range(load)]
    results = {t.name: PhaseResult(t.name, "closed", load) for t in targets}
    tallies = {t.name: CpuTally() for t in targets}
    rounds: list[dict[str, float]] = [{} for _ in range(slices)]
    length = plan.duration / slices
    budget = max(1, plan.max_requests // slices)
    try:
        await asyncio.gather(*(c.open() for c in connections))
        if plan.warmup > 0:
            for target in targets:
                await closed_loop(
                    target, users, connections, duration=plan.warmup, max_requests=budget
                )
        for index, target in enumerate(slice_order(slices, targets)):
            before, wall = CpuSample.take(), time.perf_counter()
            part = await closed_loop(
                target, users, connections, duration=length, max_requests=budget
            )
            tallies[target.name].add(
                before, CpuSample.take(), time.perf_counter() - wall, service.pids
            )
            merge_slice(results[target.name], part)
            rounds[index // len(targets)][target.name] = part.throughput
    finally:
        for connection in connections:
            connection.close()
    for target in targets:
        account_cpu(results[target.name], tallies[target.name], service.pids)
    ratios: list[float] = []
    if len(targets) == 2:
        first, second = (t.name for t in targets)
        ratios = [r[second] / r[first] for r in rounds if r.get(first)]
    return [results[t.name] for t in targets], ratios


def _capped_plan(plan: Plan) -> Plan:
    if plan.rate * plan.duration > plan.max_requests:
        return dataclasses.replace(plan, duration=plan.max_requests / plan.rate)
    return plan


async def report_quiet(seconds: float = 1.0) -> None:
    """Print how busy the machine is before the load: others' work skews the figures."""
    before = CpuSample.take()
    await asyncio.sleep(seconds)
    after = CpuSample.take()
    total = after.machine_total - before.machine_total
    busy = (after.machine_busy - before.machine_busy) / total if total else 0.0
    print(f"machine busy before the load: {busy:.0%} of all CPUs", end="")
    if busy > 0.15:
        hogs = sorted(
            (
                (cpu - before.processes.get(pid, ("", 0, 0.0, 0))[2], name)
                for pid, (name, _, cpu, _) in after.processes.items()
            ),
            reverse=True,
        )[:3]
        print(" - WARNING, figures will be skewed; busiest:", end=" ")
        print(", ".join(f"{name} {cpu / seconds:.0%}" for cpu, name in hogs), end="")
    print()


async def run(args: argparse.Namespace) -> int:
    plan = _capped_plan(
        Plan(
            duration=args.duration,
            warmup=args.warmup,
            rate=args.rate,
            max_requests=args.max_requests,
        )
    )
    service_context = running_service(args) if args.url else started_service(args)
    async with service_context as service:
        print(f"server: {service.description}, at http://{service.authority}")
        print(
            f"client: asyncio HTTP/1.1 keep-alive, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs; {plan.duration:g} s per phase after {plan.warmup:g} s "
            f"of warm-up"
        )
        await report_quiet()
        started = time.perf_counter()
        users = await create_users(service, max(args.users))
        print(
            f"created {len(users)} users and conversations in {time.perf_counter() - started:.1f} s"
        )
        targets = [
            t for t in (live_target(service.authority), message_target()) if t.name in args.targets
        ]
        phases: list[tuple[str, int]] = []
        if "closed" in args.modes:
            phases.extend(("closed", c) for c in args.users)
        if "open" in args.modes:
            phases.append(("open", round(plan.rate)))
        results: list[PhaseResult] = []
        spreads: dict[int, list[float]] = {}
        for mode, load in phases:
            if mode == "closed" and args.slices > 1:
                measured, spreads[load] = await run_paired(
                    service, targets, users, load=load, plan=plan, slices=args.slices
                )
            else:
                measured = [
                    await run_phase(service, target, users, mode=mode, load=load, plan=plan)
                    for target in targets
                ]
            for result in measured:
                results.append(result)
                print(
                    f"  {result.target:8} {result.label():18} {result.throughput:8.1f}/s "
                    f"p99 {result.percentile(99):7.1f} ms  errors {result.error_count}",
                    flush=True,
                )
    print_table(results)
    print_goals(results, args.users, plan.rate, spreads)
    if args.json:
        _write_json(
            args.json,
            {
                "server": service.description,
                "duration_s": plan.duration,
                "warmup_s": plan.warmup,
                "users": len(users),
                "phases": [r.as_json() for r in results],
            },
        )
        print(f"results written to {args.json}")
    return 0


# ---------------------------------------------------------------------------
# Output


def _write_json(path: str, payload: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _rows(
    mode: str, message: PhaseResult | None, base: PhaseResult | None
) -> list[tuple[str, float | None, float | None, bool]]:
    """(metric, message figure, baseline figure, is a latency) for one load level."""

    def both(get: Callable[[PhaseResult], float | None]) -> tuple[float | None, float | None]:
        return (get(message) if message else None, get(base) if base else None)

    rows = [
        (
            "throughput/s" if mode == "closed" else "achieved/s",
            *both(lambda r: r.throughput),
            False,
        ),
        ("p50", *both(lambda r: r.percentile(50)), True),
        ("p95", *both(lambda r: r.percentile(95)), True),
        ("p99", *both(lambda r: r.percentile(99)), True),
        ("errors", *both(lambda r: r.error_count), False),
        ("server CPU ms/req", *both(lambda r: r.server_cpu_ms), False),
        ("postgres CPU ms/req", *both(lambda r: r.postgres_cpu_ms), False),
        ("client CPU %", *both(lambda r: r.client_cpu * 100), False),
        ("other procs CPU %", *both(lambda r: r.other_cpu * 100), False),
        ("machine busy %", *both(lambda r: r.machine_busy * 100), False),
    ]
    if mode == "open":
        rows.append(("sender lag max", *both(lambda r: r.max_send_lag_ms), False))
    return rows


def _spread(ratios: Sequence[float]) -> str:
    if len(ratios) < 2:
        return ""
    return f"; by round {min(ratios):.1%}-{max(ratios):.1%}"


def print_table(results: Sequence[PhaseResult]) -> None:
    by_key = {(r.target, r.mode, r.load): r for r in results}
    header = (
        f"{'phase':20} {'metric':19} {'message':>10} {'baseline':>10} {'diff':>10} {'ratio':>8}"
    )
    print()
    print("message route vs GET /health/live (baseline); latency in ms")
    print(header)
    print("-" * len(header))
    for mode, load in dict.fromkeys((r.mode, r.load) for r in results):
        message = by_key.get(("message", mode, load))
        base = by_key.get(("baseline", mode, load))
        label = (message or base or PhaseResult("", mode, load)).label()
        for name, m, b, is_latency in _rows(mode, message, base):
            diff = ratio = ""
            if name.endswith("/s") and m is not None and b:
                ratio = f"{m / b:.1%}"
            elif is_latency and m is not None and b is not None and b > 0:
                diff = f"{m - b:+.1f}"
                ratio = f"{m / b:.1f}x"
            digits = 0 if name == "errors" else (2 if name.endswith("ms/req") else 1)
            figures = f"{_fmt(m, digits):>10} {_fmt(b, digits):>10} {diff:>10} {ratio:>8}"
            print(f"{label:20} {name:19} {figures}")
            label = ""
        noisy = [r for r in (message, base) if r is not None and r.other_cpu > 0.1]
        for r in noisy:
            busiest = ", ".join(f"{name} {cpu:.0%}" for name, cpu in r.other_top)
            print(f"{'':20} note: other processes busy during {r.target}: {busiest}")
        kinds = dict(message.errors) if message else {}
        kinds.update({f"baseline {k}": v for k, v in (base.errors if base else {}).items()})
        if kinds:
            print(f"{'':20} errors by kind: {kinds}")


def print_goals(
    results: Sequence[PhaseResult],
    levels: Sequence[int],
    rate: float,
    spreads: Mapping[int, Sequence[float]] | None = None,
) -> int:
    """Print each goal that was measured as PASS or FAIL; return the number failed.

    ``spreads``: per closed-loop level, the ratio in each round of a paired phase."""
    by_key = {(r.target, r.mode, r.load): r for r in results}
    checks: list[tuple[bool, str]] = []
    for load in levels:
        message = by_key.get(("message", "closed", load))
        base = by_key.get(("baseline", "closed", load))
        if message is None or base is None:
            continue
        share = message.throughput / base.throughput if base.throughput else 0.0
        checks.append(
            (
                share >= THROUGHPUT_GOAL and message.error_count == 0,
                f"closed loop, {load} users: message throughput {message.throughput:.0f}/s is "
                f"{share:.1%} of the baseline's {base.throughput:.0f}/s "
                f"(goal >= {THROUGHPUT_GOAL:.0%}, no errors; {message.error_count} errors)"
                + _spread((spreads or {}).get(load, ())),
            )
        )
    message = by_key.get(("message", "open", round(rate)))
    if message is not None:
        p99 = message.percentile(99)
        kept_up = message.throughput >= 0.95 * rate
        checks.append(
            (
                p99 < P99_GOAL_MS and kept_up and message.error_count == 0,
                f"open loop, {rate:g} req/s: message p99 {p99:.1f} ms (goal < {P99_GOAL_MS:g} "
                f"ms), achieved {message.throughput:.1f}/s, {message.error_count} errors",
            )
        )
        if rate != 100:
            checks[-1] = (checks[-1][0], checks[-1][1] + " (the goal is stated for 100 req/s)")
    print("\ngoals")
    for ok, text in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {text}")
    return sum(1 for ok, _ in checks if not ok)


# ---------------------------------------------------------------------------


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not levels:
        raise argparse.ArgumentTypeError("give at least one level")
    return levels


def _names(*allowed: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(part.strip() for part in text.split(",") if part.strip())
        unknown = set(names) - set(allowed)
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return names

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load-test chatcore's message route against GET /health/live.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per phase")
    parser.add_argument(
        "--users",
        type=_levels,
        default="50,200",
        help="closed-loop concurrency levels, comma-separated; the largest is also the number "
        "of users (with one conversation each) created",
    )
    parser.add_argument(
        "--targets",
        type=_names("baseline", "message"),
        default="baseline,message",
        help="what to measure, comma-separated: baseline (GET /health/live), message",
    )
    parser.add_argument(
        "--modes",
        type=_names("closed", "open"),
        default="closed,open",
        help="which loops to run, comma-separated: closed, open",
    )
    parser.add_argument(
        "--slices",
        type=int,
        default=1,
        help="closed loop: split each target's timed phase into this many slices, taken in "
        "turns with the other target's (ABBA), and print the ratio of each round, to see how "
        "steady the machine is. The pauses between slices let PostgreSQL's background writes "
        "catch up uncounted, which lifts the message route's figure (docs/benchmarks.md); "
        "1: one phase after the other",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop requests per second")
    parser.add_argument(
        "--max-requests", type=int, default=200_000, help="upper bound of requests per phase"
    )
    parser.add_argument(
        "--url", help="target a running service (127.0.0.1 only) instead of starting one"
    )
    parser.add_argument("--jwt-secret", help="with --url: the service's JWT_SECRET")
    parser.add_argument(
        "--server-pid", type=int, help="with --url: the server's PID, to account its CPU"
    )
    parser.add_argument(
        "--server",
        choices=("chatcore", "granian"),
        default="chatcore",
        help="what to start: `chatcore serve` (uvicorn), or the same app under the granian "
        "command (needs DATABASE_URL), to compare",
    )
    parser.add_argument(
        "--server-workers", type=int, default=1, help="`chatcore serve --workers` when started here"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="LOG_LEVEL of the server started here",
    )
    parser.add_argument(
        "--data-dir", help="CHATCORE_DATA_DIR of the server started here; None: a temporary one"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 120] and --warmup in [0, 60] seconds")
    if not 1 <= args.slices <= 20:
        parser.error("--slices must be between 1 and 20")
    if not 1 <= args.rate <= 10_000:
        parser.error("--rate must be between 1 and 10000")
    if not all(1 <= n <= 2_000 for n in args.users):
        parser.error("--users levels must be between 1 and 2000")
    if args.server == "granian" and not args.url and not os.environ.get("DATABASE_URL"):
        parser.error("--server granian needs DATABASE_URL (it does not start the embedded one)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
