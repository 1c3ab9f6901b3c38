"""Fixed write statements compiled once per database and run on the driver's cursor.

The commit pipeline runs the same handful of INSERT/UPDATE/DELETE statements on every
change of a case. Through SQLAlchemy's ``Connection.execute`` each costs its cache-key
lookup, parameter processing and result set-up — measured at several times the
statement's own execution on SQLite. A :class:`Prepared` statement is compiled once
per dialect (its SQL text, the order of its parameters and each parameter's bind
processor — JSON serialisation, UTC datetimes — taken from the column types), and then
executed directly on the DB-API cursor of the caller's connection, inside the caller's
transaction. Statements without results are :class:`Prepared` (``rowcount`` is
returned); the fixed SELECTs of the same path are :class:`Query`, whose rows are named
tuples with each column's result processing (JSON, UTC datetimes) taken from its type.
Queries built per call stay on SQLAlchemy.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql.expression import Executable


class _Compiled:
    __slots__ = ("sql", "names", "procs", "positional", "fixed", "pairs")

    def __init__(self, stmt: Any, conn: Connection) -> None:
        dialect = conn.dialect
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.positional: bool = bool(dialect.positional)
        # parameter names in the order of the placeholders (positional styles), or all
        self.names: list[str] = list(compiled.positiontup or compiled.binds)
        self.procs: dict[str, Callable[[Any], Any]] = {}
        #: values written into the statement itself (``.values(status="pending")``)
        self.fixed: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self.procs[name] = proc
            if not bind.required:
                self.fixed[name] = bind.effective_value
        #: each parameter in order, with its bind processor (None: the value as it is)
        self.pairs: list[tuple[str, Callable[[Any], Any] | None]] = [
            (n, self.procs.get(n)) for n in self.names
        ]

    def row(self, params: Mapping[str, Any]) -> Any:
        if self.fixed:
            params = {**self.fixed, **params}
        pairs = self.pairs
        if self.positional:
            return tuple([params[n] if p is None else p(params[n]) for n, p in pairs])
        return {n: (params[n] if p is None else p(params[n])) for n, p in pairs}


class Prepared:
    """One fixed statement without results (see the module's docstring)."""

    _compiler: type[_Compiled] = _Compiled

    def __init__(self, stmt: Executable | Mapping[str, Executable]) -> None:
        """``stmt``: one statement, or one per dialect name (an upsert is written in each
        database's own dialect)."""
        self.stmt = stmt
        self._by_dialect: dict[str, Any] = {}

    def _compiled(self, conn: Connection) -> Any:
        name = conn.dialect.name
        c = self._by_dialect.get(name)
        if c is None:
            stmt = self.stmt[name] if isinstance(self.stmt, Mapping) else self.stmt
            c = self._by_dialect[name] = self._compiler(stmt, conn)
        return c

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run it once in ``conn``'s transaction; returns the rows it changed."""
        c = self._compiled(conn)
        return int(_run(conn, c.sql, c.row(params), False, _rowcount))

    def execute_many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Run it once per parameter set, in ``conn``'s transaction."""
        if not params:
            return
        c = self._compiled(conn)
        _run(conn, c.sql, [c.row(p) for p in params], True, _nothing)


def _rowcount(cur: Any) -> int:
    return int(cur.rowcount)


def _nothing(cur: Any) -> None:
    return None


def _fetchall(cur: Any) -> Any:
    return cur.fetchall()


def _run(conn: Connection, sql: str, params: Any, many: bool, result: Callable[[Any], Any]) -> Any:
    """Execute on a cursor of ``conn``'s driver connection, announced as SQLAlchemy would;
    ``result(cursor)`` is what comes back."""
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        _announce(conn, cur, sql, params, many)
        if many:
            cur.executemany(sql, params)
        else:
            cur.execute(sql, params)
        return result(cur)
    finally:
        cur.close()


class _CompiledQuery(_Compiled):
    __slots__ = ("row_type", "results")

    def __init__(self, stmt: Any, conn: Connection) -> None:
        super().__init__(stmt, conn)
        dialect = conn.dialect
        columns = stmt.compile(dialect=dialect)._result_columns
        base: Any = namedtuple("Row", [c.keyname for c in columns])  # type: ignore[misc]
        # a mapping view as SQLAlchemy's rows have (``row._mapping``)
        self.row_type: Any = type(
            "Row", (base,), {"__slots__": (), "_mapping": property(base._asdict)}
        )
        self.results: list[tuple[int, Callable[[Any], Any]]] = []
        for i, c in enumerate(columns):
            proc = c.type.dialect_impl(dialect).result_processor(dialect, None)
            if proc is not None:
                self.results.append((i, proc))


class Query(Prepared):
    """One fixed SELECT (see the module's docstring): ``all`` / ``first`` in the
    caller's transaction give named tuples (``row.fields``, ``row._asdict()``)."""

    _compiler = _CompiledQuery

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        c: _CompiledQuery = self._compiled(conn)
        raw = _run(conn, c.sql, c.row(params), False, _fetchall)
        make, results = c.row_type._make, c.results
        if not results:
            return [make(r) for r in raw]
        out = []
        for r in raw:
            values = list(r)
            for i, proc in results:
                values[i] = proc(values[i])
            out.append(make(values))
        return out

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first row, or None."""
        rows = self.all(conn, params)
        return rows[0] if rows else None


def _announce(conn: Connection, cur: Any, sql: str, params: Any, many: bool) -> None:
    """Tell the engine's ``before_cursor_execute`` listeners (SQL logging, the query-plan
    tests) about the statement, as SQLAlchemy would."""
    listeners = conn.dispatch.before_cursor_execute
    if listeners:
        for fn in listeners:
            fn(conn, cur, sql, params, None, many)
