"""Settings read from the environment, with the contract's names and defaults.

A bad value stops start-up with :class:`ConfigError`, whose message is one line
naming the variable.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from chatcore.context import minimum_budget
from chatcore.limits import RatePolicy
from chatcore.prompts import LANGUAGES
from chatcore.services import ChatSettings

__all__ = [
    "DEFAULTS_LOGGED_ENV",
    "ConfigError",
    "ModelSettings",
    "Settings",
    "env_float",
    "env_int",
    "load_settings",
]

DEFAULTS_LOGGED_ENV = "CHATCORE_DEFAULTS_LOGGED"
"""Set by ``chatcore serve`` once it has logged the defaults, so workers do not repeat them."""


class ConfigError(ValueError):
    """A configuration variable has a value chatcore cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"configuration error: {variable} {problem}")
        self.variable = variable


@dataclass(slots=True, frozen=True, kw_only=True)
class ModelSettings:
    """The model chain and how chatcore talks to OpenRouter."""

    base_url: str = "https://openrouter.ai/api/v1"
    default_model: str = "qwen/qwen3-235b-a22b-07-25:free"
    fallback_models: tuple[str, ...] = ("meta-llama/llama-3.2-3b-instruct:free",)
    emergency_model: str | None = "openai/gpt-4o-mini"
    free_only: bool = True
    daily_budget_usd: float = 1.0
    timeout_ms: int = 45_000
    referer: str | None = None
    title: str | None = None
    free_requests_per_minute: int = 20
    free_requests_per_day: int = 50


@dataclass(slots=True, frozen=True, kw_only=True)
class Settings:
    """Everything configurable. ``None`` means "use the embedded default"."""

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = None
    db_schema: str = "chat"
    db_pool_size: int = 10
    history_cache_size: int = 512
    data_dir: Path = Path(".chatcore")
    redis_url: str | None = None
    rabbitmq_url: str | None = None
    rabbitmq_exchange: str = "atma_events_exchange"
    rabbitmq_queue: str = "chatbot_assessment_events"
    rabbitmq_routing_keys: tuple[str, ...] = (
        "analysis.completed",
        "analysis.started",
        "analysis.failed",
    )
    archive_service_url: str | None = None
    openrouter_api_key: str | None = None
    jwt_secret: str | None = None
    jwt_issuer: str = "atma-auth-service"
    jwt_audience: str = "atma-services"
    internal_service_key: str | None = None
    notification_service_url: str | None = None
    notifications_exchange: str = "chatcore.notifications"
    ws_auth_timeout: float = 10.0
    ws_ping_interval: float = 25.0
    log_level: str = "info"
    log_format: str | None = None  # None: json, or console on a TTY
    max_body_bytes: int = 1_048_576
    chat: ChatSettings = field(default_factory=ChatSettings)
    rates: RatePolicy = field(default_factory=RatePolicy)
    models: ModelSettings = field(default_factory=ModelSettings)
    defaults_used: tuple[str, ...] = ()

    def explain_defaults(self) -> dict[str, str]:
        """For each variable left unset, what chatcore uses instead (one log line each)."""
        explain = {
            "DATABASE_URL": f"embedded PostgreSQL (pgserver) in {self.data_dir / 'pgdata'}, "
            "migrated on start",
            "OPENROUTER_API_KEY": "offline advisor model: answers from the profile, model=offline",
            "JWT_SECRET": f"development secret generated once into {self.data_dir / 'jwt_secret'}",
            "REDIS_URL": "in-process rate limits (not shared between replicas)",
            "RABBITMQ_URL": "no broker: notifications reach this process's sockets only, "
            "chatbot.conversation_ready is not published",
        }
        return {name: explain[name] for name in self.defaults_used if name in explain}


def env_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """``name`` from ``env`` as a whole number in ``[lo, hi]``; ``default`` when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}, got {value}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    """``name`` from ``env`` as a number in ``[lo, hi]``; ``default`` when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
    return raw


_LOG_LEVEL_ALIASES: Final = {"warn": "warning", "fatal": "error", "critical": "error"}
"""Other loggers' names of the levels (``warn`` is the Node services' word for it)."""


def _log_level(env: Mapping[str, str]) -> str:
    raw = env.get("LOG_LEVEL", "").strip().lower()
    aliased = {**env, "LOG_LEVEL": _LOG_LEVEL_ALIASES.get(raw, raw)}
    return _choice(aliased, "LOG_LEVEL", "info", ("debug", "info", "warning", "error"))


def _text(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    return raw or None


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = _text(env, name)
    if raw is None:
        return None
    parsed = urllib.parse.urlsplit(raw)
    if parsed.scheme not in schemes:
        raise ConfigError(name, f"must be a URL starting with {' or '.join(schemes)}://")
    return raw


def _name(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _text(env, name) or default
    if len(raw) > 255 or any(ch.isspace() for ch in raw):
        raise ConfigError(
            name, f"must be a name without spaces (at most 255 characters), got {raw!r}"
        )
    return raw


def _keys(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _text(env, name)
    if raw is None:
        return ("analysis.completed", "analysis.started", "analysis.failed")
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys or any(any(ch.isspace() for ch in k) for k in keys):
        raise ConfigError(name, f"must be a comma list of routing keys, got {raw!r}")
    return keys


def _database_url(env: Mapping[str, str]) -> str | None:
    url = _url(env, "DATABASE_URL", ("postgresql", "postgres", "postgresql+asyncpg"))
    if url is not None:
        return url
    host = _text(env, "DB_HOST")
    if host is None:
        return None
    port = env_int(env, "DB_PORT", 5432, 1, 65535)
    name = _text(env, "DB_NAME") or "postgres"
    user = urllib.parse.quote(_text(env, "DB_USER") or "postgres", safe="")
    password = _text(env, "DB_PASSWORD")
    auth = f"{user}:{urllib.parse.quote(password, safe='')}" if password else user
    return f"postgresql://{auth}@{host}:{port}/{urllib.parse.quote(name, safe='')}"


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ConfigError(name, f"must be true or false, got {raw!r}")


def _model_id(name: str, raw: str) -> str:
    if not raw or any(ch.isspace() for ch in raw) or len(raw) > 200:
        raise ConfigError(name, f"must be a model id such as vendor/model:free, got {raw!r}")
    return raw


def _models(env: Mapping[str, str]) -> ModelSettings:
    defaults = ModelSettings()
    fallback_raw = env.get("FALLBACK_MODEL")
    fallbacks = defaults.fallback_models
    if fallback_raw is not None and fallback_raw.strip():
        fallbacks = tuple(
            _model_id("FALLBACK_MODEL", m.strip()) for m in fallback_raw.split(",") if m.strip()
        )
    emergency = defaults.emergency_model
    if "EMERGENCY_FALLBACK_MODEL" in env:
        raw = env["EMERGENCY_FALLBACK_MODEL"].strip()
        emergency = _model_id("EMERGENCY_FALLBACK_MODEL", raw) if raw else None
    return ModelSettings(
        base_url=(_url(env, "OPENROUTER_BASE_URL", ("http", "https")) or defaults.base_url).rstrip(
            "/"
        ),
        default_model=_model_id("DEFAULT_MODEL", _text(env, "DEFAULT_MODEL") or "")
        if _text(env, "DEFAULT_MODEL")
        else defaults.default_model,
        fallback_models=fallbacks,
        emergency_model=emergency,
        free_only=_bool(env, "USE_FREE_MODELS_ONLY", True),
        daily_budget_usd=env_float(env, "EMERGENCY_DAILY_BUDGET_USD", 1.0, 0.0, 1_000_000.0),
        timeout_ms=env_int(env, "OPENROUTER_TIMEOUT", 45_000, 100, 600_000),
        referer=_text(env, "HTTP_REFERER"),
        title=_text(env, "X_TITLE"),
        free_requests_per_minute=env_int(
            env, "OPENROUTER_FREE_REQUESTS_PER_MINUTE", 20, 1, 100_000
        ),
        free_requests_per_day=env_int(env, "OPENROUTER_FREE_REQUESTS_PER_DAY", 50, 1, 10_000_000),
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default ``os.environ``); raises :class:`ConfigError`."""
    env = os.environ if env is None else env
    defaults: list[str] = []
    schema = _text(env, "DB_SCHEMA") or "chat"
    if not schema.replace("_", "").isalnum() or schema[0].isdigit() or len(schema) > 63:
        raise ConfigError("DB_SCHEMA", f"must be a plain SQL identifier, got {schema!r}")
    language = _choice(env, "CHATCORE_LANGUAGE", "id", LANGUAGES)
    budget = env_int(env, "MAX_CONVERSATION_HISTORY_TOKENS", 6000, 1, 2_000_000)
    floor = minimum_budget(language)
    if budget < floor:
        raise ConfigError(
            "MAX_CONVERSATION_HISTORY_TOKENS", f"must be at least {floor}, got {budget}"
        )
    chat = ChatSettings(
        language=language,
        max_message_length=env_int(env, "MAX_MESSAGE_LENGTH", 10_000, 1, 200_000),
        history_token_budget=budget,
        max_tokens=env_int(env, "MAX_TOKENS", 1000, 1, 200_000),
        temperature=env_float(env, "TEMPERATURE", 0.3, 0.0, 2.0),
    )
    rates = RatePolicy(
        messages_per_minute=env_int(env, "FREE_MODEL_RATE_LIMIT_PER_MINUTE", 20, 1, 1_000_000),
        conversations_per_day=env_int(env, "RATE_LIMIT_CONVERSATIONS_PER_DAY", 100, 1, 1_000_000),
    )
    database_url = _database_url(env)
    if database_url is None:
        defaults.append("DATABASE_URL")
    redis_url = _url(env, "REDIS_URL", ("redis", "rediss", "unix"))
    if redis_url is None:
        defaults.append("REDIS_URL")
    rabbitmq_url = _url(env, "RABBITMQ_URL", ("amqp", "amqps"))
    if rabbitmq_url is None:
        defaults.append("RABBITMQ_URL")
    api_key = _text(env, "OPENROUTER_API_KEY")
    if api_key is None:
        defaults.append("OPENROUTER_API_KEY")
    jwt_secret = _text(env, "JWT_SECRET")
    if jwt_secret is None:
        defaults.append("JWT_SECRET")
    elif len(jwt_secret) < 16:
        raise ConfigError("JWT_SECRET", "must be at least 16 characters")
    return Settings(
        host=_text(env, "HOST") or "127.0.0.1",
        port=env_int(env, "PORT", 8000, 0, 65535),
        database_url=database_url,
        db_schema=schema,
        db_pool_size=env_int(env, "DATABASE_POOL_SIZE", 10, 1, 1000),
        history_cache_size=env_int(env, "HISTORY_CACHE_SIZE", 512, 0, 1_000_000),
        data_dir=Path(_text(env, "CHATCORE_DATA_DIR") or ".chatcore"),
        redis_url=redis_url,
        rabbitmq_url=rabbitmq_url,
        rabbitmq_exchange=_name(env, "RABBITMQ_EXCHANGE", "atma_events_exchange"),
        rabbitmq_queue=_name(env, "RABBITMQ_QUEUE", "chatbot_assessment_events"),
        rabbitmq_routing_keys=_keys(env, "RABBITMQ_ROUTING_KEYS"),
        archive_service_url=_url(env, "ARCHIVE_SERVICE_URL", ("http", "https")),
        openrouter_api_key=api_key,
        jwt_secret=jwt_secret,
        jwt_issuer=_text(env, "JWT_ISSUER") or "atma-auth-service",
        jwt_audience=_text(env, "JWT_AUDIENCE") or "atma-services",
        internal_service_key=_text(env, "INTERNAL_SERVICE_KEY"),
        notification_service_url=_url(env, "NOTIFICATION_SERVICE_URL", ("http", "https")),
        notifications_exchange=_text(env, "NOTIFICATIONS_EXCHANGE") or "chatcore.notifications",
        ws_auth_timeout=env_float(env, "WS_AUTH_TIMEOUT", 10.0, 0.1, 300.0),
        ws_ping_interval=env_float(env, "WS_PING_INTERVAL", 25.0, 0.0, 3600.0),
        log_level=_log_level(env),
        log_format=_choice(env, "LOG_FORMAT", "", ("json", "console")) or None,
        chat=chat,
        rates=rates,
        models=_models(env),
        defaults_used=tuple(defaults),
    )
