"""Settings from the environment: defaults, derived values, and one clear line per bad value."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from entrypoints.settings import ConfigError, load_settings

BAD_VALUES = [
    ("PORT", "abc"),
    ("PORT", "70000"),
    ("PORT", "-1"),
    ("MAX_MESSAGE_LENGTH", "0"),
    ("MAX_MESSAGE_LENGTH", "ten"),
    ("MAX_TOKENS", "0"),
    ("TEMPERATURE", "hot"),
    ("TEMPERATURE", "5"),
    ("LOG_LEVEL", "loud"),
    ("LOG_FORMAT", "xml"),
    ("DATABASE_URL", "mysql://x"),
    ("DATABASE_URL", "localhost:5432/db"),
    ("REDIS_URL", "http://x"),
    ("RABBITMQ_URL", "http://x"),
    ("JWT_SECRET", "short"),
    ("MAX_CONVERSATION_HISTORY_TOKENS", "10"),
    ("MAX_CONVERSATION_HISTORY_TOKENS", "lots"),
    ("DB_SCHEMA", "a;b"),
    ("DB_SCHEMA", "1chat"),
    ("DB_SCHEMA", "chat schema"),
    ("DB_SCHEMA", "x" * 64),
    ("DATABASE_POOL_SIZE", "0"),
    ("DATABASE_POOL_SIZE", "lots"),
    ("HISTORY_CACHE_SIZE", "-1"),
    ("HISTORY_CACHE_SIZE", "many"),
    ("CHATCORE_LANGUAGE", "fr"),
    ("FREE_MODEL_RATE_LIMIT_PER_MINUTE", "0"),
    ("RATE_LIMIT_CONVERSATIONS_PER_DAY", "many"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES, ids=lambda v: str(v)[:20])
def test_a_bad_value_is_one_line_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({variable: value})
    message = str(raised.value)
    assert raised.value.variable == variable
    assert variable in message
    assert "\n" not in message
    assert len(message) < 200


def test_a_bad_db_port_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"DB_HOST": "db", "DB_PORT": "fivefour"})
    assert raised.value.variable == "DB_PORT"


def test_the_defaults() -> None:
    settings = load_settings({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.database_url is None
    assert settings.db_schema == "chat"
    assert settings.db_pool_size == 10
    assert load_settings({"DATABASE_POOL_SIZE": "8"}).db_pool_size == 8
    assert settings.history_cache_size == 512
    assert load_settings({"HISTORY_CACHE_SIZE": "0"}).history_cache_size == 0  # off
    assert settings.data_dir == Path(".chatcore")
    assert settings.jwt_issuer == "atma-auth-service"
    assert settings.jwt_audience == "atma-services"
    assert settings.internal_service_key is None
    assert settings.log_level == "info"
    assert settings.chat.max_message_length == 10_000
    assert settings.chat.history_token_budget == 6_000
    assert settings.chat.max_tokens == 1000
    assert settings.chat.temperature == 0.3
    assert settings.rates.messages_per_minute == 20
    assert settings.rates.conversations_per_day == 100


def test_defaults_used_lists_the_defaulted_variables() -> None:
    assert set(load_settings({}).defaults_used) == {
        "DATABASE_URL",
        "REDIS_URL",
        "OPENROUTER_API_KEY",
        "JWT_SECRET",
        "RABBITMQ_URL",
    }
    assert set(load_settings({}).explain_defaults()) == set(load_settings({}).defaults_used)
    configured = load_settings(
        {
            "DATABASE_URL": "postgresql://u:p@db:5432/chat",
            "REDIS_URL": "redis://cache:6379/0",
            "RABBITMQ_URL": "amqp://guest:guest@mq:5672/",
            "OPENROUTER_API_KEY": "sk-or-test",
            "JWT_SECRET": "a-secret-of-enough-length",
        }
    )
    assert configured.defaults_used == ()
    partly = load_settings({"JWT_SECRET": "a-secret-of-enough-length"})
    assert "JWT_SECRET" not in partly.defaults_used
    assert "DATABASE_URL" in partly.defaults_used


def test_db_variables_build_a_database_url() -> None:
    settings = load_settings(
        {
            "DB_HOST": "db.internal",
            "DB_PORT": "5433",
            "DB_NAME": "atma",
            "DB_USER": "chat user",
            "DB_PASSWORD": "p@ss:w/rd",
        }
    )
    assert settings.database_url is not None
    url = urllib.parse.urlsplit(settings.database_url)
    assert url.scheme == "postgresql"
    assert url.hostname == "db.internal"
    assert url.port == 5433
    assert url.path == "/atma"
    assert urllib.parse.unquote(url.username or "") == "chat user"
    assert urllib.parse.unquote(url.password or "") == "p@ss:w/rd"
    assert "DATABASE_URL" not in settings.defaults_used


def test_db_host_alone_uses_the_postgres_defaults() -> None:
    url = load_settings({"DB_HOST": "db"}).database_url
    assert url == "postgresql://postgres@db:5432/postgres"


def test_database_url_wins_over_db_variables() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://a@b/c", "DB_HOST": "other"})
    assert settings.database_url == "postgresql://a@b/c"


def test_values_are_read() -> None:
    settings = load_settings(
        {
            "HOST": "10.0.0.5",
            "PORT": "9000",
            "DB_SCHEMA": "chat_v2",
            "CHATCORE_DATA_DIR": "/var/lib/chatcore",
            "MAX_MESSAGE_LENGTH": "500",
            "TEMPERATURE": "0.7",
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "console",
            "FREE_MODEL_RATE_LIMIT_PER_MINUTE": "5",
            "RATE_LIMIT_CONVERSATIONS_PER_DAY": "7",
            "INTERNAL_SERVICE_KEY": "svc",
            "JWT_ISSUER": "iss",
            "JWT_AUDIENCE": "aud",
            "CHATCORE_LANGUAGE": "en",
        }
    )
    assert (settings.host, settings.port, settings.db_schema) == ("10.0.0.5", 9000, "chat_v2")
    assert settings.data_dir == Path("/var/lib/chatcore")
    assert settings.chat.max_message_length == 500
    assert settings.chat.temperature == 0.7
    assert settings.chat.language == "en"
    assert (settings.log_level, settings.log_format) == ("debug", "console")
    assert settings.rates.messages_per_minute == 5
    assert settings.rates.conversations_per_day == 7
    assert settings.internal_service_key == "svc"
    assert (settings.jwt_issuer, settings.jwt_audience) == ("iss", "aud")


def test_blank_values_mean_the_default() -> None:
    settings = load_settings({"PORT": "  ", "LOG_LEVEL": "", "JWT_SECRET": " "})
    assert settings.port == 8000
    assert settings.log_level == "info"
    assert "JWT_SECRET" in settings.defaults_used


@pytest.mark.parametrize(
    ("given", "level"), [("WARN", "warning"), ("warn", "warning"), ("critical", "error")]
)
def test_other_loggers_names_of_the_levels_are_accepted(given: str, level: str) -> None:
    assert load_settings({"LOG_LEVEL": given}).log_level == level
