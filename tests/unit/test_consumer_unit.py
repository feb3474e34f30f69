"""The consumer's pieces that need no broker: names, configuration, the in-memory
archive, and ``chatcore consume`` refusing to start without ``RABBITMQ_URL``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.memory.assessment import InMemoryAssessmentSource
from adapters.rabbitmq import AnalysisConsumer, Topology, split_keys
from chatcore.assessment import ArchiveResult, ArchiveUnavailableError
from entrypoints.consumer import DEFAULT_ROUTING_KEYS, consumer_config
from entrypoints.settings import ConfigError, Settings, load_settings
from tests.unit.test_cli import chatcore

URL = "amqp://guest:guest@127.0.0.1:5672/"


def test_topology_names() -> None:
    topology = Topology(
        exchange="atma_events_exchange",
        queue="chatbot_assessment_events",
        routing_keys=("analysis.completed",),
    )
    assert topology.dead_letter_queue == "chatbot_assessment_events.dlq"
    assert topology.retry_queues == tuple(
        f"chatbot_assessment_events.retry.{ms}ms" for ms in (1000, 5000, 30000, 120000, 600000)
    )
    assert topology.queues[0] == "chatbot_assessment_events"
    assert "analysis.completed" in topology.describe()
    # Equal delays share a queue; fractions of a second are kept.
    short = Topology(exchange="x", queue="q", routing_keys=("k",), retry_delays=(0.2, 0.2, 1))
    assert short.retry_queues == ("q.retry.200ms", "q.retry.1000ms")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"exchange": ""},
        {"queue": ""},
        {"routing_keys": ()},
        {"retry_delays": ()},
        {"retry_delays": (1, 0)},
    ],
)
def test_topology_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        Topology(**{"exchange": "x", "queue": "q", "routing_keys": ("k",), **kwargs})


def test_split_keys() -> None:
    assert split_keys(" analysis.completed, ,analysis.started,analysis.completed") == (
        "analysis.completed",
        "analysis.started",
    )
    assert split_keys(["a", " b "]) == ("a", "b")
    assert split_keys("") == ()


async def _handler(_: object) -> None:
    return None


@pytest.mark.parametrize("kwargs", [{"prefetch": 0}, {"max_attempts": 0}])
def test_consumer_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AnalysisConsumer(
            url=URL, exchange="x", queue="q", routing_keys=["k"], handler=_handler, **kwargs
        )


def test_the_broker_is_logged_without_its_password() -> None:
    consumer = AnalysisConsumer(
        url="amqp://user:s3cret@rabbit:5672/prod",
        exchange="x",
        queue="q",
        routing_keys=["k"],
        handler=_handler,
    )
    assert "s3cret" not in consumer.broker
    assert consumer.broker.startswith("amqp://user:")


def test_config_defaults_are_the_contracts() -> None:
    config = consumer_config(Settings(rabbitmq_url=URL), env={})
    assert config.url == URL
    assert config.exchange == "atma_events_exchange"
    assert config.queue == "chatbot_assessment_events"
    assert config.routing_keys == DEFAULT_ROUTING_KEYS
    assert (config.prefetch, config.max_attempts) == (16, 5)
    assert config.retry_delays == (1, 5, 30, 120, 600)


def test_config_from_the_environment() -> None:
    env = {
        "RABBITMQ_URL": URL,
        "RABBITMQ_EXCHANGE": "events",
        "RABBITMQ_QUEUE": "chatbot",
        "RABBITMQ_ROUTING_KEYS": "analysis.completed, analysis.failed",
        "RABBITMQ_PREFETCH": "4",
        "RABBITMQ_MAX_ATTEMPTS": "3",
        "RABBITMQ_RETRY_DELAYS": "0.5,2",
        "CONSUMER_SHUTDOWN_TIMEOUT": "12",
    }
    config = consumer_config(load_settings(env), env=env)
    assert (config.exchange, config.queue) == ("events", "chatbot")
    assert config.routing_keys == ("analysis.completed", "analysis.failed")
    assert (config.prefetch, config.max_attempts, config.retry_delays) == (4, 3, (0.5, 2.0))
    assert config.shutdown_timeout == 12


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RABBITMQ_PREFETCH": "lots"}, "RABBITMQ_PREFETCH"),
        ({"RABBITMQ_MAX_ATTEMPTS": "0"}, "RABBITMQ_MAX_ATTEMPTS"),
        ({"RABBITMQ_RETRY_DELAYS": "1,-5"}, "RABBITMQ_RETRY_DELAYS"),
        ({"CONSUMER_SHUTDOWN_TIMEOUT": "1,2"}, "CONSUMER_SHUTDOWN_TIMEOUT"),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        consumer_config(Settings(rabbitmq_url=URL), env=env)
    assert caught.value.variable == variable


def test_config_needs_the_broker() -> None:
    with pytest.raises(ConfigError, match="RABBITMQ_URL") as caught:
        consumer_config(Settings(), env={})
    assert caught.value.variable == "RABBITMQ_URL"


def test_consume_without_a_broker_exits_2_naming_the_variable(tmp_path: Path) -> None:
    done = chatcore(tmp_path, "consume")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "RABBITMQ_URL" in line


async def test_in_memory_archive(archive_v2: dict[str, Any]) -> None:
    result = msgspec.convert(archive_v2, ArchiveResult)
    source = InMemoryAssessmentSource()
    assert await source.fetch_result(result.id) is None
    source.add(result)
    assert await source.fetch_result(result.id) == result
    source.down = True
    with pytest.raises(ArchiveUnavailableError, match="down"):
        await source.fetch_result(result.id)
    source.down = False
    assert await source.fetch_result(str(uuid.uuid4())) is None
    assert len(source.requests) == 4
