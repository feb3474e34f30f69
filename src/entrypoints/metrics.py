"""Prometheus metrics, in a registry per container (so tests and apps never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from chatcore.events import AnswerFailed, AnswerProduced, ConversationCreated, DomainEvent

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """HTTP request counts and latencies, plus counters fed by domain events."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_latency.labels(method, route).observe(seconds)

    def observe_event(self, event: DomainEvent) -> None:
        if isinstance(event, AnswerProduced):
            self.answers.labels(event.model, "ok").inc()
            self.tokens.labels(event.model, "prompt").inc(event.prompt_tokens)
            self.tokens.labels(event.model, "completion").inc(event.completion_tokens)
            self.answer_latency.labels(event.model).observe(event.processing_time_ms / 1000)
        elif isinstance(event, AnswerFailed):
            self.answers.labels("none", "failed").inc()
        elif isinstance(event, ConversationCreated):
            self.conversations_created.labels(event.context_type).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
