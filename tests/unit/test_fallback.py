"""The fallback policy, rung by rung, on a scripted model and a fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from adapters.memory import InMemoryEventPublisher, InMemoryRateLimiter
from chatcore.clock import FakeClock
from chatcore.events import ModelCallFailed, ModelFellBack, ModelSkipped
from chatcore.fallback import (
    FreeQuota,
    GatewayReply,
    ModelChain,
    ModelGateway,
    ModelStarted,
    NoModelAnsweredError,
    StreamInterruptedError,
)
from chatcore.models import ChatMessage, ChatRequest, FailureKind, ModelError, StreamDelta
from chatcore.tokens import estimate_message_tokens
from tests.unit.models import ScriptedModel

A, B, PAID = "a/one:free", "b/two:free", "c/paid"


def err(
    kind: FailureKind, model: str, retry_after: float | None = None, **kw: object
) -> ModelError:
    return ModelError(kind, "scripted", model=model, retry_after=retry_after, **kw)  # type: ignore[arg-type]


class Spend:
    def __init__(self, spent: float = 0.0) -> None:
        self.spent = spent
        self.asked: list[datetime] = []

    async def paid_cost_since(self, since: datetime) -> float:
        self.asked.append(since)
        return self.spent


def gateway(
    model: ScriptedModel,
    *,
    chain: ModelChain | None = None,
    clock: FakeClock | None = None,
    spend: Spend | None = None,
    quota: FreeQuota | None = None,
) -> tuple[ModelGateway, InMemoryEventPublisher, FakeClock]:
    clock = clock or FakeClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    events = InMemoryEventPublisher()
    gw = ModelGateway(
        provider=model,
        chain=chain or ModelChain(primary=A, fallbacks=(B,), emergency=PAID),
        clock=clock,
        limiter=InMemoryRateLimiter(clock),
        spend=spend or Spend(),
        events=events,
        quota=quota or FreeQuota(per_minute=1000, per_day=1000),
    )
    return gw, events, clock


REQUEST = ChatRequest(messages=(ChatMessage("system", "be kind"), ChatMessage("user", "hi")))


def outcomes(reply: GatewayReply | NoModelAnsweredError) -> list[tuple[str, str, str | None]]:
    return [(a.model, a.outcome, a.reason) for a in reply.attempts]


async def test_the_primary_answers() -> None:
    model = ScriptedModel()
    gw, events, _ = gateway(model)
    reply = await gw.complete(REQUEST)
    assert reply.reply.model == A
    assert outcomes(reply) == [(A, "answered", None)]
    assert not reply.fell_back
    assert events.published == []


@pytest.mark.parametrize(
    "kind",
    [
        FailureKind.RATE_LIMITED,
        FailureKind.UNAVAILABLE,
        FailureKind.TIMEOUT,
        FailureKind.EMPTY_REPLY,
        FailureKind.MALFORMED_REPLY,
        FailureKind.CONTENT_REFUSED,
        FailureKind.AUTH_FAILED,
        FailureKind.PAYMENT_REQUIRED,
    ],
)
async def test_each_failure_falls_back_to_the_next_rung(kind: FailureKind) -> None:
    model = ScriptedModel({A: [err(kind, A)]})
    gw, events, _ = gateway(model)
    reply = await gw.complete(REQUEST)
    assert reply.reply.model == B
    assert outcomes(reply) == [(A, "failed", kind.value), (B, "answered", None)]
    assert reply.fell_back
    failed = [e for e in events.published if isinstance(e, ModelCallFailed)]
    assert [(e.model, e.kind) for e in failed] == [(A, kind.value)]
    assert [e.from_models for e in events.published if isinstance(e, ModelFellBack)] == [[A]]


async def test_an_empty_reply_is_a_failure() -> None:
    model = ScriptedModel({A: ["   "]})
    gw, _, _ = gateway(model)
    reply = await gw.complete(REQUEST)
    assert outcomes(reply)[0] == (A, "failed", "empty_reply")
    assert reply.reply.model == B


async def test_retry_after_cools_the_model_down_until_it_expires() -> None:
    model = ScriptedModel({A: [err(FailureKind.RATE_LIMITED, A, retry_after=30)]})
    gw, events, clock = gateway(model)
    await gw.complete(REQUEST)
    clock.advance(29)
    second = await gw.complete(REQUEST)
    assert outcomes(second)[0][:2] == (A, "skipped")
    assert "cooling down" in (outcomes(second)[0][2] or "")
    assert [c.model for c in model.calls] == [A, B, B]  # A was not called while resting
    skipped = [e for e in events.published if isinstance(e, ModelSkipped)]
    assert skipped[-1].code == "cooling_down"
    clock.advance(2)
    third = await gw.complete(REQUEST)
    assert outcomes(third) == [(A, "answered", None)]


async def test_without_retry_after_the_backoff_grows_and_resets_on_success() -> None:
    failures: list[object] = [err(FailureKind.UNAVAILABLE, A) for _ in range(3)]
    model = ScriptedModel({A: failures})
    gw, events, clock = gateway(model)
    cooldowns = []
    for _ in range(3):
        await gw.complete(REQUEST)
        cooldowns.append(
            [e for e in events.published if isinstance(e, ModelCallFailed)][-1].cooldown_seconds
        )
        clock.advance(cooldowns[-1] + 0.01)
    assert cooldowns == [2.0, 4.0, 8.0]
    assert outcomes(await gw.complete(REQUEST)) == [(A, "answered", None)]
    assert gw.health.remaining(A) == 0


async def test_auth_failure_rests_the_model_for_long() -> None:
    model = ScriptedModel({A: [err(FailureKind.AUTH_FAILED, A)]})
    gw, events, clock = gateway(model)
    await gw.complete(REQUEST)
    failed = next(e for e in events.published if isinstance(e, ModelCallFailed))
    assert failed.cooldown_seconds == 900
    clock.advance(600)
    assert outcomes(await gw.complete(REQUEST))[0][1] == "skipped"


async def test_paid_rung_is_never_called_in_free_only_mode() -> None:
    model = ScriptedModel(
        {A: [err(FailureKind.UNAVAILABLE, A)], B: [err(FailureKind.UNAVAILABLE, B)]}
    )
    gw, _, _ = gateway(model)
    with pytest.raises(NoModelAnsweredError) as caught:
        await gw.complete(REQUEST)
    assert outcomes(caught.value) == [
        (A, "failed", "unavailable"),
        (B, "failed", "unavailable"),
        (PAID, "skipped", "paid models are disabled"),
    ]
    assert PAID not in [c.model for c in model.calls]


async def test_paid_rung_answers_within_budget_and_stops_when_spent() -> None:
    chain = ModelChain(
        primary=A, fallbacks=(B,), emergency=PAID, free_only=False, daily_budget_usd=1.0
    )
    down = [err(FailureKind.UNAVAILABLE, A)], [err(FailureKind.UNAVAILABLE, B)]
    spend = Spend(0.40)
    model = ScriptedModel({A: list(down[0]), B: list(down[1])})
    gw, _, clock = gateway(model, chain=chain, spend=spend)
    reply = await gw.complete(REQUEST)
    assert reply.reply.model == PAID
    # The budget is read from the ledger for today (UTC midnight), before the call.
    assert spend.asked == [datetime(2026, 3, 1, tzinfo=UTC)]
    spend.spent = 1.0
    clock.advance(3600)
    model.script = {A: [err(FailureKind.UNAVAILABLE, A)], B: [err(FailureKind.UNAVAILABLE, B)]}
    with pytest.raises(NoModelAnsweredError) as caught:
        await gw.complete(REQUEST)
    assert caught.value.attempts[-1].outcome == "skipped"
    assert "daily budget spent" in (caught.value.attempts[-1].reason or "")


async def test_free_quota_is_counted_so_a_call_that_must_fail_is_not_made() -> None:
    model = ScriptedModel()
    gw, events, clock = gateway(model, quota=FreeQuota(per_minute=2, per_day=3))
    for _ in range(2):
        await gw.complete(REQUEST)
    with pytest.raises(NoModelAnsweredError) as caught:
        await gw.complete(REQUEST)
    assert len(model.calls) == 2
    assert [a.outcome for a in caught.value.attempts] == ["skipped", "skipped", "skipped"]
    assert "per minute" in (caught.value.attempts[0].reason or "")
    assert {e.code for e in events.published if isinstance(e, ModelSkipped)} >= {"free_quota"}
    clock.advance(61)
    await gw.complete(REQUEST)
    clock.advance(61)
    with pytest.raises(NoModelAnsweredError) as daily:
        await gw.complete(REQUEST)
    assert "per day" in (daily.value.attempts[0].reason or "")


def _long_request(words: int) -> ChatRequest:
    history = tuple(
        ChatMessage("user" if i % 2 else "assistant", "kata " * 200) for i in range(words)
    )
    return ChatRequest(
        messages=(
            ChatMessage("system", "instructions"),
            *history,
            ChatMessage("user", "question?"),
        ),
        max_tokens=100,
    )


def _tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(estimate_message_tokens(m.content) for m in messages)


async def test_context_too_long_is_trimmed_and_never_resent_unchanged() -> None:
    request = _long_request(20)
    model = ScriptedModel({A: [err(FailureKind.CONTEXT_TOO_LONG, A, context_limit=2000)]})
    gw, _, _ = gateway(model)
    reply = await gw.complete(request)
    assert reply.reply.model == A
    first, second = model.calls
    assert first.messages == request.messages
    assert _tokens(second.messages) < _tokens(first.messages)
    assert _tokens(second.messages) <= 2000 - 100
    assert second.messages[0] == request.messages[0]
    assert second.messages[-1] == request.messages[-1]
    # The learnt window holds for later calls: trimmed at once, no second failure.
    model.calls.clear()
    await gw.complete(request)
    assert _tokens(model.calls[0].messages) <= 2000 - 100


async def test_context_too_long_without_a_limit_still_shrinks() -> None:
    request = _long_request(20)
    model = ScriptedModel({A: [err(FailureKind.CONTEXT_TOO_LONG, A)]})
    gw, _, _ = gateway(model)
    await gw.complete(request)
    assert _tokens(model.calls[1].messages) < _tokens(model.calls[0].messages)


async def test_a_smaller_fallback_window_gets_a_trimmed_prompt() -> None:
    request = _long_request(20)
    chain = ModelChain(primary=A, fallbacks=(B,), context_windows={B: 1500})
    model = ScriptedModel({A: [err(FailureKind.UNAVAILABLE, A)]})
    gw, _, _ = gateway(model, chain=chain)
    reply = await gw.complete(request)
    assert reply.reply.model == B
    assert _tokens(model.calls[1].messages) <= 1500 - 100
    assert _tokens(model.calls[0].messages) == _tokens(request.messages)


async def test_only_the_asked_models_are_tried() -> None:
    model = ScriptedModel({B: [err(FailureKind.UNAVAILABLE, B)]})
    gw, _, _ = gateway(model)
    with pytest.raises(NoModelAnsweredError):
        await gw.complete(REQUEST, models=[B])
    assert [c.model for c in model.calls] == [B]


async def _collect(gw: ModelGateway, request: ChatRequest) -> tuple[str, GatewayReply]:
    text, end = [], None
    async for event in gw.stream(request):
        if isinstance(event, ModelStarted):
            continue
        if isinstance(event, StreamDelta):
            text.append(event.text)
        else:
            end = event
    assert end is not None
    return "".join(text), end


async def test_stream_falls_back_before_the_first_token() -> None:
    model = ScriptedModel(
        {A: [err(FailureKind.RATE_LIMITED, A, retry_after=5)], B: ["hello there"]}
    )
    gw, _, _ = gateway(model)
    text, end = await _collect(gw, REQUEST)
    assert text == "hello there "
    assert end.reply.model == B
    assert outcomes(end)[0] == (A, "failed", "rate_limited")
    assert end.time_to_first_token_ms is not None


async def test_an_empty_stream_falls_back() -> None:
    model = ScriptedModel({A: [("partial", 0, err(FailureKind.EMPTY_REPLY, A))]})
    gw, _, _ = gateway(model)
    _, end = await _collect(gw, REQUEST)
    assert end.reply.model == B


async def test_stream_error_after_the_first_token_does_not_fall_back() -> None:
    model = ScriptedModel({A: [("partial", 3, err(FailureKind.UNAVAILABLE, A))]})
    gw, _, _ = gateway(model)
    seen: list[str] = []

    started: list[str] = []

    async def consume() -> None:
        async for event in gw.stream(REQUEST):
            if isinstance(event, ModelStarted):
                started.append(event.model)
                continue
            assert isinstance(event, StreamDelta)
            seen.append(event.text)

    with pytest.raises(StreamInterruptedError) as caught:
        await consume()
    assert seen == ["w0 ", "w1 ", "w2 "]
    assert started == [A]
    assert caught.value.error.kind is FailureKind.UNAVAILABLE
    assert [c.model for c in model.calls] == [A]


async def test_closing_the_stream_closes_the_upstream_at_once() -> None:
    model = ScriptedModel({A: ["one two three four five"]})
    gw, _, _ = gateway(model)
    stream = gw.stream(REQUEST)
    assert await anext(stream) == ModelStarted(A)
    assert isinstance(await anext(stream), StreamDelta)
    await stream.aclose()
    assert model.closed_streams == 1


async def test_no_rung_at_all_is_an_error_with_reasons() -> None:
    model = ScriptedModel({A: [err(FailureKind.UNAVAILABLE, A)], B: [err(FailureKind.TIMEOUT, B)]})
    gw, _, _ = gateway(model, chain=replace(ModelChain(primary=A, fallbacks=(B,))))
    with pytest.raises(NoModelAnsweredError) as caught:
        await gw.complete(REQUEST)
    assert str(caught.value) == f"{A}: failed (unavailable); {B}: failed (timeout)"
