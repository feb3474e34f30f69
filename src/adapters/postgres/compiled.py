"""SQLAlchemy Core statements, compiled once, run on the asyncpg connection directly.

The repositories build their statements with SQLAlchemy Core, and SQLAlchemy compiles
each of them once. Running a compiled statement through SQLAlchemy still costs, on
every call, a greenlet switch into the sync API, an execution context, parameter
processing by name and a result object, several times what asyncpg itself spends on
the round trip. Here a statement is compiled once per engine into what asyncpg needs:
the SQL text (with the schema already in it), the order of its positional parameters,
and the conversions SQLAlchemy's types apply on the way in (JSON, booleans) and on the
way out (numerics read as float). A call is then one ``fetch`` on the driver
connection, whose statement cache keeps it prepared on the server.

This reads three attributes that SQLAlchemy's compiled objects have had since 1.4
(``positiontup``, ``_bind_processors``, ``_result_columns``); the repository contract
suite runs every statement through it against PostgreSQL, and
``tests/integration/test_postgres_compiled.py`` compares it with SQLAlchemy's own
execution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

__all__ = ["CompiledStatement", "StatementCache"]

_Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """One statement in the driver's terms.

    Attributes:
        sql: the SQL text, with ``$n`` placeholders and the schema written in.
        names: the parameter names, in placeholder order.
        defaults: the value bound in the statement itself (a literal SQLAlchemy made a
            parameter), else None, per placeholder.
        required: the parameter names a call must give.
        binds: per placeholder, the conversion of the value, or None.
        result_types: the SQLAlchemy type of each column.
        results: per column, the conversion of the value read, or None; None for the
            whole tuple when no column needs one (the driver's rows are used as is).
            Some conversions depend on the column's type in the database (a numeric
            or a double), so they are set by :meth:`with_column_types` once the server
            has described the statement; until then ``resolved`` is False.
    """

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    required: frozenset[str]
    binds: tuple[_Convert | None, ...]
    result_types: tuple[TypeEngine[Any], ...]
    dialect: Dialect
    results: tuple[_Convert | None, ...] | None = None
    resolved: bool = False

    def with_column_types(self, oids: Sequence[int]) -> CompiledStatement:
        """This statement, its result conversions chosen for the columns' type OIDs."""
        if len(oids) != len(self.result_types):
            # Not a statement SQLAlchemy knows the columns of (text): rows as they come.
            return dataclasses.replace(self, resolved=True)
        results = tuple(
            type_._cached_result_processor(self.dialect, oid)
            for type_, oid in zip(self.result_types, oids, strict=True)
        )
        return dataclasses.replace(self, results=results if any(results) else None, resolved=True)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for ``params`` (by name), converted."""
        missing = self.required.difference(params)
        if missing:
            raise KeyError(f"missing statement parameters: {', '.join(sorted(missing))}")
        return [
            value if convert is None or value is None else convert(value)
            for value, convert in zip(
                (
                    params.get(name, default)
                    for name, default in zip(self.names, self.defaults, strict=True)
                ),
                self.binds,
                strict=True,
            )
        ]

    def rows(self, records: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """The rows as the repositories read them (tuples, indexable by position)."""
        converts = self.results
        if converts is None:
            return records
        return [
            tuple(
                value if convert is None or value is None else convert(value)
                for value, convert in zip(record, converts, strict=True)
            )
            for record in records
        ]


def compile_statement(
    statement: Executable, dialect: Dialect, schema_translate_map: Mapping[str | None, str]
) -> CompiledStatement:
    """Compile ``statement`` for ``dialect`` (asyncpg's: numbered ``$n`` parameters).

    Raises:
        ValueError: the statement needs what this path does not do (an expanding
            ``IN`` list, parameters rendered at execution time).
    """
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=dialect,
        schema_translate_map=dict(schema_translate_map),
        render_schema_translate=True,
    )
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    for name in names:
        bind = compiled.binds[name]
        if bind.expanding or bind.literal_execute:
            raise ValueError(f"parameter {name!r} is rendered at execution; not supported here")
    values = compiled.params
    processors: Mapping[str, Any] = compiled._bind_processors
    return CompiledStatement(
        sql=compiled.string,
        names=names,
        defaults=tuple(values.get(name) for name in names),
        required=frozenset(name for name in names if compiled.binds[name].required),
        binds=tuple(processors.get(name) for name in names),
        result_types=tuple(column.type for column in compiled._result_columns),
        dialect=dialect,
    )


class StatementCache:
    """Compiled statements of one engine, keyed by the statement object.

    The repositories' statements are module constants or cached per shape, so this
    holds a bounded set; it keeps a reference to each statement, so an id is never
    reused by another while its entry lives.
    """

    def __init__(self, dialect: Dialect, schema_translate_map: Mapping[str | None, str]) -> None:
        self._dialect = dialect
        self._schema_translate_map = dict(schema_translate_map)
        self._compiled: dict[int, tuple[Executable, CompiledStatement]] = {}

    def __call__(self, statement: Executable) -> CompiledStatement:
        entry = self._compiled.get(id(statement))
        if entry is None:
            entry = (
                statement,
                compile_statement(statement, self._dialect, self._schema_translate_map),
            )
            self._compiled[id(statement)] = entry
        return entry[1]

    def resolve(self, statement: Executable, oids: Sequence[int]) -> CompiledStatement:
        """Record the column types the server described for ``statement``."""
        resolved = self(statement).with_column_types(oids)
        self._compiled[id(statement)] = (statement, resolved)
        return resolved

    def __len__(self) -> int:
        return len(self._compiled)
