"""Prometheus metrics, in a registry per container (so tests and apps never collide)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from chatcore.events import (
    AnswerFailed,
    AnswerProduced,
    ConversationCreated,
    DomainEvent,
    ModelCallFailed,
    ModelFellBack,
    ModelSkipped,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _HistoryCacheCollector(Collector):
    def __init__(self, read: Callable[[], tuple[int, int, int, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        hits, misses, stale, entries = self._read()
        reads = CounterMetricFamily(
            "chatcore_history_cache_reads",
            "Reads of a conversation and its newest messages: answered from the kept "
            "copy (hit), from the database (miss); stale counts the hits that the "
            "check found out of date (the unit of work ran again, reading from the "
            "database).",
            labels=["result"],
        )
        reads.add_metric(["hit"], hits)
        reads.add_metric(["miss"], misses)
        reads.add_metric(["stale"], stale)
        yield reads
        yield GaugeMetricFamily(
            "chatcore_history_cache_conversations",
            "Conversations whose newest messages this process keeps.",
            value=entries,
        )


class Metrics:
    """HTTP request counts and latencies, plus counters fed by domain events."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._history_read: Callable[[], tuple[int, int, int, int]] | None = None
        # prometheus-client checks and joins the label values on every ``labels()``
        # call; a message is counted under eight of them, always the same few.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.registry.register(_HistoryCacheCollector(self._history_figures))
        self.http_requests = Counter(
            "chatcore_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "chatcore_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.conversations_created = Counter(
            "chatcore_conversations_created_total",
            "Conversations created, by context type.",
            ["context_type"],
            registry=self.registry,
        )
        self.answers = Counter(
            "chatcore_answers_total",
            "Model answers by model and outcome.",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "chatcore_tokens_total",
            "Tokens by model and kind (prompt, completion).",
            ["model", "kind"],
            registry=self.registry,
        )
        self.answer_latency = Histogram(
            "chatcore_answer_duration_seconds",
            "Time for a model to answer, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.time_to_first_token = Histogram(
            "chatcore_time_to_first_token_seconds",
            "Time from asking a model to its first token, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cost = Counter(
            "chatcore_cost_usd_total",
            "Cost of answers in USD, by model.",
            ["model"],
            registry=self.registry,
        )
        self.model_calls = Counter(
            "chatcore_model_calls_total",
            "Model calls by model and outcome (ok, or the failure kind).",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.model_skips = Counter(
            "chatcore_model_skips_total",
            "Rungs skipped without a call, by model and reason.",
            ["model", "reason"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "chatcore_fallbacks_total",
            "Answers that came from a later rung, by the model that answered.",
            ["model"],
            registry=self.registry,
        )

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: label values come from small sets
        (methods, route templates, status codes, models), as prometheus-client's own
        children do."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._child(self.http_requests, method, route, str(status)).inc()
        self._child(self.http_latency, method, route).observe(seconds)

    def watch_history_cache(self, read: Callable[[], tuple[int, int, int, int]]) -> None:
        """Export the kept newest messages' figures: ``read`` gives (hits, misses,
        stale hits, conversations kept) when ``/metrics`` is scraped."""
        self._history_read = read

    def _history_figures(self) -> tuple[int, int, int, int]:
        return self._history_read() if self._history_read is not None else (0, 0, 0, 0)

    def observe_event(self, event: DomainEvent) -> None:
        if isinstance(event, AnswerProduced):
            self._child(self.answers, event.model, "ok").inc()
            self._child(self.model_calls, event.model, "ok").inc()
            if event.cost:
                self._child(self.cost, event.model).inc(event.cost)
            if event.time_to_first_token_ms is not None:
                self._child(self.time_to_first_token, event.model).observe(
                    event.time_to_first_token_ms / 1000
                )
            self._child(self.tokens, event.model, "prompt").inc(event.prompt_tokens)
            self._child(self.tokens, event.model, "completion").inc(event.completion_tokens)
            self._child(self.answer_latency, event.model).observe(event.processing_time_ms / 1000)
        elif isinstance(event, AnswerFailed):
            self._child(self.answers, "none", "failed").inc()
        elif isinstance(event, ModelCallFailed):
            self._child(self.model_calls, event.model, event.kind).inc()
        elif isinstance(event, ModelSkipped):
            self._child(self.model_skips, event.model, event.code).inc()
        elif isinstance(event, ModelFellBack):
            self._child(self.fallbacks, event.model).inc()
        elif isinstance(event, ConversationCreated):
            self._child(self.conversations_created, event.context_type).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
