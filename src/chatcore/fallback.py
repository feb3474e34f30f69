"""The model gateway: which model answers, given what has happened.

Rungs are tried in order: ``DEFAULT_MODEL``, then each ``FALLBACK_MODEL``, then
``EMERGENCY_FALLBACK_MODEL``. A paid model (any model whose id does not end in
``:free``) is called only when free-only mode is off and today's paid spend, read from
the usage ledger, is below the daily budget — checked before every paid call.

What each failure means:

- rate-limited, unavailable, timeout, empty or malformed reply: the model cools down
  (``Retry-After`` when the upstream gave one, else an exponential backoff) and is
  skipped until then; the next rung is tried;
- auth failed or payment required: logged loudly, a long cool-down, next rung;
- context too long: the model's window is learnt and the prompt is trimmed to fit and
  sent once more — never resent unchanged; a model whose known window cannot hold the
  trimmed prompt is skipped;
- content refused: the next rung is tried (another provider may answer), no cool-down.

Free (``:free``) calls are counted against the account's free quota (per minute and
per day) before they are made, so a call that must fail is not made. In a stream,
fallback happens only before the first token; after it, an error ends the answer.

Every decision is a domain event (:class:`ModelCallFailed`, :class:`ModelSkipped`,
:class:`ModelFellBack`) that logs and metrics consume.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from datetime import time as dtime
from typing import Protocol

from chatcore.context import fit_messages
from chatcore.domain.message import Usage
from chatcore.events import ModelCallFailed, ModelFellBack, ModelSkipped
from chatcore.models import (
    ChatReply,
    ChatRequest,
    FailureKind,
    ModelError,
    StreamDelta,
    StreamEnd,
)
from chatcore.ports import ChatModel, Clock, EventPublisher, RateLimiter
from chatcore.tokens import estimate_message_tokens

__all__ = [
    "Attempt",
    "CooldownPolicy",
    "FreeQuota",
    "GatewayReply",
    "ModelChain",
    "ModelGateway",
    "ModelHealth",
    "ModelStarted",
    "NoModelAnsweredError",
    "SpendLedger",
    "StreamInterruptedError",
    "is_free_model",
]

FREE_SUFFIX = ":free"
OFFLINE_MODEL = "offline"

_COOLING_KINDS = frozenset(
    {
        FailureKind.RATE_LIMITED,
        FailureKind.UNAVAILABLE,
        FailureKind.TIMEOUT,
        FailureKind.EMPTY_REPLY,
        FailureKind.MALFORMED_REPLY,
    }
)
_ACCOUNT_KINDS = frozenset({FailureKind.AUTH_FAILED, FailureKind.PAYMENT_REQUIRED})


def is_free_model(model: str) -> bool:
    """True for OpenRouter's free variants (``...:free``) and the offline advisor."""
    return model.endswith(FREE_SUFFIX) or model == OFFLINE_MODEL


class SpendLedger(Protocol):
    """Where today's paid spend is read from (the usage ledger, shared by replicas)."""

    async def paid_cost_since(self, since: datetime) -> float:
        """Total cost in USD of paid-model answers since ``since``, across all users."""
        ...


@dataclass(slots=True, frozen=True, kw_only=True)
class ModelChain:
    """The configured rungs and the paid-model rules."""

    primary: str
    fallbacks: tuple[str, ...] = ()
    emergency: str | None = None
    free_only: bool = True
    daily_budget_usd: float = 1.0
    context_windows: dict[str, int] = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        """Every rung once, in order."""
        ordered = [self.primary, *self.fallbacks]
        if self.emergency:
            ordered.append(self.emergency)
        return tuple(dict.fromkeys(m for m in ordered if m))


@dataclass(slots=True, frozen=True, kw_only=True)
class CooldownPolicy:
    base_seconds: float = 2.0
    max_seconds: float = 300.0
    account_seconds: float = 900.0


@dataclass(slots=True, frozen=True, kw_only=True)
class FreeQuota:
    """OpenRouter's free-model limits per account (50 a day; 1000 with credits)."""

    per_minute: int = 20
    per_day: int = 50


class ModelHealth:
    """Per-model cool-downs, learnt context windows and learnt prices (per process)."""

    def __init__(self, clock: Clock, policy: CooldownPolicy | None = None) -> None:
        self._clock = clock
        self._policy = policy or CooldownPolicy()
        self._until: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._windows: dict[str, int] = {}
        self._prices: dict[str, float] = {}

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def remaining(self, model: str) -> float:
        """Seconds until ``model`` may be called again (0 when it may be now)."""
        until = self._until.get(model)
        if until is None:  # never failed, or answered since: no need to read the clock
            return 0.0
        return max(0.0, until - self._now())

    def record_failure(self, model: str, kind: FailureKind, retry_after: float | None) -> float:
        """Note a failure; returns the cool-down it caused, in seconds."""
        if kind in _ACCOUNT_KINDS:
            delay = self._policy.account_seconds
        elif kind in _COOLING_KINDS:
            count = self._failures.get(model, 0) + 1
            self._failures[model] = count
            backoff = self._policy.base_seconds * 2 ** (count - 1)
            delay = retry_after if retry_after and retry_after > 0 else backoff
            delay = min(delay, max(self._policy.max_seconds, retry_after or 0.0))
        else:
            return 0.0
        self._until[model] = max(self._until.get(model, 0.0), self._now() + delay)
        return delay

    def record_success(self, model: str) -> None:
        self._failures.pop(model, None)
        self._until.pop(model, None)

    def context_window(self, model: str) -> int | None:
        return self._windows.get(model)

    def learn_context_window(self, model: str, tokens: int) -> None:
        known = self._windows.get(model)
        self._windows[model] = tokens if known is None else min(known, tokens)

    def learn_price(self, model: str, usage: Usage) -> None:
        """Note what ``model`` charged per token in an answer that reported its cost."""
        if usage.cost > 0 and usage.total_tokens > 0:
            self._prices[model] = usage.cost / usage.total_tokens

    def price_per_token(self, model: str) -> float | None:
        """USD per token (prompt and completion together) of ``model``'s latest answer
        that reported a cost; None when none has since the process started."""
        return self._prices.get(model)


@dataclass(slots=True, frozen=True)
class Attempt:
    """One rung's fate: ``answered``, ``failed`` (``reason`` = failure kind) or
    ``skipped`` (``reason`` says why)."""

    model: str
    outcome: str
    reason: str | None = None
    code: str | None = None

    def describe(self) -> str:
        return f"{self.model}: {self.outcome}" + (f" ({self.reason})" if self.reason else "")


@dataclass(slots=True, frozen=True, kw_only=True)
class GatewayReply:
    reply: ChatReply
    attempts: tuple[Attempt, ...]
    time_to_first_token_ms: int | None = None

    @property
    def fell_back(self) -> bool:
        return any(a.outcome != "answered" for a in self.attempts)


@dataclass(slots=True, frozen=True)
class ModelStarted:
    """In a stream, just before the first delta of the model that answers."""

    model: str


class NoModelAnsweredError(Exception):
    """Every rung failed or was skipped."""

    def __init__(self, attempts: Sequence[Attempt]) -> None:
        super().__init__("; ".join(a.describe() for a in attempts) or "no model configured")
        self.attempts = tuple(attempts)


class StreamInterruptedError(Exception):
    """A stream failed after its first token; what was generated stays with the caller."""

    def __init__(self, error: ModelError, attempts: Sequence[Attempt]) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = tuple(attempts)


def _prompt_tokens(request: ChatRequest) -> int:
    return sum(estimate_message_tokens(m.content) for m in request.messages)


class ModelGateway:
    """Runs a request through the rungs of a :class:`ModelChain` on a provider model."""

    def __init__(
        self,
        *,
        provider: ChatModel,
        chain: ModelChain,
        clock: Clock,
        limiter: RateLimiter,
        spend: SpendLedger,
        events: EventPublisher,
        health: ModelHealth | None = None,
        quota: FreeQuota | None = None,
        in_process: bool = False,
    ) -> None:
        """``in_process``: the provider answers in this process, without I/O and at once
        (the offline advisor), so a turn's question and answer can be stored together
        (see :meth:`chatcore.services.MessageService.send`)."""
        self._provider = provider
        self.in_process = in_process
        self.chain = chain
        self._clock = clock
        self._limiter = limiter
        self._spend = spend
        self._events = events
        self.health = health or ModelHealth(clock)
        self._quota = quota or FreeQuota()

    def _rungs(self, models: Sequence[str] | None) -> tuple[str, ...]:
        return tuple(models) if models else self.chain.models

    async def _skip(self, attempts: list[Attempt], model: str, code: str, reason: str) -> None:
        attempts.append(Attempt(model, "skipped", reason, code))
        await self._events.publish(ModelSkipped(model=model, code=code, reason=reason))

    async def _failed(
        self, attempts: list[Attempt], model: str, error: ModelError, sent: ChatRequest
    ) -> None:
        if error.kind is FailureKind.CONTEXT_TOO_LONG:
            window = error.context_limit
            if window is None:
                # The window is unknown: make the retry's prompt a quarter smaller.
                tokens = _prompt_tokens(sent)
                window = tokens * 3 // 4 + sent.max_tokens + max(16, tokens // 50)
            self.health.learn_context_window(model, window)
            cooldown = 0.0
        else:
            cooldown = self.health.record_failure(model, error.kind, error.retry_after)
        attempts.append(Attempt(model, "failed", error.kind.value))
        await self._events.publish(
            ModelCallFailed(
                model=model,
                kind=error.kind.value,
                detail=error.message[:300],
                retry_after=error.retry_after,
                cooldown_seconds=cooldown,
            )
        )

    async def _admit(
        self, model: str, request: ChatRequest, attempts: list[Attempt]
    ) -> ChatRequest | None:
        """The request to send to ``model``, or None (with the reason recorded) to skip it."""
        free = is_free_model(model)
        if not free:
            if self.chain.free_only:
                await self._skip(attempts, model, "paid_disabled", "paid models are disabled")
                return None
            midnight = datetime.combine(
                self._clock.now().date(), dtime(0), self._clock.now().tzinfo
            )
            spent = await self._spend.paid_cost_since(midnight)
            if spent >= self.chain.daily_budget_usd:
                await self._skip(
                    attempts,
                    model,
                    "budget_spent",
                    f"daily budget spent ({spent:.4f} of {self.chain.daily_budget_usd:.2f} USD)",
                )
                return None
        resting = self.health.remaining(model)
        if resting > 0:
            await self._skip(attempts, model, "cooling_down", f"cooling down for {resting:.0f}s")
            return None
        fitted = self._fit(model, request)
        if fitted is None:
            await self._skip(
                attempts, model, "context_window", "prompt does not fit its context window"
            )
            return None
        if model.endswith(FREE_SUFFIX):
            # The quota is the account's: once refused, every free rung is refused. The
            # minute window is asked first, so a refusal there spends no daily request.
            refused = next((a.reason for a in attempts if a.code == "free_quota"), None)
            if refused is None:
                for window, limit, seconds in (
                    ("minute", self._quota.per_minute, 60),
                    ("day", self._quota.per_day, 86_400),
                ):
                    decision = await self._limiter.hit(f"free-models:{window}", limit, seconds)
                    if not decision.allowed:
                        refused = (
                            f"free-model quota of {limit} per {window} reached "
                            f"(retry in {decision.retry_after}s)"
                        )
                        break
            if refused is not None:
                await self._skip(attempts, model, "free_quota", refused)
                return None
        return replace(fitted, model=model)

    def _fit(self, model: str, request: ChatRequest) -> ChatRequest | None:
        window = self.health.context_window(model) or self.chain.context_windows.get(model)
        if window is None:
            return request
        budget = window - request.max_tokens - max(16, window // 50)
        if budget <= 0:
            return None
        if _prompt_tokens(request) <= budget:
            return request
        messages = fit_messages(request.messages, budget)
        if sum(estimate_message_tokens(m.content) for m in messages) > budget:
            return None
        return replace(request, messages=messages)

    def estimate_cost(self, model: str, tokens: int) -> float | None:
        """What ``tokens`` (prompt and completion) of ``model`` likely cost, for an answer
        whose usage never came (cut short): 0 for a free model, else at the price of
        its latest answer that reported one; None when that price is not known."""
        if is_free_model(model):
            return 0.0
        price = self.health.price_per_token(model)
        return None if price is None else price * tokens

    async def _answered(self, attempts: list[Attempt], model: str, usage: Usage) -> None:
        self.health.record_success(model)
        self.health.learn_price(model, usage)
        earlier = [a.model for a in attempts]
        attempts.append(Attempt(model, "answered"))
        if earlier:
            await self._events.publish(ModelFellBack(model=model, from_models=earlier))

    async def complete(
        self, request: ChatRequest, *, models: Sequence[str] | None = None
    ) -> GatewayReply:
        """The whole answer from the first rung that gives one.

        Raises:
            NoModelAnsweredError: every rung failed or was skipped.
        """
        attempts: list[Attempt] = []
        for model in self._rungs(models):
            retried = False
            while True:
                admitted = await self._admit(model, request, attempts)
                if admitted is None:
                    break
                started = time.perf_counter()
                try:
                    reply = await self._provider.complete(admitted)
                    if not reply.content.strip():
                        raise ModelError(FailureKind.EMPTY_REPLY, "empty reply", model=model)
                except ModelError as error:
                    await self._failed(attempts, model, error, admitted)
                    if error.kind is FailureKind.CONTEXT_TOO_LONG and not retried:
                        retried = True  # once more, trimmed to the window just learnt
                        continue
                    break
                await self._answered(attempts, model, reply.usage)
                elapsed = round((time.perf_counter() - started) * 1000)
                return GatewayReply(
                    reply=reply, attempts=tuple(attempts), time_to_first_token_ms=elapsed
                )
        raise NoModelAnsweredError(attempts)

    async def stream(
        self, request: ChatRequest, *, models: Sequence[str] | None = None
    ) -> AsyncGenerator[ModelStarted | StreamDelta | GatewayReply, None]:
        """:class:`ModelStarted`, deltas, then one :class:`GatewayReply`.

        Falls back only until the first delta was yielded.

        Raises:
            NoModelAnsweredError: every rung failed or was skipped before any token.
            StreamInterruptedError: the model failed after its first token.
        """
        attempts: list[Attempt] = []
        for model in self._rungs(models):
            retried = False
            while True:
                admitted = await self._admit(model, request, attempts)
                if admitted is None:
                    break
                started = time.perf_counter()
                first_token_ms: int | None = None
                end: ChatReply | None = None
                upstream = self._provider.stream(admitted)
                try:
                    async for event in upstream:
                        if isinstance(event, StreamEnd):
                            end = event.reply
                        elif event.text:
                            if first_token_ms is None:
                                first_token_ms = round((time.perf_counter() - started) * 1000)
                                yield ModelStarted(model)
                            yield event
                    if first_token_ms is None or end is None:
                        raise ModelError(FailureKind.EMPTY_REPLY, "empty stream", model=model)
                except ModelError as error:
                    await self._failed(attempts, model, error, admitted)
                    if first_token_ms is not None:
                        raise StreamInterruptedError(error, attempts) from error
                    if error.kind is FailureKind.CONTEXT_TOO_LONG and not retried:
                        retried = True
                        continue
                    break
                finally:
                    await upstream.aclose()
                await self._answered(attempts, model, end.usage)
                yield GatewayReply(
                    reply=end, attempts=tuple(attempts), time_to_first_token_ms=first_token_ms
                )
                return
        raise NoModelAnsweredError(attempts)
