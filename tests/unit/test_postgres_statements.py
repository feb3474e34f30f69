"""The repositories' statements are compiled once: each must have a SQLAlchemy cache key.

A statement without one (a multi-row VALUES list, say) is compiled again on every
execution, which costs more CPU than the round trip itself.
"""

from __future__ import annotations

import pytest
from sqlalchemy.sql.base import Executable

from adapters.postgres import repositories


def _module_statements() -> list[tuple[str, Executable]]:
    return [
        (name, value) for name, value in vars(repositories).items() if isinstance(value, Executable)
    ]


def test_the_module_defines_statements() -> None:
    names = {name for name, _ in _module_statements()}
    assert {"_INSERT_ANSWER_WITH_USAGE", "_SAVE_ANSWER_WITH_USAGE", "_RECENT_MESSAGES"} <= names


@pytest.mark.parametrize(("name", "statement"), _module_statements())
def test_every_module_statement_is_cacheable(name: str, statement: Executable) -> None:
    assert statement._generate_cache_key() is not None, name  # type: ignore[attr-defined]


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("checked", [False, True])
@pytest.mark.parametrize("usage", [False, True])
def test_appending_messages_is_cacheable(count: int, checked: bool, usage: bool) -> None:
    statement = repositories._append_messages(count, checked=checked, usage=usage)
    assert statement._generate_cache_key() is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize("single_status", [True, False])
@pytest.mark.parametrize("by_context", [True, False])
@pytest.mark.parametrize("keyset", [True, False])
def test_listing_conversations_is_cacheable(
    single_status: bool, by_context: bool, keyset: bool
) -> None:
    statement = repositories._list_conversations(single_status, by_context, keyset)
    assert statement._generate_cache_key() is not None  # type: ignore[attr-defined]
