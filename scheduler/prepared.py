"""Statements compiled once and run straight on the DBAPI cursor: the few statements of a signup.

SQLAlchemy spends about 0.1 ms of Python on each execution (execution context, cache lookup,
result set-up), which was most of a signup's database time. A Prepared statement keeps only what
the database needs: the SQL, and the bound values' and returned columns' type processing, all
SQLAlchemy's own, taken from its compiled form. It runs in the caller's transaction, and raises
SQLAlchemy's exceptions. When anything listens to cursor events (tracing, tests), or the engine
echoes statements or translates schemas, it runs through SQLAlchemy instead.
Result processors are made without the driver's type code: right for the columns used here
(integers, strings, booleans, datetimes, JSON); a Numeric column would need it.
"""

from __future__ import annotations

from collections import namedtuple
from functools import cache

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.elements import ClauseElement


class Prepared:
    """A Core statement compiled once per dialect and run on the DBAPI cursor of a connection.

    `keys` names the columns an INSERT is given.
    """

    def __init__(self, statement: ClauseElement, keys: tuple[str, ...] = ()):
        self.statement = statement
        self.keys = keys
        self._forms: dict[Dialect, _Form] = {}  # per engine's dialect: driver and server version matter

    def first(self, connection: Connection, params: dict):
        """The first returned row (attributes named after the columns), or None."""
        if _needs_sqlalchemy(connection):
            return connection.execute(self.statement, params).first()
        form = self._form(connection.dialect)
        return _run(connection, form, params, form.first)

    def scalar(self, connection: Connection, params: dict):
        row = self.first(connection, params)
        return None if row is None else row[0]

    def run(self, connection: Connection, params: dict) -> int:
        """Execute; returns the number of rows it changed."""
        if _needs_sqlalchemy(connection):
            return connection.execute(self.statement, params,
                                      execution_options={"preserve_rowcount": True}).rowcount
        return _run(connection, self._form(connection.dialect), params, _rowcount)

    def _form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect)
        if form is None:
            form = self._forms[dialect] = _Form(self.statement, dialect, self.keys)
        return form


def _run(connection: Connection, form: _Form, params: dict, fetch):
    if not connection.in_transaction():
        connection.begin()  # as SQLAlchemy would: the caller commits
    return _on_cursor(connection, form.sql, lambda: form.bind(params), fetch)


def _on_cursor(connection: Connection, sql: str, values, fetch=None):
    """Run one statement on a fresh DBAPI cursor of `connection`; returns fetch(cursor).

    `values` is a callable giving the parameters, so that a value that cannot be bound fails here too.
    """
    cursor = connection.connection.dbapi_connection.cursor()
    parameters = None
    try:
        parameters = values()
        cursor.execute(sql, parameters)
        return fetch(cursor) if fetch else None
    except BaseException as exc:
        # SQLAlchemy's own handling: its exception classes (StatementError for a value it cannot
        # bind), and a connection left mid-statement (lost, or interrupted) invalidated.
        connection._handle_dbapi_exception(exc, sql, parameters, cursor, None)
        raise  # not reached: it always raises
    finally:
        cursor.close()


def _needs_sqlalchemy(connection: Connection) -> bool:
    """Whether SQLAlchemy must run the statement: someone traces statements, or the engine rewrites or logs them."""
    return bool(connection.dispatch.before_cursor_execute or connection.dispatch.after_cursor_execute
                or connection.engine.echo or connection.get_execution_options().get("schema_translate_map"))


def _rowcount(cursor) -> int:
    return max(cursor.rowcount, 0)


class _Form:
    """One statement compiled for one dialect: its SQL, how to bind a mapping of values, how to read a row."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: tuple[str, ...]):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
        if compiled.insert_prefetch or compiled.update_prefetch:
            # SQLAlchemy computes Python-side defaults per execution; these statements must be given every value.
            missing = [column.key for column in (*compiled.insert_prefetch, *compiled.update_prefetch)]
            raise ValueError(f"give the values of {', '.join(missing)}: their defaults are computed in Python")
        self.sql = compiled.string
        names = compiled.positiontup if compiled.positional else sorted(set(compiled.bind_names.values()))
        binds = []
        for name in names:
            bind = compiled.binds[name]
            if bind.expanding:
                raise ValueError("Prepared statements take no IN lists")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((bind.key, bind.required, bind.effective_value, processor))
        self._binds = binds
        self._names = None if compiled.positional else names  # the parameters' names, when they go by name
        columns = list(statement.exported_columns)  # what it returns, if anything
        readers = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self._readers = [(i, reader) for i, reader in enumerate(readers) if reader is not None]
        self._row = namedtuple("Row", [column.key for column in columns]) if columns else None

    def bind(self, params: dict):
        """The DBAPI parameters: the caller's values and the statement's own literals, type-processed."""
        values = []
        for key, required, default, processor in self._binds:
            value = params[key] if required or key in params else default
            values.append(value if processor is None else processor(value))
        return values if self._names is None else dict(zip(self._names, values, strict=True))

    def first(self, cursor):
        raw = cursor.fetchone()
        if raw is None or self._row is None:
            return raw
        values = list(raw)
        for i, reader in self._readers:
            values[i] = reader(values[i])
        return self._row._make(values)


@cache
def prepared(statement: ClauseElement, keys: tuple[str, ...] = ()) -> Prepared:
    """One Prepared per statement (and INSERT columns), made on first use."""
    return Prepared(statement, keys)


def driver_sql(connection: Connection, sql: str) -> None:
    """A statement without parameters (BEGIN): on the cursor unless somebody traces statements."""
    if _needs_sqlalchemy(connection):
        connection.exec_driver_sql(sql)
    else:
        _on_cursor(connection, sql, tuple)
