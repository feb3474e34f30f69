"""ScopedCall: a statement as a temporary function that sets the user's scope first."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.postgres.compiled import ScopedCall


@dataclass
class _T:
    oid: int
    name: str
    schema: str = "pg_catalog"


_UUID, _TEXT, _INT8 = _T(2950, "uuid"), _T(25, "text"), _T(20, "int8")


def test_the_function_sets_the_scope_from_its_last_argument_then_runs_the_statement() -> None:
    sql = "SELECT id, n FROM chat.t WHERE a = $1 AND b = $2"
    call = ScopedCall.of(sql, [_UUID, _T(2951, "uuid[]")], [_UUID, _INT8], "app.current_user_id")
    assert call is not None
    assert call.call == f"SELECT * FROM pg_temp.{call.name}($1, $2, $3)"
    assert call.create.startswith(
        f'CREATE FUNCTION pg_temp.{call.name}("pg_catalog"."uuid", "pg_catalog"."uuid"[], uuid) '
        'RETURNS TABLE (chatcore_column_0 "pg_catalog"."uuid", '
        'chatcore_column_1 "pg_catalog"."int8")'
    )
    body = call.create.split("$chatcore_scoped$")[1]
    # The scope first, from the user's id ($3), local to the call's transaction.
    assert body.index("set_config('app.current_user_id', $3::text, true)") < body.index(sql)
    assert "SECURITY INVOKER" in call.create


def test_the_name_follows_the_definition() -> None:
    one = ScopedCall.of("SELECT $1", [_TEXT], [_TEXT], "s")
    same = ScopedCall.of("SELECT $1", [_TEXT], [_TEXT], "s")
    other = ScopedCall.of("SELECT $1 ", [_TEXT], [_TEXT], "s")
    assert one is not None
    assert same is not None
    assert other is not None
    assert one.name == same.name != other.name


def test_what_cannot_be_a_function_is_none() -> None:
    assert ScopedCall.of("UPDATE t SET a = $1", [_TEXT], [], "s") is None  # no rows
    assert ScopedCall.of("SELECT $1", [_T(705, "unknown")], [_TEXT], "s") is None
    assert ScopedCall.of("SELECT '$chatcore_scoped$'", [], [_TEXT], "s") is None
