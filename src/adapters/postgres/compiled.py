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

A read or a write can also run as a *scoped call* (decision 0016): the statement as the
body of a PL/pgSQL function in the connection's own temporary schema, which sets the
user's scope and then runs it, called in one round trip in a transaction of its own.
:class:`ScopedCall` is that function, derived here from the statement and from the
types the server described for it, so the SQL exists once, in the repositories.

This reads three attributes that SQLAlchemy's compiled objects have had since 1.4
(``positiontup``, ``_bind_processors``, ``_result_columns``); the repository contract
suite runs every statement through it against PostgreSQL, and
``tests/integration/test_postgres_compiled.py`` compares it with SQLAlchemy's own
execution.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

__all__ = ["CompiledStatement", "ScopedCall", "StatementCache"]

_Convert = Callable[[Any], Any]

# What a statement may be run as alone, in a transaction of its own (a scoped call):
# a read that takes no row locks (a lock only means something inside the transaction
# that goes on using the rows), or a write (run so only as the last of its unit of work,
# see PostgresUnitOfWork); never SQL text, which could be anything.
READ = "read"
WRITE = "write"
OTHER = "other"
_LOCKING = re.compile(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b", re.IGNORECASE)
# The server's type of a parameter it could not infer; a function cannot declare it.
_UNKNOWN_OID = 705
_BODY_QUOTE = "$chatcore_scoped$"


class _Type(Protocol):
    """A type as asyncpg describes a statement's parameter or column."""

    oid: int
    name: str
    schema: str


def _type_name(type_: _Type) -> str:
    # asyncpg names an array type by its element: "uuid[]".
    name, dimensions = type_.name, ""
    while name.endswith("[]"):
        name, dimensions = name[:-2], dimensions + "[]"
    return f"{_identifier(type_.schema)}.{_identifier(name)}{dimensions}"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class ScopedCall:
    """A statement as a function of the connection's temporary schema (``pg_temp``).

    The function takes the statement's parameters and, last, the user's id; it sets
    ``setting`` to that id for its transaction (``set_config(..., true)``, what ``SET
    LOCAL`` does), then runs the statement and returns its rows, as the role the
    connection runs as (``SECURITY INVOKER``): row-level security applies as in any
    transaction of the unit of work. Only this connection can see or call it; it goes
    with the connection. PL/pgSQL keeps the statement's plan for the session, as a
    prepared statement does.

    Attributes:
        name: the function's name in ``pg_temp``, from a digest of its definition.
        create: the ``CREATE FUNCTION`` statement.
        call: the statement that calls it: the original parameters ``$1..$n``, then
            the user's id as ``$n+1``.
    """

    name: str
    create: str
    call: str

    @classmethod
    def of(
        cls,
        sql: str,
        parameters: Sequence[_Type],
        columns: Sequence[_Type],
        setting: str,
    ) -> ScopedCall | None:
        """The function for ``sql``, or None when it cannot be one (a parameter or a
        column of a type the server left unknown, no columns to return)."""
        if not columns or _BODY_QUOTE in sql:
            return None
        if any(t.oid == _UNKNOWN_OID for t in (*parameters, *columns)):
            return None
        user = len(parameters) + 1
        arguments = ", ".join([*(_type_name(t) for t in parameters), "uuid"])
        returns = ", ".join(f"chatcore_column_{i} {_type_name(t)}" for i, t in enumerate(columns))
        body = (
            "#variable_conflict use_column\n"
            "BEGIN\n"
            f"  PERFORM set_config('{setting}', ${user}::text, true);\n"
            f"  RETURN QUERY {sql};\n"
            "END\n"
        )
        digest = hashlib.sha256(f"{arguments}|{returns}|{body}".encode()).hexdigest()[:24]
        name = f"chatcore_{digest}"
        create = (
            f"CREATE FUNCTION pg_temp.{name}({arguments}) RETURNS TABLE ({returns}) "
            f"LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS {_BODY_QUOTE}\n{body}{_BODY_QUOTE}"
        )
        placeholders = ", ".join(f"${i}" for i in range(1, user + 1))
        call = f"SELECT * FROM pg_temp.{name}({placeholders})"  # noqa: S608 (our own digest)
        return cls(name=name, create=create, call=call)


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """One statement in the driver's terms.

    Attributes:
        sql: the SQL text, with ``$n`` placeholders and the schema written in.
        names: the parameter names, in placeholder order.
        defaults: the value bound in the statement itself (a literal SQLAlchemy made a
            parameter), else None, per placeholder.
        required: the parameter names a call must give.
        kind: ``read`` (a ``SELECT`` that locks no rows), ``write`` (an ``INSERT``,
            ``UPDATE`` or ``DELETE``), else ``other`` (SQL text, a locking read).
        binds: per placeholder, the conversion of the value, or None.
        result_types: the SQLAlchemy type of each column.
        results: per column, the conversion of the value read, or None; None for the
            whole tuple when no column needs one (the driver's rows are used as is).
            Some conversions depend on the column's type in the database (a numeric
            or a double), so they are set by :meth:`with_column_types` once the server
            has described the statement; until then ``resolved`` is False.
        scoped: the statement as a scoped call (see :class:`ScopedCall`), known once
            resolved; None for ``other`` statements and those that cannot be one.
    """

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    required: frozenset[str]
    binds: tuple[_Convert | None, ...]
    result_types: tuple[TypeEngine[Any], ...]
    dialect: Dialect
    kind: str = OTHER
    results: tuple[_Convert | None, ...] | None = None
    resolved: bool = False
    scoped: ScopedCall | None = None

    def with_column_types(
        self,
        columns: Sequence[_Type],
        parameters: Sequence[_Type] = (),
        setting: str | None = None,
    ) -> CompiledStatement:
        """This statement, its result conversions chosen for the columns' types as the
        server described them, and (given the user ``setting``) its scoped call."""
        oids = [t.oid for t in columns]
        scoped = (
            ScopedCall.of(self.sql, parameters, columns, setting)
            if setting is not None and self.kind != OTHER
            else None
        )
        if len(oids) != len(self.result_types):
            # Not a statement SQLAlchemy knows the columns of (text): rows as they come.
            return dataclasses.replace(self, resolved=True, scoped=scoped)
        results = tuple(
            type_._cached_result_processor(self.dialect, oid)
            for type_, oid in zip(self.result_types, oids, strict=True)
        )
        return dataclasses.replace(
            self, results=results if any(results) else None, resolved=True, scoped=scoped
        )

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
        kind=_kind(statement, compiled.string),
        sql=compiled.string,
        names=names,
        defaults=tuple(values.get(name) for name in names),
        required=frozenset(name for name in names if compiled.binds[name].required),
        binds=tuple(processors.get(name) for name in names),
        result_types=tuple(column.type for column in compiled._result_columns),
        dialect=dialect,
    )


def _kind(statement: Executable, sql: str) -> str:
    if statement.is_dml:
        return WRITE
    if statement.is_select and not _LOCKING.search(sql):
        return READ
    return OTHER


class StatementCache:
    """Compiled statements of one engine, keyed by the statement object.

    The repositories' statements are module constants or cached per shape, so this
    holds a bounded set; it keeps a reference to each statement, so an id is never
    reused by another while its entry lives.
    """

    def __init__(
        self,
        dialect: Dialect,
        schema_translate_map: Mapping[str | None, str],
        setting: str | None = None,
    ) -> None:
        """``setting``: the user's scope setting, for scoped calls (None: none)."""
        self._dialect = dialect
        self._setting = setting
        # False once the database refused a scoped call's function (then none is tried).
        self.scoped_calls = setting is not None
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

    def resolve(
        self,
        statement: Executable,
        columns: Sequence[_Type],
        parameters: Sequence[_Type] = (),
    ) -> CompiledStatement:
        """Record the column and parameter types the server described for ``statement``."""
        resolved = self(statement).with_column_types(columns, parameters, self._setting)
        self._compiled[id(statement)] = (statement, resolved)
        return resolved

    def __len__(self) -> int:
        return len(self._compiled)
